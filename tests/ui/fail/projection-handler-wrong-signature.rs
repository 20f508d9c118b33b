use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Deposited {
    amount: u64,
}

#[derive(Projection, Default)]
struct Totals {
    total: u64,
}

#[projection_impl]
impl Totals {
    #[on]
    fn deposited(&self, e: Deposited) {
        let _ = e.amount;
    }
}

fn main() {}
