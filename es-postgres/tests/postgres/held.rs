//! The connections the store keeps out of the pool for loads and appends: a held connection
//! the server dropped is replaced without the command failing, and closing the pool does
//! not wait for the store.

use std::time::Duration;

use bank::domain::account::{Account, AccountId, Deposit, OpenAccount};
use es_core::Repository;
use es_postgres::PostgresStore;
use sqlx::Row;

use crate::support;

/// The backend pids of the pool's connections that are idle right now (the store's held
/// ones among them), seen from a connection of another pool.
async fn idle_backends(observer: &sqlx::PgPool, application: &str) -> Vec<i32> {
    sqlx::query("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'")
        .bind(application)
        .fetch_all(observer)
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get::<i32, _>("pid"))
        .collect()
}

/// A store on `pool`, in a schema of its own (migrated through another pool).
async fn store_on(pool: &sqlx::PgPool) -> PostgresStore {
    let migrated = support::store().await;
    PostgresStore::new(pool.clone())
        .with_schema(migrated.schema())
        .expect("schema")
}

/// A pool of `max` whose connections carry `application` as their name.
async fn named_pool(max: u32, application: &str) -> sqlx::PgPool {
    let url = &support::server().url;
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options.application_name(application))
        .await
        .expect("pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connection_the_server_dropped_is_replaced_and_the_command_lands() {
    let application = format!("held-{}", uuid::Uuid::now_v7().simple());
    let pool = named_pool(4, &application).await;
    let store = store_on(&pool).await;
    let accounts = Repository::<Account, _>::new(store);
    let id = AccountId::new();
    let open = OpenAccount {
        owner: "ada".into(),
    };
    accounts.execute(&id, open).await.expect("open");
    accounts
        .execute(&id, Deposit { amount: 5 })
        .await
        .expect("deposit");

    // Every connection of the store's pool, held ones included, is killed by the server.
    let observer = support::pool(1).await;
    let killed = idle_backends(&observer, &application).await;
    assert!(!killed.is_empty(), "the store holds a connection");
    for pid in &killed {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&observer)
            .await
            .expect("terminate");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The load and the append each find their held connection dead: each runs again on a
    // fresh one, and the command lands once.
    let done = accounts
        .execute(&id, Deposit { amount: 7 })
        .await
        .expect("a command after the server dropped the connections");
    assert_eq!(done.version, 3);
    let loaded = accounts.load(&id).await.expect("load");
    assert_eq!(loaded.version, 3, "landed once");
    assert_eq!(loaded.state.balance(), 12);
    let now = idle_backends(&observer, &application).await;
    assert!(
        now.iter().all(|pid| !killed.contains(pid)),
        "no killed backend is used again: {now:?} against {killed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_pool_does_not_wait_for_a_store_that_holds_connections() {
    let pool = support::pool(4).await;
    let store = store_on(&pool).await;
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = AccountId::new();
    let open = OpenAccount {
        owner: "ada".into(),
    };
    accounts.execute(&id, open).await.expect("open");
    assert!(
        pool.size() > pool.num_idle() as u32,
        "the store holds a connection out of the pool"
    );
    tokio::time::timeout(Duration::from_secs(10), pool.close())
        .await
        .expect("the pool closes while the store is alive");
    // The store, still alive, fails cleanly on a closed pool.
    let after = accounts.execute(&id, Deposit { amount: 1 }).await;
    assert!(after.is_err(), "a closed pool is an error, not a hang");
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connection_left_unused_goes_back_to_the_pool() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&support::server().url)
        .await
        .expect("pool");
    let store = store_on(&pool).await;
    let accounts = Repository::<Account, _>::new(store.clone());
    let open = OpenAccount {
        owner: "ada".into(),
    };
    accounts
        .execute(&AccountId::new(), open)
        .await
        .expect("open");
    // The whole pool, for work of the caller's own: the store's held connection comes back.
    let mut all = Vec::new();
    for n in 0..4 {
        all.push(
            pool.begin()
                .await
                .unwrap_or_else(|e| panic!("begin {n}: {e}")),
        );
    }
    drop(all);
    drop(store);
}

/// Reads of a long stream cut off at every point (their futures dropped mid-page, with the
/// read-ahead task's page too): whatever connection they were on, the reads and appends
/// after them get whole, right answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cut_off_midway_leave_no_connection_out_of_step() {
    use es_core::{EventStore, ExpectedVersion, StreamId};
    use futures::TryStreamExt;

    let store = support::store().await;
    let stream = StreamId::new("notes", uuid::Uuid::now_v7().to_string());
    let text = "x".repeat(2_000);
    let mut version = 0;
    while version < 2_000 {
        let batch = (0..500)
            .map(|n| support::noted(serde_json::json!({ "n": version + n, "text": text })))
            .collect();
        version = store
            .append(&stream, ExpectedVersion::Exact(version), batch)
            .await
            .expect("seed")
            .version;
    }
    let other = StreamId::new("notes", uuid::Uuid::now_v7().to_string());
    let mut cut = 0;
    for attempt in 0..24u64 {
        let read = store.read_stream(&stream, 1).try_collect::<Vec<_>>();
        if tokio::time::timeout(Duration::from_micros(250 * attempt), read)
            .await
            .is_err()
        {
            cut += 1;
        }
        let all: Vec<_> = store
            .read_stream(&stream, 1)
            .try_collect()
            .await
            .expect("a whole read after a cut one");
        assert_eq!(all.len(), 2_000);
        assert!(
            all.iter()
                .enumerate()
                .all(|(i, r)| r.version == i as u64 + 1 && r.payload["n"] == i as u64),
            "in order, each its own"
        );
        let note = support::noted(serde_json::json!({ "n": attempt }));
        let done = store
            .append(&other, ExpectedVersion::Exact(attempt), vec![note])
            .await
            .expect("an append after a cut read");
        assert_eq!(done.version, attempt + 1);
    }
    assert!(cut > 0, "some reads were cut off");
}

/// Writers appending, each to a stream of its own, on a store over a pool of `connections`
/// (all open), until `stop`: each gives its appends and its longest append.
async fn writing(
    writers: usize,
    connections: u32,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (sqlx::PgPool, Vec<tokio::task::JoinHandle<(u64, Duration)>>) {
    use es_core::{EventStore, ExpectedVersion, StreamId};
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .connect(&support::server().url)
        .await
        .expect("pool");
    let store = store_on(&pool).await;
    let tasks = (0..writers)
        .map(|_| {
            let (store, stop) = (store.clone(), std::sync::Arc::clone(stop));
            tokio::spawn(async move {
                let stream = StreamId::new("turns", uuid::Uuid::now_v7().to_string());
                let (mut version, mut longest) = (0, Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let event = support::noted(serde_json::json!({ "n": version }));
                    version = store
                        .append(&stream, ExpectedVersion::Exact(version), vec![event])
                        .await
                        .expect("append")
                        .version;
                    longest = longest.max(started.elapsed());
                }
                (version, longest)
            })
        })
        .collect();
    (pool, tasks)
}

/// More writers than connections, each appending to a stream of its own for a while: every
/// writer gets its turns. (Connections going round between the others through the held ones
/// once left a writer waiting on the pool for the whole run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_writers_than_connections_all_get_their_turn() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let stop = Arc::new(AtomicBool::new(false));
    let (_pool, writers) = writing(24, 16, &stop).await;
    let run = Duration::from_secs(4);
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    let mut turns = Vec::new();
    for writer in writers {
        turns.push(writer.await.expect("writer"));
    }
    // Fair turns are hundreds each; a writer left waiting gets one, at the end.
    for (appends, longest) in &turns {
        assert!(
            *appends >= 5 && *longest < run / 2,
            "a writer waited its turn: {turns:?}"
        );
    }
}

/// As many writers as connections, and somebody else taking connections from the same pool
/// (as snapshot reads, subscriptions or your code do): they get theirs while the writers
/// write, not after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_others_while_the_store_writes_at_its_size() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let stop = Arc::new(AtomicBool::new(false));
    let (pool, writers) = writing(16, 16, &stop).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut longest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let mut conn = tokio::time::timeout(Duration::from_secs(20), pool.acquire())
            .await
            .expect("a connection within 20 s")
            .expect("a connection");
        longest = longest.max(started.elapsed());
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("select");
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        assert!(writer.await.expect("writer").0 > 0, "every writer wrote");
    }
    assert!(
        longest < Duration::from_secs(1),
        "the pool served others only after {longest:?}"
    );
}
