//! Group commit (`with_group_commit`): 64 writers with mixed expectations and forced
//! conflicts, a conflict failing alone inside a batch, two appends to one stream arriving
//! together, and a batch racing a writer outside it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use es_core::{
    EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StoreError, StreamId,
};
use es_postgres::{GroupCommit, PostgresStore};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::concurrency::{check, follow};
use crate::support;

const WRITERS: usize = 64;
const STREAMS: usize = 24;
const APPENDS: usize = 1_500;

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Grouped".into(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n }),
        metadata: Metadata::default(),
    }
}

/// Every record of these streams (read stream by stream: the global log's horizon may be
/// held back by another test's open transaction).
async fn stored(store: &PostgresStore, streams: &[StreamId]) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    for stream in streams {
        let records: Vec<RecordedEvent> = store
            .read_stream(stream, 1)
            .try_collect()
            .await
            .expect("read a stream");
        all.extend(records);
    }
    all
}

/// 64 writers on 24 shared streams: a third append with `Any`, a third with the version
/// they read (retrying conflicts), a third with a version the stream cannot be at (a forced
/// conflict). Every accepted event is stored once; every forced conflict is a `Conflict`
/// naming its own stream and expectation, and writes nothing; two live subscribers see every
/// accepted event once, in each stream's order; and appends shared transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_mixed_expectations_and_forced_conflicts() {
    mixed_expectations(2).await;
}

/// The same with one-event appends: those expecting a version the store has seen go in
/// batches that do not look at the streams, and a version taken under them (a writer that
/// read a version another then moved past) fails that append alone all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_of_one_event_mixed_expectations_and_forced_conflicts() {
    mixed_expectations(1).await;
}

async fn mixed_expectations(per_append: usize) {
    let store = support::store_with(WRITERS as u32 + 8)
        .await
        .with_group_commit(GroupCommit::new());
    let category = format!("group{}", Uuid::now_v7().simple());
    let streams: Arc<Vec<StreamId>> = Arc::new(
        (0..STREAMS)
            .map(|i| StreamId::new(category.clone(), i.to_string()))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let accepted_count = APPENDS - APPENDS / 3;
    let subscribers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(follow(
                store.subscribe(None),
                category.clone(),
                accepted_count * per_append,
                None,
            ))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, streams, next) = (store.clone(), Arc::clone(&streams), Arc::clone(&next));
            tokio::spawn(async move {
                let (mut accepted, mut refused, mut retried) = (Vec::new(), Vec::new(), 0);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= APPENDS {
                        return (accepted, refused, retried);
                    }
                    let stream = &streams[(n * 7 + w) % streams.len()];
                    let events: Vec<NewEvent> = (0..per_append).map(|_| event(n)).collect();
                    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                    match n % 3 {
                        0 => {
                            store
                                .append(stream, ExpectedVersion::Any, events)
                                .await
                                .expect("Any lands");
                            accepted.extend(ids);
                        }
                        1 => loop {
                            let v = store.stream_version(stream).await.expect("version");
                            match store
                                .append(stream, ExpectedVersion::Exact(v), events.clone())
                                .await
                            {
                                Ok(a) => {
                                    assert_eq!(
                                        a.version,
                                        v + per_append as u64,
                                        "landed right after {v}"
                                    );
                                    accepted.extend(ids);
                                    break;
                                }
                                Err(StoreError::Conflict {
                                    stream: s,
                                    expected,
                                    actual,
                                }) => {
                                    assert_eq!((&s, expected), (stream, ExpectedVersion::Exact(v)));
                                    assert_ne!(actual, v);
                                    retried += 1;
                                }
                                Err(e) => panic!("append failed: {e}"),
                            }
                        },
                        _ => {
                            // No stream gets this long in this test.
                            let wrong = ExpectedVersion::Exact(1_000_000 + n as u64);
                            match store.append(stream, wrong, events).await {
                                Err(StoreError::Conflict {
                                    stream: s,
                                    expected,
                                    actual,
                                }) => {
                                    assert_eq!((&s, expected), (stream, wrong));
                                    assert!(actual < 1_000_000, "the version it saw: {actual}");
                                }
                                other => panic!("a forced conflict, got {other:?}"),
                            }
                            refused.extend(ids);
                        }
                    }
                }
            })
        })
        .collect();
    let (mut accepted, mut refused, mut retried) = (HashSet::new(), HashSet::new(), 0);
    for w in writers {
        let (a, r, n) = w.await.expect("writer");
        accepted.extend(a);
        refused.extend(r);
        retried += n;
    }
    assert_eq!(accepted.len(), accepted_count * per_append);
    assert_eq!(refused.len(), (APPENDS / 3) * per_append);

    let log = stored(&store, &streams).await;
    check(&log, &accepted, "the stored log");
    assert!(
        log.iter().all(|r| !refused.contains(&r.event_id)),
        "a refused append wrote nothing"
    );
    for (i, s) in subscribers.into_iter().enumerate() {
        check(
            &s.await.expect("subscriber").0,
            &accepted,
            &format!("subscriber {i}"),
        );
    }
    // Appends shared transactions: each transaction id is a commit.
    let transactions: HashSet<u64> = log.iter().map(|r| r.position.major()).collect();
    let appends = accepted.len() / per_append;
    assert!(
        transactions.len() < appends,
        "{appends} appends in {} transactions",
        transactions.len()
    );
    support::report(&format!(
        "group commit: {appends} appends in {} transactions; {retried} exact-version conflicts retried",
        transactions.len()
    ));
}

/// Ten appends that arrive together go in one transaction; the one whose expected version
/// does not hold fails alone with its conflict, and the other nine land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_in_a_batch_fails_alone() {
    // It holds a transaction open: not while a test asserts who holds the horizon.
    let _alone = support::exclusive().await;
    let store = support::store_with(16)
        .await
        .with_group_commit(GroupCommit::new());
    let category = format!("alone{}", Uuid::now_v7().simple());
    let streams: Vec<StreamId> = (0..10)
        .map(|i| StreamId::new(category.clone(), i.to_string()))
        .collect();
    store
        .append(&streams[3], ExpectedVersion::NoStream, vec![event(0)])
        .await
        .expect("stream 3 at version 1");
    // The lead is held by a batch that waits for a writer outside it (the version it takes
    // is locked by an open transaction), so the ten arrive together behind it.
    let blocker = StreamId::new(category.clone(), "blocker");
    let mut tx = store.pool().begin().await.expect("begin");
    store
        .append_in(&mut tx, &blocker, ExpectedVersion::NoStream, vec![event(0)])
        .await
        .expect("outside append");
    let held = tokio::spawn({
        let (store, blocker) = (store.clone(), blocker.clone());
        async move {
            store
                .append(&blocker, ExpectedVersion::Any, vec![event(0)])
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tasks: Vec<_> = streams
        .iter()
        .map(|s| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move {
                store
                    .append(&s, ExpectedVersion::NoStream, vec![event(1), event(2)])
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.expect("commit");
    assert_eq!(held.await.expect("task").expect("lands").version, 2);
    let mut transactions = HashSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("append") {
            Ok(a) if i != 3 => {
                assert_eq!(a.version, 2);
                transactions.extend(a.positions.iter().map(|p| p.major()));
            }
            Err(StoreError::Conflict {
                stream,
                expected,
                actual,
            }) if i == 3 => {
                assert_eq!(stream, streams[3]);
                assert_eq!(expected, ExpectedVersion::NoStream);
                assert_eq!(actual, 1);
            }
            other => panic!("append {i}: {other:?}"),
        }
    }
    assert_eq!(transactions.len(), 1, "the nine landed in one transaction");
    let log = stored(&store, &[&streams[..], &[blocker]].concat()).await;
    assert_eq!(log.len(), 1 + 2 + 9 * 2);
    assert_eq!(
        log.iter().filter(|r| r.stream == streams[3]).count(),
        1,
        "the refused append wrote nothing"
    );
}

/// Appends to one stream that arrive together go in successive batches, in order: each
/// lands on the version the one before left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_to_one_stream_together_land_one_after_another() {
    let store = support::store_with(16)
        .await
        .with_group_commit(GroupCommit::new().max_wait(Duration::from_millis(200)));
    let stream = StreamId::new(format!("same{}", Uuid::now_v7().simple()), "1");
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                store
                    .append(&stream, ExpectedVersion::Any, vec![event(n), event(n)])
                    .await
                    .expect("Any lands")
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.expect("append").version);
    }
    versions.sort_unstable();
    assert_eq!(versions, [2, 4, 6, 8, 10, 12, 14, 16]);
    let records: Vec<RecordedEvent> = store
        .read_stream(&stream, 1)
        .try_collect()
        .await
        .expect("read");
    let pairs: Vec<u64> = records.iter().map(|r| r.version).collect();
    assert_eq!(pairs, (1..=16).collect::<Vec<u64>>());
    // Each append's two events are next to each other.
    for pair in records.chunks(2) {
        assert_eq!(pair[0].payload, pair[1].payload);
    }
}

type Append = tokio::task::JoinHandle<Result<es_core::Appended, StoreError>>;

/// A batch held on the database, in a store with group commit. An outside writer (an open
/// transaction) holds `first`, so an append to it, alone, holds the lead, and two appends
/// queue up behind it: `Any` to `hot`, then `NoStream` to `other`. Once the first outside
/// writer commits, they go as one batch, which waits on a second outside writer holding
/// `hot`.
struct HeldBatch {
    store: PostgresStore,
    streams: [StreamId; 3],
    holds_hot: sqlx::Transaction<'static, sqlx::Postgres>,
    to_hot: Append,
    to_other: Append,
}

async fn held_batch(prefix: &str) -> HeldBatch {
    let store = support::store_with(16)
        .await
        .with_group_commit(GroupCommit::new());
    let category = format!("{prefix}{}", Uuid::now_v7().simple());
    let [first, hot, other] =
        ["first", "hot", "other"].map(|id| StreamId::new(category.clone(), id));
    let outside = async |stream: &StreamId| {
        let mut tx = store.pool().begin().await.expect("begin");
        store
            .append_in(&mut tx, stream, ExpectedVersion::NoStream, vec![event(0)])
            .await
            .expect("outside append");
        tx
    };
    let (holds_lead, holds_hot) = (outside(&first).await, outside(&hot).await);
    let spawn = |stream: &StreamId, expected: ExpectedVersion| -> Append {
        let (store, stream) = (store.clone(), stream.clone());
        tokio::spawn(async move { store.append(&stream, expected, vec![event(1)]).await })
    };
    let leader = spawn(&first, ExpectedVersion::Any);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let to_hot = spawn(&hot, ExpectedVersion::Any);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let to_other = spawn(&other, ExpectedVersion::NoStream);
    tokio::time::sleep(Duration::from_millis(150)).await;
    holds_lead.commit().await.expect("commit");
    assert_eq!(leader.await.expect("task").expect("lands").version, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !to_hot.is_finished(),
        "the batch waits on the outside writer"
    );
    assert!(
        !to_other.is_finished(),
        "the batch waits on the outside writer"
    );
    HeldBatch {
        store,
        streams: [first, hot, other],
        holds_hot,
        to_hot,
        to_other,
    }
}

/// A writer outside the batch (a transaction of its own) holds the next version of a stream
/// the batch appends to with `Any`: the batch's statement waits for it, fails on the clash
/// once it commits, and goes again: the `Any` append lands after the outside writer, and the
/// exact append in the same batch lands too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_racing_an_outside_writer_lands_after_it() {
    // It holds transactions open: not while a test asserts who holds the horizon.
    let _alone = support::exclusive().await;
    let held = held_batch("race").await;
    held.holds_hot.commit().await.expect("commit");
    let any = held
        .to_hot
        .await
        .expect("task")
        .expect("Any lands after the outside writer");
    assert_eq!(any.version, 2);
    let exact = held
        .to_other
        .await
        .expect("task")
        .expect("the exact append lands");
    assert_eq!(exact.version, 1);
    assert_eq!(
        any.positions[0].major(),
        exact.positions[0].major(),
        "one transaction"
    );
    assert_eq!(stored(&held.store, &held.streams).await.len(), 5);
}

/// A lone writer never waits for company, whatever `max_wait` allows: with nothing else in
/// flight, its append goes at once (here, well inside the five seconds it could wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writer_does_not_wait() {
    let store = support::store_with(4)
        .await
        .with_group_commit(GroupCommit::new().max_wait(Duration::from_secs(5)));
    let stream = StreamId::new(format!("lone{}", Uuid::now_v7().simple()), "1");
    for n in 0..3 {
        let started = std::time::Instant::now();
        let appended = store
            .append(&stream, ExpectedVersion::Exact(n as u64), vec![event(n)])
            .await
            .expect("append");
        assert_eq!(appended.version, n as u64 + 1);
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "waited {:?}",
            started.elapsed()
        );
    }
}

/// A leader that gives up (its caller's future dropped while its batch waits on the
/// database) leaves no one waiting: the other appends of its batch run on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_gives_up_leaves_no_one_waiting() {
    // It holds transactions open: not while a test asserts who holds the horizon.
    let _alone = support::exclusive().await;
    // The append to `hot` arrived first: it leads the held batch.
    let held = held_batch("gaveup").await;
    held.to_hot.abort();
    let landed = tokio::time::timeout(Duration::from_secs(10), held.to_other)
        .await
        .expect("the follower is not left waiting")
        .expect("task")
        .expect("it lands on its own");
    assert_eq!(landed.version, 1);
    held.holds_hot.commit().await.expect("commit");
    let log = stored(&held.store, &held.streams).await;
    let ids: HashSet<Uuid> = log.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), log.len(), "nothing stored twice");
}

/// A caller that gives up after the lead was handed to it, before it took it up, passes the
/// lead on: the appends after it still go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_with_the_lead_on_its_way_passes_it_on() {
    // It holds a transaction open: not while a test asserts who holds the horizon.
    let _alone = support::exclusive().await;
    let store = support::store_with(16)
        .await
        .with_group_commit(GroupCommit::new());
    let category = format!("handed{}", Uuid::now_v7().simple());
    let [blocker, quitter, later] =
        ["blocker", "quitter", "later"].map(|id| StreamId::new(category.clone(), id));
    // The lead is held by an append waiting on an open transaction.
    let mut tx = store.pool().begin().await.expect("begin");
    store
        .append_in(&mut tx, &blocker, ExpectedVersion::NoStream, vec![event(0)])
        .await
        .expect("outside append");
    let leader = tokio::spawn({
        let (store, blocker) = (store.clone(), blocker.clone());
        async move {
            store
                .append(&blocker, ExpectedVersion::Any, vec![event(1)])
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // An append queues up behind it, and is then not polled again.
    let mut quitting = Box::pin(store.append(&quitter, ExpectedVersion::NoStream, vec![event(2)]));
    for _ in 0..3 {
        assert!(futures::poll!(&mut quitting).is_pending(), "it waits");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader lands and hands the lead to the queued append, whose caller then gives up.
    tx.commit().await.expect("commit");
    assert_eq!(leader.await.expect("task").expect("lands").version, 2);
    drop(quitting);
    let landed = tokio::time::timeout(
        Duration::from_secs(10),
        store.append(&later, ExpectedVersion::NoStream, vec![event(3)]),
    )
    .await
    .expect("the lead was not lost with the caller that gave up")
    .expect("lands");
    assert_eq!(landed.version, 1);
}
