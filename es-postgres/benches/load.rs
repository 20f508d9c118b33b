//! Loading one long aggregate on PostgreSQL, with and without a snapshot, next to the raw
//! `SELECT` of the same rows in the same run (the floor: the stream's rows paged 500 at a
//! time in version order, each payload decoded into the event type, nothing else). Streams of
//! 1,000, 10,000 and 100,000 events; with a snapshot the load reads the snapshot and the one
//! event it was taken at. Prints a table.
//!
//! ```text
//! cargo bench -p es-postgres --bench load                      # DATABASE_URL, or a throwaway server
//! ES_BENCH_EVENTS=20000 cargo bench -p es-postgres --bench load   # quick mode (longest stream)
//! ```

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/postgres/support.rs"]
mod support;

use std::time::Instant;

use es_core::prelude::*;
use es_core::{EventStore, NewEvent};
use es_postgres::PostgresStore;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

/// A deposit, as an account's events are: an amount and a short note.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "BenchDeposited")]
struct Deposited {
    cents: u64,
    note: String,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Deposit {
    cents: u64,
}

#[derive(Debug)]
struct Never;

/// State of a constant size (a balance and a count), whatever the stream's length: what a
/// snapshot holds does not grow with it.
#[derive(Aggregate, Default, Clone, Debug, Serialize, Deserialize)]
#[aggregate(name = "bench_ledger", error = Never, snapshot(every = 1000))]
struct Ledger {
    cents: u64,
    deposits: u64,
}

#[aggregate_impl]
impl Ledger {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, Never> {
        Ok(Deposited {
            cents: cmd.cents,
            note: "a deposit".into(),
        })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.cents += e.cents;
        self.deposits += 1;
    }
}

/// Appends `n` deposits to a new ledger as raw records, 1,000 per append.
async fn ledger_of(store: &PostgresStore, n: u64) -> Uuid {
    let id = Uuid::now_v7();
    let stream = StreamId::new("bench_ledger", id.to_string());
    let mut version = 0;
    while version < n {
        let batch: Vec<NewEvent> = (version..n.min(version + 1_000))
            .map(|i| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "BenchDeposited".into(),
                schema_version: 1,
                payload: serde_json::json!({ "cents": i, "note": "a deposit of some size" }),
                metadata: Metadata::default(),
            })
            .collect();
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        version = store
            .append(&stream, expected, batch)
            .await
            .expect("append")
            .version;
    }
    id
}

/// The floor: the stream's rows paged 500 at a time, each payload decoded as the event
/// (`typed`) or as a JSON value (what a store's record holds). Rows read and seconds.
async fn raw_select(store: &PostgresStore, id: Uuid, typed: bool) -> (u64, f64) {
    let sql = format!(
        "SELECT position, transaction_id::text AS x, category, stream_id, version, event_type, \
                schema_version, payload, metadata, event_id, recorded_at FROM \"{}\".events \
         WHERE category = 'bench_ledger' AND stream_id = $1 AND version >= $2 ORDER BY version LIMIT 500",
        store.schema()
    );
    let start = Instant::now();
    let (mut from, mut rows) = (1i64, 0u64);
    loop {
        let page = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.to_string())
            .bind(from)
            .fetch_all(store.pool())
            .await
            .expect("select");
        let Some(last) = page.last() else { break };
        for row in &page {
            if typed {
                let sqlx::types::Json(event): sqlx::types::Json<Deposited> =
                    row.try_get("payload").expect("payload");
                std::hint::black_box(event);
            } else {
                let sqlx::types::Json(value): sqlx::types::Json<serde_json::Value> =
                    row.try_get("payload").expect("payload");
                std::hint::black_box(value);
            }
        }
        rows += page.len() as u64;
        from = last.try_get::<i64, _>("version").expect("version") + 1;
    }
    (rows, start.elapsed().as_secs_f64())
}

/// The best of three loads: seconds, and whether it started from a snapshot.
async fn load(ledgers: &Repository<Ledger, PostgresStore>, id: Uuid) -> (f64, Option<u64>) {
    let mut best = f64::MAX;
    let mut snapshot = None;
    for _ in 0..3 {
        let start = Instant::now();
        let loaded = ledgers.load(&id).await.expect("load");
        best = best.min(start.elapsed().as_secs_f64());
        snapshot = loaded.snapshot;
    }
    (best, snapshot)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let longest: u64 = std::env::var("ES_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let store = support::store_with(4).await;
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    println!("loading one aggregate of n events (best of 3 loads; raw SELECT best of 3)\n");
    println!(
        "| events | raw SELECT, payload as JSON (s) | raw SELECT, payload as the event (s) | load, no snapshot (s) | load / raw JSON | load / raw event | load from a snapshot (s) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut n = 1_000;
    while n <= longest {
        let id = ledger_of(&store, n).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "VACUUM ANALYZE \"{}\".events",
            store.schema()
        )))
        .execute(store.pool())
        .await
        .expect("analyze");
        let (mut typed, mut json) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            let (rows, seconds) = raw_select(&store, id, true).await;
            assert_eq!(rows, n);
            typed = typed.min(seconds);
            let (rows, seconds) = raw_select(&store, id, false).await;
            assert_eq!(rows, n);
            json = json.min(seconds);
        }
        let (replay, none) = load(&ledgers, id).await;
        assert_eq!(none, None, "no snapshot yet");
        // One command: n + 1 events folded since the start, so it takes a snapshot.
        ledgers
            .execute(&id, Deposit { cents: 1 })
            .await
            .expect("deposit");
        let (from_snapshot, at) = load(&ledgers, id).await;
        assert_eq!(at, Some(n + 1), "a snapshot was taken");
        println!(
            "| {n} | {json:.4} | {typed:.4} | {replay:.4} | {:.2} | {:.2} | {from_snapshot:.4} |",
            replay / json,
            replay / typed,
        );
        n *= 10;
    }
}
