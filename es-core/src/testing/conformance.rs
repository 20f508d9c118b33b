//! The store conformance suite: the executable form of the store semantics every
//! [`EventStore`] promises (DESIGN.md, "Store semantics").
//!
//! Each guarantee is one `pub async fn <guarantee>(store: S)` that panics with a message naming
//! the broken guarantee. Together they prove that a store numbers versions from 1, appends
//! atomically with optimistic concurrency (`Conflict` carrying the expected and actual
//! versions, nothing written), rejects stored or repeated event ids with their own error,
//! reads one stream from a version (inclusive) and the global log after a position
//! (exclusive) completely and in order, keeps streams and categories apart, delivers a
//! subscription's history and then its live events in position order exactly once, resumes
//! after a given position, loses no update under concurrent writers, and round-trips every
//! field of a record (metadata included, `recorded_at` at microsecond precision).
//!
//! Each function is given a fresh, empty store, but none relies on it being empty: streams
//! get unique ids (a UUID v7 in the id), global-log checks keep to the test's own streams and
//! use positions relative to what the test appended (only the two checks of reading from the
//! start call `read_all(None)` and `subscribe(None)`). So the suite also passes when the
//! store is one database shared by tests running in parallel.
//!
//! # Running it for a store
//!
//! A store crate adds `es-core` with the `testing` feature to its dev-dependencies, and in a
//! test file (say `tests/conformance.rs`) invokes [`conformance_tests!`](crate::conformance_tests)
//! with an async closure (or any closure or function returning a future) that yields a fresh
//! store:
//!
//! ```
//! es_core::conformance_tests!(async || es_core::InMemoryStore::new());
//! # fn main() {}
//! ```
//!
//! That expands to one plain `#[test]` per guarantee, named like the function here, each on
//! its own multi-threaded Tokio runtime (the store crate needs no Tokio dependency of its own
//! for this). For a store that needs setup, e.g.
//! `es_core::conformance_tests!(async || PgStore::connect(&url()).await.expect("connect"));`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use serde_json::json;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{
    Appended, EventStore, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StoreError,
    StreamId,
};

/// Runs the whole conformance suite: one `#[test]` per guarantee of
/// [`testing::conformance`](crate::testing::conformance), each with a fresh store.
///
/// The argument is an expression evaluating to something callable with no argument that
/// returns a future yielding the store: an async closure (`async || ...`, Rust 2024), a
/// closure returning an `async` block (`|| async { ... }`), or an `async fn` path. It is
/// called as `($make)().await` once per test, inside that test's multi-threaded Tokio
/// runtime, so it may connect to a database or spawn tasks. The invocation defines one
/// function per guarantee in the enclosing module: to run the suite for several
/// configurations, invoke it once per module.
///
/// ```
/// es_core::conformance_tests!(async || es_core::InMemoryStore::new());
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    // The one list of guarantees: each is a `pub async fn` of `testing::conformance`.
    (@expand ($make:expr)) => {
        $crate::conformance_tests!(@tests ($make)
            append_to_a_new_stream_numbers_versions_from_one,
            append_at_a_wrong_version_conflicts_and_writes_nothing,
            append_with_any_never_conflicts,
            empty_append_writes_nothing,
            append_with_a_stored_event_id_fails_and_writes_nothing,
            append_with_an_event_id_repeated_in_the_batch_fails_and_writes_nothing,
            read_stream_from_a_version_is_inclusive,
            streams_are_independent,
            categories_are_kept_apart,
            reads_larger_than_a_batch_are_complete_and_in_order,
            read_all_is_in_position_order_after_an_exclusive_position,
            stream_version_tracks_appends,
            subscribe_delivers_history_then_live_events_once,
            concurrent_subscribers_see_the_same_sequence,
            subscribe_resumes_after_a_position,
            racing_exact_appends_exactly_one_wins,
            concurrent_exact_appends_lose_no_update,
            concurrent_any_appends_all_succeed,
            metadata_round_trips,
            recorded_at_has_microsecond_precision,
        );
    };
    (@tests ($make:expr) $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let runtime = $crate::__private::tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("building a Tokio runtime for the conformance test");
                runtime.block_on(async {
                    let store = ($make)().await;
                    $crate::testing::conformance::$name(store).await;
                });
            }
        )*
    };
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@expand ($make));
    };
}

/// How long a read, a subscription take or a task may take before the test fails instead of
/// hanging.
const WAIT: Duration = Duration::from_secs(10);

/// The same for the concurrent-writer tests, which make hundreds of round trips.
const WAIT_CONCURRENT: Duration = Duration::from_secs(120);

/// The category of the suite's streams.
const CATEGORY: &str = "conformance";

/// How many tasks the concurrency tests run at once.
const TASKS: usize = 8;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A stream no other test uses.
fn stream_id() -> StreamId {
    StreamId::new(CATEGORY, Uuid::now_v7().to_string())
}

/// A new event with a fresh id and the payload `{"n": n}`.
fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "ConformanceChecked".to_owned(),
        schema_version: 1,
        payload: json!({ "n": n }),
        metadata: Metadata::default(),
    }
}

/// New events numbered `from..to`.
fn events(from: u64, to: u64) -> Vec<NewEvent> {
    (from..to).map(event).collect()
}

fn record_ids(records: &[RecordedEvent]) -> Vec<Uuid> {
    records.iter().map(|r| r.event_id).collect()
}

fn versions(records: &[RecordedEvent]) -> Vec<u64> {
    records.iter().map(|r| r.version).collect()
}

/// Awaits `fut`, failing the test if it takes longer than `limit`.
async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {limit:?} (the store hangs)"))
}

/// Appends and expects success.
async fn append<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Appended {
    let count = events.len();
    let what = format!("append of {count} event(s) to {stream} expecting {expected:?}");
    within(WAIT, &what, store.append(stream, expected, events))
        .await
        .unwrap_or_else(|e| panic!("{what}: must succeed, failed with {e:?}"))
}

/// Appends and expects an error.
async fn append_err<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> StoreError {
    let count = events.len();
    let what = format!("append of {count} event(s) to {stream} expecting {expected:?}");
    match within(WAIT, &what, store.append(stream, expected, events)).await {
        Ok(appended) => panic!("{what}: must fail, but succeeded with {appended:?}"),
        Err(e) => e,
    }
}

/// The whole of `stream` from version `from`.
async fn read_stream<S: EventStore>(store: &S, stream: &StreamId, from: u64) -> Vec<RecordedEvent> {
    let what = format!("read_stream({stream}, from {from})");
    let records: Vec<RecordedEvent> =
        within(WAIT, &what, store.read_stream(stream, from).try_collect())
            .await
            .unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
    for r in &records {
        assert_eq!(
            &r.stream, stream,
            "{what}: returned a record of another stream: {r:?}"
        );
    }
    records
}

/// The global log after `after`, checked to be in strictly increasing position order and
/// after `after`; then only the records of `mine`.
async fn read_all<S: EventStore>(
    store: &S,
    after: Option<Position>,
    mine: &[&StreamId],
) -> Vec<RecordedEvent> {
    let what = match after {
        Some(p) => format!("read_all(after {p})"),
        None => "read_all(from the start)".to_owned(),
    };
    let records: Vec<RecordedEvent> = within(WAIT, &what, store.read_all(after).try_collect())
        .await
        .unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
    let mut last = after;
    for r in &records {
        if let Some(last) = last {
            assert!(
                r.position > last,
                "{what}: positions must be strictly increasing and after the given position \
                 (exclusive): {} came after {last}: {r:?}",
                r.position
            );
        }
        last = Some(r.position);
    }
    records
        .into_iter()
        .filter(|r| mine.contains(&&r.stream))
        .collect()
}

async fn stream_version<S: EventStore>(store: &S, stream: &StreamId) -> u64 {
    let what = format!("stream_version({stream})");
    within(WAIT, &what, store.stream_version(stream))
        .await
        .unwrap_or_else(|e| panic!("{what}: failed with {e:?}"))
}

/// The position of a new event in a stream of its own: everything appended after this call
/// comes after it, so reading the global log after it finds the test's events without
/// reading the whole log of a shared store.
async fn mark<S: EventStore>(store: &S) -> Position {
    let stream = StreamId::new(format!("{CATEGORY}-mark"), Uuid::now_v7().to_string());
    append(store, &stream, ExpectedVersion::NoStream, events(0, 1))
        .await
        .positions[0]
}

/// The records `events` must read back as, appended to `stream` from `first_version` by
/// the append that returned `appended`.
fn recorded(
    events: &[NewEvent],
    stream: &StreamId,
    first_version: u64,
    appended: &Appended,
) -> Vec<RecordedEvent> {
    assert_eq!(
        appended.positions.len(),
        events.len(),
        "append to {stream}: Appended.positions must hold one position per event: {appended:?}"
    );
    events
        .iter()
        .zip(first_version..)
        .zip(&appended.positions)
        .map(|((e, version), &position)| RecordedEvent {
            position,
            stream: stream.clone(),
            version,
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
            recorded_at: appended.recorded_at,
        })
        .collect()
}

/// `got` must equal `want` record for record. A mismatch in which events came back shows as
/// a diff of one line per record; otherwise the first differing record shows in full.
#[track_caller]
fn assert_records(got: &[RecordedEvent], want: &[RecordedEvent], what: impl std::fmt::Display) {
    let summary = |records: &[RecordedEvent]| -> Vec<String> {
        records
            .iter()
            .map(|r| {
                format!(
                    "{} v{} {} at {}",
                    r.stream, r.version, r.event_id, r.position
                )
            })
            .collect()
    };
    if record_ids(got) != record_ids(want) {
        pretty_assertions::assert_eq!(
            summary(got),
            summary(want),
            "{what}: other events, or in another order"
        );
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            pretty_assertions::assert_eq!(g, w, "{what}: record {i} of {} differs", want.len());
        }
    }
}

fn assert_strictly_increasing(positions: &[Position], what: &str) {
    for pair in positions.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{what}: positions must be strictly increasing, got {} then {} in {positions:?}",
            pair[0],
            pair[1]
        );
    }
}

#[track_caller]
fn assert_conflict(
    error: &StoreError,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: u64,
    what: &str,
) {
    match error {
        StoreError::Conflict {
            stream: s,
            expected: e,
            actual: a,
        } => assert_eq!(
            (s, *e, *a),
            (stream, expected, actual),
            "{what}: the Conflict must carry (stream, expected version as given, actual \
             version); left: returned, right: required"
        ),
        other => panic!("{what}: must fail with StoreError::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_duplicate(error: &StoreError, event_id: Uuid, what: &str) {
    match error {
        StoreError::DuplicateEventId { event_id: id } => assert_eq!(
            *id, event_id,
            "{what}: DuplicateEventId must name the id that clashed"
        ),
        other => panic!("{what}: must fail with StoreError::DuplicateEventId, got {other:?}"),
    }
}

/// Waits for a spawned task, re-raising its panic so its message is the test's.
async fn join<T>(handle: JoinHandle<T>, what: &str) -> T {
    match within(WAIT_CONCURRENT, what, handle).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{what}: the task failed: {e}"),
    }
}

/// A subscription, filtered to the test's own streams, that checks the position order of
/// everything it delivers.
struct Subscriber {
    inner: Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>,
    mine: HashSet<StreamId>,
    /// The last position delivered (or the one subscribed after).
    last: Option<Position>,
    /// Every position delivered, of any stream, in order.
    seen: Vec<Position>,
    what: String,
}

fn subscribe<S: EventStore>(
    store: &S,
    after: Option<Position>,
    mine: &[&StreamId],
    what: &str,
) -> Subscriber {
    Subscriber {
        inner: Box::pin(store.subscribe(after)),
        mine: mine.iter().map(|&s| s.clone()).collect(),
        last: after,
        seen: Vec::new(),
        what: match after {
            Some(p) => format!("{what}: subscribe(after {p})"),
            None => format!("{what}: subscribe(from the start)"),
        },
    }
}

impl Subscriber {
    /// The next `n` records of the test's streams, within [`WAIT`].
    async fn take(&mut self, n: usize) -> Vec<RecordedEvent> {
        let what = format!("{}: taking {n} event(s)", self.what);
        within(WAIT, &what, async {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let Some(item) = self.inner.next().await else {
                    panic!(
                        "{what}: the subscription ended after {} event(s); it must go on live",
                        out.len()
                    );
                };
                let record = item.unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
                if let Some(last) = self.last {
                    assert!(
                        record.position > last,
                        "{what}: positions must be strictly increasing and after the \
                         subscribed position: {} came after {last}: {record:?}",
                        record.position
                    );
                }
                self.last = Some(record.position);
                self.seen.push(record.position);
                if self.mine.contains(&record.stream) {
                    out.push(record);
                }
            }
            out
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Appending
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Subscribing
// ---------------------------------------------------------------------------------------------

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
    let appender = tokio::spawn({
        let store = store.clone();
        let stream = stream.clone();
        let live = live.clone();
        async move {
            let mut want = Vec::new();
            let mut version = 3;
            for batch in live {
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
        }
    });
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
    let appender = tokio::spawn({
        let store = store.clone();
        let stream = stream.clone();
        async move {
            let mut want = Vec::new();
            let mut version = 10;
            for batch in live {
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
        }
    });
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

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Fields
// ---------------------------------------------------------------------------------------------

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
