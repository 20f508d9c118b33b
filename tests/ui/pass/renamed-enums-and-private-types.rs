// `#[aggregate_impl(event = .., command = ..)]` renames the enums; private event and command
// types inside a public aggregate stay legal; the error converts with `Into`; a custom id.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "door.opened", version = 3)]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Open {}

#[derive(Debug)]
struct Jammed;

#[derive(Debug)]
pub enum DoorError {
    Jammed,
}

impl From<Jammed> for DoorError {
    fn from(_: Jammed) -> Self {
        DoorError::Jammed
    }
}

#[derive(Clone, Debug)]
pub struct DoorId(u32);

impl std::fmt::Display for DoorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "door{}", self.0)
    }
}

impl std::str::FromStr for DoorId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim_start_matches("door").parse().map(DoorId)
    }
}

#[derive(Aggregate, Default)]
#[aggregate(name = "door", id = DoorId, error = DoorError)]
pub struct Door {
    open: bool,
}

#[aggregate_impl(event = DoorFact, command = DoorRequest)]
impl Door {
    #[command]
    fn open(&self, _: Open) -> Result<Opened, Jammed> {
        if self.open { Err(Jammed) } else { Ok(Opened {}) }
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {
    let fact: DoorFact = Opened {}.into();
    assert_eq!(fact.name(), "door.opened");
    assert_eq!(fact.schema_version(), 3);
    let request: DoorRequest = serde_json::from_str(r#"{"type":"Open"}"#).expect("parses");
    let mut door = Door::default();
    let events = es_core::Aggregate::handle(&door, request.clone()).expect("opens");
    es_core::Aggregate::apply(&mut door, &events[0]);
    assert!(matches!(es_core::Aggregate::handle(&door, request), Err(DoorError::Jammed)));
}
