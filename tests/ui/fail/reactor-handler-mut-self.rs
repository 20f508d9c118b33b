use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Reactor)]
struct Welcome {
    sent: u32,
}

#[reactor_impl]
impl Welcome {
    #[on]
    async fn opened(&mut self, _: &Opened) {
        self.sent += 1;
    }
}

fn main() {}
