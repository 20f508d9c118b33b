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
    Appended, EventStore, ExpectedVersion, LoadRecord, Metadata, NewEvent, Position, RecordedEvent,
    StoreError, StreamAppend, StreamId,
};

mod append;
mod concurrency;
mod fields;
mod read;
mod subscribe;
mod subscriber;
mod values;

use subscriber::subscribe;

pub use append::*;
pub use concurrency::*;
pub use fields::*;
pub use read::*;
pub use subscribe::*;
pub use values::*;

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
        $crate::conformance_tests!(@tests conformance ($make)
            append_to_a_new_stream_numbers_versions_from_one,
            append_at_a_wrong_version_conflicts_and_writes_nothing,
            append_with_any_never_conflicts,
            empty_append_writes_nothing,
            append_with_a_stored_event_id_fails_and_writes_nothing,
            append_with_an_event_id_repeated_in_the_batch_fails_and_writes_nothing,
            an_append_retried_with_the_same_events_gets_its_original_outcome,
            append_all_is_atomic_across_streams,
            concurrent_claims_of_one_value_exactly_one_wins,
            read_stream_from_a_version_is_inclusive,
            read_for_load_gives_what_read_stream_gives,
            streams_are_independent,
            categories_are_kept_apart,
            reads_larger_than_a_batch_are_complete_and_in_order,
            read_all_is_in_position_order_after_an_exclusive_position,
            stream_version_tracks_appends,
            find_event_looks_up_by_id_within_the_stream,
            subscribe_delivers_history_then_live_events_once,
            concurrent_subscribers_see_the_same_sequence,
            subscribe_resumes_after_a_position,
            subscribe_after_a_position_past_the_end_is_exclusive,
            subscribe_types_delivers_its_types_and_progress_past_the_rest,
            racing_exact_appends_exactly_one_wins,
            concurrent_exact_appends_lose_no_update,
            concurrent_any_appends_all_succeed,
            a_conflict_never_reports_the_expected_version,
            metadata_round_trips,
            recorded_at_has_microsecond_precision,
            numbers_read_back_exactly_as_written,
            unstorable_input_is_refused_and_writes_nothing,
            reads_of_unstorable_streams_are_empty,
        );
    };
    // One `#[test]` per check of `testing::$suite`, each on a runtime of its own.
    (@tests $suite:ident ($make:expr) $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let runtime = $crate::__private::tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("building a Tokio runtime for the conformance test");
                runtime.block_on(async {
                    let store = ($make)().await;
                    $crate::testing::$suite::$name(store).await;
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
    // A store may show the global log up to a horizon that trails the latest commits (on
    // PostgreSQL, another transaction still open holds it back): the log must show every
    // committed event eventually, never out of order. So read until the log holds every
    // event that stream reads (which have no horizon) already show after `after`.
    let mut committed = 0;
    for stream in mine {
        committed += read_stream(store, stream, 1)
            .await
            .iter()
            .filter(|r| after.is_none_or(|a| r.position > a))
            .count();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let records: Vec<RecordedEvent> = loop {
        let records: Vec<RecordedEvent> = within(WAIT, &what, store.read_all(after).try_collect())
            .await
            .unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
        let shown = records.iter().filter(|r| mine.contains(&&r.stream)).count();
        if shown >= committed || tokio::time::Instant::now() >= deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
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
