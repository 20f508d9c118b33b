//! A ledger of deposits, loaded whole: shared by the `load` and `throughput` benches.

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
pub(crate) struct Deposited {
    cents: u64,
    note: String,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Deposit {
    pub(crate) cents: u64,
}

#[derive(Debug)]
pub(crate) struct Never;

/// State of a constant size (a balance and a count), whatever the stream's length: what a
/// snapshot holds does not grow with it.
#[derive(Aggregate, Default, Clone, Debug, Serialize, Deserialize)]
#[aggregate(name = "bench_ledger", error = Never, snapshot(every = 1000))]
pub(crate) struct Ledger {
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
pub(crate) async fn ledger_of(store: &PostgresStore, n: u64) -> Uuid {
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
pub(crate) async fn raw_select(store: &PostgresStore, id: Uuid, typed: bool) -> (u64, f64) {
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
pub(crate) async fn load(
    ledgers: &Repository<Ledger, PostgresStore>,
    id: Uuid,
) -> (f64, Option<u64>) {
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
