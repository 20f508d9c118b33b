//! The banking platform example: the domain (`domain`) and the scripted demo (`scenario`)
//! that `cargo run -p bank` prints. Later services (transfers, statements) join here and
//! share only the events of `domain`.

pub mod domain;
pub mod race;
pub mod rebuild_demo;
pub mod saga;
pub mod scenario;
pub mod statements;
pub mod statements_pg;
pub mod transfers;
