use es_core::prelude::*;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(error = AccountError, idd = u64)]
struct Account { open: bool }

fn main() {}
