use es_core::prelude::*;
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "OpenedV1")]
    pub struct Opened {}
}

mod v2 {
    use super::*;
    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Opened {}
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Open;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account {
    open: bool,
}

#[aggregate_impl]
impl Account {
    #[command]
    fn open(&self, _: Open) -> Result<v2::Opened, AccountError> {
        Ok(v2::Opened {})
    }

    #[apply]
    fn opened(&mut self, _: &v1::Opened) {
        self.open = true;
    }
}

fn main() {}
