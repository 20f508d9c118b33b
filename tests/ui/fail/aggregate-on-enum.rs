use es_core::prelude::*;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError)]
enum Account {
    #[default]
    New,
    Open,
}

fn main() {}
