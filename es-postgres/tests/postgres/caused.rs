//! `execute_caused_by` on PostgreSQL: a redelivered command (same cause, same command, same
//! stream) gets the first outcome and appends nothing, from another store instance too (a
//! restart), and racing redeliveries append once.

use bank::domain::account::{Account, AccountId, Deposit, MoneyDeposited, OpenAccount};
use es_core::{EventStore, Repository, StreamId};
use es_postgres::PostgresStore;
use uuid::Uuid;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_caused_command_appends_once() {
    let store = support::store().await;
    let accounts = Repository::<Account, _>::new(store.clone()).with_retry(16);
    let id = AccountId::new();
    accounts
        .execute(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
        )
        .await
        .expect("open");
    let cause = es_core::testing::envelope(
        StreamId::new("transfer", Uuid::now_v7().to_string()),
        1,
        MoneyDeposited { amount: 1 },
    );
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (accounts, cause) = (accounts.clone(), cause.clone());
            tokio::spawn(async move {
                accounts
                    .execute_caused_by(&cause, &id, Deposit { amount: 25 })
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("every delivery succeeds"));
    }
    assert!(
        outcomes.windows(2).all(|w| w[0].events == w[1].events),
        "one outcome"
    );
    // A restart: another store on another pool, same schema.
    let restarted = PostgresStore::new(support::pool(2).await)
        .with_schema(store.schema())
        .expect("schema");
    let again = Repository::<Account, _>::new(restarted.clone())
        .execute_caused_by(&cause, &id, Deposit { amount: 25 })
        .await
        .expect("redelivery after a restart");
    assert_eq!(again.events, outcomes[0].events);
    assert_eq!(
        restarted
            .stream_version(&accounts.stream_id(&id))
            .await
            .expect("version"),
        2,
        "opened, then one deposit"
    );
}
