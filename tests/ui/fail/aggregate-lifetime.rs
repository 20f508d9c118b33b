use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Open;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account<'a> {
    owner: &'a str,
}

#[aggregate_impl]
impl<'a> Account<'a> {
    #[command]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.owner = "ada";
    }
}

fn main() {}
