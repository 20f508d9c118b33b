use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Open;

#[derive(Debug)]
struct AccountError;

// Snapshots keep the state as JSON: it needs `Serialize + Deserialize`.
#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(error = AccountError, snapshot(every = 100))]
struct Account {
    open: bool,
}

#[aggregate_impl]
impl Account {
    #[command]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {}
