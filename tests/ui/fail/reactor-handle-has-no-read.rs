use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Reactor)]
struct Welcome;

#[reactor_impl]
impl Welcome {
    #[on]
    async fn opened(&self, _: &Opened) {}
}

#[tokio::main]
async fn main() {
    let handle = Projector::new(InMemoryStore::new(), Welcome).spawn();
    handle.read(|_| ());
}
