//! The in-memory store and the repository as a stream grows: load (fold every event) and
//! execute (load, decide, append) on aggregates of 10, 100 and 1,000 events. The cost per
//! event should stay flat: appending is O(events appended) and a load copies out batches,
//! never the whole stream per command (the cqrs-es `MemStore` is 30x slower per event at
//! 1,000 events than at 10, by its own benchmark). A repository that keeps its aggregates
//! (`with_cache`) executes in a time flat in the stream's length: the last column.
//!
//! ```text
//! cargo bench -p es-core --bench memory
//! ```

use std::time::Instant;

use es_core::prelude::*;

#[path = "support/account.rs"]
mod account;

use account::{Account, Deposit};

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("in-memory store, repository load and execute by stream length\n");
        println!(
            "| events per aggregate | load (µs) | load per event (ns) | execute (µs) | execute, cached (µs) | uncached / cached |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        let mut per_event = Vec::new();
        for size in [10u64, 100, 1_000] {
            let store = InMemoryStore::new();
            let repo = Repository::<Account, _>::new(store.clone());
            // 50 aggregates of `size` events, plus noise in other streams.
            let ids: Vec<uuid::Uuid> = (0..50).map(|_| uuid::Uuid::now_v7()).collect();
            for id in &ids {
                for _ in 0..size {
                    repo.execute(id, Deposit { amount: 1 }).await.expect("seed");
                }
            }
            let rounds = (20_000 / size).max(20);
            let start = Instant::now();
            for r in 0..rounds {
                let loaded = repo.load(&ids[(r % 50) as usize]).await.expect("load");
                assert!(loaded.version >= size);
            }
            let load = start.elapsed().as_secs_f64() / rounds as f64;
            let start = Instant::now();
            for r in 0..rounds {
                repo.execute(&ids[(r % 50) as usize], Deposit { amount: 1 })
                    .await
                    .expect("execute");
            }
            let execute = start.elapsed().as_secs_f64() / rounds as f64;
            // The same commands through a repository that keeps the 50 aggregates
            // (`with_cache`): the first command on each loads it, the rest only append.
            let cached_repo = Repository::<Account, _>::new(store.clone()).with_cache(64);
            for id in &ids {
                cached_repo
                    .execute(id, Deposit { amount: 1 })
                    .await
                    .expect("warm");
            }
            let start = Instant::now();
            for r in 0..rounds {
                cached_repo
                    .execute(&ids[(r % 50) as usize], Deposit { amount: 1 })
                    .await
                    .expect("execute");
            }
            let cached = start.elapsed().as_secs_f64() / rounds as f64;
            let ns_per_event = load * 1e9 / size as f64;
            per_event.push(ns_per_event);
            println!(
                "| {size} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
                load * 1e6,
                ns_per_event,
                execute * 1e6,
                cached * 1e6,
                execute / cached
            );
        }
        println!(
            "\nload cost per event at 1,000 events / at 10 events: {:.2}",
            per_event[2] / per_event[0]
        );
    });
}
