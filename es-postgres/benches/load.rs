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

use es_core::prelude::*;

#[path = "support/ledger.rs"]
mod ledger;

use ledger::{Deposit, Ledger, ledger_of, load, raw_select};

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
