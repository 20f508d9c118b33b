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
    fn deposited(&mut self, e: &Deposited) {
        self.total += e.amount;
    }

    #[on]
    fn deposited_again(&mut self, e: &Envelope<Deposited>) {
        self.total += e.event.amount;
    }
}

fn main() {}
