//! The edges of append and set-up: NUL characters, schema names, repeated migrations,
//! versions past PostgreSQL's integer range, and the horizon report.

use es_core::{EventStore, ExpectedVersion, Metadata, RecordedEvent, StoreError, StreamId};
use es_postgres::{PostgresError, PostgresStore};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::support;

use support::noted as event;

#[tokio::test]
async fn a_nul_character_is_a_typed_error_and_writes_nothing() {
    let store = support::store().await;
    let stream = StreamId::new("notes", Uuid::now_v7().to_string());
    for (payload, metadata) in [
        (
            serde_json::json!({ "text": "a\u{0}b" }),
            Metadata::default(),
        ),
        (
            serde_json::json!({ "nested": [{ "k\u{0}": 1 }] }),
            Metadata::default(),
        ),
        (serde_json::json!({}), Metadata::default().actor("ev\u{0}e")),
    ] {
        let mut bad = event(payload);
        bad.metadata = metadata;
        let err = store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![event(serde_json::json!({ "fine": true })), bad],
            )
            .await
            .expect_err("NUL");
        match err {
            StoreError::Unstorable { stream: s, reason } => {
                assert_eq!(s, stream);
                assert!(reason.contains("NUL"), "{reason}");
            }
            other => panic!("expected Unstorable, got {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&stream).await.expect("version"), 0);
}

#[tokio::test]
async fn schema_names_are_validated() {
    let pool = support::pool(1).await;
    for bad in [
        "Bank",
        "bank-events",
        "x\"; DROP TABLE events; --",
        "",
        "pg_events",
    ] {
        let err = PostgresStore::new(pool.clone())
            .with_schema(bad)
            .expect_err("invalid");
        assert!(
            matches!(err, PostgresError::InvalidSchema(ref s) if s == bad),
            "{err:?}"
        );
    }
}

/// Every name `with_schema` accepts, `migrate()` can create and the store can use: reserved
/// words included, since the name is quoted everywhere.
#[tokio::test]
async fn reserved_words_are_usable_schema_names() {
    let pool = support::pool(2).await;
    for word in ["order", "user", "select", "table"] {
        let store = PostgresStore::new(pool.clone())
            .with_schema(word)
            .expect("a valid name");
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate into {word:?}: {e}"));
        let stream = StreamId::new("notes", Uuid::now_v7().to_string());
        let done = store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event(serde_json::json!({ "in": word }))],
            )
            .await
            .unwrap_or_else(|e| panic!("append in {word:?}: {e}"));
        let read: Vec<_> = store
            .read_stream(&stream, 1)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("read in {word:?}: {e}"));
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].payload["in"], word);
        assert_eq!(read[0].position, done.positions[0]);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{word}\" CASCADE"
        )))
        .execute(&pool)
        .await
        .expect("clean up");
    }
}

#[tokio::test]
async fn migrating_twice_is_a_no_op_and_keeps_the_data() {
    let store = support::store().await;
    let stream = StreamId::new("notes", "1");
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event(serde_json::json!({}))],
        )
        .await
        .expect("append");
    store.migrate().await.expect("second migration run");
    assert_eq!(store.stream_version(&stream).await.expect("version"), 1);
}

#[tokio::test]
async fn an_expected_version_past_the_integer_range_is_a_conflict() {
    let store = support::store().await;
    let stream = StreamId::new("notes", Uuid::now_v7().to_string());
    let err = store
        .append(
            &stream,
            ExpectedVersion::Exact(u64::MAX),
            vec![event(serde_json::json!({}))],
        )
        .await
        .expect_err("conflict");
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                actual: 0,
                expected: ExpectedVersion::Exact(u64::MAX),
                ..
            }
        ),
        "{err:?}"
    );
    let none: Vec<_> = store
        .read_stream(&stream, u64::MAX)
        .try_collect()
        .await
        .expect("read");
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_multi_event_append_passes_arrays_whatever_its_size() {
    // 70,000 events in one append: far past the 65,535 bind parameters a VALUES list could use.
    let store = support::store().await;
    let stream = StreamId::new("bulk", Uuid::now_v7().to_string());
    let events: Vec<_> = (0..70_000)
        .map(|n| event(serde_json::json!({ "n": n })))
        .collect();
    let done = store
        .append(&stream, ExpectedVersion::NoStream, events)
        .await
        .expect("one append");
    assert_eq!(done.version, 70_000);
    assert_eq!(done.positions.len(), 70_000);
    assert!(done.positions.windows(2).all(|w| w[0] < w[1]));
    let read: Vec<_> = store
        .read_stream(&stream, 69_999)
        .try_collect()
        .await
        .expect("read");
    assert_eq!(
        read.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![69_999, 70_000]
    );
    assert_eq!(read[1].payload["n"], 69_999);
}

#[tokio::test]
async fn an_applications_own_sqlx_migrations_in_the_schema_are_left_alone() {
    let pool = support::pool(2).await;
    let schema = format!("es_test_{}", Uuid::now_v7().simple());
    // The application migrated first, with sqlx's default table, in the same schema.
    for sql in [
        format!("CREATE SCHEMA \"{schema}\""),
        format!(
            "CREATE TABLE \"{schema}\"._sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL, \
             installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL, \
             execution_time bigint NOT NULL)"
        ),
        format!(
            "INSERT INTO \"{schema}\"._sqlx_migrations VALUES (20260101, 'app', now(), true, '\\x00', 1)"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("app set-up");
    }
    let store = PostgresStore::new(pool)
        .with_schema(&schema)
        .expect("schema");
    store
        .migrate()
        .await
        .expect("the store migrates beside the app's migrations");
    let app_rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\"._sqlx_migrations"
    )))
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(app_rows, 1, "the app's migration table is untouched");
}

/// Reads are paged by bytes as well as by rows: with a byte bound below one record, each
/// page holds one record, and the reads are still complete and in order. (Paging shows: a
/// stream read goes on page after page until a page comes back empty, so it also finds what
/// was appended after its first page; one page of 500 rows would have ended the read.)
#[tokio::test]
async fn reads_are_paged_by_bytes_too() {
    let store = support::store().await.with_batch_bytes(1);
    let stream = StreamId::new("bulky", Uuid::now_v7().to_string());
    let big = |n: u32| event(serde_json::json!({ "n": n, "pad": "p".repeat(10_000) }));
    let first = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            (0..3).map(big).collect(),
        )
        .await
        .expect("append");
    let mut read = store.read_stream(&stream, 1);
    let one = read.try_next().await.expect("read").expect("a record");
    assert_eq!(one.version, 1);
    store
        .append(
            &stream,
            ExpectedVersion::Exact(3),
            (3..5).map(big).collect(),
        )
        .await
        .expect("append more");
    let rest: Vec<_> = read.try_collect().await.expect("read on");
    assert_eq!(
        rest.iter().map(|r| r.version).collect::<Vec<_>>(),
        [2, 3, 4, 5],
        "one record per page, so the read went on to the later appends"
    );
    let mine_in = |log: &[RecordedEvent]| log.iter().filter(|r| r.stream == stream).count();
    let all = support::settled_log(&store, |log| mine_in(log) >= 5).await;
    let mine: Vec<_> = all.iter().filter(|r| r.stream == stream).collect();
    assert_eq!(mine.len(), 5, "read_all is complete under the byte bound");
    assert_eq!(mine[0].position, first.positions[0]);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
}

/// A store appends without looking at a stream it has seen reach the expected version (a
/// load's, an append's): another writer that got in meanwhile still makes it the conflict,
/// with the version that writer left, and nothing is written. A version it never saw is
/// looked at, and refused when the stream is short of it.
#[tokio::test]
async fn an_append_expecting_a_version_seen_before_conflicts_after_another_writer() {
    let store = support::store().await;
    let other = PostgresStore::new(store.pool().clone())
        .with_schema(store.schema())
        .expect("schema");
    let stream = StreamId::new("notes", Uuid::now_v7().to_string());
    let first = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event(serde_json::json!({ "n": 1 }))],
        )
        .await
        .expect("first");
    assert_eq!(first.version, 1);
    other
        .append(
            &stream,
            ExpectedVersion::Exact(1),
            vec![event(serde_json::json!({ "n": 2 }))],
        )
        .await
        .expect("the other writer");
    for expected in [1, 5] {
        let err = store
            .append(
                &stream,
                ExpectedVersion::Exact(expected),
                vec![event(serde_json::json!({ "n": 3 }))],
            )
            .await
            .expect_err("conflict");
        match err {
            StoreError::Conflict {
                stream: s,
                expected: e,
                actual,
            } => {
                assert_eq!(s, stream);
                assert_eq!(e, ExpectedVersion::Exact(expected));
                assert_eq!(actual, 2);
            }
            other => panic!("expecting {expected}: {other:?}"),
        }
    }
    let stored: Vec<_> = store
        .read_stream(&stream, 1)
        .try_collect()
        .await
        .expect("read");
    assert_eq!(stored.len(), 2, "nothing written by the refused appends");
    // Seen at 2 now (by the load-like read below), it appends at 2.
    let _: Vec<_> = store
        .read_for_load(&stream, 1)
        .try_collect()
        .await
        .expect("load");
    let landed = store
        .append(
            &stream,
            ExpectedVersion::Exact(2),
            vec![event(serde_json::json!({ "n": 3 }))],
        )
        .await
        .expect("lands");
    assert_eq!(landed.version, 3);
}

/// An append on a caller's connection, in a transaction sqlx does not know of (a plain
/// `BEGIN`), is not taken as committed: once that transaction rolls back, an append
/// expecting the version it would have made is the conflict, not a gap in the stream.
#[tokio::test]
async fn an_append_in_a_transaction_begun_by_hand_is_not_taken_as_committed() {
    let store = support::store().await;
    let stream = StreamId::new("notes", Uuid::now_v7().to_string());
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event(serde_json::json!({ "n": 1 }))],
        )
        .await
        .expect("first");
    let mut conn = store.pool().acquire().await.expect("connection");
    sqlx::raw_sql("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("BEGIN");
    let inside = store
        .append_in(
            &mut conn,
            &stream,
            ExpectedVersion::Exact(1),
            vec![event(serde_json::json!({ "n": 2 }))],
        )
        .await
        .expect("appended in the transaction");
    assert_eq!(inside.version, 2);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *conn)
        .await
        .expect("ROLLBACK");
    drop(conn);
    match store
        .append(
            &stream,
            ExpectedVersion::Exact(2),
            vec![event(serde_json::json!({ "n": 3 }))],
        )
        .await
    {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 1),
        other => panic!("the stream is at 1: {other:?}"),
    }
    let stored: Vec<_> = store
        .read_stream(&stream, 1)
        .try_collect()
        .await
        .expect("read");
    let versions: Vec<u64> = stored.iter().map(|r| r.version).collect();
    assert_eq!(versions, [1], "no gap, nothing after the rollback");
}
