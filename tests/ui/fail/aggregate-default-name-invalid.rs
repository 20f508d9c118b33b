use es_core::prelude::*;

#[derive(Debug)]
struct LibraryError;

#[derive(Aggregate, Default)]
#[aggregate(error = LibraryError)]
struct Bücher {
    count: u32,
}

fn main() {}
