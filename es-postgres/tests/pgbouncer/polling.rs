//! With `LISTEN` off, a subscriber behind PgBouncer sees another process's appends by
//! polling (the conformance suite covers appends of the same store, which wake it locally).

use std::time::Duration;

use es_core::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId};
use futures::StreamExt;
use uuid::Uuid;

use crate::bouncer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_behind_pgbouncer_polls_for_another_stores_appends() {
    let reader = bouncer::store()
        .await
        .with_poll_interval(Duration::from_millis(50));
    // Its own pool and wake-ups, same schema: as far as `reader` can tell, another process.
    let writer = bouncer::store_in(reader.schema()).await;
    let mut sub = reader.subscribe(None);
    let nothing = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(nothing.is_err(), "nothing to deliver yet: {nothing:?}");
    let event = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Polled".into(),
        schema_version: 1,
        payload: serde_json::json!({}),
        metadata: Metadata::default(),
    };
    writer
        .append(
            &StreamId::new("bell", Uuid::now_v7().to_string()),
            ExpectedVersion::NoStream,
            vec![event.clone()],
        )
        .await
        .expect("append through PgBouncer");
    let got = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("seen within 20 s")
        .expect("goes on")
        .expect("no error");
    assert_eq!(got.event_id, event.event_id);
}
