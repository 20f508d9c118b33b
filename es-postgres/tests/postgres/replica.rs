//! Reading the global log off a hot standby (`with_replica`): the late-commit proof again,
//! with the subscriber and `read_all` on a streaming replica of a throwaway primary
//! (`pg_basebackup -R`). Rows the standby has replayed but that sit behind a transaction
//! still open on the primary stay invisible there; when it commits, the subscriber gets the
//! late event first and everything once.

use std::time::{Duration, Instant};

use es_core::{EventStore, ExpectedVersion, RecordedEvent, StreamId};
use es_postgres::PostgresStore;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::late_commit::{event, insert_in, take};
use crate::support;

async fn connect(url: &str) -> PgPool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgPoolOptions::new().max_connections(8).connect(url).await {
            Ok(pool) => return pool,
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {url}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits until the standby has replayed `n` rows of the schema's events (plain visibility,
/// no horizon): they are there, whatever a reader of the log may see.
async fn replayed(standby: &PgPool, schema: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{schema}\".events"
        )))
        .fetch_one(standby)
        .await
        .ok();
        if count == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the standby never replayed {n} rows: {count:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One round of the late-commit proof on the standby (see `late_commit.rs`): the open
/// transaction inserts first (`lower_sequence`), or only takes its id first.
async fn late_commit_on_the_standby(lower_sequence: bool) {
    let pair = support::replicated();
    let (primary, standby) = (connect(&pair.primary).await, connect(&pair.standby).await);
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&standby)
        .await
        .expect("ask the standby");
    assert!(in_recovery, "the second server is a standby");
    let schema = format!("es_test_{}", Uuid::now_v7().simple());
    let store = PostgresStore::new(primary.clone())
        .with_schema(&schema)
        .expect("schema");
    store.migrate().await.expect("migrate");
    let store = store.with_replica(standby.clone());
    replayed(&standby, &schema, 0).await;
    let mut early = store.subscribe(None);

    let late_stream = StreamId::new("late", Uuid::now_v7().to_string());
    let late_id = Uuid::now_v7();
    let mut tx = primary.begin().await.expect("begin");
    if lower_sequence {
        insert_in(&mut tx, &schema, &late_stream, late_id).await;
    } else {
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *tx)
            .await
            .expect("take a transaction id");
    }
    let mut later = Vec::new();
    for _ in 0..5 {
        let e = event();
        later.push(e.event_id);
        store
            .append(
                &StreamId::new("later", Uuid::now_v7().to_string()),
                ExpectedVersion::NoStream,
                vec![e],
            )
            .await
            .expect("append");
    }
    if !lower_sequence {
        insert_in(&mut tx, &schema, &late_stream, late_id).await;
    }

    // The standby has the five committed rows, yet the log read there shows none of them:
    // the open transaction on the primary could still commit before them.
    replayed(&standby, &schema, 5).await;
    let visible: Vec<RecordedEvent> = store.read_all(None).try_collect().await.expect("read");
    assert!(
        visible.is_empty(),
        "events behind an open transaction were visible on the standby: {visible:?}"
    );

    let committed = Instant::now();
    tx.commit().await.expect("commit");
    let got = take(&mut early, 6).await;
    let lag = committed.elapsed();
    let expected: Vec<Uuid> = std::iter::once(late_id).chain(later).collect();
    assert_eq!(
        got.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        expected,
        "the late commit first, then the others, each once"
    );
    assert!(got.windows(2).all(|w| w[0].position < w[1].position));
    let extra = tokio::time::timeout(Duration::from_millis(300), early.next()).await;
    assert!(extra.is_err(), "an event was delivered twice: {extra:?}");
    let replay = take(&mut store.subscribe(None), 6).await;
    assert_eq!(replay, got);
    support::report(&format!(
        "standby subscriber (lower {}): the late commit arrived \
         {:.1} ms after it committed",
        if lower_sequence {
            "sequence"
        } else {
            "transaction id"
        },
        lag.as_secs_f64() * 1e3
    ));

    // What reading off the standby adds: from an append's return on the primary to its
    // delivery by the standby's subscriber (the local wake-up, then the replay).
    let mut lags = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let stream = StreamId::new("lag", Uuid::now_v7().to_string());
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event()])
            .await
            .expect("append");
        let appended = start.elapsed();
        take(&mut early, 1).await;
        lags.push(start.elapsed() - appended);
    }
    lags.sort_unstable();
    support::report(&format!(
        "standby subscriber: an append delivered {:.1} ms (median of 20; max {:.1} ms) after it returned",
        lags[10].as_secs_f64() * 1e3,
        lags[19].as_secs_f64() * 1e3
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_read_on_a_standby_is_neither_skipped_nor_repeated() {
    // Both rounds hold a transaction open on the same primary: one after the other.
    late_commit_on_the_standby(true).await;
    late_commit_on_the_standby(false).await;
}
