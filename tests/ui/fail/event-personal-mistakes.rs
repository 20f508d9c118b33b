use es_core::prelude::*;
use serde::{Deserialize, Serialize};

// The subject names no field.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Registered {
    customer: String,
    #[personal(subject = custmer)]
    name: String,
}

// The subject is personal itself.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Renamed {
    #[personal(subject = name)]
    customer: String,
    #[personal(subject = customer)]
    name: String,
}

// No subject.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Moved {
    customer: String,
    #[personal]
    address: String,
}

fn main() {}
