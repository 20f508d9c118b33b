//! Concurrency: racing writers lose no update; `Any` never conflicts.

use super::*;

/// Of several appends racing with the same `Exact(n)`, exactly one wins; every other fails
/// with `Conflict` carrying the winner's version.
pub async fn racing_exact_appends_exactly_one_wins<S: EventStore>(store: S) {
    let stream = stream_id();
    let seed = events(0, 1);
    let a = append(&store, &stream, ExpectedVersion::NoStream, seed.clone()).await;
    let mut want = recorded(&seed, &stream, 1, &a);
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (1..=TASKS)
        .map(|t| {
            let store = store.clone();
            let stream = stream.clone();
            let start = Arc::clone(&start);
            let e = event(u64::try_from(t).expect("a small number"));
            tokio::spawn(async move {
                start.wait().await;
                let result = within(
                    WAIT,
                    "a racing append",
                    store.append(&stream, ExpectedVersion::Exact(1), vec![e.clone()]),
                )
                .await;
                (e, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (e, result) = join(task, "a racing appender").await;
        match result {
            Ok(a) => winners.push((e, a)),
            Err(err) => assert_conflict(
                &err,
                &stream,
                ExpectedVersion::Exact(1),
                2,
                "a losing append of 8 racing with Exact(1)",
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {TASKS} appends racing with Exact(1) must win: {winners:?}"
    );
    let (e, a) = &winners[0];
    assert_eq!(a.version, 2, "the winner's Appended.version");
    want.extend(recorded(std::slice::from_ref(e), &stream, 2, a));
    assert_records(
        &read_stream(&store, &stream, 1).await,
        &want,
        "the stream must hold the seed and the winner only",
    );
}

/// Concurrent read-version-then-append-`Exact` writers lose no update: every success gets
/// the next version, every loser a `Conflict` with `actual > expected`.
pub async fn concurrent_exact_appends_lose_no_update<S: EventStore>(store: S) {
    const PER_TASK: u64 = 25;
    const MAX_ATTEMPTS: u64 = 10_000;
    let stream = stream_id();
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            let stream = stream.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let mut successes = Vec::new();
                let mut conflicts = 0_u64;
                let mut attempts = 0_u64;
                for n in 0..PER_TASK {
                    // The same event is retried: were a refused append stored, the retry
                    // would fail as a duplicate.
                    let e = event(n);
                    loop {
                        attempts += 1;
                        assert!(
                            attempts <= MAX_ATTEMPTS,
                            "a writer made {MAX_ATTEMPTS} attempts for {PER_TASK} appends"
                        );
                        let version = stream_version(&store, &stream).await;
                        tokio::task::yield_now().await;
                        let expected = ExpectedVersion::Exact(version);
                        let what = format!("append expecting {expected:?}");
                        let result = within(
                            WAIT,
                            &what,
                            store.append(&stream, expected, vec![e.clone()]),
                        )
                        .await;
                        match result {
                            Ok(a) => {
                                assert_eq!(
                                    a.version,
                                    version + 1,
                                    "{what}: a successful Exact append must give the next version"
                                );
                                assert_eq!(a.positions.len(), 1, "{what}: one position");
                                successes.push((e.event_id, a.version));
                                break;
                            }
                            Err(StoreError::Conflict {
                                stream: s,
                                expected: got,
                                actual,
                            }) => {
                                assert_eq!(s, stream, "{what}: the Conflict's stream");
                                assert_eq!(got, expected, "{what}: the Conflict's expected");
                                assert!(
                                    actual > version,
                                    "{what}: a Conflict under concurrent appends must report \
                                     the stream ahead of the expected version, got actual \
                                     {actual}"
                                );
                                conflicts += 1;
                            }
                            Err(other) => panic!("{what}: must succeed or conflict, got {other:?}"),
                        }
                    }
                }
                (successes, conflicts)
            })
        })
        .collect();
    let mut successes = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (s, c) = join(task, "a concurrent writer").await;
        successes.extend(s);
        conflicts += c;
    }
    let total = PER_TASK * u64::try_from(TASKS).expect("a small count");
    assert_eq!(
        stream_version(&store, &stream).await,
        total,
        "after {total} successful appends (and {conflicts} conflicts) the version must be \
         {total}: no lost update"
    );
    let read = read_stream(&store, &stream, 1).await;
    assert_eq!(
        versions(&read),
        (1..=total).collect::<Vec<_>>(),
        "every version 1..={total} exactly once"
    );
    successes.sort_by_key(|&(_, version)| version);
    let read_pairs: Vec<(Uuid, u64)> = read.iter().map(|r| (r.event_id, r.version)).collect();
    assert_eq!(
        read_pairs, successes,
        "each successful append's event must be stored at the version its append returned"
    );
    assert!(
        conflicts > 0,
        "{TASKS} writers made {total} appends without a single conflict: the race this test \
         needs did not happen"
    );
}

/// `Any` appends from concurrent tasks all succeed, each batch lands whole and in order,
/// and the stream ends with every event exactly once.
pub async fn concurrent_any_appends_all_succeed<S: EventStore>(store: S) {
    const APPENDS: u64 = 20;
    let stream = stream_id();
    let start = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            let stream = stream.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let mut done = Vec::new();
                let mut last_version = 0;
                for k in 0..APPENDS {
                    let batch = events(0, 1 + k % 3);
                    let a = append(&store, &stream, ExpectedVersion::Any, batch.clone()).await;
                    assert!(
                        a.version > last_version,
                        "one writer's Any appends must get increasing versions: {} then {}",
                        last_version,
                        a.version
                    );
                    last_version = a.version;
                    done.push((batch, a));
                }
                done
            })
        })
        .collect();
    let mut done = Vec::new();
    for task in tasks {
        done.extend(join(task, "a concurrent Any writer").await);
    }
    let total: u64 = done
        .iter()
        .map(|(batch, _)| u64::try_from(batch.len()).expect("a small count"))
        .sum();
    assert_eq!(
        stream_version(&store, &stream).await,
        total,
        "every Any append must land"
    );
    let read = read_stream(&store, &stream, 1).await;
    assert_eq!(
        versions(&read),
        (1..=total).collect::<Vec<_>>(),
        "every version 1..={total} exactly once"
    );
    let mut want = Vec::new();
    for (batch, a) in &done {
        let len = u64::try_from(batch.len()).expect("a small count");
        want.extend(recorded(batch, &stream, a.version + 1 - len, a));
    }
    want.sort_by_key(|r| r.version);
    assert_records(
        &read,
        &want,
        "each Any append's events must be stored whole, in order, at the versions ending at \
         the version it returned",
    );
    let unique: HashSet<Uuid> = record_ids(&read).into_iter().collect();
    assert_eq!(unique.len(), read.len(), "every event exactly once");
}

/// A conflict reports the version the append was refused at, which is never the version it
/// expected: here an appender keeps expecting one past what it just read while another
/// writer appends, so the stream often reaches the expected version right after the refusal
/// (a store that reads `actual` in a later statement would then report `actual == expected`).
pub async fn a_conflict_never_reports_the_expected_version<S: EventStore>(store: S) {
    let stream = stream_id();
    append(&store, &stream, ExpectedVersion::NoStream, events(0, 1)).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stream, done) = (store.clone(), stream.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut n = 0_u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                within(
                    WAIT,
                    "the other writer",
                    store.append(&stream, ExpectedVersion::Any, vec![event(n)]),
                )
                .await
                .unwrap_or_else(|e| panic!("an Any append must succeed: {e:?}"));
                tokio::task::yield_now().await;
            }
        })
    };
    for i in 0..200 {
        let read = stream_version(&store, &stream).await;
        let expected = ExpectedVersion::Exact(read + 1);
        match within(
            WAIT,
            "an append expecting ahead",
            store.append(&stream, expected, vec![event(i)]),
        )
        .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict {
                actual,
                expected: e,
                ..
            }) => {
                assert_eq!(e, expected, "the conflict carries the expected version");
                assert_ne!(
                    actual,
                    read + 1,
                    "a conflict expecting version {} reported that same version as actual",
                    read + 1
                );
                assert!(
                    actual >= read,
                    "the stream never goes back: read {read}, actual {actual}"
                );
            }
            Err(other) => panic!("expected success or Conflict, got {other:?}"),
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    join(writer, "the other writer").await;
}
