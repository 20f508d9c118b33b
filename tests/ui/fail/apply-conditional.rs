use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account {
    open: bool,
}

#[aggregate_impl]
impl Account {
    #[apply]
    #[cfg(feature = "audit")]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {}
