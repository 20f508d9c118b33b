//! Append throughput of `PostgresStore` next to a raw sqlx `INSERT` loop on the same server
//! in the same run (the floor: one plain single-row insert per event into the same table,
//! no expected-version check). Prints a table; the ratio is what to compare across machines.
//!
//! ```text
//! cargo bench -p es-postgres --bench append                # DATABASE_URL, or a throwaway server
//! ES_BENCH_EVENTS=2000 cargo bench -p es-postgres --bench append   # quick mode
//! ```

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/postgres/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use es_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId};
use es_postgres::PostgresStore;
use uuid::Uuid;

fn new_event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MoneyDeposited".into(),
        schema_version: 1,
        payload: serde_json::json!({ "amount": n }),
        metadata: Metadata::default(),
    }
}

/// Runs `writers` tasks that together append `events` events, `batch` per append, each
/// writer on its own stream with exact expected versions. Returns events per second.
async fn store_run(store: &PostgresStore, writers: usize, events: usize, batch: usize) -> f64 {
    let appends = events / batch;
    let next = Arc::new(AtomicUsize::new(0));
    let category = format!("bench{}", Uuid::now_v7().simple());
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, next) = (store.clone(), Arc::clone(&next));
            let stream = StreamId::new(category.clone(), w.to_string());
            tokio::spawn(async move {
                let mut version = 0;
                while next.fetch_add(1, Ordering::Relaxed) < appends {
                    let events = (0..batch).map(new_event).collect();
                    let done = store
                        .append(&stream, ExpectedVersion::Exact(version), events)
                        .await
                        .expect("append");
                    version = done.version;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    (appends * batch) as f64 / start.elapsed().as_secs_f64()
}

/// The floor: a plain `INSERT ... VALUES` per event into the same table.
async fn raw_run(store: &PostgresStore, writers: usize, events: usize) -> f64 {
    let sql = format!(
        "INSERT INTO \"{}\".events (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        store.schema()
    );
    let next = Arc::new(AtomicUsize::new(0));
    let category = format!("raw{}", Uuid::now_v7().simple());
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (pool, next, sql) = (store.pool().clone(), Arc::clone(&next), sql.clone());
            let (category, stream) = (category.clone(), w.to_string());
            tokio::spawn(async move {
                let mut version = 0i64;
                while next.fetch_add(1, Ordering::Relaxed) < events {
                    version += 1;
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(&category)
                        .bind(&stream)
                        .bind(version)
                        .bind("MoneyDeposited")
                        .bind(1i32)
                        .bind(sqlx::types::Json(serde_json::json!({ "amount": version })))
                        .bind(sqlx::types::Json(serde_json::json!({})))
                        .bind(Uuid::now_v7())
                        .execute(&pool)
                        .await
                        .expect("insert");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    events as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: usize = std::env::var("ES_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000);
    let store = support::store_with(24).await;
    // Warm the pool and the statement caches.
    let _ = store_run(&store, 16, 320, 1).await;
    let _ = raw_run(&store, 16, 320).await;

    println!("append throughput, {events} events per row (events/s; higher is better)\n");
    println!("| writers | events per append | PostgresStore | raw INSERT loop | store / raw |");
    println!("|---:|---:|---:|---:|---:|");
    for (writers, batch) in [(1, 1), (16, 1), (1, 10), (16, 10)] {
        // Interleave store and raw twice and keep the better of each, so drift on a shared
        // machine hits both.
        let mut best = (0f64, 0f64);
        for _ in 0..2 {
            best.0 = best.0.max(store_run(&store, writers, events, batch).await);
            best.1 = best.1.max(raw_run(&store, writers, events).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "| {writers} | {batch} | {:.0} | {:.0} | {:.2} |",
            best.0,
            best.1,
            best.0 / best.1
        );
    }
}
