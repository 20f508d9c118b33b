//! The [`EventStore`] trait: the narrow contract a backend implements. It appends and reads
//! raw records (stored name, schema version, JSON payload, metadata); typed events live above
//! it, in the [`Repository`](crate::Repository), so a new backend only stores and reads.
//!
//! The trait is generic (methods return `impl Future + Send` and `impl Stream + Send`), not
//! object-safe: the repository is generic over its store anyway, and generic futures cost no
//! allocation per call on the hot path. A `dyn` adapter can be layered on top when a program
//! must choose its store at run time (the bank example does it with an enum instead).

use std::future::Future;

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use uuid::Uuid;

use crate::envelope::{Metadata, StreamId};
use crate::position::Position;

pub(crate) mod limits;
pub mod personal;
mod replay;

pub use limits::{
    MAX_JSON_DEPTH, MAX_NAME_BYTES, MAX_STREAM_ID_BYTES, check_storable, is_storable_stream,
};
pub use replay::replayed_append;

/// The version an append expects the stream to be at.
///
/// `NoStream` is `Exact(0)`: the two compare (and hash) equal, and every store takes them
/// alike. Each keeps its own name in `Debug`, `Display` and serde.
///
/// ```
/// use es_core::ExpectedVersion;
/// assert_eq!(ExpectedVersion::NoStream, ExpectedVersion::Exact(0));
/// assert_ne!(ExpectedVersion::NoStream, ExpectedVersion::Exact(1));
/// assert_ne!(ExpectedVersion::Any, ExpectedVersion::Exact(0));
/// let set: std::collections::HashSet<_> =
///     [ExpectedVersion::NoStream, ExpectedVersion::Exact(0)].into();
/// assert_eq!(set.len(), 1);
/// ```
#[derive(Clone, Copy, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum ExpectedVersion {
    /// Whatever the version: never a conflict (the store retries races itself).
    Any,
    /// The stream has no event yet (the same as `Exact(0)`).
    NoStream,
    /// The stream is at exactly this version (0: no event yet).
    Exact(u64),
}

impl PartialEq for ExpectedVersion {
    fn eq(&self, other: &Self) -> bool {
        self.version() == other.version()
    }
}

impl std::hash::Hash for ExpectedVersion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.version().hash(state);
    }
}

impl ExpectedVersion {
    /// The version expected (`None` for `Any`): `NoStream` is 0.
    fn version(self) -> Option<u64> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exact(n) => Some(n),
        }
    }

    /// Whether a stream at `actual` satisfies this expectation.
    #[must_use]
    pub fn matches(self, actual: u64) -> bool {
        self.version().is_none_or(|n| n == actual)
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(n) => write!(f, "version {n}"),
        }
    }
}

/// An event to append: its stored form, before the store gives it a version and position.
#[derive(Clone, PartialEq, Debug)]
pub struct NewEvent {
    /// The unique event id (UUID v7, set by the caller or the core).
    pub event_id: Uuid,
    /// The stored name ([`Event::NAME`](crate::Event::NAME)).
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The payload, a JSON object.
    pub payload: serde_json::Value,
    /// Who and what caused it.
    pub metadata: Metadata,
}

/// An event to append whose payload is written already, as JSON text (a JSON object that
/// reads back as the value a [`NewEvent`] would carry): what [`EventStore::append_text`]
/// takes. The [`Repository`](crate::Repository) makes them for a store that keeps text.
#[doc(hidden)]
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct TextEvent {
    /// The unique event id.
    pub event_id: Uuid,
    /// The stored name ([`Event::NAME`](crate::Event::NAME)).
    pub event_type: &'static str,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The payload, as JSON text.
    pub payload: String,
    /// Who and what caused it.
    pub metadata: Metadata,
}

impl TextEvent {
    /// The event with its payload read into a value.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unstorable`] when the payload is not JSON.
    pub fn into_new_event(self, stream: &StreamId) -> Result<NewEvent, StoreError> {
        let payload = serde_json::from_str(&self.payload).map_err(|e| StoreError::Unstorable {
            stream: stream.clone(),
            reason: format!("the payload of event {} is not JSON: {e}", self.event_id),
        })?;
        Ok(NewEvent {
            event_id: self.event_id,
            event_type: self.event_type.to_owned(),
            schema_version: self.schema_version,
            payload,
            metadata: self.metadata,
        })
    }
}

/// One stream's part of an atomic append to several streams ([`EventStore::append_all`]).
#[derive(Clone, PartialEq, Debug)]
pub struct StreamAppend {
    /// The stream appended to.
    pub stream: StreamId,
    /// The version it must be at (after the parts before this one, for the same stream).
    pub expected: ExpectedVersion,
    /// Its new events.
    pub events: Vec<NewEvent>,
}

/// What a filtered subscription ([`EventStore::subscribe_types`]) delivers: a record of one
/// of the types asked for, or how far the log has been read past records of other types.
#[derive(Clone, PartialEq, Debug)]
// Most deliveries are records, each moved once: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Delivery {
    /// A record of one of the types asked for.
    Record(RecordedEvent),
    /// Everything up to this position has been delivered or was of another type.
    Progress(Position),
}

impl Delivery {
    /// The position this delivery moves a reader to.
    #[must_use]
    pub fn position(&self) -> Position {
        match self {
            Self::Record(record) => record.position,
            Self::Progress(position) => *position,
        }
    }
}

/// What a fold over [`EventStore::fold_decoded`] does with the next event, told its version
/// and time before the event is decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FoldStep {
    /// Decode it and hand it to the fold.
    Take,
    /// Go past it: not decoded, not handed over.
    Skip,
    /// End the fold here.
    Stop,
}

/// An event of a stream as [`EventStore::fold_decoded`] lends it: read as the events `E`,
/// with its version and time, borrowed from the store.
#[derive(Debug)]
#[non_exhaustive]
pub struct Decoded<'a, E> {
    /// Its version in the stream.
    pub version: u64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The event, as today's type (upcast if it was stored older).
    pub event: &'a E,
}

/// A stored event as the store returns it.
#[derive(Clone, PartialEq, Debug)]
pub struct RecordedEvent {
    /// Its place in the global log.
    pub position: Position,
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its version in the stream (the first event is 1).
    pub version: u64,
    /// The unique event id.
    pub event_id: Uuid,
    /// The stored name ([`Event::NAME`](crate::Event::NAME)).
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The payload, a JSON object.
    pub payload: serde_json::Value,
    /// Who and what caused it.
    pub metadata: Metadata,
    /// When the store recorded it (microsecond precision).
    pub recorded_at: DateTime<Utc>,
}

/// An event of a stream as a load reads it ([`EventStore::read_for_load`]): what a fold
/// needs of its record, and no more.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct LoadRecord {
    /// Its version in the stream (the first event is 1).
    pub version: u64,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The stored name ([`Event::NAME`](crate::Event::NAME)).
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u16,
    /// The payload, personal fields opened (`null` where forgotten).
    pub payload: Payload,
}

impl LoadRecord {
    /// A load's record of an event.
    #[must_use]
    pub fn new(
        version: u64,
        recorded_at: DateTime<Utc>,
        event_type: String,
        schema_version: u16,
        payload: Payload,
    ) -> Self {
        Self {
            version,
            recorded_at,
            event_type,
            schema_version,
            payload,
        }
    }

    /// The event, as `E` reads it (upcast if it was stored older); an event that does not
    /// read is a [`CorruptEvent`](crate::CorruptEvent) naming `stream`, version and type.
    ///
    /// # Errors
    ///
    /// The [`CorruptEvent`](crate::CorruptEvent) when `E` does not read the payload.
    pub fn decode<E: crate::EventSet>(
        self,
        stream: &StreamId,
    ) -> Result<E, Box<crate::CorruptEvent>> {
        let decoded = match self.payload {
            Payload::Text(text) => {
                E::from_stored_text(&self.event_type, self.schema_version, &text)
            }
            Payload::Value(value) => E::from_stored(&self.event_type, self.schema_version, value),
        };
        decoded.map_err(|source| {
            Box::new(crate::CorruptEvent {
                stream: stream.clone(),
                version: self.version,
                event_type: self.event_type,
                schema_version: self.schema_version,
                source,
            })
        })
    }
}

impl From<RecordedEvent> for LoadRecord {
    fn from(record: RecordedEvent) -> Self {
        Self::new(
            record.version,
            record.recorded_at,
            record.event_type,
            record.schema_version,
            Payload::Value(record.payload),
        )
    }
}

/// A payload as a load reads it: the JSON text as stored, or a value (a store that opened
/// personal fields in it, or that reads values).
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub enum Payload {
    /// JSON text.
    Text(String),
    /// A JSON value.
    Value(serde_json::Value),
}

impl Payload {
    /// The payload as a JSON value (`null` for text that does not parse).
    #[must_use]
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Self::Text(text) => serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
            Self::Value(value) => value.clone(),
        }
    }
}

/// What an append did: the stream's version after it, and where its events landed.
///
/// The positions are not checkpoints to resume a subscription from: on a store whose log has
/// a horizon (PostgreSQL), events at lower positions may still commit after this append.
/// Resume only from positions that `read_all` or `subscribe` delivered.
#[derive(Clone, PartialEq, Debug)]
pub struct Appended {
    /// The stream's version after the append (unchanged for an empty append).
    pub version: u64,
    /// The position of each appended event, in order (empty for an empty append).
    pub positions: Vec<Position>,
    /// When the store recorded them (one instant for the whole append).
    pub recorded_at: DateTime<Utc>,
}

/// An aggregate's state as of one version of its stream, kept to load from instead of the
/// stream's start. An optimisation that may be dropped at any time: a store keeps at most
/// one per (stream, snapshot version), the newest.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// The aggregate's stream.
    pub stream: StreamId,
    /// The version of the snapshot's shape (`#[aggregate(snapshot(version = V))]`): a load
    /// reads only its own.
    pub snapshot_version: u32,
    /// The stream's version the state was folded to.
    pub version: u64,
    /// The state, as JSON.
    pub state: serde_json::Value,
}

impl Snapshot {
    /// A snapshot of `stream` at `version`.
    #[must_use]
    pub fn new(
        stream: StreamId,
        snapshot_version: u32,
        version: u64,
        state: serde_json::Value,
    ) -> Self {
        Self {
            stream,
            snapshot_version,
            version,
            state,
        }
    }
}

/// What a store can fail with. Each variant carries what a caller acts on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version; nothing was written.
    #[error("conflict on {stream}: expected {expected}, the stream is at version {actual}")]
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was refused.
        actual: u64,
    },
    /// An event id is already stored, and this append is not a retry of the one that stored
    /// it (see [`replayed_append`]); nothing was written.
    #[error("event id {event_id} is already stored")]
    DuplicateEventId {
        /// The id that clashed.
        event_id: Uuid,
    },
    /// An append inside a transaction of several statements came too late: another writer
    /// appended to the stream after this transaction took its id, and an event appended now
    /// would sort before theirs in the global log (PostgreSQL orders it by transaction id),
    /// out of the stream's order. Nothing was written; retry the whole transaction.
    #[error(
        "cannot append to {stream} in this transaction: another writer appended to it after \
         the transaction began writing; retry the transaction"
    )]
    TransactionTooOld {
        /// The stream appended to.
        stream: StreamId,
    },
    /// An inline projection refused an event of the append (its handler failed): nothing of
    /// the append was written.
    #[error("inline projection `{projection}` refused the event at {position}: {error}")]
    InlineProjection {
        /// The projection's name.
        projection: &'static str,
        /// Where the refused event would have landed.
        position: Position,
        /// The handler's failure.
        error: String,
    },
    /// The store cannot hold a record as given (a `\u0000` in a JSONB payload, a version past
    /// the database's integer range); nothing was written.
    #[error("cannot store event of {stream}: {reason}")]
    Unstorable {
        /// The stream appended to.
        stream: StreamId,
        /// Why.
        reason: String,
    },
    /// A stored record could not be read back (a column out of range, bad metadata JSON).
    /// Reads and subscriptions deliver the records before it, then this error; a
    /// subscription that is polled again goes on after it, so a consumer decides whether to
    /// stop (and resume from its checkpoint once the data is repaired) or to skip it.
    #[error("corrupt record in {stream} at version {version}: {reason}")]
    Corrupt {
        /// The stream it belongs to.
        stream: StreamId,
        /// Its version.
        version: u64,
        /// Its place in the global log, when that much could be read.
        position: Option<Position>,
        /// Why.
        reason: String,
    },
    /// The backend failed (connection lost, timeout, ...): the outcome of a write is unknown.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// An event store: appends and reads raw records.
///
/// Guarantees (the conformance suite in `es_core::testing::conformance` proves them for
/// every store):
///
/// - `append` is atomic: all records land, in order, with versions `actual + 1 ..`, or none.
///   For `Exact(n)` the stream must be at `n` (above the current version is a conflict, never
///   a gap); `Any` never fails on a race with another writer. An empty append writes nothing.
///   Only a clash on (stream, version) is a [`StoreError::Conflict`].
/// - Reads stream in batches with bounded memory: one stream from a version (inclusive), in
///   version order; the global log after a position (exclusive), in position order.
/// - A subscription delivers the global log after a position, then goes on live; within a
///   run it never skips and never repeats an event.
///
/// Every method returns a `Send` future or stream. Streams own what they need (`'static`,
/// borrowing neither the store nor the arguments), so they can move into `tokio::spawn`, and
/// are `Unpin`, so `StreamExt::next` works on them without pinning.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at `expected`; returns the new version and the
    /// events' positions.
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send;

    /// [`EventStore::append`] of events whose payloads are JSON text already, written by
    /// the [`Repository`](crate::Repository). The default reads each into a value and
    /// appends that; a store that keeps text keeps it as written.
    #[doc(hidden)]
    fn append_text(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<TextEvent>,
    ) -> impl Future<Output = Result<Appended, StoreError>> + Send {
        async move {
            let events = events
                .into_iter()
                .map(|e| e.into_new_event(stream))
                .collect::<Result<Vec<_>, _>>()?;
            self.append(stream, expected, events).await
        }
    }

    /// Appends to several streams atomically: every part's expected version is checked,
    /// and all parts land, or none (the first refusal is the error). The outcomes come in
    /// the parts' order. For set-based validation: a registration appends to the user's
    /// stream and, with `NoStream`, to a stream keyed by the unique value.
    fn append_all(
        &self,
        parts: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send;

    /// The events of `stream` from version `from` (inclusive; 1 is the first), in order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<Self>;

    /// The events of `stream` from version `from`, as a load folds them: each event's
    /// version, time, type, schema version and payload (personal fields opened), in order,
    /// without the rest of its record. [`Repository`](crate::Repository) loads read this
    /// (when [`EventStore::fold_decoded`] lends nothing). The default reads
    /// [`EventStore::read_stream`]; a store overrides it with a narrower read.
    fn read_for_load(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<LoadRecord, StoreError>> + Send + Unpin + 'static + use<Self>
    {
        self.read_stream(stream, from).map_ok(LoadRecord::from)
    }

    /// The global log after `after` (exclusive; `None`: from the start), in position order,
    /// up to what the store can show now without risking a gap: a store may trail its
    /// latest commits (PostgreSQL shows nothing past a transaction still open, which may yet
    /// commit at a lower position), but shows every committed event eventually and never
    /// out of order.
    fn read_all(
        &self,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<Self>;

    /// The global log after `after`, then every later event as it commits. Never ends on its
    /// own; drop it to stop.
    fn subscribe(
        &self,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<Self>;

    /// [`EventStore::subscribe`] for listeners that handle a few event types: records of
    /// `types` as [`Delivery::Record`], and [`Delivery::Progress`] past the others, so a
    /// listener's position moves on without reading what it does not handle. Stores
    /// override it to filter where the data is (PostgreSQL: in SQL, on an index); the
    /// default filters [`EventStore::subscribe`].
    fn subscribe_types(
        &self,
        after: Option<Position>,
        types: &'static [&'static str],
    ) -> impl Stream<Item = Result<Delivery, StoreError>> + Send + Unpin + 'static + use<Self> {
        use futures::StreamExt;
        self.subscribe(after).map(move |item| {
            item.map(|record| {
                if types.contains(&record.event_type.as_str()) {
                    Delivery::Record(record)
                } else {
                    Delivery::Progress(record.position)
                }
            })
        })
    }

    /// For a store that keeps events decoded (the in-memory store): hands the events of
    /// `stream` from version `from` on, read as `E`, to `fold` in order, without copying
    /// them. Before each event is decoded, `step` is told its version and time and says
    /// whether to [`FoldStep::Take`] it, [`FoldStep::Skip`] it (it is neither decoded nor
    /// handed over) or [`FoldStep::Stop`]. The fold ends at the stream's version when it
    /// began. `None` (the default) when the store does not keep events: the caller reads
    /// [`EventStore::read_stream`] and decodes. The repository loads through it.
    ///
    /// `step` and `fold` may run while the store holds a lock: they must not call the
    /// store.
    ///
    /// # Errors
    ///
    /// [`CorruptEvent`](crate::CorruptEvent) naming the first taken event that does not
    /// read as `E`; `fold` has then been handed every taken event before it.
    fn fold_decoded<E: crate::EventSet>(
        &self,
        stream: &StreamId,
        from: u64,
        step: &mut impl FnMut(u64, DateTime<Utc>) -> FoldStep,
        fold: &mut impl FnMut(Decoded<'_, E>),
    ) -> Option<Result<(), Box<crate::CorruptEvent>>> {
        let _ = (stream, from, step, fold);
        None
    }

    /// The stream's current version (0 when it has no event).
    fn stream_version(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The snapshot of `stream` kept for `snapshot_version`, if any. The default keeps none
    /// (a store without snapshot storage: every load replays its stream).
    fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_version: u32,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        let _ = (stream, snapshot_version);
        async { Ok(None) }
    }

    /// Keeps `snapshot`, unless one of a later version of its stream (same snapshot
    /// version) is kept already. The default drops it.
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        drop(snapshot);
        async { Ok(()) }
    }

    /// Deletes the key of data subject `subject`: every personal field sealed under it
    /// (`#[personal(subject = ..)]`) reads as `null` from now on (its type's `Default` once
    /// decoded), in every read, subscription and rebuild, while the events themselves stay.
    /// Snapshots of the streams holding such fields are dropped too (a state may hold the
    /// plaintext). Forgetting a subject without a key does nothing. An event that names the
    /// subject later makes it a new key: the new fields read, the older ones stay forgotten
    /// (a field that does not open under a key made after it was recorded reads as `null`:
    /// [`personal::open_recorded`]).
    ///
    /// The default is for a store that keeps no keys: an error.
    ///
    /// A store that implements it counts its forgets in [`EventStore::forgets`].
    fn forget(&self, subject: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = subject;
        async {
            Err(StoreError::Backend(
                "this store keeps no personal-data keys".into(),
            ))
        }
    }

    /// How many subjects this store, and its clones, have forgotten ([`EventStore::forget`]):
    /// a count that changes with every forget made through them. A repository's cache
    /// ([`Repository::with_cache`](crate::Repository::with_cache)) drops the aggregates it
    /// kept before a change, as a kept state may hold a forgotten subject's plaintext. A
    /// store that wraps another forwards it; the default, for a store without keys, is 0.
    fn forgets(&self) -> u64 {
        0
    }

    /// The event of `stream` with this id, if it is stored there. Stores override this with
    /// a lookup by id (the default reads the stream); `execute_caused_by` finds a first
    /// outcome with it.
    fn find_event(
        &self,
        stream: &StreamId,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send {
        let records = self.read_stream(stream, 1);
        async move {
            use futures::TryStreamExt;
            let mut records = records;
            while let Some(record) = records.try_next().await? {
                if record.event_id == event_id {
                    return Ok(Some(record));
                }
            }
            Ok(None)
        }
    }
}
