use es_core::prelude::*;
use serde::{Deserialize, Serialize};

mod events {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Opened {}
}

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
    fn opened(&mut self, _: &events::Opened) {
        self.open = true;
    }

    #[apply]
    fn opened_again(&mut self, _: &crate::events::Opened) {
        self.open = true;
    }
}

fn main() {}
