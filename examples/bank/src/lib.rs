//! The banking platform example: the domain (`domain`) and the scripted demo (`scenario`)
//! that `cargo run -p bank` prints. Later services (transfers, statements) join here and
//! share only the events of `domain`.

pub mod domain;

/// The event contracts of every aggregate of the bank: what its services share. `cargo run
/// -p bank -- contracts <dir>` writes them; `tests/contracts.rs` compares them with the
/// committed `contracts/` folder.
#[must_use]
pub fn contracts() -> es_core::contracts::Contracts {
    es_core::contracts::Contracts::new()
        .of::<domain::account::Account>()
        .of::<domain::customer::Customer>()
        .of::<domain::transfer::Transfer>()
}
pub mod race;
pub mod rebuild_demo;
pub mod saga;
pub mod scenario;
pub mod statements;
pub mod statements_pg;
pub mod transfers;
