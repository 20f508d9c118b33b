//! In-memory commands per second through the repository, one event each, on aggregates of
//! 10, 1,000 and 100,000 events: uncached (each command loads, folding the stream) and with
//! the aggregate cache (`with_cache`: a kept aggregate only appends). Prints a table.
//!
//! ```text
//! cargo bench -p es-core --bench commands
//! ES_BENCH_QUICK=1 cargo bench -p es-core --bench commands   # without the 100,000 row
//! ```

use std::time::Instant;

use es_core::prelude::*;
use es_core::{EventStore, NewEvent};

#[path = "support/account.rs"]
mod account;

use account::{Account, Deposit};

/// `aggregates` streams of `size` events each, appended 1,000 at a time.
async fn seed(store: &InMemoryStore, aggregates: usize, size: u64) -> Vec<uuid::Uuid> {
    let repo = Repository::<Account, _>::new(store.clone());
    let mut ids = Vec::with_capacity(aggregates);
    for _ in 0..aggregates {
        let id = uuid::Uuid::now_v7();
        let stream = repo.stream_id(&id);
        let mut version = 0;
        while version < size {
            let batch: Vec<NewEvent> = (version..size.min(version + 1_000))
                .map(|_| NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: "Deposited".into(),
                    schema_version: 1,
                    payload: serde_json::json!({ "amount": 1 }),
                    metadata: Metadata::default(),
                })
                .collect();
            version = store
                .append(&stream, ExpectedVersion::Exact(version), batch)
                .await
                .expect("seed")
                .version;
        }
        ids.push(id);
    }
    ids
}

/// Commands per second: `per` commands on each aggregate, round robin (few enough that the
/// streams stay near their length).
async fn rate(repo: &Repository<Account, InMemoryStore>, ids: &[uuid::Uuid], per: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..per {
        for id in ids {
            repo.execute(id, Deposit { amount: 1 })
                .await
                .expect("execute");
        }
    }
    (per * ids.len()) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::var_os("ES_BENCH_QUICK").is_some();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("in-memory commands/s through the repository, one event each\n");
        println!("| events per aggregate | aggregates | uncached (cmds/s) | cached (cmds/s) | cached / uncached |");
        println!("|---:|---:|---:|---:|---:|");
        // (events per aggregate, aggregates, uncached commands per aggregate)
        let sizes: &[(u64, usize, usize)] = if quick {
            &[(10, 2_000, 1), (1_000, 100, 2)]
        } else {
            &[(10, 5_000, 1), (1_000, 200, 2), (100_000, 2, 10)]
        };
        for &(size, aggregates, per) in sizes {
            let store = InMemoryStore::new();
            let ids = seed(&store, aggregates, size).await;
            let uncached = Repository::<Account, _>::new(store.clone());
            let slow = rate(&uncached, &ids, per).await;
            let cached = Repository::<Account, _>::new(store.clone()).with_cache(aggregates);
            // The first command on each aggregate loads it.
            for id in &ids {
                cached.execute(id, Deposit { amount: 1 }).await.expect("warm");
            }
            let fast = rate(&cached, &ids, (200_000 / aggregates).max(2)).await;
            println!(
                "| {size} | {aggregates} | {slow:.0} | {fast:.0} | {:.1} |",
                fast / slow
            );
        }
    });
}
