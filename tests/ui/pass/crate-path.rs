// A crate that re-exports es_core names it with `crate = path`.
mod framework {
    pub use es_core as core_of_es;
}

use es_core::prelude::{Aggregate, Command, Event, aggregate_impl};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(crate = framework::core_of_es)]
struct Pinged {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(crate = framework::core_of_es)]
struct Ping;

#[derive(Debug)]
struct Never;

#[derive(Aggregate, Default)]
#[aggregate(error = Never, crate = framework::core_of_es)]
struct Pinger {
    pings: u8,
}

#[aggregate_impl(crate = framework::core_of_es)]
impl Pinger {
    #[command]
    fn ping(&self, _: Ping) -> Result<Pinged, Never> {
        Ok(Pinged {})
    }

    #[apply]
    fn pinged(&mut self, _: &Pinged) {
        self.pings += 1;
    }
}

fn main() {
    let mut p = Pinger::default();
    let events = framework::core_of_es::Aggregate::handle(&p, Ping.into()).expect("pings");
    framework::core_of_es::Aggregate::apply(&mut p, &events[0]);
    assert_eq!(p.pings, 1);
    wrapped_works();
}

// A macro_rules! wrapper names the re-export through `$crate`.
macro_rules! wrapped_aggregate {
    ($name:ident, $event:ident) => {
        #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
        #[event(crate = $crate::framework::core_of_es)]
        struct $event {}

        #[derive(Aggregate, Default)]
        #[aggregate(error = Never, crate = $crate::framework::core_of_es)]
        struct $name {
            seen: u8,
        }

        #[aggregate_impl(crate = $crate::framework::core_of_es)]
        impl $name {
            #[command]
            fn ping(&self, _: Ping) -> Result<$event, Never> {
                Ok($event {})
            }

            #[apply]
            fn seen(&mut self, _: &$event) {
                self.seen += 1;
            }
        }
    };
}

wrapped_aggregate!(Wrapped, WrappedPinged);

fn wrapped_works() {
    let mut w = Wrapped::default();
    let events = framework::core_of_es::Aggregate::handle(&w, WrappedCommand::from(Ping))
        .expect("pings");
    framework::core_of_es::Aggregate::apply(&mut w, &events[0]);
    assert_eq!(w.seen, 1);
}
