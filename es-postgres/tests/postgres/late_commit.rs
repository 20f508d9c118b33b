//! The proof of the gap-free global log: a transaction holds a lower sequence value (or a
//! lower transaction id) open while later appends commit. No subscriber may skip its event
//! or see anything twice, and the horizon names the backend holding everyone back.

use std::time::Duration;

use es_core::{EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamId};
use futures::{Stream, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::support;

pub(crate) fn event() -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Happened".into(),
        schema_version: 1,
        payload: serde_json::json!({}),
        metadata: Metadata::default(),
    }
}

pub(crate) async fn take(
    sub: &mut (impl Stream<Item = Result<RecordedEvent, es_core::StoreError>> + Unpin),
    n: usize,
) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("an event within 30 s")
            .expect("the subscription goes on")
            .expect("no error");
        out.push(next);
    }
    out
}

pub(crate) async fn insert_in(
    tx: &mut sqlx::PgConnection,
    schema: &str,
    stream: &StreamId,
    id: Uuid,
) {
    let sql = format!(
        "INSERT INTO \"{schema}\".events (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
         VALUES ($1, $2, 1, 'Happened', 1, '{{}}', '{{}}', $3)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(stream.category())
        .bind(stream.id())
        .bind(id)
        .execute(tx)
        .await
        .expect("insert in the open transaction");
}

/// `lower_sequence`: the open transaction inserts first (lower sequence value and lower
/// transaction id). Otherwise it only takes its transaction id first and inserts after the
/// later appends committed (higher sequence value, lower transaction id).
async fn late_commit(lower_sequence: bool) {
    let _alone = support::exclusive().await;
    let store = support::store().await;
    let schema = store.schema().to_owned();
    let mut early = store.subscribe(None);

    let late_stream = StreamId::new("late", Uuid::now_v7().to_string());
    let late_id = Uuid::now_v7();
    let mut tx = store.pool().begin().await.expect("begin");
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .expect("pid");
    if lower_sequence {
        insert_in(&mut tx, &schema, &late_stream, late_id).await;
    } else {
        sqlx::query("SELECT pg_current_xact_id()")
            .execute(&mut *tx)
            .await
            .expect("take a transaction id");
    }

    // Later appends commit while the transaction is open.
    let mut later = Vec::new();
    for _ in 0..5 {
        let stream = StreamId::new("later", Uuid::now_v7().to_string());
        let e = event();
        later.push(e.event_id);
        store
            .append(&stream, ExpectedVersion::NoStream, vec![e])
            .await
            .expect("append");
    }
    if !lower_sequence {
        insert_in(&mut tx, &schema, &late_stream, late_id).await;
    }

    // Committed, but behind the open transaction: no reader may see them yet, because the
    // open one could (and will) commit before them in the log's order.
    let visible: Vec<RecordedEvent> = store.read_all(None).try_collect().await.expect("read");
    assert!(
        visible.is_empty(),
        "events behind an open transaction were visible: {visible:?}"
    );
    let lag = store.lag(None).await.expect("lag");
    assert_eq!(
        lag.events, 5,
        "the committed events count as lag while held back"
    );
    assert!(lag.seconds.is_some_and(|s| s >= 0.0), "{lag:?}");
    // Other tests' transactions come and go; ours stays open, so it is soon the oldest.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let horizon = store.horizon().await.expect("horizon");
        let holder = horizon.holder.expect("someone holds the horizon");
        if holder.pid == Some(holder_pid) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the horizon never named the open transaction's backend {holder_pid}: {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    tx.commit().await.expect("commit");

    let expected: Vec<Uuid> = std::iter::once(late_id)
        .chain(later.iter().copied())
        .collect();
    let got = take(&mut early, 6).await;
    assert_eq!(
        got.iter().map(|r| r.event_id).collect::<Vec<_>>(),
        expected,
        "the late commit comes first (lowest transaction id), then the others, each once"
    );
    assert!(got.windows(2).all(|w| w[0].position < w[1].position));
    if !lower_sequence {
        assert!(
            got[0].position.minor() > got[1].position.minor(),
            "the late event's sequence value is higher, yet it sorts first"
        );
    }
    // Nothing more arrives: no duplicate.
    let extra = tokio::time::timeout(Duration::from_millis(300), early.next()).await;
    assert!(extra.is_err(), "an event was delivered twice: {extra:?}");

    // A subscriber from the start, and one resuming after the late event, agree.
    let replay = take(&mut store.subscribe(None), 6).await;
    assert_eq!(replay, got);
    let resumed = take(&mut store.subscribe(Some(got[0].position)), 5).await;
    assert_eq!(resumed, got[1..]);
    let caught_up = store.lag(Some(got[5].position)).await.expect("lag");
    assert_eq!((caught_up.events, caught_up.seconds), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_with_a_lower_sequence_value_is_neither_skipped_nor_repeated() {
    late_commit(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_with_a_lower_transaction_id_is_neither_skipped_nor_repeated() {
    late_commit(false).await;
}

/// Transaction ids order numerically, not as text: "10" after "9", "100" after "99".
#[tokio::test]
async fn the_log_orders_transaction_ids_as_numbers() {
    let store = support::store().await;
    let stream = StreamId::new("xids", Uuid::now_v7().to_string());
    // Ids this low have ended on any server (initdb alone uses hundreds), so the rows are
    // below every reader's horizon.
    for (version, xid) in [(1, "9"), (2, "10"), (3, "99"), (4, "100")] {
        let sql = format!(
            "INSERT INTO \"{}\".events (transaction_id, category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
             VALUES ($1::text::xid8, $2, $3, $4, 'Happened', 1, '{{}}', '{{}}', $5)",
            store.schema()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(xid)
            .bind(stream.category())
            .bind(stream.id())
            .bind(version)
            .bind(Uuid::now_v7())
            .execute(store.pool())
            .await
            .expect("insert");
    }
    let read: Vec<RecordedEvent> = store.read_all(None).try_collect().await.expect("read");
    let majors: Vec<u64> = read.iter().map(|r| r.position.major()).collect();
    assert_eq!(majors, vec![9, 10, 99, 100]);
    let after_ten: Vec<RecordedEvent> = store
        .with_batch_size(1)
        .read_all(Some(read[1].position))
        .try_collect()
        .await
        .expect("read");
    assert_eq!(
        after_ten.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

/// A prepared transaction (two-phase commit) holds the horizon with no backend: the horizon
/// names it by its global id, subscribers wait for it, and once committed its event comes
/// first. Runs where the server allows prepared transactions (the throwaway server does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_transaction_holding_the_horizon_is_named() {
    use sqlx::Executor;
    let _alone = support::exclusive().await;
    let store = support::store().await;
    let allowed: String = sqlx::query_scalar("SHOW max_prepared_transactions")
        .fetch_one(store.pool())
        .await
        .expect("setting");
    if allowed == "0" {
        support::report(
            "skipped: max_prepared_transactions = 0 on this server (the tests' throwaway server \
             allows them)",
        );
        return;
    }
    // Ones an earlier run left behind (it panicked before ending them) would hold everyone.
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'es_test_%'")
            .fetch_all(store.pool())
            .await
            .expect("list prepared");
    for gid in stale {
        let _ = store
            .pool()
            .execute(sqlx::AssertSqlSafe(format!("ROLLBACK PREPARED '{gid}'")))
            .await;
    }
    let gid = format!("es_test_{}", Uuid::now_v7().simple());
    let late = StreamId::new("late", Uuid::now_v7().to_string());
    let mut conn = store.pool().acquire().await.expect("connection");
    conn.execute("BEGIN").await.expect("begin");
    store
        .append_in(&mut conn, &late, ExpectedVersion::NoStream, vec![event()])
        .await
        .expect("append in the transaction");
    conn.execute(sqlx::AssertSqlSafe(format!("PREPARE TRANSACTION '{gid}'")))
        .await
        .expect("prepare");
    drop(conn);

    let later = StreamId::new("later", Uuid::now_v7().to_string());
    store
        .append(&later, ExpectedVersion::NoStream, vec![event(), event()])
        .await
        .expect("later appends");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let horizon = store.horizon().await.expect("horizon");
        let holder = horizon.holder.expect("someone holds the horizon");
        if holder.prepared.as_deref() == Some(gid.as_str()) {
            assert_eq!(holder.pid, None, "a prepared transaction has no backend");
            assert_eq!(holder.state.as_deref(), Some("prepared"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the horizon never named the prepared transaction {gid}: {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held: Vec<RecordedEvent> = store.read_all(None).try_collect().await.expect("read");
    assert!(
        !held.iter().any(|r| r.stream == later),
        "events behind a prepared transaction were visible"
    );

    store
        .pool()
        .execute(sqlx::AssertSqlSafe(format!("COMMIT PREPARED '{gid}'")))
        .await
        .expect("commit prepared");
    let mut sub = store.subscribe(None);
    let seen = take(&mut sub, 3).await;
    let streams: Vec<&StreamId> = seen.iter().map(|r| &r.stream).collect();
    assert_eq!(
        streams,
        [&late, &later, &later],
        "the prepared event comes first"
    );
}
