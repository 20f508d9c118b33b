use es_core::prelude::*;

#[derive(Projection, Default)]
#[projection(version = 0)]
struct Totals {
    total: u64,
}

#[projection_impl]
impl Totals {}

fn main() {}
