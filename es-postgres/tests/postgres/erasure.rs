//! Erasure on PostgreSQL, checked with raw SQL: a personal field is never in the events
//! table in the clear; after `forget` its key row and the snapshots of its streams are gone,
//! and the aggregate still loads (the name as its `Default`).

use es_core::testing::evolution::{Deposit, Ledger, named_ledger};
use es_core::{EventStore, Repository};
use sqlx::Row;
use uuid::Uuid;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_field_is_never_stored_in_the_clear_and_forget_deletes_its_key() {
    let store = support::store().await;
    let schema = store.schema().to_owned();
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let (id, holder) = named_ledger(&ledgers, "Ada Lovelace").await;
    let count = |sql: String| {
        let store = store.clone();
        let holder = holder.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(holder)
                .fetch_one(store.pool())
                .await
                .expect("count")
                .get::<i64, _>(0)
        }
    };
    let plaintext = format!(
        "SELECT count(*) FROM \"{schema}\".events WHERE payload::text LIKE '%Ada Lovelace%' AND $1 <> ''"
    );
    assert_eq!(count(plaintext.clone()).await, 0, "never in the clear");
    let sealed = format!(
        "SELECT count(*) FROM \"{schema}\".events WHERE payload->'owner'->'$es_sealed'->>'subject' = $1"
    );
    assert_eq!(count(sealed.clone()).await, 1, "sealed under the holder");
    let keys = format!("SELECT count(*) FROM \"{schema}\".personal_keys WHERE subject = $1");
    assert_eq!(count(keys.clone()).await, 1);
    let snapshot_rows = |id: Uuid| {
        let store = store.clone();
        let schema = schema.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{schema}\".snapshots WHERE stream_id = $1"
            )))
            .bind(id.to_string())
            .fetch_one(store.pool())
            .await
            .expect("count")
            .get::<i64, _>(0)
        }
    };
    assert_eq!(
        snapshot_rows(id).await,
        1,
        "the third command took a snapshot"
    );
    assert_eq!(
        ledgers.load(&id).await.expect("load").state.owner,
        "Ada Lovelace"
    );

    store.forget(&holder).await.expect("forget");

    assert_eq!(count(keys).await, 0, "the key is gone");
    assert_eq!(
        snapshot_rows(id).await,
        0,
        "the snapshot holding the name is gone"
    );
    assert_eq!(count(sealed).await, 1, "the event stays, sealed");
    assert_eq!(count(plaintext).await, 0);
    let loaded = ledgers.load(&id).await.expect("still loads");
    assert_eq!(loaded.state.owner, "");
    assert_eq!(loaded.state.cents, 3);
    ledgers
        .execute(&id, Deposit { cents: 3 })
        .await
        .expect("commands go on");
}

/// The bank's owner name: sealed in the events table, erased by `forget`, while the account
/// loads, the statements in tables keep running, and a rebuild beside them completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_forgets_an_owner_and_keeps_working() {
    use bank::domain::account::{Account, AccountId, Deposit, OpenAccount, holder_of};
    use bank::statements::Statements;
    use bank::statements_pg::{NAME, PgStatements, PgStatementsV2};
    use es_core::Projector;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(30);
    let store = support::store().await;
    let schema = store.schema().to_owned();
    let accounts = Repository::<Account, _>::new(store.clone());
    let tables = Projector::new(store.clone(), PgStatements).spawn();
    let id = AccountId::new();
    let open = OpenAccount {
        owner: "Ada Lovelace".into(),
    };
    accounts.execute(&id, open).await.expect("open");
    let done = accounts
        .execute(&id, Deposit { amount: 100 })
        .await
        .expect("deposit");
    tables
        .wait_for(done.position.expect("appended"), WAIT)
        .await
        .expect("caught up");
    let in_the_clear = || {
        let store = store.clone();
        let schema = schema.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{schema}\".events WHERE payload::text LIKE '%Ada Lovelace%'"
            )))
            .fetch_one(store.pool())
            .await
            .expect("count")
            .get::<i64, _>(0)
        }
    };
    assert_eq!(
        in_the_clear().await,
        0,
        "the events table never holds the name"
    );

    store
        .forget(&holder_of("Ada Lovelace"))
        .await
        .expect("forget");

    assert_eq!(in_the_clear().await, 0);
    let loaded = accounts.load(&id).await.expect("the account still loads");
    assert_eq!(loaded.state.owner(), "", "the name reads as its Default");
    assert_eq!(loaded.state.balance(), 100);
    // The statements in tables keep running.
    let done = accounts
        .execute(&id, Deposit { amount: 5 })
        .await
        .expect("deposit");
    let last = done.position.expect("appended");
    tables.wait_for(last, WAIT).await.expect("still running");
    let balance = bank::statements_pg::balance(store.pool(), &schema, &id.to_string())
        .await
        .expect("query");
    assert_eq!(balance.map(|(b, _)| b), Some(105));
    // A rebuild beside them completes, without the name.
    let rebuilt = Projector::new(store.clone(), PgStatementsV2).spawn();
    rebuilt.wait_for(last, WAIT).await.expect("rebuilt");
    let owner: String = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT owner FROM \"{schema}__{NAME}_v2\".accounts WHERE account = $1"
    )))
    .bind(id.to_string())
    .fetch_one(store.pool())
    .await
    .expect("row")
    .get(0);
    assert_eq!(owner, "");
    // And one in memory from the start.
    let memory = Projector::new(store.clone(), Statements::default()).spawn();
    memory.wait_for(last, WAIT).await.expect("caught up");
    let key = id.to_string();
    assert_eq!(
        memory.read(|s| s.accounts.get(&key).map(|a| (a.owner.clone(), a.balance))),
        Some((String::new(), 105))
    );
    tables.stop().await;
    rebuilt.stop().await;
    memory.stop().await;
}
