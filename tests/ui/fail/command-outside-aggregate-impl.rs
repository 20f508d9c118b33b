use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Open;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account {
    open: bool,
}

impl Account {
    #[command]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }
}

fn main() {
    let _ = Account::default().open(Open);
}
