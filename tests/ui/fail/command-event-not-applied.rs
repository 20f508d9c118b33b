use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct MoneyWithdrawn { amount: u64 }

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Withdraw { amount: u64 }

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account { open: bool }

#[aggregate_impl]
impl Account {
    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<MoneyWithdrawn, AccountError> {
        Ok(MoneyWithdrawn { amount: cmd.amount })
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {}
