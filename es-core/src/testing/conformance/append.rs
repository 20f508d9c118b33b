//! Appending: versions, expected versions, atomicity, event ids.

use super::*;

/// Appending to a new stream with `NoStream`, `Exact(0)` or `Any` numbers its events from
/// version 1, with one strictly increasing position per event and one `recorded_at` per
/// append.
pub async fn append_to_a_new_stream_numbers_versions_from_one<S: EventStore>(store: S) {
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Any,
    ] {
        let what = format!("a new stream appended to with {expected:?}");
        let stream = stream_id();
        let first = events(1, 4);
        let a1 = append(&store, &stream, expected, first.clone()).await;
        assert_eq!(a1.version, 3, "{what}: Appended.version after 3 events");
        assert_eq!(a1.positions.len(), 3, "{what}: one position per event");
        assert_strictly_increasing(&a1.positions, &what);

        let second = events(4, 6);
        let a2 = append(&store, &stream, ExpectedVersion::Exact(3), second.clone()).await;
        assert_eq!(
            a2.version, 5,
            "{what}: Appended.version after 2 more events"
        );
        assert_eq!(a2.positions.len(), 2, "{what}: one position per event");
        assert_strictly_increasing(&a2.positions, &what);
        assert!(
            a1.positions[2] < a2.positions[0],
            "{what}: a later append must get later positions: {a1:?} then {a2:?}"
        );

        let mut want = recorded(&first, &stream, 1, &a1);
        want.extend(recorded(&second, &stream, 4, &a2));
        assert_records(
            &read_stream(&store, &stream, 1).await,
            &want,
            format_args!(
                "{what}: the stream must read back versions 1..=5 as appended, each with its \
                 append's position and recorded_at"
            ),
        );
        assert_eq!(stream_version(&store, &stream).await, 5, "{what}");
    }
}

/// `Exact(n)` with n below or above the stream's version, and `NoStream` on a stream with
/// events, fail with `Conflict { stream, expected, actual }` and write nothing.
pub async fn append_at_a_wrong_version_conflicts_and_writes_nothing<S: EventStore>(store: S) {
    let stream = stream_id();
    let seeded = append(&store, &stream, ExpectedVersion::NoStream, events(1, 4)).await;
    let before = read_stream(&store, &stream, 1).await;
    let mut rejected_all = Vec::new();
    for expected in [
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(4),
        ExpectedVersion::Exact(100),
        ExpectedVersion::NoStream,
    ] {
        let what = format!("append expecting {expected:?} to a stream at version 3");
        let rejected = events(10, 12);
        let err = append_err(&store, &stream, expected, rejected.clone()).await;
        assert_conflict(&err, &stream, expected, 3, &what);
        assert_eq!(
            stream_version(&store, &stream).await,
            3,
            "{what}: a refused append must not change the version"
        );
        assert_records(
            &read_stream(&store, &stream, 1).await,
            &before,
            format_args!("{what}: a refused append must write nothing"),
        );
        rejected_all.extend(rejected);
    }

    // Above the version of a new stream: a conflict, never a gap.
    let fresh = stream_id();
    for expected in [ExpectedVersion::Exact(1), ExpectedVersion::Exact(5)] {
        let what = format!("append expecting {expected:?} to a new stream");
        let err = append_err(&store, &fresh, expected, events(1, 2)).await;
        assert_conflict(&err, &fresh, expected, 0, &what);
        assert_eq!(stream_version(&store, &fresh).await, 0, "{what}");
        assert!(
            read_stream(&store, &fresh, 1).await.is_empty(),
            "{what}: must write nothing"
        );
    }

    // None of the refused events was stored: their ids are still free.
    let last = seeded.positions[2];
    let retried = append(
        &store,
        &stream,
        ExpectedVersion::Exact(3),
        rejected_all.clone(),
    )
    .await;
    assert_eq!(retried.version, 13, "the refused events appended again");
    assert_records(
        &read_all(&store, Some(last), &[&stream, &fresh]).await,
        &recorded(&rejected_all, &stream, 4, &retried),
        "after refused appends the global log must hold only what was appended since",
    );
}

/// `Any` never conflicts: it appends after whatever the stream holds, new or not, also
/// after a refused `Exact` append.
pub async fn append_with_any_never_conflicts<S: EventStore>(store: S) {
    let stream = stream_id();
    let a = append(&store, &stream, ExpectedVersion::Any, events(1, 3)).await;
    assert_eq!(a.version, 2, "Any on a new stream: Appended.version");
    let b = append(&store, &stream, ExpectedVersion::Any, events(3, 4)).await;
    assert_eq!(
        b.version, 3,
        "Any on a stream at version 2: Appended.version"
    );
    let c = append(&store, &stream, ExpectedVersion::Exact(3), events(4, 6)).await;
    assert_eq!(c.version, 5, "Exact(3) after Any appends");
    let err = append_err(&store, &stream, ExpectedVersion::Exact(1), events(6, 7)).await;
    assert_conflict(
        &err,
        &stream,
        ExpectedVersion::Exact(1),
        5,
        "Exact(1) at version 5",
    );
    let d = append(&store, &stream, ExpectedVersion::Any, events(7, 10)).await;
    assert_eq!(
        d.version, 8,
        "Any on a stream at version 5: Appended.version"
    );
    let read = read_stream(&store, &stream, 1).await;
    assert_eq!(
        versions(&read),
        (1..=8).collect::<Vec<_>>(),
        "versions after Any and Exact appends"
    );
    let payloads: Vec<_> = read.iter().map(|r| r.payload["n"].clone()).collect();
    assert_eq!(
        payloads,
        [1, 2, 3, 4, 5, 7, 8, 9].map(|n| json!(n)).to_vec(),
        "the stream must hold the appended events in order, without the refused one"
    );
}

/// An empty append writes nothing and returns the current version; a mismatched expected
/// version still fails with `Conflict` (checked before the emptiness).
pub async fn empty_append_writes_nothing<S: EventStore>(store: S) {
    let stream = stream_id();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Any,
    ] {
        let what = format!("an empty append to a new stream expecting {expected:?}");
        let a = append(&store, &stream, expected, Vec::new()).await;
        assert_eq!(a.version, 0, "{what}: Appended.version");
        assert!(a.positions.is_empty(), "{what}: no position: {a:?}");
        assert_eq!(stream_version(&store, &stream).await, 0, "{what}");
    }
    // The empty appends did not create the stream.
    let first = events(1, 3);
    let a1 = append(&store, &stream, ExpectedVersion::NoStream, first.clone()).await;
    assert_eq!(
        a1.version, 2,
        "NoStream after empty appends: the stream must still be new"
    );
    let before = read_stream(&store, &stream, 1).await;

    for expected in [ExpectedVersion::Exact(2), ExpectedVersion::Any] {
        let what = format!("an empty append to a stream at version 2 expecting {expected:?}");
        let a = append(&store, &stream, expected, Vec::new()).await;
        assert_eq!(a.version, 2, "{what}: must return the current version");
        assert!(a.positions.is_empty(), "{what}: no position: {a:?}");
    }
    for expected in [
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(3),
        ExpectedVersion::NoStream,
    ] {
        let what = format!("an empty append to a stream at version 2 expecting {expected:?}");
        let err = append_err(&store, &stream, expected, Vec::new()).await;
        assert_conflict(&err, &stream, expected, 2, &what);
    }
    assert_eq!(
        stream_version(&store, &stream).await,
        2,
        "empty appends must not change the version"
    );
    assert_records(
        &read_stream(&store, &stream, 1).await,
        &before,
        "empty appends must write nothing",
    );
    assert!(
        read_all(&store, Some(a1.positions[1]), &[&stream])
            .await
            .is_empty(),
        "empty appends must add nothing to the global log"
    );
}

/// An append holding an event id already stored fails with `DuplicateEventId` and writes
/// none of its events, whatever the stream and the expected version.
pub async fn append_with_a_stored_event_id_fails_and_writes_nothing<S: EventStore>(store: S) {
    let a = stream_id();
    let stored = event(1);
    let first = append(&store, &a, ExpectedVersion::NoStream, vec![stored.clone()]).await;
    let a_before = read_stream(&store, &a, 1).await;
    // Same id, other content: only the id matters.
    let dup = NewEvent {
        event_type: "SomethingElse".to_owned(),
        payload: json!({ "other": true }),
        ..stored.clone()
    };

    let b = stream_id();
    let fresh = events(2, 5);
    let err = append_err(
        &store,
        &b,
        ExpectedVersion::NoStream,
        vec![fresh[0].clone(), dup.clone(), fresh[1].clone()],
    )
    .await;
    assert_duplicate(
        &err,
        stored.event_id,
        "an append to another stream holding a stored id",
    );
    assert_eq!(
        stream_version(&store, &b).await,
        0,
        "a refused append must not create the stream"
    );
    assert!(
        read_stream(&store, &b, 1).await.is_empty(),
        "an append holding a stored id must write none of its events (the ones before the \
         duplicate included)"
    );

    let err = append_err(
        &store,
        &a,
        ExpectedVersion::Exact(1),
        vec![fresh[2].clone(), dup.clone()],
    )
    .await;
    assert_duplicate(
        &err,
        stored.event_id,
        "an append to the same stream holding a stored id",
    );
    let err = append_err(&store, &a, ExpectedVersion::Any, vec![dup]).await;
    assert_duplicate(
        &err,
        stored.event_id,
        "an append with Any holding a stored id (must fail, not retry)",
    );
    assert_eq!(stream_version(&store, &a).await, 1, "refused appends");
    assert_records(
        &read_stream(&store, &a, 1).await,
        &a_before,
        "refused appends must write nothing",
    );

    // The fresh events were not stored: their ids are still free.
    let done = append(&store, &b, ExpectedVersion::NoStream, fresh.clone()).await;
    assert_eq!(
        done.version, 3,
        "the fresh events appended after the refusals"
    );
    assert_records(
        &read_all(&store, Some(first.positions[0]), &[&a, &b]).await,
        &recorded(&fresh, &b, 1, &done),
        "the global log must hold nothing of the refused appends",
    );
}

/// An append holding the same event id twice fails with `DuplicateEventId` and writes none
/// of its events.
pub async fn append_with_an_event_id_repeated_in_the_batch_fails_and_writes_nothing<
    S: EventStore,
>(
    store: S,
) {
    let stream = stream_id();
    let seed = append(&store, &stream, ExpectedVersion::NoStream, events(1, 2)).await;
    let before = read_stream(&store, &stream, 1).await;
    let x = event(2);
    let y = event(3);
    let err = append_err(
        &store,
        &stream,
        ExpectedVersion::Exact(1),
        vec![x.clone(), y.clone(), x.clone()],
    )
    .await;
    assert_duplicate(&err, x.event_id, "an append holding one id twice");
    assert_eq!(stream_version(&store, &stream).await, 1, "refused append");
    assert_records(
        &read_stream(&store, &stream, 1).await,
        &before,
        "an append holding one id twice must write nothing",
    );

    let fresh = stream_id();
    let err = append_err(
        &store,
        &fresh,
        ExpectedVersion::NoStream,
        vec![y.clone(), y.clone()],
    )
    .await;
    assert_duplicate(
        &err,
        y.event_id,
        "an append to a new stream holding one id twice",
    );
    assert_eq!(stream_version(&store, &fresh).await, 0, "refused append");

    let done = append(
        &store,
        &stream,
        ExpectedVersion::Exact(1),
        vec![x.clone(), y.clone()],
    )
    .await;
    assert_eq!(
        done.version, 3,
        "the events appended once each after the refusals"
    );
    assert_records(
        &read_all(&store, Some(seed.positions[0]), &[&stream, &fresh]).await,
        &recorded(&[x, y], &stream, 2, &done),
        "the global log must hold nothing of the refused appends",
    );
}

/// An append retried after its outcome was lost (same ids, same content, same order, with
/// the expected version it was first given, or `Any`) succeeds with the original outcome and
/// writes nothing more. Anything else holding a stored id is still a duplicate.
pub async fn an_append_retried_with_the_same_events_gets_its_original_outcome<S: EventStore>(
    store: S,
) {
    let s = stream_id();
    let batch = events(1, 3);
    let first = append(&store, &s, ExpectedVersion::NoStream, batch.clone()).await;
    append(&store, &s, ExpectedVersion::Exact(2), events(3, 4)).await;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Any,
    ] {
        let again = store
            .append(&s, expected, batch.clone())
            .await
            .unwrap_or_else(|e| panic!("a retried append with {expected:?} must succeed: {e:?}"));
        assert_eq!(
            again, first,
            "a retried append returns the original outcome"
        );
    }
    assert_eq!(stream_version(&store, &s).await, 3, "retries wrote nothing");

    let other = stream_id();
    let changed = NewEvent {
        payload: json!({ "changed": true }),
        ..batch[0].clone()
    };
    let fresh = events(10, 11);
    for (what, stream, expected, attempt) in [
        (
            "other content",
            &s,
            ExpectedVersion::NoStream,
            vec![changed, batch[1].clone()],
        ),
        (
            "another order",
            &s,
            ExpectedVersion::Any,
            vec![batch[1].clone(), batch[0].clone()],
        ),
        (
            "another expected version",
            &s,
            ExpectedVersion::Exact(1),
            batch.clone(),
        ),
        (
            "another stream",
            &other,
            ExpectedVersion::NoStream,
            batch.clone(),
        ),
        (
            "a stored id then a fresh one",
            &s,
            ExpectedVersion::NoStream,
            vec![batch[0].clone(), fresh[0].clone()],
        ),
    ] {
        // Each attempt starts with a stored id: the error names the first stored one.
        let clash = attempt[0].event_id;
        let err = append_err(&store, stream, expected, attempt).await;
        assert_duplicate(&err, clash, &format!("a stored id with {what}"));
    }
    assert_eq!(
        stream_version(&store, &s).await,
        3,
        "refusals wrote nothing"
    );
    assert_eq!(
        stream_version(&store, &other).await,
        0,
        "refusals wrote nothing"
    );
}

/// `append_all` appends to several streams atomically: all parts land in order with their
/// own versions, or, when any part is refused, none does (the parts before it included).
pub async fn append_all_is_atomic_across_streams<S: EventStore>(store: S) {
    let (a, b) = (stream_id(), stream_id());
    append(&store, &b, ExpectedVersion::NoStream, events(0, 1)).await;
    let part = |stream: &StreamId, expected, events| StreamAppend {
        stream: stream.clone(),
        expected,
        events,
    };
    // Refused by the second part: nothing of the first is written.
    let refused = within(
        WAIT,
        "append_all",
        store.append_all(vec![
            part(&a, ExpectedVersion::NoStream, events(1, 3)),
            part(&b, ExpectedVersion::NoStream, events(3, 4)),
        ]),
    )
    .await;
    match refused {
        Err(StoreError::Conflict { stream, actual, .. }) => {
            assert_eq!(stream, b, "the conflict names the refusing part's stream");
            assert_eq!(actual, 1);
        }
        other => panic!("append_all with a stale part must be a Conflict, got {other:?}"),
    }
    assert_eq!(
        stream_version(&store, &a).await,
        0,
        "no part of a refused append_all lands"
    );
    // Accepted: every part, in order; two parts of one stream follow each other.
    let (x, y, z) = (events(10, 12), events(12, 13), events(13, 14));
    let done = within(
        WAIT,
        "append_all",
        store.append_all(vec![
            part(&a, ExpectedVersion::NoStream, x.clone()),
            part(&b, ExpectedVersion::Exact(1), y.clone()),
            part(&a, ExpectedVersion::Exact(2), z.clone()),
        ]),
    )
    .await
    .unwrap_or_else(|e| panic!("append_all must succeed: {e:?}"));
    assert_eq!(
        done.iter().map(|d| d.version).collect::<Vec<_>>(),
        vec![2, 2, 3],
        "each part's outcome, in order"
    );
    let mut want = recorded(&x, &a, 1, &done[0]);
    want.extend(recorded(&z, &a, 3, &done[2]));
    assert_records(
        &read_stream(&store, &a, 1).await,
        &want,
        "the parts of stream a",
    );
    assert_records(
        &read_stream(&store, &b, 2).await,
        &recorded(&y, &b, 2, &done[1]),
        "the part of stream b",
    );
}

/// Set-based validation under concurrency: 16 writers each append their own stream and,
/// with `NoStream`, one shared claim stream, atomically. Exactly one wins; every loser gets
/// a conflict on the claim and wrote nothing, its own stream included.
pub async fn concurrent_claims_of_one_value_exactly_one_wins<S: EventStore>(store: S) {
    const WRITERS: usize = 16;
    let claim = stream_id();
    let start = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| {
            let (store, claim, start) = (store.clone(), claim.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                let own = stream_id();
                start.wait().await;
                let parts = vec![
                    StreamAppend {
                        stream: own.clone(),
                        expected: ExpectedVersion::NoStream,
                        events: events(0, 2),
                    },
                    StreamAppend {
                        stream: claim,
                        expected: ExpectedVersion::NoStream,
                        events: vec![event(u64::try_from(n).expect("small"))],
                    },
                ];
                (own, within(WAIT, "a claim", store.append_all(parts)).await)
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        let (own, result) = join(task, "a claimer").await;
        match result {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict { stream, .. }) => {
                assert_eq!(stream, claim, "a loser's conflict is on the claim");
                assert_eq!(
                    stream_version(&store, &own).await,
                    0,
                    "a loser wrote nothing"
                );
            }
            Err(other) => panic!("a claim must win or conflict, got {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one of {WRITERS} claims wins");
    assert_eq!(stream_version(&store, &claim).await, 1);
}
