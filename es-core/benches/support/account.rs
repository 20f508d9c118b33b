//! The account both in-memory benches drive: one event type, one command, a balance.

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct Deposited {
    pub(crate) amount: u64,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Deposit {
    pub(crate) amount: u64,
}

#[derive(Debug)]
pub(crate) struct Never;

#[derive(Aggregate, Default)]
#[aggregate(error = Never)]
pub(crate) struct Account {
    pub(crate) balance: u64,
}

#[aggregate_impl]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, Never> {
        Ok(Deposited { amount: cmd.amount })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}
