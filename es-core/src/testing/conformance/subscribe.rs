//! Subscribing: history, then live events, in position order, each once; resuming.

use super::*;

/// A subscription delivers the events after its position, then live ones appended later, in
/// position order, each exactly once.
pub async fn subscribe_delivers_history_then_live_events_once<S: EventStore>(store: S) {
    let stream = stream_id();
    let history = events(1, 4);
    let h = append(&store, &stream, ExpectedVersion::NoStream, history.clone()).await;
    let history = recorded(&history, &stream, 1, &h);

    let mut from_start = subscribe(&store, None, &[&stream], "history then live");
    assert_records(
        &from_start.take(3).await,
        &history,
        "subscribe(None) must deliver the stored events first",
    );
    let mut after_first = subscribe(
        &store,
        Some(h.positions[0]),
        &[&stream],
        "history then live",
    );
    assert_records(
        &after_first.take(2).await,
        &history[1..],
        "subscribe(after event 1) must deliver events 2 and 3 (exclusive)",
    );

    // Both subscriptions are live now; append while they wait.
    let live: Vec<Vec<NewEvent>> = vec![events(4, 5), events(5, 7), events(7, 8), events(8, 10)];
    let appender = append_live(&store, &stream, 3, live.clone());
    let got_after_first = after_first.take(6).await;
    let got_from_start = from_start.take(6).await;
    let want = join(appender, "the appender").await;
    assert_records(
        &got_after_first,
        &want,
        "subscribe(after event 1): the live events, in order, once each",
    );
    assert_records(
        &got_from_start,
        &want,
        "subscribe(None): the live events, in order, once each",
    );

    // Nothing of ours is repeated: the next event of the stream is a new one.
    let last = events(100, 101);
    let a = append(&store, &stream, ExpectedVersion::Exact(9), last.clone()).await;
    let last = recorded(&last, &stream, 10, &a);
    assert_records(
        &after_first.take(1).await,
        &last,
        "subscribe(after event 1): after the live events, the next one (no repeat)",
    );
    assert_records(
        &from_start.take(1).await,
        &last,
        "subscribe(None): after the live events, the next one (no repeat)",
    );
}

/// Two subscriptions running at the same time see the same sequence of events while
/// appends go on.
pub async fn concurrent_subscribers_see_the_same_sequence<S: EventStore>(store: S) {
    const BATCHES: u64 = 15;
    const PER_BATCH: u64 = 2;
    let streams = [stream_id(), stream_id(), stream_id()];
    let anchor = append(&store, &streams[0], ExpectedVersion::NoStream, events(0, 1)).await;
    let after = anchor.positions[0];
    let total = usize::try_from(BATCHES * PER_BATCH).expect("a small count");

    let start = Arc::new(Barrier::new(3));
    let subscriber = |name: &'static str| {
        let store = store.clone();
        let streams = streams.clone();
        let start = Arc::clone(&start);
        tokio::spawn(async move {
            let mine: Vec<&StreamId> = streams.iter().collect();
            let mut sub = subscribe(&store, Some(after), &mine, name);
            start.wait().await;
            let got = sub.take(total).await;
            (got, sub.seen)
        })
    };
    let first = subscriber("first of two subscribers");
    let second = subscriber("second of two subscribers");
    let appender = tokio::spawn({
        let store = store.clone();
        let streams = streams.clone();
        let start = Arc::clone(&start);
        async move {
            start.wait().await;
            let mut want = Vec::new();
            for k in 0..BATCHES {
                let i = usize::try_from(k % 3).expect("a small index");
                let batch = events(k * PER_BATCH + 1, (k + 1) * PER_BATCH + 1);
                let version = stream_version(&store, &streams[i]).await;
                let a = append(
                    &store,
                    &streams[i],
                    ExpectedVersion::Exact(version),
                    batch.clone(),
                )
                .await;
                want.extend(recorded(&batch, &streams[i], version + 1, &a));
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            want
        }
    });
    let want = join(appender, "the appender").await;
    let (got1, seen1) = join(first, "the first subscriber").await;
    let (got2, seen2) = join(second, "the second subscriber").await;
    assert_records(
        &got1,
        &want,
        "the first subscriber: every appended event, in order, once",
    );
    assert_records(
        &got2,
        &want,
        "the second subscriber: every appended event, in order, once",
    );
    assert_eq!(
        seen1, seen2,
        "both subscribers must see the same global sequence of positions up to the last \
         appended event"
    );
}

/// Resuming a subscription after a position it delivered, in history or live, continues
/// with exactly the next event.
pub async fn subscribe_resumes_after_a_position<S: EventStore>(store: S) {
    let mark = mark(&store).await;
    let stream = stream_id();
    let mut want = Vec::new();
    for (batch, first_version) in [(events(1, 4), 1), (events(4, 7), 4), (events(7, 11), 7)] {
        let a = append(
            &store,
            &stream,
            ExpectedVersion::Exact(first_version - 1),
            batch.clone(),
        )
        .await;
        want.extend(recorded(&batch, &stream, first_version, &a));
    }

    // Resume from a position in the history.
    let mut sub = subscribe(
        &store,
        Some(want[1].position),
        &[&stream],
        "resume in history",
    );
    assert_records(
        &sub.take(1).await,
        &want[2..3],
        "subscribe(after event 2): event 3 next",
    );
    drop(sub);

    let mut sub = subscribe(&store, Some(mark), &[&stream], "resume");
    assert_records(&sub.take(4).await, &want[..4], "the first 4 events");
    let live = [
        events(11, 13),
        events(13, 14),
        events(14, 17),
        events(17, 19),
        events(19, 21),
    ];
    let appender = append_live(&store, &stream, 10, live.to_vec());
    let got = sub.take(8).await;
    drop(sub);
    want.extend(join(appender, "the appender").await);
    assert_eq!(want.len(), 20);
    assert_records(&got, &want[4..12], "events 5 to 12");

    // Resume after the last delivered event (event 12: live when delivered).
    let mid = got[7].position;
    let mut resumed = subscribe(&store, Some(mid), &[&stream], "resume after event 12");
    assert_records(
        &resumed.take(8).await,
        &want[12..],
        "resuming after event 12 must continue with exactly events 13 to 20",
    );
    // Resume after the very last event: only what comes next.
    let mut at_end = subscribe(
        &store,
        Some(want[19].position),
        &[&stream],
        "resume at the end",
    );
    let next = events(100, 101);
    let a = append(&store, &stream, ExpectedVersion::Exact(20), next.clone()).await;
    let next = recorded(&next, &stream, 21, &a);
    assert_records(
        &at_end.take(1).await,
        &next,
        "resuming after the last event must deliver the next appended one",
    );
    assert_records(
        &resumed.take(1).await,
        &next,
        "the resumed subscription, after event 20: the next appended one (no repeat)",
    );
}

/// Appends `batches` to `stream` (at `version` now) from a task, one batch every few
/// milliseconds, while subscribers wait; returns the records they should see.
fn append_live<S: EventStore>(
    store: &S,
    stream: &StreamId,
    mut version: u64,
    batches: Vec<Vec<NewEvent>>,
) -> JoinHandle<Vec<RecordedEvent>> {
    let (store, stream) = (store.clone(), stream.clone());
    tokio::spawn(async move {
        let mut want = Vec::new();
        for batch in batches {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let a = append(
                &store,
                &stream,
                ExpectedVersion::Exact(version),
                batch.clone(),
            )
            .await;
            want.extend(recorded(&batch, &stream, version + 1, &a));
            version = a.version;
        }
        want
    })
}

/// A subscription after a position the log has not reached (a checkpoint from elsewhere)
/// delivers only events after that position, never "whatever comes next".
pub async fn subscribe_after_a_position_past_the_end_is_exclusive<S: EventStore>(store: S) {
    let stream = stream_id();
    let a = append(&store, &stream, ExpectedVersion::NoStream, events(1, 2)).await;
    let last = a.positions[0];
    let beyond = Position::new(last.major(), last.minor().saturating_add(1_000_000));
    let mut sub = subscribe(&store, Some(beyond), &[&stream], "past the end");
    append(&store, &stream, ExpectedVersion::Exact(1), events(2, 5)).await;
    // What the log holds after `beyond` (read_all is exclusive too): the subscription must
    // deliver exactly that, in order, whether the store sorts the new events before or
    // after `beyond`.
    let want = read_all(&store, Some(beyond), &[&stream]).await;
    let got = sub.take(want.len()).await;
    assert_records(&got, &want, "subscribe after a position past the end");
    assert!(
        got.iter().all(|r| r.position > beyond),
        "a subscription delivered an event at or before its position"
    );
    let more = tokio::time::timeout(Duration::from_millis(200), sub.inner.next()).await;
    if let Ok(Some(Ok(r))) = &more {
        assert!(
            r.stream != stream || r.position > beyond,
            "delivered {r:?} at or before {beyond}"
        );
    }
}

/// `subscribe_types` delivers the records of the types asked for, in position order, and
/// progress past the others: its deliveries reach the position of the last event appended,
/// whatever its type, and never hand over a record of another type.
pub async fn subscribe_types_delivers_its_types_and_progress_past_the_rest<S: EventStore>(
    store: S,
) {
    const WANTED: &str = "ConformanceWanted";
    let mark = mark(&store).await;
    let stream = stream_id();
    let wanted = |n: u64| NewEvent {
        event_type: WANTED.to_owned(),
        ..event(n)
    };
    // History: 3 wanted among 40 others.
    let mut batch = events(0, 20);
    batch.push(wanted(100));
    batch.extend(events(20, 40));
    batch.push(wanted(101));
    batch.push(wanted(102));
    let first = append(&store, &stream, ExpectedVersion::NoStream, batch.clone()).await;
    let mut deliveries = Box::pin(store.subscribe_types(Some(mark), &[WANTED]));
    let mut got = Vec::new();
    let mut reached = mark;
    let mut target = *first.positions.last().expect("appended");
    let mut live_done = false;
    loop {
        let item = within(WAIT, "subscribe_types", deliveries.next())
            .await
            .unwrap_or_else(|| panic!("subscribe_types ended; it must go on live"))
            .unwrap_or_else(|e| panic!("subscribe_types failed: {e:?}"));
        let position = item.position();
        assert!(
            position > reached,
            "deliveries move forward: {position} after {reached}"
        );
        reached = position;
        if let crate::Delivery::Record(record) = item {
            assert_eq!(record.event_type, WANTED, "only the types asked for");
            got.push(record.payload["n"].as_u64().unwrap_or(0));
        }
        if reached >= target {
            if live_done {
                break;
            }
            // Then live: one other event, then a wanted one.
            append(&store, &stream, ExpectedVersion::Any, events(50, 51)).await;
            let last = append(&store, &stream, ExpectedVersion::Any, vec![wanted(103)]).await;
            target = last.positions[0];
            live_done = true;
        }
    }
    assert_eq!(
        got,
        vec![100, 101, 102, 103],
        "every wanted record, once, in order"
    );
}
