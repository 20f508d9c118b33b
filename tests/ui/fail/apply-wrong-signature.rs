use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account { open: bool }

#[aggregate_impl]
impl Account {
    #[apply]
    fn opened(&self, _e: Opened) {}
}

fn main() {}
