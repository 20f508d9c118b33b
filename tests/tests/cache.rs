//! The repository's aggregate cache (`with_cache`): a command on a kept aggregate reads
//! nothing from the store; a writer elsewhere is caught by the append's expected version and
//! the command decided again on the store's state; a refusal on a kept state is checked
//! against the store before it is returned; the cache is bounded by count.

use bank::domain::account::{Account, AccountError, AccountId, Deposit, OpenAccount, Withdraw};
use es_core::Error;
use es_core::prelude::*;
use es_core::testing::Instrumented;

fn open(owner: &str) -> OpenAccount {
    OpenAccount {
        owner: owner.into(),
    }
}

#[tokio::test]
async fn a_kept_aggregate_is_decided_without_reading_the_store() {
    let store = Instrumented::new(InMemoryStore::new());
    let accounts = Repository::<Account, _>::new(store.clone()).with_cache(16);
    let id = AccountId::new();
    accounts.execute(&id, open("ada")).await.expect("opens");
    assert_eq!(store.stream_reads(), 1, "the first command loads");
    for amount in 1..=3 {
        let done = accounts
            .execute(&id, Deposit { amount })
            .await
            .expect("deposit");
        assert_eq!(done.version, 1 + amount);
    }
    assert_eq!(store.stream_reads(), 1, "the next ones read nothing");
    assert_eq!(store.appends(), 4);
    let loaded = accounts.load(&id).await.expect("load");
    assert_eq!((loaded.version, loaded.state.balance()), (4, 6));
    // A clone shares the cache.
    accounts
        .clone()
        .execute(&id, Deposit { amount: 4 })
        .await
        .expect("deposit");
    assert_eq!(store.stream_reads(), 2, "only the load above read");
}

#[tokio::test]
async fn a_writer_elsewhere_is_caught_and_the_command_decided_again() {
    let store = Instrumented::new(InMemoryStore::new());
    let cached = Repository::<Account, _>::new(store.clone()).with_cache(16);
    let elsewhere = Repository::<Account, _>::new(store.clone());
    let id = AccountId::new();
    cached.execute(&id, open("ada")).await.expect("opens");
    cached
        .execute(&id, Deposit { amount: 10 })
        .await
        .expect("deposit");

    // Another writer deposits: the kept state (balance 10) is behind the stream (15).
    elsewhere
        .execute(&id, Deposit { amount: 5 })
        .await
        .expect("deposit elsewhere");
    // Refused on the kept state, accepted on the store's: the refusal was checked.
    let done = cached
        .execute(&id, Withdraw { amount: 15 })
        .await
        .expect("decided on the store's state");
    assert_eq!(done.version, 4);

    // Behind again; this command succeeds on the kept state's terms but its append
    // conflicts: it is decided again, with no retry configured and no error.
    elsewhere
        .execute(&id, Deposit { amount: 7 })
        .await
        .expect("deposit elsewhere");
    let done = cached
        .execute(&id, Deposit { amount: 1 })
        .await
        .expect("decided again after the conflict");
    assert_eq!(done.version, 6);
    let loaded = cached.load(&id).await.expect("load");
    assert_eq!(
        loaded.state.balance(),
        8,
        "10 + 5 - 15 + 7 + 1: no update lost"
    );

    // A refusal that holds on the store's state is returned, and the state stays kept.
    let reads = store.stream_reads();
    let refused = cached.execute(&id, Withdraw { amount: 100 }).await;
    assert!(matches!(
        refused,
        Err(Error::Rejected(AccountError::InsufficientFunds {
            balance: 8,
            ..
        }))
    ));
    assert_eq!(
        store.stream_reads(),
        reads + 1,
        "checked against the store once"
    );
    cached
        .execute(&id, Deposit { amount: 2 })
        .await
        .expect("deposit");
    assert_eq!(store.stream_reads(), reads + 1, "then kept again");
}

#[tokio::test]
async fn the_cache_is_bounded_by_count() {
    let store = Instrumented::new(InMemoryStore::new());
    let accounts = Repository::<Account, _>::new(store.clone()).with_cache(1);
    let (a, b) = (AccountId::new(), AccountId::new());
    accounts.execute(&a, open("ada")).await.expect("opens");
    accounts.execute(&b, open("bo")).await.expect("opens");
    assert_eq!(store.stream_reads(), 2);
    // One place: each command on the other aggregate loads it again.
    for _ in 0..2 {
        accounts
            .execute(&a, Deposit { amount: 1 })
            .await
            .expect("a");
        accounts
            .execute(&b, Deposit { amount: 1 })
            .await
            .expect("b");
    }
    assert_eq!(store.stream_reads(), 6);
    // The most recent one is kept.
    accounts
        .execute(&b, Deposit { amount: 1 })
        .await
        .expect("b");
    assert_eq!(store.stream_reads(), 6);
    // Nothing kept at all with a capacity of 0.
    let uncached = Repository::<Account, _>::new(store.clone()).with_cache(0);
    uncached
        .execute(&a, Deposit { amount: 1 })
        .await
        .expect("a");
    uncached
        .execute(&a, Deposit { amount: 1 })
        .await
        .expect("a");
    assert_eq!(store.stream_reads(), 8);
}

#[tokio::test]
async fn a_forget_drops_the_aggregates_kept_before_it() {
    let store = Instrumented::new(InMemoryStore::new());
    let accounts = Repository::<Account, _>::new(store.clone()).with_cache(16);
    let (id, other) = (AccountId::new(), AccountId::new());
    accounts.execute(&id, open("ada")).await.expect("opens");
    accounts
        .execute(&other, open("grace"))
        .await
        .expect("opens");
    accounts
        .execute(&id, Deposit { amount: 1 })
        .await
        .expect("deposit");
    assert_eq!(store.stream_reads(), 2, "kept: the deposit read nothing");

    // The kept state holds Ada's name in the clear: after the forget it must not be used.
    store
        .forget(&bank::domain::account::holder_of("ada"))
        .await
        .expect("forget");
    accounts
        .execute(&id, Deposit { amount: 2 })
        .await
        .expect("deposit");
    assert_eq!(store.stream_reads(), 3, "read again after the forget");
    accounts
        .execute(&other, Deposit { amount: 3 })
        .await
        .expect("deposit");
    assert_eq!(store.stream_reads(), 4, "every aggregate kept before it");
    // Kept again from the store's state, as the forget left it.
    accounts
        .execute(&id, Deposit { amount: 4 })
        .await
        .expect("deposit");
    assert_eq!(store.stream_reads(), 4, "kept again");
    let loaded = accounts.load(&id).await.expect("load");
    assert_eq!((loaded.state.owner(), loaded.state.balance()), ("", 7));
}
