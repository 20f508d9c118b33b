use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 1)]
struct MoneyDepositedV1 {
    amount: u64,
}

// No version given: version 1 has nothing older to read.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", previous = MoneyDepositedV1)]
struct MoneyDeposited {
    amount: u64,
}

impl From<MoneyDepositedV1> for MoneyDeposited {
    fn from(v1: MoneyDepositedV1) -> Self {
        Self { amount: v1.amount }
    }
}

fn main() {}
