use es_core::prelude::*;
use serde::{Deserialize, Serialize};

// A step takes and returns JSON: `fn(serde_json::Value) -> Result<serde_json::Value, E>`.
fn v1_to_v2(v1: String) -> String {
    v1
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 2, upcast = v1_to_v2)]
struct MoneyDeposited {
    amount: u64,
}

fn main() {}
