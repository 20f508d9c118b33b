use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened", version = 2, name = "AccountOpened")]
struct Opened {}

fn main() {}
