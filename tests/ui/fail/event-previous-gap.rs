use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 1)]
struct MoneyDepositedV1 {
    amount: u64,
}

// Version 3 names version 1 as its previous one: version 2 is missing.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 3, previous = MoneyDepositedV1)]
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
