//! The listener conformance suite: what every store that keeps checkpoints
//! ([`Checkpoints`]) must give read models and reactors run by a [`Projector`]. Run it with
//! [`projection_tests!`](crate::projection_tests), as [`conformance_tests!`](crate::conformance_tests).
//!
//! Each check uses streams of a category of its own, so a store shared by tests running in
//! parallel passes too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::projection::{Checkpoints, HandleFuture, HandlerError, Kind};
use crate::{
    EventStore, ExpectedVersion, Metadata, NewEvent, Position, Projection, ProjectionState,
    Projector, RecordedEvent, StreamId,
};

/// How long a check waits for a listener before it fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

/// The event type the suite's read models handle.
const COUNTED: &str = "ProjectionChecked";

/// An event type they do not handle.
const IGNORED: &str = "ProjectionIgnored";

/// Runs the listener suite: one `#[test]` per check of
/// [`testing::projections`](crate::testing::projections), each with a fresh store.
#[macro_export]
macro_rules! projection_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@tests projections ($make)
            catch_up_equals_live,
            a_second_runner_reaches_the_same_state,
            wait_for_succeeds_and_fails_at_once_when_stopped,
            a_listener_reads_only_its_types_and_moves_past_the_rest,
            a_failing_handler_stops_there_until_skipped,
            a_reactor_starts_at_the_end_and_resumes_after_its_checkpoint,
        );
    };
}

/// A read model: per stream of its category, the sum of `n` and the versions seen, in
/// order. It fails on a payload holding `"fail": true` (leaving itself unchanged).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Tally {
    category: String,
    /// Per stream id: (sum of `n`, versions in the order handled).
    pub streams: BTreeMap<String, (i64, Vec<u64>)>,
}

impl Tally {
    /// A tally of the streams of `category`.
    #[must_use]
    pub fn of(category: &str) -> Self {
        Self {
            category: category.to_owned(),
            streams: BTreeMap::new(),
        }
    }
}

impl crate::ReadModel for Tally {}

impl Projection for Tally {
    const NAME: &'static str = "conformance_tally";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::ReadModel;
    const EVENT_TYPES: &'static [&'static str] = &[COUNTED];
    type Context = ();

    fn handle<'a>(&'a mut self, record: &'a RecordedEvent, _: &'a mut ()) -> HandleFuture<'a> {
        let result = if record.stream.category() != self.category {
            Ok(())
        } else if record.payload["fail"] == json!(true) {
            Err(HandlerError::handler(&"asked to fail"))
        } else if record.event_type != COUNTED {
            Err(HandlerError::handler(&format!(
                "handed a {}",
                record.event_type
            )))
        } else {
            let entry = self
                .streams
                .entry(record.stream.id().to_owned())
                .or_default();
            entry.0 += record.payload["n"].as_i64().unwrap_or(0);
            entry.1.push(record.version);
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}

/// A reactor that records the `n` of every event of its category it sees (in a shared
/// list, as a reactor's effects live outside it).
#[derive(Clone, Debug)]
pub struct Recorder {
    category: String,
    /// What it saw.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<i64>>>,
}

impl Projection for Recorder {
    const NAME: &'static str = "conformance_recorder";
    const VERSION: u32 = 1;
    const KIND: Kind = Kind::Reactor;
    const EVENT_TYPES: &'static [&'static str] = &[COUNTED];
    type Context = ();

    fn handle<'a>(&'a mut self, record: &'a RecordedEvent, _: &'a mut ()) -> HandleFuture<'a> {
        if record.stream.category() == self.category {
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(record.payload["n"].as_i64().unwrap_or(0));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

fn category() -> String {
    format!("proj_{}", Uuid::now_v7().simple())
}

fn counted(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: COUNTED.to_owned(),
        schema_version: 1,
        payload: json!({ "n": n }),
        metadata: Metadata::default(),
    }
}

fn ignored() -> NewEvent {
    NewEvent {
        event_type: IGNORED.to_owned(),
        ..counted(0)
    }
}

/// Appends `events` to `stream` and returns the last position.
async fn append<S: EventStore>(store: &S, stream: &StreamId, events: Vec<NewEvent>) -> Position {
    let done = tokio::time::timeout(WAIT, store.append(stream, ExpectedVersion::Any, events))
        .await
        .expect("append within the wait")
        .unwrap_or_else(|e| panic!("append to {stream} failed: {e:?}"));
    *done.positions.last().expect("appended something")
}

/// Appends 3 streams of 40 counted events each (interleaved with ignored ones); returns the
/// last position and the expected tally.
async fn history<S: EventStore>(store: &S, category: &str) -> (Position, Tally) {
    let mut want = Tally::of(category);
    let mut last = None;
    for round in 0..40_i64 {
        for s in 0..3_i64 {
            let stream = StreamId::new(category, format!("s{s}"));
            let events = if round % 7 == 0 {
                vec![ignored(), counted(round * 10 + s)]
            } else {
                vec![counted(round * 10 + s)]
            };
            last = Some(append(store, &stream, events).await);
            let entry = want.streams.entry(format!("s{s}")).or_default();
            entry.0 += round * 10 + s;
        }
    }
    // Versions as stored: read them back.
    for (id, entry) in &mut want.streams {
        use futures::TryStreamExt;
        let records: Vec<RecordedEvent> = store
            .read_stream(&StreamId::new(category, id.as_str()), 1)
            .try_collect()
            .await
            .expect("read");
        entry.1 = records
            .iter()
            .filter(|r| r.event_type == COUNTED)
            .map(|r| r.version)
            .collect();
    }
    (last.expect("appended"), want)
}

/// A read model spawned before the events (live) and one spawned after them (catching up)
/// reach the same state, which is the fold of the log.
pub async fn catch_up_equals_live<S: Checkpoints>(store: S) {
    let category = category();
    let live = Projector::new(store.clone(), Tally::of(&category)).spawn();
    let (last, want) = history(&store, &category).await;
    let caught_up = Projector::new(store.clone(), Tally::of(&category)).spawn();
    for handle in [&live, &caught_up] {
        handle
            .wait_for(last, WAIT)
            .await
            .unwrap_or_else(|e| panic!("the read model must reach the last position: {e}"));
        assert_eq!(
            handle.read(Tally::clone),
            want,
            "the read model is the fold of the log"
        );
    }
    live.stop().await;
    caught_up.stop().await;
}

/// A second runner of the same read model over the same log reaches an identical state.
pub async fn a_second_runner_reaches_the_same_state<S: Checkpoints>(store: S) {
    let category = category();
    let (last, _) = history(&store, &category).await;
    let first = Projector::new(store.clone(), Tally::of(&category)).spawn();
    first.wait_for(last, WAIT).await.expect("first runner");
    let state = first.read(Tally::clone);
    first.stop().await;
    let second = Projector::new(store.clone(), Tally::of(&category)).spawn();
    second.wait_for(last, WAIT).await.expect("second runner");
    assert_eq!(second.read(Tally::clone), state, "same log, same state");
    second.stop().await;
}

/// `wait_for` returns once the position is processed; on a stopped listener it fails at
/// once with a typed error naming the listener and how far it got.
pub async fn wait_for_succeeds_and_fails_at_once_when_stopped<S: Checkpoints>(store: S) {
    let category = category();
    let handle = Projector::new(store.clone(), Tally::of(&category)).spawn();
    let stream = StreamId::new(&category, "a");
    let first = append(&store, &stream, vec![counted(1)]).await;
    handle.wait_for(first, WAIT).await.expect("reaches it");
    assert_eq!(handle.read(|t| t.streams["a"].0), 1, "read your writes");
    handle.stop().await;
    assert_eq!(handle.status().state, ProjectionState::Stopped);
    let later = append(&store, &stream, vec![counted(2)]).await;
    let started = tokio::time::Instant::now();
    let err = handle
        .wait_for(later, Duration::from_secs(60))
        .await
        .expect_err("a stopped listener never gets there");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a stopped listener fails at once, not after the timeout"
    );
    assert!(err.stopped, "{err:?}");
    assert_eq!(err.name, Tally::NAME);
    assert_eq!(err.target, later);
    assert_eq!(err.reached, Some(first), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(Tally::NAME) && message.contains(&first.to_string()),
        "{message}"
    );
}

/// A listener is handed only records of its event types, and its position still moves past
/// the others: waiting for the position of an ignored event succeeds.
pub async fn a_listener_reads_only_its_types_and_moves_past_the_rest<S: Checkpoints>(store: S) {
    let category = category();
    let handle = Projector::new(store.clone(), Tally::of(&category)).spawn();
    let stream = StreamId::new(&category, "a");
    append(&store, &stream, vec![counted(5)]).await;
    let last = append(&store, &stream, vec![ignored(), ignored()]).await;
    handle
        .wait_for(last, WAIT)
        .await
        .expect("the position moves past events it does not handle");
    // Tally fails on a type it does not handle, so it was never handed one.
    assert_eq!(handle.read(|t| t.streams["a"].clone()), (5, vec![1]));
    assert!(!matches!(
        handle.status().state,
        ProjectionState::Failed { .. }
    ));
    handle.stop().await;
}

/// A handler that fails stops the listener at that record: the status says Failed with the
/// position and the error, waits time out naming the failure, the record is retried, and
/// only `skip(position)` of exactly that position moves past it (recorded in the status).
pub async fn a_failing_handler_stops_there_until_skipped<S: Checkpoints>(store: S) {
    let category = category();
    let handle = Projector::new(store.clone(), Tally::of(&category)).spawn();
    let stream = StreamId::new(&category, "a");
    let before = append(&store, &stream, vec![counted(1)]).await;
    let mut bad = counted(100);
    bad.payload = json!({ "n": 100, "fail": true });
    let failing = append(&store, &stream, vec![bad]).await;
    let after = append(&store, &stream, vec![counted(2)]).await;

    handle
        .wait_for(before, WAIT)
        .await
        .expect("before the failure");
    let err = handle
        .wait_for(after, Duration::from_millis(500))
        .await
        .expect_err("stopped at the failing record");
    assert!(!err.stopped);
    assert!(
        err.failure
            .as_deref()
            .is_some_and(|f| f.contains("asked to fail")),
        "{err:?}"
    );
    match handle.status().state {
        ProjectionState::Failed { position, error } => {
            assert_eq!(position, failing);
            assert!(error.contains("asked to fail"), "{error}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        handle.status().position,
        Some(before),
        "it stops before the failing record"
    );
    let wrong = handle.skip(after).await.expect_err("not failing there");
    assert!(
        matches!(wrong, crate::SkipError::NotFailingThere { .. }),
        "{wrong:?}"
    );
    handle.skip(failing).await.expect("skip the failing record");
    handle
        .wait_for(after, WAIT)
        .await
        .expect("goes on after the skip");
    assert_eq!(
        handle.read(|t| t.streams["a"].0),
        3,
        "the skipped record left no trace"
    );
    let status = handle.status();
    assert_eq!(status.skipped, vec![failing], "the skip is recorded");
    assert_eq!(status.state, ProjectionState::Running);
    handle.stop().await;
}

/// A reactor's first run starts at the end of the log (no history replayed); stopped and
/// started again, it resumes after its checkpoint: each event once, none lost.
pub async fn a_reactor_starts_at_the_end_and_resumes_after_its_checkpoint<S: Checkpoints>(
    store: S,
) {
    let category = category();
    let stream = StreamId::new(&category, "a");
    let second_event = append(&store, &stream, vec![counted(1), counted(2)]).await;
    // A store may show the log up to a horizon that trails its commits (PostgreSQL): "the
    // end" is the last event a reader can see, so wait until that is ours.
    tokio::time::timeout(WAIT, async {
        while store.head().await.ok().flatten() < Some(second_event) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the history becomes visible");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = || Recorder {
        category: category.clone(),
        seen: std::sync::Arc::clone(&seen),
    };
    let first = Projector::new(store.clone(), recorder()).spawn();
    // The first run's start is recorded before anything new is appended.
    tokio::time::timeout(WAIT, async {
        while store
            .load_checkpoint(Recorder::NAME)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the reactor records where its first run starts");
    let third = append(&store, &stream, vec![counted(3)]).await;
    first.wait_for(third, WAIT).await.expect("live");
    first.stop().await;
    append(&store, &stream, vec![counted(4)]).await;
    let fifth = append(&store, &stream, vec![counted(5)]).await;
    let second = Projector::new(store.clone(), recorder())
        .from_start()
        .spawn();
    second.wait_for(fifth, WAIT).await.expect("resumed");
    second.stop().await;
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(
        seen,
        vec![3, 4, 5],
        "no history on the first run (from_start applies to a first run only), each later \
         event exactly once across the restart"
    );
}
