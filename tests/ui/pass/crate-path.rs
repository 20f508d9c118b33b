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
}
