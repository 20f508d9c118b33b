//! The repository's aggregate cache on PostgreSQL with two processes writing (two stores on
//! one schema, each with its own pool): the cached writer never loses the other's update,
//! and a command on a kept aggregate reads nothing.

use bank::domain::account::{Account, AccountId, Deposit, OpenAccount, Withdraw};
use es_core::Repository;
use es_core::testing::Instrumented;
use es_postgres::PostgresStore;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_writer_and_another_process_lose_no_update() {
    let store = support::store().await;
    let other = PostgresStore::new(support::pool(4).await)
        .with_schema(store.schema())
        .expect("schema");
    let counted = Instrumented::new(store.clone());
    let cached = Repository::<Account, _>::new(counted.clone())
        .with_cache(8)
        .with_retry(20);
    let elsewhere = Repository::<Account, _>::new(other).with_retry(20);
    let id = AccountId::new();
    let open = OpenAccount {
        owner: "ada".into(),
    };
    cached.execute(&id, open).await.expect("opens");
    let reads = counted.stream_reads();
    for _ in 0..5 {
        cached
            .execute(&id, Deposit { amount: 1 })
            .await
            .expect("deposit");
    }
    assert_eq!(counted.stream_reads(), reads, "kept: no load");

    // Both write at once: every update lands.
    let a = {
        let cached = cached.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                cached
                    .execute(&id, Deposit { amount: 1 })
                    .await
                    .expect("cached deposit");
            }
        })
    };
    let b = tokio::spawn(async move {
        for _ in 0..20 {
            elsewhere
                .execute(&id, Deposit { amount: 10 })
                .await
                .expect("deposit elsewhere");
        }
    });
    a.await.expect("a");
    b.await.expect("b");
    let loaded = cached.load(&id).await.expect("load");
    assert_eq!(loaded.state.balance(), 5 + 20 + 200);
    assert_eq!(loaded.version, 1 + 5 + 40);
    // The kept state is right too: a withdrawal of everything goes through.
    cached
        .execute(&id, Withdraw { amount: 225 })
        .await
        .expect("withdraw all");
}
