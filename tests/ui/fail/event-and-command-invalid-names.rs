use es_core::prelude::*;
use serde::{Deserialize, Serialize};

// A stored name and a command's JSON `type` are contracts: no empty or padded names.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = " Opened")]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(name = "")]
struct Open;

fn main() {}
