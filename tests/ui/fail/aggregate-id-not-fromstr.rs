use es_core::prelude::*;

#[derive(Debug)]
struct AccountError;

#[derive(Clone, Debug)]
struct AccountId(u64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Aggregate, Default)]
#[aggregate(id = AccountId, error = AccountError)]
struct Account { open: bool }

fn main() {}
