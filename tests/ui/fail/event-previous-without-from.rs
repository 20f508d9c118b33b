use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 1)]
struct MoneyDepositedV1 {
    amount: u64,
}

// No `impl From<MoneyDepositedV1> for MoneyDeposited`.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 2, previous = MoneyDepositedV1)]
struct MoneyDeposited {
    amount: u64,
    currency: String,
}

fn main() {}
