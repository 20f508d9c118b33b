// The previous type has no `#[derive(Event)]`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct MoneyDepositedV1 {
    amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 2, previous = MoneyDepositedV1)]
struct MoneyDeposited {
    amount: u64,
}

impl From<MoneyDepositedV1> for MoneyDeposited {
    fn from(v1: MoneyDepositedV1) -> Self {
        Self { amount: v1.amount }
    }
}

fn main() {}
