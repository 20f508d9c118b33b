//! Fields: every field of a record round-trips.

use super::*;

/// Metadata (correlation, causation, actor, extra) and payloads round-trip unchanged through
/// `read_stream`, `read_all` and `subscribe`.
pub async fn metadata_round_trips<S: EventStore>(store: S) {
    let mark = mark(&store).await;
    let stream = stream_id();
    let full = Metadata::default()
        .correlation_id(Uuid::now_v7())
        .causation_id(Uuid::now_v7())
        .actor("teller-7 \u{2713} \"quoted\"")
        .with("channel", "branch")
        .with("count", 42)
        .with("negative", -7)
        .with("flag", true)
        .with("nothing", serde_json::Value::Null)
        .with("nested", json!({ "a": [1, 2, { "b": null }], "c": "d" }));
    let empty_actor = Metadata::default().actor("");
    let extra_only = Metadata::default().with("only", json!(["extra"]));
    let causation_only = Metadata::default().causation_id(Uuid::now_v7());
    let payloads = [
        json!({ "n": 1 }),
        json!({}),
        json!({ "text": "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{1f680} line\nbreak\ttab \\ \"" }),
        json!({ "deep": { "list": [1, -2, 1.5, true, null, "s", []], "obj": {} } }),
        json!({ "big": i64::MAX, "small": i64::MIN }),
    ];
    let metadata = [
        full,
        Metadata::default(),
        empty_actor,
        extra_only,
        causation_only,
    ];
    let batch: Vec<NewEvent> = payloads
        .into_iter()
        .zip(metadata)
        .zip([1_u16, 2, 3, 300, 1])
        .enumerate()
        .map(|(i, ((payload, metadata), schema_version))| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: format!("Conformance.Kind{i}"),
            schema_version,
            payload,
            metadata,
        })
        .collect();
    let a = append(&store, &stream, ExpectedVersion::NoStream, batch.clone()).await;
    let want = recorded(&batch, &stream, 1, &a);
    assert_records(
        &read_stream(&store, &stream, 1).await,
        &want,
        "read_stream must return payload and metadata as appended",
    );
    assert_records(
        &read_all(&store, Some(mark), &[&stream]).await,
        &want,
        "read_all must return payload and metadata as appended",
    );
    let mut sub = subscribe(&store, Some(mark), &[&stream], "metadata round trip");
    assert_records(
        &sub.take(want.len()).await,
        &want,
        "subscribe must deliver payload and metadata as appended",
    );
}

/// `recorded_at` is set by the store, at most microsecond precision, one instant per append,
/// read back exactly as the append returned it.
pub async fn recorded_at_has_microsecond_precision<S: EventStore>(store: S) {
    let mark = mark(&store).await;
    let stream = stream_id();
    let started = Utc::now();
    let mut want = Vec::new();
    for n in 0..20 {
        let batch = events(n * 2, n * 2 + 2);
        let a = append(
            &store,
            &stream,
            ExpectedVersion::Exact(n * 2),
            batch.clone(),
        )
        .await;
        assert_micros(a.recorded_at, "Appended.recorded_at");
        want.extend(recorded(&batch, &stream, n * 2 + 1, &a));
    }
    let finished = Utc::now();
    let slack = chrono::Duration::minutes(10);
    for r in &want {
        assert!(
            r.recorded_at >= started - slack && r.recorded_at <= finished + slack,
            "recorded_at {} must be the time of the append (the test ran from {started} to \
             {finished})",
            r.recorded_at
        );
    }
    assert_records(
        &read_stream(&store, &stream, 1).await,
        &want,
        "read_stream must return the recorded_at the append returned, the same for one \
         append's events",
    );
    assert_records(
        &read_all(&store, Some(mark), &[&stream]).await,
        &want,
        "read_all must return the recorded_at the append returned",
    );
}

#[track_caller]
fn assert_micros(at: DateTime<Utc>, what: &str) {
    assert_eq!(
        at.timestamp_subsec_nanos() % 1000,
        0,
        "{what} {at:?} must have at most microsecond precision"
    );
}
