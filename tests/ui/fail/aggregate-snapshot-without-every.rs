use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default, Clone, Debug, Serialize, Deserialize)]
#[aggregate(error = AccountError, snapshot(version = 2))]
struct Account {
    open: bool,
}

#[derive(Aggregate, Default, Clone, Debug, Serialize, Deserialize)]
#[aggregate(error = AccountError, snapshot(every = 0, evrey = 3))]
struct Ledger {
    open: bool,
}

fn main() {}
