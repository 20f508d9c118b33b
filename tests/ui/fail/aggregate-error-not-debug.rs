use es_core::prelude::*;

struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
struct Account {
    open: bool,
}

fn main() {}
