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

/// A read-model table in the store's schema, and a count of its rows.
async fn notes_table(store: &es_postgres::PostgresStore) -> String {
    let table = format!("\"{}\".notes", store.schema());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (note text PRIMARY KEY)"
    )))
    .execute(store.pool())
    .await
    .expect("read model table");
    table
}

async fn notes(store: &es_postgres::PostgresStore, table: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT note FROM {table} ORDER BY note"
    )))
    .fetch_all(store.pool())
    .await
    .expect("read notes")
}

async fn note(tx: &mut sqlx::PgConnection, table: &str, text: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} VALUES ($1)"
    )))
    .bind(text)
    .execute(tx)
    .await
    .map(drop)
}

/// An append retried inside a transaction (its first try landed, the outcome was lost) gets
/// its original outcome, and the transaction goes on: what it wrote before and after the
/// append commits. A refused append (duplicate id, conflict) writes nothing and leaves the
/// transaction usable too. Never a success for a statement that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_replayed_append_in_leaves_the_callers_transaction_usable() {
    let store = support::store().await;
    let table = notes_table(&store).await;
    let stream = StreamId::new("account", Uuid::now_v7().to_string());
    let events = vec![deposited(1), deposited(2)];
    let first = store
        .append(&stream, ExpectedVersion::NoStream, events.clone())
        .await
        .expect("first append");

    let mut tx = store.pool().begin().await.expect("begin");
    note(&mut tx, &table, "before the replay")
        .await
        .expect("write");
    let again = store
        .append_in(&mut tx, &stream, ExpectedVersion::NoStream, events.clone())
        .await
        .expect("a replay gets its original outcome");
    assert_eq!(again, first);
    note(&mut tx, &table, "after the replay")
        .await
        .expect("the transaction is still usable after a replayed append");

    // Not a replay: the id is stored with other content.
    let mut clash = deposited(3);
    clash.event_id = events[0].event_id;
    let err = store
        .append_in(&mut tx, &stream, ExpectedVersion::Any, vec![clash])
        .await
        .expect_err("a stored id");
    assert!(
        matches!(err, StoreError::DuplicateEventId { .. }),
        "{err:?}"
    );
    let err = store
        .append_in(
            &mut tx,
            &stream,
            ExpectedVersion::NoStream,
            vec![deposited(4)],
        )
        .await
        .expect_err("the stream exists");
    assert!(
        matches!(err, StoreError::Conflict { actual: 2, .. }),
        "{err:?}"
    );
    note(&mut tx, &table, "after the refusals")
        .await
        .expect("the transaction is still usable after refused appends");
    tx.commit().await.expect("commit");

    assert_eq!(
        notes(&store, &table).await,
        [
            "after the refusals",
            "after the replay",
            "before the replay"
        ]
    );
    assert_eq!(store.stream_version(&stream).await.expect("version"), 2);
}

/// A refused `append_in` looks into the refusal on the caller's connection: with every pool
/// connection held by such transactions, it still answers at once with the conflict (it
/// would otherwise wait for a pool connection and fail as a backend timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_in_needs_no_second_connection() {
    let base = support::store().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&support::server().url)
        .await
        .expect("pool");
    let store = es_postgres::PostgresStore::new(pool)
        .with_schema(base.schema())
        .expect("schema");
    let stream = StreamId::new("account", Uuid::now_v7().to_string());
    let seed = deposited(1);
    store
        .append(&stream, ExpectedVersion::NoStream, vec![seed.clone()])
        .await
        .expect("seed");
    let mut a = store.pool().begin().await.expect("begin a");
    let mut b = store.pool().begin().await.expect("begin b");
    for tx in [&mut a, &mut b] {
        let conflict = store
            .append_in(tx, &stream, ExpectedVersion::NoStream, vec![deposited(2)])
            .await
            .expect_err("the stream exists");
        assert!(
            matches!(conflict, StoreError::Conflict { actual: 1, .. }),
            "{conflict:?}"
        );
        let mut clash = deposited(3);
        clash.event_id = seed.event_id;
        let duplicate = store
            .append_in(tx, &stream, ExpectedVersion::Any, vec![clash])
            .await
            .expect_err("a stored id");
        assert!(
            matches!(duplicate, StoreError::DuplicateEventId { .. }),
            "{duplicate:?}"
        );
    }
}

/// The global log is ordered by transaction id. A transaction that took its id before
/// another writer appended to the stream would put its event before theirs, out of the
/// stream's order: `append_in` refuses that with `TransactionTooOld` (nothing written, the
/// transaction still usable), and a new transaction appends in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_an_older_transaction_never_lands_out_of_stream_order() {
    let store = support::store().await;
    let stream = StreamId::new("account", Uuid::now_v7().to_string());
    store
        .append(&stream, ExpectedVersion::NoStream, vec![deposited(1)])
        .await
        .expect("seed");
    let mut old = store.pool().begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *old)
        .await
        .expect("the transaction takes its id now");
    store
        .append(&stream, ExpectedVersion::Exact(1), vec![deposited(2)])
        .await
        .expect("another writer, with a later id, commits version 2");
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exact(2)] {
        let err = store
            .append_in(&mut old, &stream, expected, vec![deposited(3)])
            .await
            .expect_err("out of the stream's order");
        assert!(
            matches!(&err, StoreError::TransactionTooOld { stream: s } if *s == stream),
            "{err:?}"
        );
    }
    sqlx::query("SELECT 1")
        .execute(&mut *old)
        .await
        .expect("the transaction is still usable");
    old.commit().await.expect("commit");
    let mut fresh = store.pool().begin().await.expect("begin");
    store
        .append_in(
            &mut fresh,
            &stream,
            ExpectedVersion::Exact(2),
            vec![deposited(3)],
        )
        .await
        .expect("a new transaction appends in order");
    fresh.commit().await.expect("commit");
    let versions_in = |log: &[es_core::RecordedEvent]| -> Vec<u64> {
        log.iter()
            .filter(|r| r.stream == stream)
            .map(|r| r.version)
            .collect()
    };
    let log = support::settled_log(&store, |log| versions_in(log).len() >= 3).await;
    let versions = versions_in(&log);
    assert_eq!(
        versions,
        [1, 2, 3],
        "the global log holds the stream in order"
    );
}

/// An inline projection in a table: written in the append's own transaction (and in the
/// caller's, with `append_in`), so the table is never behind the log; a failing handler
/// refuses the whole append, and neither the events nor the rows are written.
mod inline_projection {
    use es_core::prelude::*;
    use es_core::{EventStore, ExpectedVersion, StoreError, StreamId};
    use es_postgres::PgConnection;
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    use crate::support;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "MoneyDeposited")]
    struct MoneyDeposited {
        amount: i64,
    }

    #[derive(Projection)]
    #[projection(name = "inline_totals")]
    struct Totals {
        table: String,
    }

    #[projection_impl]
    impl Totals {
        #[on]
        async fn deposited(
            &mut self,
            e: &Envelope<MoneyDeposited>,
            tx: &mut PgConnection,
        ) -> Result<(), String> {
            if e.event.amount == 13 {
                return Err("13 is refused".to_owned());
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} VALUES ($1, $2) ON CONFLICT (account) DO UPDATE SET total = {0}.total + EXCLUDED.total",
                self.table
            )))
            .bind(e.stream.id())
            .bind(e.event.amount)
            .execute(tx)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
        }
    }

    fn deposited(amount: i64) -> es_core::NewEvent {
        es_core::NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "MoneyDeposited".into(),
            schema_version: 1,
            payload: serde_json::json!({ "amount": amount }),
            metadata: es_core::Metadata::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_inline_projection_commits_or_refuses_with_its_append() {
        let base = support::store().await;
        let table = format!("\"{}\".inline_totals", base.schema());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (account text PRIMARY KEY, total bigint NOT NULL)"
        )))
        .execute(base.pool())
        .await
        .expect("table");
        let store = base.with_inline(Totals {
            table: table.clone(),
        });
        let total = |account: String| {
            let (pool, sql) = (
                store.pool().clone(),
                format!("SELECT total FROM {table} WHERE account = $1"),
            );
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .bind(account)
                    .fetch_optional(&pool)
                    .await
                    .expect("read")
            }
        };
        let stream = StreamId::new("account", Uuid::now_v7().to_string());
        store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![deposited(5), deposited(7)],
            )
            .await
            .expect("append");
        assert_eq!(
            total(stream.id().to_owned()).await,
            Some(12),
            "no wait: same transaction"
        );

        let err = store
            .append(
                &stream,
                ExpectedVersion::Exact(2),
                vec![deposited(1), deposited(13)],
            )
            .await
            .expect_err("refused by the inline projection");
        assert!(
            matches!(&err, StoreError::InlineProjection { projection: "inline_totals", error, .. } if error.contains("13 is refused")),
            "{err:?}"
        );
        assert_eq!(
            store.stream_version(&stream).await.expect("version"),
            2,
            "no event written"
        );
        assert_eq!(
            total(stream.id().to_owned()).await,
            Some(12),
            "no row written"
        );

        // In the caller's transaction: rolled back with it.
        let mut tx = store.pool().begin().await.expect("begin");
        store
            .append_in(
                &mut tx,
                &stream,
                ExpectedVersion::Exact(2),
                vec![deposited(100)],
            )
            .await
            .expect("append in");
        tx.rollback().await.expect("rollback");
        assert_eq!(total(stream.id().to_owned()).await, Some(12));
        let mut tx = store.pool().begin().await.expect("begin");
        store
            .append_in(
                &mut tx,
                &stream,
                ExpectedVersion::Exact(2),
                vec![deposited(100)],
            )
            .await
            .expect("append in");
        tx.commit().await.expect("commit");
        assert_eq!(total(stream.id().to_owned()).await, Some(112));
        assert_eq!(store.stream_version(&stream).await.expect("version"), 3);

        // A retry of an append that already landed does not fold it twice.
        let again = deposited(1);
        let next = StreamId::new("account", Uuid::now_v7().to_string());
        for _ in 0..2 {
            store
                .append(&next, ExpectedVersion::NoStream, vec![again.clone()])
                .await
                .expect("append, then its replay");
        }
        assert_eq!(total(next.id().to_owned()).await, Some(1), "folded once");
    }
}
