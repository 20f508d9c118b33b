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

/// A store sends `NOTIFY` only while another store listens: not to nobody, not to its own
/// subscriptions (it wakes those itself), and again as soon as another store subscribes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_notifies_only_while_another_store_listens() {
    let writer = support::store().await;
    // A bare session listening on the channel, without the stores' presence lock: it hears
    // every NOTIFY sent, and makes none be sent.
    let mut ear = sqlx::postgres::PgListener::connect_with(writer.pool())
        .await
        .expect("listener");
    ear.listen(&format!("es_events_{}", writer.schema()))
        .await
        .expect("LISTEN");
    let stream = StreamId::new("bell", Uuid::now_v7().to_string());
    let mut version = 0;
    let mut append = async || {
        version = writer
            .append(&stream, ExpectedVersion::Exact(version), vec![event()])
            .await
            .expect("append")
            .version;
    };
    let silence = Duration::from_millis(300);

    append().await;
    let heard = tokio::time::timeout(silence, ear.recv()).await;
    assert!(heard.is_err(), "nobody listens: no NOTIFY ({heard:?})");

    // The writer's own subscription: woken in the process, no NOTIFY for it.
    let mut own = writer.subscribe(None);
    let first = tokio::time::timeout(Duration::from_secs(20), own.next())
        .await
        .expect("the first event")
        .expect("goes on")
        .expect("no error");
    assert_eq!(first.version, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    append().await;
    let second = tokio::time::timeout(Duration::from_secs(20), own.next())
        .await
        .expect("woken in the process")
        .expect("goes on")
        .expect("no error");
    assert_eq!(second.version, 2);
    let heard = tokio::time::timeout(silence, ear.recv()).await;
    assert!(
        heard.is_err(),
        "only its own subscription: no NOTIFY ({heard:?})"
    );

    // Another store subscribes: the next append is notified.
    let other = other_writer(&writer).await;
    let mut sub = other.subscribe(None);
    for v in 1..=2 {
        let got = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("history")
            .expect("goes on")
            .expect("no error");
        assert_eq!(got.version, v);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    append().await;
    tokio::time::timeout(Duration::from_secs(5), ear.recv())
        .await
        .expect("another store listens: a NOTIFY")
        .expect("a notification");
}
