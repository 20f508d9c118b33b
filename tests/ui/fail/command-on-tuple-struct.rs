use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Deposit(u64);

fn main() {}
