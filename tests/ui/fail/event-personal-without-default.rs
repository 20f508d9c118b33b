use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Address {
    street: String,
}

// A forgotten field reads as its type's `Default`: `Address` has none.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Moved {
    customer: String,
    #[personal(subject = customer)]
    address: Address,
}

fn main() {}
