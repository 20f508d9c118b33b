use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(version = 1)]
struct MoneyDepositedV1 {
    amount: u64,
}

// The previous type is stored as "MoneyDepositedV1", not "MoneyDeposited".
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 2, previous = MoneyDepositedV1)]
struct MoneyDeposited {
    amount: u64,
    currency: String,
}

impl From<MoneyDepositedV1> for MoneyDeposited {
    fn from(v1: MoneyDepositedV1) -> Self {
        Self { amount: v1.amount, currency: "EUR".into() }
    }
}

fn main() {}
