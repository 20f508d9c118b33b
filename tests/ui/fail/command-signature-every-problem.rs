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

#[aggregate_impl]
impl Account {
    #[command]
    async fn open(&mut self, _: &Open) -> Opened {
        self.open = true;
        Opened {}
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {}
