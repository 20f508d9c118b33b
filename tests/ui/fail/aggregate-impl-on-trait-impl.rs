use es_core::prelude::*;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account { open: bool }

#[aggregate_impl]
impl Clone for Account {
    fn clone(&self) -> Self {
        Self { open: self.open }
    }
}

fn main() {}
