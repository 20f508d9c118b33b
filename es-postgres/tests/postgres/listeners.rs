//! Listeners on PostgreSQL: a read model in a table, written in the runner's transaction with
//! its checkpoint. Killed between its write and its commit again and again, it ends with
//! every effect exactly once; two runners of one read model (two "processes") never both
//! advance it; two partitions in two "processes" fold what one runner folds, and one takes
//! the other's partition over when it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use es_core::projection::{HandleFuture, HandlerError, Kind};
use es_core::{
    EventStore, ExpectedVersion, Metadata, NewEvent, Projection, Projector, RecordedEvent, StreamId,
};
use es_postgres::{PgConnection, PostgresStore};
use uuid::Uuid;

use crate::support;

/// A ledger table: one row per deposit. It panics (a crash between its write and the
/// commit) when the shared countdown reaches zero.
struct Ledger {
    table: String,
    crash_every: u64,
    handled: Arc<AtomicU64>,
}

impl Projection for Ledger {
    const NAME: &'static str = "ledger";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
    type Context = PgConnection;

    fn handle<'a>(
        &'a mut self,
        record: &'a RecordedEvent,
        tx: &'a mut PgConnection,
    ) -> HandleFuture<'a> {
        Box::pin(async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} (event_id, stream_id, amount) VALUES ($1, $2, $3)",
                self.table
            )))
            .bind(record.event_id)
            .bind(record.stream.id())
            .bind(record.payload["amount"].as_i64().unwrap_or(0))
            .execute(&mut *tx)
            .await
            .map_err(|e| HandlerError::handler(&e))?;
            let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(
                self.crash_every == 0 || !n.is_multiple_of(self.crash_every),
                "simulated crash after the write, before the commit (record {n})"
            );
            Ok(())
        })
    }
}

async fn ledger_table(store: &PostgresStore) -> String {
    let table = format!("\"{}\".ledger", store.schema());
    // No unique key on purpose: a doubled effect shows in the counts.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (event_id uuid NOT NULL, stream_id text NOT NULL, amount bigint NOT NULL)"
    )))
    .execute(store.pool())
    .await
    .expect("ledger table");
    table
}

fn deposited(amount: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Deposited".into(),
        schema_version: 1,
        payload: serde_json::json!({ "amount": amount }),
        metadata: Metadata::default(),
    }
}

fn noise() -> NewEvent {
    NewEvent {
        event_type: "Noted".into(),
        ..deposited(0)
    }
}

/// Appends `streams` x `per_stream` deposits (amounts 1..) with some noise, in batches;
/// returns the last position and the expected (rows, sum).
async fn deposits(
    store: &PostgresStore,
    streams: usize,
    per_stream: i64,
) -> (es_core::Position, i64, i64) {
    let mut last = None;
    let mut sum = 0;
    let mut rows = 0;
    for s in 0..streams {
        let stream = StreamId::new("acct", format!("{s}-{}", Uuid::now_v7()));
        let mut amount = 1;
        while amount <= per_stream {
            let mut batch = Vec::new();
            for _ in 0..50 {
                if amount > per_stream {
                    break;
                }
                batch.push(deposited(amount));
                sum += amount;
                rows += 1;
                amount += 1;
            }
            batch.push(noise());
            let done = store
                .append(&stream, ExpectedVersion::Any, batch)
                .await
                .expect("append");
            last = done.positions.last().copied();
        }
    }
    (last.expect("appended"), rows, sum)
}

async fn totals(store: &PostgresStore, table: &str) -> (i64, i64, i64) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT event_id), coalesce(sum(amount), 0)::int8 FROM {table}"
    )))
    .fetch_one(store.pool())
    .await
    .expect("totals")
}

/// Killed (a panic in the handler: the runner's task dies after the write, before the
/// commit) every 700 records over 10,000 events and restarted each time, the read model
/// ends with every deposit exactly once: its rows and its checkpoint commit together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_killed_between_write_and_commit_ends_exactly_once() {
    let store = support::store().await;
    let table = ledger_table(&store).await;
    let (last, rows, sum) = deposits(&store, 10, 1_000).await;
    assert_eq!(rows, 10_000);
    let handled = Arc::new(AtomicU64::new(0));
    let mut restarts = 0;
    loop {
        let handle = Projector::new(
            store.clone(),
            Ledger {
                table: table.clone(),
                crash_every: 700,
                handled: Arc::clone(&handled),
            },
        )
        .spawn();
        match handle.wait_for(last, Duration::from_secs(120)).await {
            Ok(()) => {
                handle.stop().await;
                break;
            }
            Err(e) => {
                assert!(e.stopped, "only a crash stops it: {e}");
                restarts += 1;
                assert!(restarts < 100, "no progress across restarts");
            }
        }
    }
    assert!(
        restarts >= 10,
        "the runner crashed {restarts} times, fewer than planned"
    );
    let (count, distinct, total) = totals(&store, &table).await;
    assert_eq!(
        (count, distinct, total),
        (rows, rows, sum),
        "every effect exactly once"
    );
    support::report(&format!(
        "exactly once over {rows} events with {restarts} crashes ({} handler calls)",
        handled.load(Ordering::SeqCst)
    ));
}

/// Two runners of one read model, on two stores with pools of their own (two processes):
/// they take turns under the listener's lock, each batch starts from the checkpoint it finds,
/// and the table holds every effect once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_of_one_read_model_never_both_advance_it() {
    let store = support::store().await;
    let table = ledger_table(&store).await;
    let other = PostgresStore::new(support::pool(4).await)
        .with_schema(store.schema())
        .expect("schema");
    let handled = Arc::new(AtomicU64::new(0));
    let ledger = || Ledger {
        table: table.clone(),
        crash_every: 0,
        handled: Arc::clone(&handled),
    };
    let a = Projector::new(store.clone(), ledger()).spawn();
    let b = Projector::new(other.clone(), ledger()).spawn();
    let (last, rows, sum) = deposits(&store, 4, 500).await;
    a.wait_for(last, Duration::from_secs(60))
        .await
        .expect("runner a");
    b.wait_for(last, Duration::from_secs(60))
        .await
        .expect("runner b");
    a.stop().await;
    b.stop().await;
    let (count, distinct, total) = totals(&store, &table).await;
    assert_eq!(
        (count, distinct, total),
        (rows, rows, sum),
        "every effect once"
    );
    assert_eq!(
        handled.load(Ordering::SeqCst),
        u64::try_from(rows).expect("small"),
        "no record handed to both runners"
    );
}

/// Two partitions of the ledger in two "processes" (stores on pools of their own): A runs
/// partition 0, B runs partition 1 and stands by for partition 0. Together they write every
/// deposit once (what one runner writes), B's partition 1 exactly the deposits of the
/// streams that hash to it; then A stops, and B takes partition 0 over: the deposits after
/// that are written once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_partitions_in_two_processes_fold_the_ledger_and_one_takes_over() {
    use es_core::projection::Partition;
    let store = support::store().await;
    let table = ledger_table(&store).await;
    let other = PostgresStore::new(support::pool(6).await)
        .with_schema(store.schema())
        .expect("schema");
    let counter = || Arc::new(AtomicU64::new(0));
    let (in_a, in_b1, in_b0) = (counter(), counter(), counter());
    let ledger = |handled: &Arc<AtomicU64>| Ledger {
        table: table.clone(),
        crash_every: 0,
        handled: Arc::clone(handled),
    };
    let a0 = Projector::new(store.clone(), ledger(&in_a))
        .partition(0, 2)
        .spawn();
    let b1 = Projector::new(other.clone(), ledger(&in_b1))
        .partition(1, 2)
        .spawn();
    let b0 = Projector::new(other.clone(), ledger(&in_b0))
        .partition(0, 2)
        .spawn();

    // 24 streams, so that both partitions hold some (with 8, all fell in one partition once
    // in 128 runs, when `Partition::of` was FNV-1a: the parity of the id's bytes at 2).
    let (last, rows, sum) = deposits(&store, 24, 67).await;
    for h in [&a0, &b1, &b0] {
        h.wait_for(last, Duration::from_secs(60))
            .await
            .expect("caught up");
    }
    assert_eq!(
        totals(&store, &table).await,
        (rows, rows, sum),
        "every deposit once"
    );
    let streams: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT stream_id FROM {table}"
    )))
    .fetch_all(store.pool())
    .await
    .expect("streams");
    let in_partition_1: i64 = {
        let mut n = 0;
        for id in &streams {
            if Partition::of(&StreamId::new("acct", id.clone()), 2) == 1 {
                let c: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM {table} WHERE stream_id = $1"
                )))
                .bind(id)
                .fetch_one(store.pool())
                .await
                .expect("count");
                n += c;
            }
        }
        n
    };
    assert!(
        in_partition_1 > 0 && in_partition_1 < rows,
        "both partitions hold streams"
    );
    assert_eq!(
        i64::try_from(in_b1.load(Ordering::SeqCst)).expect("small"),
        in_partition_1,
        "partition 1 wrote exactly its streams' deposits"
    );
    assert_eq!(
        in_a.load(Ordering::SeqCst) + in_b0.load(Ordering::SeqCst),
        u64::try_from(rows - in_partition_1).expect("small"),
        "partition 0's deposits once, between its two runners"
    );

    // A stops: B's runner of partition 0 goes on alone.
    a0.stop().await;
    let before_b0 = in_b0.load(Ordering::SeqCst);
    // 24 streams: all of them in partition 1 has odds of one in 2^24 (with 8 it was one in
    // 256, and then B had nothing of partition 0 to take over).
    let (last, more_rows, more_sum) = deposits(&store, 24, 34).await;
    for h in [&b1, &b0] {
        h.wait_for(last, Duration::from_secs(60))
            .await
            .expect("caught up");
    }
    assert_eq!(
        totals(&store, &table).await,
        (rows + more_rows, rows + more_rows, sum + more_sum),
        "every deposit once, after the take-over too"
    );
    assert!(
        in_b0.load(Ordering::SeqCst) > before_b0,
        "B took partition 0 over"
    );
    b0.stop().await;
    b1.stop().await;
}

/// Deposits counted slowly (a millisecond each) in a table-less read model on PostgreSQL.
struct Slow {
    handled: Arc<AtomicU64>,
}

impl Projection for Slow {
    const NAME: &'static str = "slow";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
    type Context = PgConnection;

    fn handle<'a>(&'a mut self, _: &'a RecordedEvent, _: &'a mut PgConnection) -> HandleFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// The status says how many deposits the read model is behind (the noise it does not read
/// is not counted): counted at the start, again while it catches up, and 0 with the position
/// `wait_for` waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_how_far_behind_the_log_a_read_model_is() {
    let store = support::store().await;
    let (last, rows, _) = deposits(&store, 4, 500).await;
    let handled = Arc::new(AtomicU64::new(0));
    let slow = Projector::new(
        store.clone(),
        Slow {
            handled: Arc::clone(&handled),
        },
    )
    .spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while slow.status().handled < 2_000 {
        assert!(std::time::Instant::now() < deadline, "caught up: {seen:?}");
        if let Some(behind) = slow.status().behind
            && seen.last() != Some(&behind)
        {
            seen.push(behind);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(rows, 2_000);
    // Other tests' transactions may hide the newest events for a moment: at most 2,000.
    assert!(
        seen.first().is_some_and(|&b| b > 0 && b <= 2_000),
        "counted at the start: {seen:?}"
    );
    assert!(
        seen.iter().any(|&b| b > 0 && b < 2_000),
        "counted again while catching up: {seen:?}"
    );
    slow.wait_for(last, Duration::from_secs(60))
        .await
        .expect("caught up");
    assert_eq!(slow.status().behind, Some(0));
    assert_eq!(handled.load(Ordering::SeqCst), 2_000);
    slow.stop().await;
}

/// A running total kept in the projection itself (`&mut self`), written as a row per
/// deposit: right only if one runner sees every deposit.
struct Running {
    table: String,
    total: i64,
    handled: Arc<AtomicU64>,
}

impl Projection for Running {
    const NAME: &'static str = "running";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
    type Context = PgConnection;

    fn handle<'a>(
        &'a mut self,
        record: &'a RecordedEvent,
        tx: &'a mut PgConnection,
    ) -> HandleFuture<'a> {
        Box::pin(async move {
            let total = self.total + record.payload["amount"].as_i64().unwrap_or(0);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} (event_id, stream_id, amount) VALUES ($1, $2, $3)",
                self.table
            )))
            .bind(record.event_id)
            .bind(record.stream.id())
            .bind(total)
            .execute(&mut *tx)
            .await
            .map_err(|e| HandlerError::handler(&e))?;
            // Decide, then mutate: a failed write leaves the total as it was.
            self.total = total;
            self.handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// Two "processes" (stores on pools of their own) run one read model: one runs it, the
/// other stands by, so state kept in the projection itself sees every event (the last
/// running total is the sum of all deposits), and the standby's `wait_for` follows the
/// runner's checkpoint. Stopped, the runner hands over at once: the standby goes on, and
/// every deposit is written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_stands_by_and_takes_over_when_the_first_stops() {
    let store = support::store().await;
    let table = ledger_table(&store).await;
    let other = PostgresStore::new(support::pool(4).await)
        .with_schema(store.schema())
        .expect("schema");
    let (in_a, in_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let running = |handled: &Arc<AtomicU64>| Running {
        table: table.clone(),
        total: 0,
        handled: Arc::clone(handled),
    };
    let a = Projector::new(store.clone(), running(&in_a)).spawn();
    // A holds the lease before B starts.
    let (first, _, _) = deposits(&store, 1, 10).await;
    a.wait_for(first, Duration::from_secs(60))
        .await
        .expect("runner a");
    let b = Projector::new(other.clone(), running(&in_b)).spawn();
    let (last, rows, sum) = deposits(&store, 4, 250).await;
    for h in [&a, &b] {
        h.wait_for(last, Duration::from_secs(60))
            .await
            .expect("caught up, or followed");
    }
    let sum = sum + 55;
    let rows = rows + 10;
    assert_eq!(
        in_b.load(Ordering::SeqCst),
        0,
        "the standby handled nothing"
    );
    assert_eq!(
        in_a.load(Ordering::SeqCst),
        u64::try_from(rows).expect("small")
    );
    let last_total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT max(amount) FROM {table}"
    )))
    .fetch_one(store.pool())
    .await
    .expect("total");
    assert_eq!(last_total, sum, "one runner saw every deposit");

    // A stops and hands over: B goes on from A's checkpoint.
    a.stop().await;
    let (last, more, _) = deposits(&store, 2, 50).await;
    b.wait_for(last, Duration::from_secs(30))
        .await
        .expect("B took over");
    assert_eq!(
        in_b.load(Ordering::SeqCst),
        u64::try_from(more).expect("small"),
        "B handled what came after"
    );
    let (count, distinct, _) = totals(&store, &table).await;
    assert_eq!(
        (count, distinct),
        (rows + more, rows + more),
        "every deposit once"
    );
    b.stop().await;
}
