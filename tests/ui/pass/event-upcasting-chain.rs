//! A chain of `previous` steps down to version 1, a JSON `upcast` step, and a generic event
//! with a `previous` step: each reads its older payloads as today's type.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 1)]
pub struct MoneyDepositedV1 {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 2, previous = MoneyDepositedV1)]
pub struct MoneyDeposited {
    pub amount: u64,
    pub currency: String,
}

impl From<MoneyDepositedV1> for MoneyDeposited {
    fn from(v1: MoneyDepositedV1) -> Self {
        Self { amount: v1.amount, currency: "EUR".into() }
    }
}

#[derive(Debug)]
pub struct NoNote;

impl std::fmt::Display for NoNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no note")
    }
}

impl std::error::Error for NoNote {}

fn note_v2(v1: serde_json::Value) -> Result<serde_json::Value, NoNote> {
    let note = v1.get("note").cloned().ok_or(NoNote)?;
    Ok(json!({ "text": note }))
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(version = 2, upcast = note_v2)]
pub struct Noted {
    pub text: String,
}

fn main() {
    assert_eq!(<MoneyDeposited as Event>::OLDEST_VERSION, 1);
    assert_eq!(
        MoneyDeposited::from_stored(1, &json!({ "amount": 3 })).unwrap(),
        MoneyDeposited { amount: 3, currency: "EUR".into() }
    );
    assert_eq!(<Noted as Event>::OLDEST_VERSION, 1);
    assert_eq!(
        Noted::from_stored(1, &json!({ "note": "hi" })).unwrap(),
        Noted { text: "hi".into() }
    );
    assert!(Noted::from_stored(1, &json!({})).is_err());
    assert!(MoneyDeposited::from_stored(3, &json!({ "amount": 3 })).is_err());
}
