//! Listener catch-up on PostgreSQL, next to the raw `SELECT` of the same rows in the same
//! run (the floor: the rows paged in the log's order and their JSON decoded, nothing else).
//! A read model in memory and one in the store (a transaction per batch with its
//! checkpoint) fold the whole log; a filtered one handles 1% of it. Prints a table.
//!
//! ```text
//! cargo bench -p es-postgres --bench catchup                      # DATABASE_URL, or a throwaway server
//! ES_BENCH_EVENTS=20000 cargo bench -p es-postgres --bench catchup   # quick mode
//! ```

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/postgres/support.rs"]
mod support;

use std::time::{Duration, Instant};

use es_core::projection::{HandleFuture, HandlerError, Kind};
use es_core::{
    EventStore, ExpectedVersion, Metadata, NewEvent, Position, Projection, Projector,
    RecordedEvent, StreamId,
};
use es_postgres::{PgConnection, PostgresStore};
use futures::StreamExt;
use sqlx::Row;
use uuid::Uuid;

const COMMON: &str = "MoneyDeposited";
const RARE: &str = "AccountFlagged";

/// Sums amounts in memory.
#[derive(Default)]
struct Sum(i64);

impl es_core::ReadModel for Sum {}

impl Projection for Sum {
    const NAME: &'static str = "bench_sum";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &[COMMON, RARE];
    type Context = ();
    fn handle<'a>(&'a mut self, record: &'a RecordedEvent, _: &'a mut ()) -> HandleFuture<'a> {
        self.0 += record.payload["amount"].as_i64().unwrap_or(0);
        Box::pin(std::future::ready(Ok::<(), HandlerError>(())))
    }
}

/// Counts the rare events in memory: reads 1% of the log.
#[derive(Default)]
struct Rare(u64);

impl es_core::ReadModel for Rare {}

impl Projection for Rare {
    const NAME: &'static str = "bench_rare";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &[RARE];
    type Context = ();
    fn handle<'a>(&'a mut self, _: &'a RecordedEvent, _: &'a mut ()) -> HandleFuture<'a> {
        self.0 += 1;
        Box::pin(std::future::ready(Ok::<(), HandlerError>(())))
    }
}

/// A read model in the store whose handler writes nothing: the cost of the runner's reads,
/// transactions and checkpoints alone.
struct InStore(i64);

impl Projection for InStore {
    const NAME: &'static str = "bench_in_store";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &[COMMON, RARE];
    type Context = PgConnection;
    fn handle<'a>(
        &'a mut self,
        record: &'a RecordedEvent,
        _: &'a mut PgConnection,
    ) -> HandleFuture<'a> {
        self.0 += record.payload["amount"].as_i64().unwrap_or(0);
        Box::pin(std::future::ready(Ok::<(), HandlerError>(())))
    }
}

/// Version 2 of the read model in the store, rebuilt beside version 1.
struct InStoreV2(i64);

impl Projection for InStoreV2 {
    const NAME: &'static str = "bench_in_store";
    const VERSION: u32 = 2;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &[COMMON, RARE];
    type Context = PgConnection;
    fn handle<'a>(
        &'a mut self,
        record: &'a RecordedEvent,
        _: &'a mut PgConnection,
    ) -> HandleFuture<'a> {
        self.0 += record.payload["amount"].as_i64().unwrap_or(0);
        Box::pin(std::future::ready(Ok::<(), HandlerError>(())))
    }
}

async fn fill(store: &PostgresStore, events: usize) -> Position {
    let mut last = None;
    let per_append = 100;
    for a in 0..events / per_append {
        let stream = StreamId::new("bench", format!("{}", a % 200));
        let batch = (0..per_append)
            .map(|i| {
                let n = a * per_append + i;
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: if n % 100 == 99 { RARE } else { COMMON }.into(),
                    schema_version: 1,
                    payload: serde_json::json!({ "amount": n, "note": "a deposit of some size" }),
                    metadata: Metadata::default(),
                }
            })
            .collect();
        let done = store
            .append(&stream, ExpectedVersion::Any, batch)
            .await
            .expect("append");
        last = done.positions.last().copied();
    }
    last.expect("appended")
}

/// The floor: page through the rows (all, or those of one type) in the log's order, 500 at
/// a time, decoding each payload as JSON. Returns the rows read and the seconds it took.
async fn raw_select(store: &PostgresStore, only: Option<&str>) -> (u64, f64) {
    let events = format!("\"{}\".events", store.schema());
    let filter = if only.is_some() {
        "AND event_type = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT transaction_id::text AS x, position, category, stream_id, version, event_type, \
                schema_version, payload, metadata, event_id, recorded_at FROM {events} \
         WHERE (transaction_id, position) > ($1::text::xid8, $2) {filter} \
         ORDER BY transaction_id, position LIMIT 500"
    );
    let start = Instant::now();
    let (mut x, mut p, mut rows) = ("0".to_owned(), 0i64, 0u64);
    loop {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&x)
            .bind(p);
        if let Some(t) = only {
            query = query.bind(t);
        }
        let page = query.fetch_all(store.pool()).await.expect("select");
        let Some(last) = page.last() else { break };
        for row in &page {
            let sqlx::types::Json(payload): sqlx::types::Json<serde_json::Value> =
                row.try_get("payload").expect("payload");
            let sqlx::types::Json(metadata): sqlx::types::Json<serde_json::Value> =
                row.try_get("metadata").expect("metadata");
            std::hint::black_box((payload, metadata));
        }
        rows += page.len() as u64;
        x = last.try_get("x").expect("x");
        p = last.try_get("position").expect("position");
    }
    (rows, start.elapsed().as_secs_f64())
}

/// The store's side alone: the filtered subscription read and decoded up to `last`, with
/// no runner (no batches, handlers or status).
async fn subscribe_only(store: &PostgresStore, last: Position) -> f64 {
    let start = Instant::now();
    let mut records = store.subscribe_types(None, &[COMMON, RARE]);
    while let Some(delivery) = records.next().await {
        if delivery.expect("delivery").position() >= last {
            break;
        }
    }
    start.elapsed().as_secs_f64()
}

async fn catch_up<P: Projection>(store: &PostgresStore, listener: P, last: Position) -> f64
where
    PostgresStore: es_core::projection::ContextStore<P::Context>,
{
    let start = Instant::now();
    let handle = Projector::new(store.clone(), listener).spawn();
    handle
        .wait_for(last, Duration::from_secs(600))
        .await
        .expect("caught up");
    let seconds = start.elapsed().as_secs_f64();
    handle.stop().await;
    seconds
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: usize = std::env::var("ES_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let store = support::store_with(8).await;
    let last = fill(&store, events).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM ANALYZE \"{}\".events",
        store.schema()
    )))
    .execute(store.pool())
    .await
    .expect("analyze");
    // Warm the caches.
    let _ = raw_select(&store, None).await;

    let (all, raw_all) = raw_select(&store, None).await;
    let (rare, raw_rare) = raw_select(&store, Some(RARE)).await;
    let subscription = subscribe_only(&store, last).await;
    let memory = catch_up(&store, Sum::default(), last).await;
    let in_store = catch_up(&store, InStore(0), last).await;
    let filtered = catch_up(&store, Rare::default(), last).await;
    // Version 2 beside the serving version 1: the rebuild, up to its switch.
    let rebuild = catch_up(&store, InStoreV2(0), last).await;
    let rate = |n: u64, s: f64| n as f64 / s;
    println!("listener catch-up over {all} events ({rare} of the rare type)\n");
    println!("| what | seconds | events/s of the log | raw SELECT (s) | raw / listener |");
    println!("|---|---:|---:|---:|---:|");
    for (what, seconds, floor) in [
        (
            "the subscription alone (read and decoded, no runner)",
            subscription,
            raw_all,
        ),
        ("read model in memory, every event", memory, raw_all),
        (
            "read model in the store (tx + checkpoint per batch), every event",
            in_store,
            raw_all,
        ),
        (
            "read model over 1% of the log (filtered in SQL)",
            filtered,
            raw_rare,
        ),
        (
            "rebuild: version 2 of the read model in the store, beside version 1",
            rebuild,
            raw_all,
        ),
    ] {
        println!(
            "| {what} | {seconds:.3} | {:.0} | {floor:.3} | {:.2} |",
            rate(all, seconds),
            floor / seconds
        );
    }
}
