// An aggregate with no command and no event yet still compiles (a first draft).
use es_core::prelude::*;

#[derive(Debug)]
struct Never;

#[derive(Aggregate, Default)]
#[aggregate(error = Never)]
struct Draft;

#[aggregate_impl]
impl Draft {}

fn main() {
    assert!(<DraftEvent as EventSet>::NAMES.is_empty());
    assert!(serde_json::from_str::<DraftCommand>(r#"{"type":"Anything"}"#).is_err());
}
