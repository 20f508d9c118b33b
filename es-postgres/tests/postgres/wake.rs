//! How subscriptions wake: on `NOTIFY` from another store (another process, as far as the
//! subscriber can tell) even when polling is off in practice, and by polling alone when
//! `LISTEN` is off (as behind a transaction-pooling proxy).

use std::time::Duration;

use es_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId};
use es_postgres::PostgresStore;
use futures::StreamExt;
use uuid::Uuid;

use crate::support;

fn event() -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Rang".into(),
        schema_version: 1,
        payload: serde_json::json!({}),
        metadata: Metadata::default(),
    }
}

/// A second store on its own pool, in the same schema: its appends reach `store`'s
/// subscribers only through the database.
async fn other_writer(store: &PostgresStore) -> PostgresStore {
    PostgresStore::new(support::pool(2).await)
        .with_schema(store.schema())
        .expect("schema")
}

async fn wakes(subscriber_store: PostgresStore, writer: PostgresStore) {
    let mut sub = subscriber_store.subscribe(None);
    // Let the subscription reach its wait (and connect its listener) before the append.
    let nothing = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(nothing.is_err(), "nothing to deliver yet: {nothing:?}");
    let stream = StreamId::new("bell", Uuid::now_v7().to_string());
    let e = event();
    writer
        .append(&stream, ExpectedVersion::NoStream, vec![e.clone()])
        .await
        .expect("append");
    let got = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("woken within 20 s")
        .expect("goes on")
        .expect("no error");
    assert_eq!(got.event_id, e.event_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_from_another_store_wakes_a_subscriber_that_would_poll_hourly() {
    let store = support::store()
        .await
        .with_poll_interval(Duration::from_secs(3600));
    let writer = other_writer(&store).await;
    wakes(store, writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_listen_a_subscriber_polls() {
    let store = support::store()
        .await
        .with_listen(false)
        .with_poll_interval(Duration::from_millis(50));
    let writer = other_writer(&store).await;
    wakes(store, writer).await;
}

/// Subscriptions share one listener on a connection of its own: a dozen idle
/// subscriptions on a pool of three leave the pool free for appends and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscriptions_do_not_exhaust_the_pool() {
    let store = support::store_with(3).await;
    let mut subs: Vec<_> = (0..12).map(|_| store.subscribe(None)).collect();
    for sub in &mut subs {
        let idle = tokio::time::timeout(Duration::from_millis(100), sub.next()).await;
        assert!(idle.is_err(), "nothing to deliver yet");
    }
    let stream = StreamId::new("bell", Uuid::now_v7().to_string());
    let e = event();
    tokio::time::timeout(
        Duration::from_secs(20),
        store.append(&stream, ExpectedVersion::NoStream, vec![e.clone()]),
    )
    .await
    .expect("the pool is not exhausted by subscriptions")
    .expect("append");
    for sub in &mut subs {
        let got = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("delivered within 20 s")
            .expect("goes on")
            .expect("no error");
        assert_eq!(got.event_id, e.event_id);
    }
}
