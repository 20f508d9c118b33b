use es_core::prelude::*;

#[derive(Debug)]
struct AccountError;

#[derive(Aggregate, Default)]
#[aggregate(name = "Bank-Account", error = AccountError)]
struct Account { open: bool }

fn main() {}
