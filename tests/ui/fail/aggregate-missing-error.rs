use es_core::prelude::*;

#[derive(Aggregate, Default)]
#[aggregate(name = "account")]
struct Account { open: bool }

fn main() {}
