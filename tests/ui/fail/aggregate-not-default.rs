use es_core::prelude::*;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate)]
#[aggregate(error = AccountError)]
struct Account { open: bool }

fn main() {}
