use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct OpenAccount {
    owner: String,
    r#type: String,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct ChangeKind {
    #[serde(rename = "type")]
    kind: String,
}

fn main() {}
