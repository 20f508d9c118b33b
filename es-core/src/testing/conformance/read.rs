//! Reading: one stream from a version, the global log after a position, in batches.

use super::*;

/// `read_stream` from version 1, 0 (like 1), a middle version (inclusive) or past the end
/// returns the records from there, with every field as appended; an unknown stream is empty.
pub async fn read_stream_from_a_version_is_inclusive<S: EventStore>(store: S) {
    let stream = stream_id();
    let mut first = events(1, 3);
    first[1].event_type = "OtherKind".to_owned();
    first[1].schema_version = 300;
    first[1].metadata = Metadata::default()
        .correlation_id(Uuid::now_v7())
        .causation_id(Uuid::now_v7())
        .actor("reader")
        .with("k", "v");
    let second = events(3, 6);
    let a1 = append(&store, &stream, ExpectedVersion::NoStream, first.clone()).await;
    let a2 = append(&store, &stream, ExpectedVersion::Exact(2), second.clone()).await;
    let mut all = recorded(&first, &stream, 1, &a1);
    all.extend(recorded(&second, &stream, 3, &a2));

    for (from, want) in [
        (1, &all[..]),
        (0, &all[..]),
        (2, &all[1..]),
        (3, &all[2..]),
        (5, &all[4..]),
        (6, &[][..]),
        (100, &[][..]),
        (u64::MAX, &[][..]),
    ] {
        assert_records(
            &read_stream(&store, &stream, from).await,
            want,
            format_args!("read_stream from version {from} (inclusive) of a stream at version 5"),
        );
    }
    let unknown = stream_id();
    assert!(
        read_stream(&store, &unknown, 1).await.is_empty(),
        "read_stream of an unknown stream must be empty"
    );
    assert!(
        read_stream(&store, &unknown, 0).await.is_empty(),
        "read_stream of an unknown stream from 0 must be empty"
    );
}

/// `read_for_load` gives what `read_stream` gives, narrowed to what a load folds (version,
/// time, type, schema version, payload), from any version, over more than a batch and
/// payloads of every JSON kind; an unknown or unstorable stream is empty.
pub async fn read_for_load_gives_what_read_stream_gives<S: EventStore>(store: S) {
    let stream = stream_id();
    let mut batch = events(0, 600);
    batch[1].payload = json!({ "nested": { "list": [1, -2.5, "three", null, true] } });
    batch[2].payload = json!({ "text": "quote \" backslash \\ tab \t é 😀" });
    batch[3].payload = json!({});
    batch[4].payload = json!({ "big": "x".repeat(300_000) });
    batch[5].event_type = "OtherKind".to_owned();
    batch[5].schema_version = 300;
    append(&store, &stream, ExpectedVersion::NoStream, batch).await;
    let records = read_stream(&store, &stream, 1).await;
    assert_eq!(records.len(), 600);
    for from in [0, 1, 2, 5, 256, 257, 599, 600, 601, u64::MAX] {
        let what = format!("read_for_load({stream}, from {from})");
        let loaded: Vec<LoadRecord> = within(
            WAIT,
            &what,
            store.read_for_load(&stream, from).try_collect(),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
        let want: Vec<&RecordedEvent> = records
            .iter()
            .filter(|r| r.version >= from.max(1))
            .collect();
        assert_eq!(loaded.len(), want.len(), "{what}: how many");
        for (got, want) in loaded.iter().zip(want) {
            assert_eq!(
                (
                    got.version,
                    got.recorded_at,
                    &got.event_type,
                    got.schema_version,
                    got.payload.to_value()
                ),
                (
                    want.version,
                    want.recorded_at,
                    &want.event_type,
                    want.schema_version,
                    want.payload.clone()
                ),
                "{what}: the record of version {}",
                want.version
            );
        }
    }
    for other in [stream_id(), StreamId::new(CATEGORY, "a\u{0}b")] {
        let what = format!("read_for_load({other:?})");
        let loaded: Vec<LoadRecord> =
            within(WAIT, &what, store.read_for_load(&other, 1).try_collect())
                .await
                .unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
        assert!(loaded.is_empty(), "{what}: must be empty");
    }
}

/// Streams are independent: each numbers its own versions, conflicts on one leave the other
/// alone, and reads return only the stream's own events.
pub async fn streams_are_independent<S: EventStore>(store: S) {
    let s1 = stream_id();
    let s2 = stream_id();
    let e1 = events(1, 3);
    let e2 = events(10, 11);
    let e3 = events(3, 4);
    let e4 = events(11, 13);
    let a1 = append(&store, &s1, ExpectedVersion::NoStream, e1.clone()).await;
    let a2 = append(&store, &s2, ExpectedVersion::NoStream, e2.clone()).await;
    assert_eq!(
        a2.version, 1,
        "the first append to a second stream must give version 1, whatever the other holds"
    );
    let a3 = append(&store, &s1, ExpectedVersion::Exact(2), e3.clone()).await;
    let a4 = append(&store, &s2, ExpectedVersion::Exact(1), e4.clone()).await;
    assert_eq!((a3.version, a4.version), (3, 3), "versions per stream");

    let err = append_err(&store, &s1, ExpectedVersion::Exact(1), events(20, 21)).await;
    assert_conflict(
        &err,
        &s1,
        ExpectedVersion::Exact(1),
        3,
        "a stale append to s1",
    );
    assert_eq!(stream_version(&store, &s1).await, 3, "s1");
    assert_eq!(stream_version(&store, &s2).await, 3, "s2");

    let mut want1 = recorded(&e1, &s1, 1, &a1);
    want1.extend(recorded(&e3, &s1, 3, &a3));
    let mut want2 = recorded(&e2, &s2, 1, &a2);
    want2.extend(recorded(&e4, &s2, 2, &a4));
    assert_records(
        &read_stream(&store, &s1, 1).await,
        &want1,
        "s1 must hold only its own events",
    );
    assert_records(
        &read_stream(&store, &s2, 1).await,
        &want2,
        "s2 must hold only its own events",
    );
}

/// Category and id are kept apart: `("a", "x-1")` and `("a-x", "1")` both show as `a-x-1`
/// but are different streams.
pub async fn categories_are_kept_apart<S: EventStore>(store: S) {
    let mark = mark(&store).await;
    let u = Uuid::now_v7();
    let x = StreamId::new(CATEGORY, format!("x-{u}"));
    let y = StreamId::new(format!("{CATEGORY}-x"), u.to_string());
    assert_eq!(
        x.to_string(),
        y.to_string(),
        "the suite's premise: both streams show alike"
    );
    let ex = events(1, 2);
    let ey = events(2, 4);
    let ax = append(&store, &x, ExpectedVersion::NoStream, ex.clone()).await;
    let ay = append(&store, &y, ExpectedVersion::NoStream, ey.clone()).await;
    assert_eq!(
        ay.version, 2,
        "{y:?} must be a new stream although {x:?} shows alike"
    );
    assert_eq!(stream_version(&store, &x).await, 1, "{x:?}");
    assert_eq!(stream_version(&store, &y).await, 2, "{y:?}");

    let want_x = recorded(&ex, &x, 1, &ax);
    let want_y = recorded(&ey, &y, 1, &ay);
    assert_records(
        &read_stream(&store, &x, 1).await,
        &want_x,
        format_args!("{x:?} must hold only its own event, with its category and id"),
    );
    assert_records(
        &read_stream(&store, &y, 1).await,
        &want_y,
        format_args!("{y:?} must hold only its own events, with its category and id"),
    );
    let mut want_all = want_x;
    want_all.extend(want_y);
    assert_records(
        &read_all(&store, Some(mark), &[&x, &y]).await,
        &want_all,
        "read_all must carry category and id as appended",
    );
}

/// Reads larger than a store's batch come back complete and in order, for `read_stream`
/// and `read_all`, also from a position or version inside the data.
pub async fn reads_larger_than_a_batch_are_complete_and_in_order<S: EventStore>(store: S) {
    let mark = mark(&store).await;
    let big = stream_id();
    let other = stream_id();
    let mut want_big = Vec::new();
    let mut want_all = Vec::new();
    let mut n = 0;
    for (i, size) in [1, 255, 256, 257, 200, 31].into_iter().enumerate() {
        let batch = events(n, n + size);
        let a = append(&store, &big, ExpectedVersion::Exact(n), batch.clone()).await;
        let records = recorded(&batch, &big, n + 1, &a);
        want_big.extend(records.clone());
        want_all.extend(records);
        n += size;
        // Interleave another stream, so the global log is not one stream's.
        let one = events(10_000 + n, 10_001 + n);
        let i = u64::try_from(i).expect("a small index");
        let b = append(&store, &other, ExpectedVersion::Exact(i), one.clone()).await;
        want_all.extend(recorded(&one, &other, i + 1, &b));
    }
    assert_eq!(n, 1000);

    let read = read_stream(&store, &big, 1).await;
    assert_eq!(
        versions(&read),
        (1..=1000).collect::<Vec<_>>(),
        "read_stream of 1,000 events: complete and in version order"
    );
    assert_records(&read, &want_big, "read_stream of 1,000 events");
    assert_records(
        &read_stream(&store, &big, 257).await,
        &want_big[256..],
        "read_stream of 1,000 events from version 257",
    );

    let all = read_all(&store, Some(mark), &[&big, &other]).await;
    assert_records(
        &all,
        &want_all,
        "read_all over 1,006 events: complete and in append order",
    );
    let after = want_big[299].position;
    let from = want_all
        .iter()
        .position(|r| r.position == after)
        .expect("the 300th event is in the expected log")
        + 1;
    assert_records(
        &read_all(&store, Some(after), &[&big, &other]).await,
        &want_all[from..],
        "read_all after the 300th event of 1,000",
    );
}

/// `read_all` returns the global log in strictly increasing, unique positions, from the
/// start or after a position (exclusive), with every field as appended.
pub async fn read_all_is_in_position_order_after_an_exclusive_position<S: EventStore>(store: S) {
    let s1 = stream_id();
    let s2 = stream_id();
    let mut want = Vec::new();
    for (stream, expected, batch, first_version) in [
        (&s1, ExpectedVersion::NoStream, events(1, 3), 1),
        (&s2, ExpectedVersion::NoStream, events(3, 4), 1),
        (&s1, ExpectedVersion::Exact(2), events(4, 5), 3),
        (&s2, ExpectedVersion::Any, events(5, 7), 2),
    ] {
        let a = append(&store, stream, expected, batch.clone()).await;
        want.extend(recorded(&batch, stream, first_version, &a));
    }
    let positions: Vec<Position> = want.iter().map(|r| r.position).collect();
    assert_strictly_increasing(&positions, "the positions of successive appends");

    assert_records(
        &read_all(&store, None, &[&s1, &s2]).await,
        &want,
        "read_all from the start",
    );
    for (k, p) in positions.iter().enumerate() {
        assert_records(
            &read_all(&store, Some(*p), &[&s1, &s2]).await,
            &want[k + 1..],
            format_args!(
                "read_all after the position of event {} of 6 (exclusive)",
                k + 1
            ),
        );
    }
}

/// `stream_version` is 0 for an unknown stream and the version of the last event after
/// appends, unchanged by refused, empty or other streams' appends.
pub async fn stream_version_tracks_appends<S: EventStore>(store: S) {
    let stream = stream_id();
    let other = stream_id();
    assert_eq!(stream_version(&store, &stream).await, 0, "unknown stream");
    append(&store, &stream, ExpectedVersion::NoStream, events(1, 2)).await;
    assert_eq!(stream_version(&store, &stream).await, 1, "after 1 event");
    append(&store, &stream, ExpectedVersion::Exact(1), events(2, 5)).await;
    assert_eq!(stream_version(&store, &stream).await, 4, "after 4 events");
    append(&store, &other, ExpectedVersion::NoStream, events(5, 8)).await;
    assert_eq!(
        stream_version(&store, &stream).await,
        4,
        "after an append to another stream"
    );
    let stored = read_stream(&store, &stream, 1).await;
    append_err(&store, &stream, ExpectedVersion::Exact(2), events(8, 9)).await;
    let dup = NewEvent {
        event_id: stored[0].event_id,
        ..event(9)
    };
    append_err(&store, &stream, ExpectedVersion::Exact(4), vec![dup]).await;
    append(&store, &stream, ExpectedVersion::Exact(4), Vec::new()).await;
    assert_eq!(
        stream_version(&store, &stream).await,
        4,
        "after a conflict, a duplicate id and an empty append"
    );
    append(&store, &stream, ExpectedVersion::Any, events(10, 12)).await;
    assert_eq!(
        stream_version(&store, &stream).await,
        6,
        "after an Any append"
    );
    assert_eq!(stream_version(&store, &other).await, 3, "the other stream");
}

/// `find_event` finds a stored event of a stream by its id, as stored; `None` for an id not
/// stored, or stored in another stream.
pub async fn find_event_looks_up_by_id_within_the_stream<S: EventStore>(store: S) {
    let (a, b) = (stream_id(), stream_id());
    let batch = events(1, 4);
    let done = append(&store, &a, ExpectedVersion::NoStream, batch.clone()).await;
    append(&store, &b, ExpectedVersion::NoStream, events(4, 5)).await;
    let want = recorded(&batch, &a, 1, &done);
    let found = within(WAIT, "find_event", store.find_event(&a, batch[1].event_id))
        .await
        .unwrap_or_else(|e| panic!("find_event failed: {e:?}"));
    assert_records(
        &found.into_iter().collect::<Vec<_>>(),
        &want[1..2],
        "find_event returns the stored record",
    );
    for (what, stream, id) in [
        ("an id not stored", &a, Uuid::now_v7()),
        ("an id of another stream", &b, batch[0].event_id),
    ] {
        let found = within(WAIT, "find_event", store.find_event(stream, id))
            .await
            .unwrap_or_else(|e| panic!("find_event failed: {e:?}"));
        assert!(
            found.is_none(),
            "find_event with {what} must find nothing: {found:?}"
        );
    }
}
