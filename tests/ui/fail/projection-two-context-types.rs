use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Deposited {
    amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Withdrawn {
    amount: u64,
}

struct Ledger;
struct Journal;

#[derive(Projection)]
struct Statements;

#[projection_impl]
impl Statements {
    #[on]
    async fn deposited(&mut self, _: &Deposited, _: &mut Ledger) {}

    #[on]
    async fn withdrawn(&mut self, _: &Withdrawn, _: &mut Journal) {}
}

fn main() {}
