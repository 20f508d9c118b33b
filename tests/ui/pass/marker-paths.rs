// The markers by path (`#[es_core::command]`, `#[::es_core::apply]`) are read and stripped
// like `#[command]` and `#[apply]`; `#[command(...)]` under `#[derive(Command)]` stays the
// derive's helper with the glob-imported prelude in scope.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
#[command(crate = ::es_core)]
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
    #[es_core::command]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[::es_core::apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {
    let mut account = Account::default();
    let events = account.handle(Open.into()).expect("opens");
    account.apply(&events[0]);
    assert!(account.open);
}
