//! Arbitrary bytes as the bank's command JSON (`{"type": "Deposit", "amount": 10}`), the
//! way a service receives it. When they decode, the command runs through a `Repository` on
//! the in-memory store against a fresh account and an open one with money in it.
//!
//! Any panic is a bug. So is any outcome but success, the domain saying no, or the store
//! refusing what no store can keep (`StoreError::Unstorable`, e.g. an owner's name holding
//! a NUL character): a command that decodes is one the aggregate must decide, and what it
//! decides must be stored and read back, or nothing written. A decoded command must also
//! encode to JSON that decodes to the same command.

#![no_main]

use std::sync::OnceLock;

use bank::domain::account::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, Deposit, OpenAccount,
};
use es_core::{Error, Executed, InMemoryStore, Repository, StoreError};
use libfuzzer_sys::fuzz_target;

/// One runtime for the whole run: building one per input would dominate the time.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// The version after success; `None` after a rejection or a typed refusal to store (nothing
/// written either way). Anything else fails the run.
fn decided(
    what: &str,
    command: &AccountCommand,
    outcome: Result<Executed<AccountEvent>, Error<AccountError>>,
) -> Option<u64> {
    match outcome {
        Ok(done) => Some(done.version),
        Err(Error::Rejected(_) | Error::Store(StoreError::Unstorable { .. })) => None,
        Err(e) => panic!("{what}: {command:?} neither succeeded nor was rejected: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = serde_json::from_slice::<AccountCommand>(data) else {
        return;
    };

    // Encoding is total and decodes back to the same command.
    let encoded = serde_json::to_value(&command).expect("a decoded command encodes");
    let again: AccountCommand =
        serde_json::from_value(encoded.clone()).expect("an encoded command decodes");
    assert_eq!(
        serde_json::to_value(&again).expect("encodes"),
        encoded,
        "{command:?} does not survive a JSON round trip"
    );

    runtime().block_on(async {
        let accounts = Repository::<Account, _>::new(InMemoryStore::new());

        let fresh = AccountId::new();
        let version = decided(
            "fresh account",
            &command,
            accounts.execute(&fresh, command.clone()).await,
        );
        let loaded = accounts
            .load(&fresh)
            .await
            .expect("what was appended loads back");
        assert_eq!(loaded.version, version.unwrap_or(0));

        let open = AccountId::new();
        accounts
            .execute(
                &open,
                OpenAccount {
                    owner: "ada".into(),
                },
            )
            .await
            .expect("opens");
        accounts
            .execute(&open, Deposit { amount: 100 })
            .await
            .expect("deposits");
        let version = decided(
            "open account",
            &command,
            accounts.execute(&open, command.clone()).await,
        );
        let loaded = accounts
            .load(&open)
            .await
            .expect("what was appended loads back");
        assert_eq!(loaded.version, version.unwrap_or(2));
        // Money is conserved: the balance moved by exactly what was accepted.
        let expected = match (&command, version) {
            (AccountCommand::Deposit(d), Some(_)) => 100 + i128::from(d.amount),
            (AccountCommand::Withdraw(w), Some(_)) => 100 - i128::from(w.amount),
            _ => 100,
        };
        assert_eq!(
            i128::from(loaded.state.balance()),
            expected,
            "money not conserved by {command:?}"
        );
    });
});
