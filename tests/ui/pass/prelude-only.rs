// A domain module that imports only the prelude (serde's derives by path).
use es_core::prelude::*;

#[derive(Event, serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Rang {}

#[derive(Command, serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Ring;

#[derive(Debug)]
pub enum BellError {}

#[derive(Aggregate, Default)]
#[aggregate(error = BellError)]
pub struct Bell {
    rings: u32,
}

#[aggregate_impl]
impl Bell {
    #[command]
    fn ring(&self, _: Ring) -> Result<Rang, BellError> {
        Ok(Rang {})
    }

    #[apply]
    fn rang(&mut self, _: &Rang) {
        self.rings += 1;
    }
}

// The prelude shadows nothing of the standard prelude.
fn still_std() -> Result<Option<u8>, std::fmt::Error> {
    Ok(Some(1))
}

fn main() {
    assert_eq!(<BellEvent as EventSet>::NAMES, &["Rang"]);
    assert_eq!(<Bell as AggregateRoot>::NAME, "bell");
    assert_eq!(still_std(), Ok(Some(1)));
    let _: BellCommand = Ring.into();
}
