// An aggregate generic over a policy: the impl's generics carry over to `impl Aggregate`.
use es_core::prelude::*;
use es_core::testing::Fixture;
use serde::{Deserialize, Serialize};

trait Limit: Default + Send + Sync + 'static {
    const MAX: u32;
}

#[derive(Default)]
struct Small;
impl Limit for Small {
    const MAX: u32 = 3;
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Incremented {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Increment;

#[derive(Debug, PartialEq)]
struct AtLimit;

#[derive(Aggregate, Default)]
#[aggregate(error = AtLimit)]
struct Counter<L: Limit> {
    count: u32,
    _limit: L,
}

#[aggregate_impl]
impl<L: Limit> Counter<L> {
    #[command]
    fn increment(&self, _: Increment) -> Result<Incremented, AtLimit> {
        if self.count >= L::MAX { Err(AtLimit) } else { Ok(Incremented {}) }
    }

    #[apply]
    fn incremented(&mut self, _: &Incremented) {
        self.count += 1;
    }
}

fn main() {
    let three = [Incremented {}.into(), Incremented {}.into(), Incremented {}.into()];
    Fixture::<Counter<Small>>::given(three).when(Increment).expect_error(AtLimit);
    assert_eq!(<Counter<Small> as AggregateRoot>::NAME, "counter");
}
