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

impl Totals {
    #[on]
    fn deposited(&mut self, e: &Deposited) {
        self.total += e.amount;
    }
}

fn main() {
    Totals::default().deposited(&Deposited { amount: 1 });
}
