//! Values: what a store accepts reads back exactly as written, and what no store can keep is
//! refused at append, the same way by every store.

use super::*;
use crate::store::{MAX_JSON_DEPTH, MAX_NAME_BYTES, MAX_STREAM_ID_BYTES};

/// Floats whose text form PostgreSQL's `numeric` changes: large ones (written with an
/// exponent, read back without a decimal point), the extremes, and random bit patterns.
fn awkward_floats() -> Vec<f64> {
    let mut floats = vec![
        0.1,
        1.0 / 3.0,
        1.0,
        1e15,
        1e16,
        -1e16,
        1.5e17,
        123_456_789_012_345_680_000.0,
        1e300,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -2.5e-300,
        1e-7,
        9_007_199_254_740_993.0,
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    while floats.len() < 400 {
        let f = f64::from_bits(rng.u64(..));
        if f.is_finite() && f != 0.0 {
            floats.push(f);
        }
    }
    floats
}

/// The floats of `value` in document order, as bits (so `-0.0` and `0.0`, or 1 ULP, differ).
fn float_bits(value: &serde_json::Value, out: &mut Vec<u64>) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => out.push(n.as_f64().unwrap_or(0.0).to_bits()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| float_bits(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| float_bits(v, out)),
        _ => {}
    }
}

/// Every finite float (but `-0.0`), integers at the ends of their ranges, in payloads and in
/// metadata, read back bit for bit, as floats (never turned into integers), through
/// `read_stream`, `read_all` and `subscribe`; and an identical retry of that append gets its
/// original outcome (the store's replay check agrees with what it keeps).
pub async fn numbers_read_back_exactly_as_written<S: EventStore>(store: S) {
    let mark = mark(&store).await;
    let stream = stream_id();
    let floats = awkward_floats();
    let batch: Vec<NewEvent> = floats
        .chunks(40)
        .map(|chunk| NewEvent {
            payload: json!({
                "floats": chunk,
                "nested": { "first": chunk[0], "list": [chunk[1], [chunk[2]]] },
                "ints": [u64::MAX, i64::MIN, 0, -1, 9_007_199_254_740_993_u64],
            }),
            metadata: Metadata::default()
                .with("rate", chunk[3])
                .with("many", chunk.to_vec()),
            ..event(0)
        })
        .collect();
    let done = append(&store, &stream, ExpectedVersion::NoStream, batch.clone()).await;
    let want = recorded(&batch, &stream, 1, &done);
    let bits = |records: &[RecordedEvent]| -> Vec<Vec<u64>> {
        records
            .iter()
            .map(|r| {
                let mut out = Vec::new();
                float_bits(&r.payload, &mut out);
                float_bits(
                    &serde_json::to_value(&r.metadata).unwrap_or_default(),
                    &mut out,
                );
                out
            })
            .collect()
    };
    let read = read_stream(&store, &stream, 1).await;
    assert_records(&read, &want, "read_stream must return numbers as appended");
    assert_eq!(
        bits(&read),
        bits(&want),
        "read_stream must return every float bit for bit"
    );
    let all = read_all(&store, Some(mark), &[&stream]).await;
    assert_eq!(
        bits(&all),
        bits(&want),
        "read_all must return every float bit for bit"
    );
    let live = subscribe(&store, Some(mark), &[&stream], "numbers")
        .take(want.len())
        .await;
    assert_eq!(
        bits(&live),
        bits(&want),
        "subscribe must return every float bit for bit"
    );

    let again = within(
        WAIT,
        "retried append",
        store.append(&stream, ExpectedVersion::NoStream, batch),
    )
    .await
    .unwrap_or_else(|e| {
        panic!("an identical retry of an append holding floats must get its outcome: {e:?}")
    });
    assert_eq!(
        again, done,
        "an identical retry returns the original outcome"
    );
}

/// What no store can keep is `Unstorable`, and the append writes nothing: a NUL character
/// (in a payload string or key, in metadata, in the stored name, in the stream's category
/// or id), JSON nested deeper than [`MAX_JSON_DEPTH`] containers, `-0.0`, names and ids
/// past their byte limits. At the limits themselves, the append succeeds and reads back.
pub async fn unstorable_input_is_refused_and_writes_nothing<S: EventStore>(store: S) {
    let stream = stream_id();
    let nested = |depth: usize| {
        let mut value = json!({});
        for _ in 1..depth {
            value = json!({ "d": value });
        }
        value
    };
    let with = |f: &dyn Fn(&mut NewEvent)| {
        let mut e = event(0);
        f(&mut e);
        e
    };
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, StreamId, NewEvent)> = vec![
        (
            "a NUL in a payload string",
            stream.clone(),
            with(&|e| e.payload = json!({ "t": "a\u{0}b" })),
        ),
        (
            "a NUL in a payload key",
            stream.clone(),
            with(&|e| e.payload = json!({ "k\u{0}": [1] })),
        ),
        (
            "a NUL in metadata",
            stream.clone(),
            with(&|e| e.metadata = Metadata::default().actor("e\u{0}")),
        ),
        (
            "a NUL in the stored name",
            stream.clone(),
            with(&|e| e.event_type = "Bad\u{0}Name".into()),
        ),
        (
            "a NUL in the stream id",
            StreamId::new(CATEGORY, "id\u{0}"),
            event(0),
        ),
        (
            "a NUL in the category",
            StreamId::new("cat\u{0}", "1"),
            event(0),
        ),
        (
            "a payload nested too deep",
            stream.clone(),
            with(&|e| e.payload = nested(MAX_JSON_DEPTH + 1)),
        ),
        (
            "metadata nested too deep",
            stream.clone(),
            with(&|e| e.metadata = Metadata::default().with("d", nested(MAX_JSON_DEPTH - 1))),
        ),
        (
            "a negative zero in a payload",
            stream.clone(),
            with(&|e| e.payload = json!({ "z": [-0.0_f64] })),
        ),
        (
            "a negative zero in metadata",
            stream.clone(),
            with(&|e| e.metadata = Metadata::default().with("z", -0.0_f64)),
        ),
        (
            "a stored name too long",
            stream.clone(),
            with(&|e| e.event_type = long(MAX_NAME_BYTES + 1)),
        ),
        (
            "a stream id too long",
            StreamId::new(CATEGORY, long(MAX_STREAM_ID_BYTES + 1)),
            event(0),
        ),
        (
            "a stream id of 8 KB",
            StreamId::new(CATEGORY, long(8 * 1024)),
            event(0),
        ),
        (
            "a category too long",
            StreamId::new(long(MAX_NAME_BYTES + 1), "1"),
            event(0),
        ),
    ];
    for (what, target, bad) in cases {
        // A good event first: the refusal must take the whole append.
        let attempt = vec![event(1), bad];
        let err = within(
            WAIT,
            what,
            store.append(&target, ExpectedVersion::Any, attempt),
        )
        .await;
        match err {
            Err(StoreError::Unstorable { stream: s, reason }) => {
                assert_eq!(s, target, "{what}: the error names the stream");
                assert!(!reason.is_empty(), "{what}: the error says why");
            }
            other => panic!("{what}: expected Unstorable, got {other:?}"),
        }
        assert_eq!(
            stream_version(&store, &target).await,
            0,
            "{what}: nothing written"
        );
    }

    // At the limits: stored, and read back as written.
    let edge = StreamId::new(
        long(MAX_NAME_BYTES),
        long(MAX_STREAM_ID_BYTES - 40) + &Uuid::now_v7().to_string(),
    );
    let fits = vec![
        with(&|e| e.payload = nested(MAX_JSON_DEPTH)),
        with(&|e| e.metadata = Metadata::default().with("d", nested(MAX_JSON_DEPTH - 2))),
        with(&|e| e.event_type = long(MAX_NAME_BYTES)),
        with(&|e| e.payload = json!({ "zero": 0.0_f64, "text": "\u{1}\u{7f}\u{ffff}" })),
    ];
    let done = append(&store, &edge, ExpectedVersion::NoStream, fits.clone()).await;
    assert_records(
        &read_stream(&store, &edge, 1).await,
        &recorded(&fits, &edge, 1, &done),
        "input at the limits must read back as written",
    );
}

/// Reading a stream no store can hold (a NUL in its id, an id past the limit) is an empty
/// stream at version 0, as for any stream with no event: never a backend error.
pub async fn reads_of_unstorable_streams_are_empty<S: EventStore>(store: S) {
    for (what, stream) in [
        ("a NUL in the id", StreamId::new(CATEGORY, "a\u{0}b")),
        ("a NUL in the category", StreamId::new("c\u{0}", "1")),
        ("an 8 KB id", StreamId::new(CATEGORY, "y".repeat(8 * 1024))),
        ("an 8 KB category", StreamId::new("z".repeat(8 * 1024), "1")),
    ] {
        let version = within(WAIT, what, store.stream_version(&stream))
            .await
            .unwrap_or_else(|e| panic!("stream_version with {what} must be 0, failed: {e:?}"));
        assert_eq!(version, 0, "stream_version with {what}");
        let read: Result<Vec<RecordedEvent>, StoreError> =
            within(WAIT, what, store.read_stream(&stream, 1).try_collect()).await;
        match read {
            Ok(records) => assert!(records.is_empty(), "read_stream with {what} must be empty"),
            Err(e) => panic!("read_stream with {what} must be empty, failed: {e:?}"),
        }
    }
}
