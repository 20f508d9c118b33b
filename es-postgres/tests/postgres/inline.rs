//! Appending inside the caller's transaction: a read-model write commits or rolls back with
//! the events (the ground for inline projections), and a refused append refuses the whole.

use std::time::Duration;

use es_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StoreError, StreamId};
use futures::StreamExt;
use uuid::Uuid;

use crate::support;

fn deposited(amount: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MoneyDeposited".into(),
        schema_version: 1,
        payload: serde_json::json!({ "amount": amount }),
        metadata: Metadata::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_a_read_model_commit_or_roll_back_together() {
    let store = support::store().await;
    let schema = store.schema().to_owned();
    let balances = format!("\"{schema}\".balances");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {balances} (account text PRIMARY KEY, total bigint NOT NULL)"
    )))
    .execute(store.pool())
    .await
    .expect("read model table");
    let upsert = format!(
        "INSERT INTO {balances} VALUES ($1, $2) \
         ON CONFLICT (account) DO UPDATE SET total = {balances}.total + EXCLUDED.total"
    );
    let total = |account: String| {
        let sql = format!("SELECT total FROM {balances} WHERE account = $1");
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(account)
                .fetch_optional(&pool)
                .await
                .expect("read model")
        }
    };
    let stream = StreamId::new("account", Uuid::now_v7().to_string());
    let mut sub = store.subscribe(None);

    // Rolled back: neither the event nor the read model's row.
    let mut tx = store.pool().begin().await.expect("begin");
    store
        .append_in(
            &mut tx,
            &stream,
            ExpectedVersion::NoStream,
            vec![deposited(5)],
        )
        .await
        .expect("append in the transaction");
    sqlx::query(sqlx::AssertSqlSafe(upsert.clone()))
        .bind(stream.id())
        .bind(5i64)
        .execute(&mut *tx)
        .await
        .expect("read model write");
    tx.rollback().await.expect("rollback");
    assert_eq!(store.stream_version(&stream).await.expect("version"), 0);
    assert_eq!(total(stream.id().to_owned()).await, None);

    // Committed: both.
    let mut tx = store.pool().begin().await.expect("begin");
    let done = store
        .append_in(
            &mut tx,
            &stream,
            ExpectedVersion::NoStream,
            vec![deposited(7)],
        )
        .await
        .expect("append in the transaction");
    sqlx::query(sqlx::AssertSqlSafe(upsert.clone()))
        .bind(stream.id())
        .bind(7i64)
        .execute(&mut *tx)
        .await
        .expect("read model write");
    tx.commit().await.expect("commit");
    store.notify_committed();
    assert_eq!(done.version, 1);
    assert_eq!(store.stream_version(&stream).await.expect("version"), 1);
    assert_eq!(total(stream.id().to_owned()).await, Some(7));
    let seen = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("delivered")
        .expect("goes on")
        .expect("no error");
    assert_eq!(seen.payload["amount"], 7);
    assert_eq!(seen.position, done.positions[0]);

    // A refused append refuses the whole transaction: the read model keeps its total.
    let mut tx = store.pool().begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(upsert))
        .bind(stream.id())
        .bind(100i64)
        .execute(&mut *tx)
        .await
        .expect("read model write");
    let err = store
        .append_in(
            &mut tx,
            &stream,
            ExpectedVersion::NoStream,
            vec![deposited(100)],
        )
        .await
        .expect_err("the stream exists");
    assert!(
        matches!(err, StoreError::Conflict { actual: 1, .. }),
        "{err:?}"
    );
    drop(tx); // rolled back
    assert_eq!(total(stream.id().to_owned()).await, Some(7));
    assert_eq!(store.stream_version(&stream).await.expect("version"), 1);
}
