use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(name = "Open")]
struct OpenV1;

// Its JSON `type` would be "Open" too.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Open;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account;

#[aggregate_impl]
impl Account {
    #[command]
    fn open_v1(&self, _: OpenV1) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[command]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}
}

fn main() {}
