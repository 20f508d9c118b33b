use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 1)]
struct MoneyDepositedV1 {
    amount: u64,
}

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

fn v1_to_v2(v1: serde_json::Value) -> Result<serde_json::Value, Never> {
    Ok(v1)
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 2, previous = MoneyDepositedV1, upcast = v1_to_v2)]
struct MoneyDeposited {
    amount: u64,
}

impl From<MoneyDepositedV1> for MoneyDeposited {
    fn from(v1: MoneyDepositedV1) -> Self {
        Self { amount: v1.amount }
    }
}

fn main() {}
