use es_core::prelude::*;

#[derive(Projection, Default)]
#[projection(name = "totals", checkpoint = "x")]
struct Totals {
    total: u64,
}

#[projection_impl]
impl Totals {}

fn main() {}
