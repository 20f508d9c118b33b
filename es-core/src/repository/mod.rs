//! [`Repository`]: load an aggregate (fold its stream), execute a command (load, decide,
//! append with the loaded version as the expected one), and retry on conflict when asked.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::codec::{CorruptEvent, EncodeError, json_kind};
use crate::envelope::{Envelope, Metadata, StreamId};
use crate::model::{Aggregate, EventSet};
use crate::position::Position;
use crate::store::{
    EventStore, ExpectedVersion, FoldStep, NewEvent, RecordedEvent, Snapshot, StoreError,
};

mod caused;
mod claims;

/// Where the ids of a command's events come from.
#[derive(Clone, Copy)]
enum Ids<'a> {
    /// Fresh UUID v7s.
    Fresh,
    /// Derived from the cause, the stream and the command, so a redelivery finds them.
    Caused(&'a caused::Key),
}

impl Ids<'_> {
    /// The id of the command's event at `index`.
    fn event_id(self, index: usize) -> Uuid {
        match self {
            Self::Fresh => Uuid::now_v7(),
            Self::Caused(key) => key.event_id(index),
        }
    }
}

/// What a repository call can fail with. `E` is the aggregate's domain error.
///
/// It is `Debug`, and `Display + std::error::Error` when the domain error is `Display +
/// Debug`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The domain said no: nothing was written. Never retried.
    #[error("rejected: {0}")]
    Rejected(E),
    /// Someone appended to the stream first: nothing was written. Retried by
    /// [`Repository::with_retry`].
    #[error("conflict on {stream}: expected {expected}, the stream is at version {actual}")]
    Conflict {
        /// The aggregate's stream.
        stream: StreamId,
        /// The version the append expected.
        expected: ExpectedVersion,
        /// The version the stream was at.
        actual: u64,
    },
    /// A stored event of the stream no longer reads.
    #[error(transparent)]
    Corrupt(#[from] Box<CorruptEvent>),
    /// An event the command decided could not be encoded: nothing was written.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A value the command claims (`execute_claiming`) is already claimed: nothing was
    /// written. Never retried.
    #[error("{claim} is already claimed")]
    Claimed {
        /// The claim's stream (`{category}-{value}`).
        claim: StreamId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl<E> From<StoreError> for Error<E> {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => Self::Conflict {
                stream,
                expected,
                actual,
            },
            other => Self::Store(other),
        }
    }
}

/// An aggregate's state and the version of its stream it was folded from.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Loaded<A> {
    /// The state: `Default::default()` folded with every event of the stream (up to the
    /// version or time asked, for [`Repository::load_at`] and [`Repository::load_as_of`]).
    pub state: A,
    /// The stream's version the state was folded to (0: no event yet).
    pub version: u64,
    /// The stream version of the snapshot the load started from (`None`: replayed from
    /// the stream's start).
    pub snapshot: Option<u64>,
}

/// How far a load folds the stream.
#[derive(Clone, Copy)]
enum Until {
    /// Every event.
    End,
    /// Events up to this version.
    Version(u64),
    /// Events recorded at or before this time.
    Time(DateTime<Utc>),
}

impl Until {
    /// Whether the event at `version`, recorded at `recorded_at`, is past what the load
    /// folds.
    fn past(self, version: u64, recorded_at: DateTime<Utc>) -> bool {
        match self {
            Self::End => false,
            Self::Version(v) => version > v,
            Self::Time(t) => recorded_at > t,
        }
    }
}

/// Whether a fold from a snapshot found the snapshot's own event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// There, and not past the load's limit (or no snapshot to check).
    Found,
    /// There, but past the load's limit: the snapshot is too new for it.
    Late,
    /// Not there.
    Missing,
}

/// What an executed command did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Executed<E> {
    /// The events appended, with their versions and positions (empty: nothing appended).
    pub events: Vec<Envelope<E>>,
    /// The stream's version after the command.
    pub version: u64,
    /// The position of the last event appended (`None` when nothing was).
    pub position: Option<Position>,
}

/// Loads aggregates and executes commands against one store.
///
/// `Send + Sync`, cheap to clone when the store is; its futures are `Send`. Dropping an
/// `execute` future while it appends leaves the outcome unknown, as with any database write:
/// load the aggregate to find out.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use es_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Incremented { by: u32 }
///
/// #[derive(Command, Serialize, Deserialize, Clone, Debug)]
/// struct Increment { by: u32 }
///
/// #[derive(Debug, PartialEq)]
/// struct TooBig;
///
/// #[derive(Aggregate, Default, Clone, Debug)]
/// #[aggregate(error = TooBig)]
/// struct Counter { total: u32 }
///
/// #[aggregate_impl]
/// impl Counter {
///     #[command]
///     fn increment(&self, cmd: Increment) -> Result<Incremented, TooBig> {
///         if cmd.by > 100 { return Err(TooBig); }
///         Ok(Incremented { by: cmd.by })
///     }
///
///     #[apply]
///     fn incremented(&mut self, e: &Incremented) { self.total += e.by; }
/// }
///
/// let counters = Repository::<Counter, _>::new(InMemoryStore::new());
/// let id = uuid::Uuid::now_v7();
/// let done = counters.execute(&id, Increment { by: 2 }).await.unwrap();
/// assert_eq!(done.version, 1);
/// assert!(matches!(counters.execute(&id, Increment { by: 500 }).await, Err(es_core::Error::Rejected(TooBig))));
/// assert_eq!(counters.load(&id).await.unwrap().state.total, 2);
/// # });
/// ```
pub struct Repository<A, S> {
    store: S,
    retries: u32,
    /// The aggregates kept between commands (`with_cache`), shared by clones.
    cache: Option<Arc<Cache<A>>>,
    /// `A::NAME`, shared by every stream id the repository makes.
    category: Arc<str>,
    _aggregate: PhantomData<fn() -> A>,
}

/// An aggregate kept between commands: its state, its stream's version, the version of
/// the snapshot its fold started from, and the store's count of forgets before its state
/// was read ([`EventStore::forgets`]: a forget since, and the state may hold a forgotten
/// subject's plaintext).
struct Cached<A> {
    state: A,
    version: u64,
    snapshot: Option<u64>,
    forgets: u64,
}

/// The most recently used aggregates, by stream; bounded by count. Hashed with foldhash's
/// seeded quality hasher: stream ids come from callers, so not a fixed-key one. An entry
/// whose aggregate a command in flight took is `None` until the command puts it back (its
/// slot stays, so taking and keeping allocate nothing).
type Cache<A> = Mutex<lru::LruCache<StreamId, Option<Cached<A>>, foldhash::quality::RandomState>>;

impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            retries: self.retries,
            cache: self.cache.clone(),
            category: Arc::clone(&self.category),
            _aggregate: PhantomData,
        }
    }
}

impl<A, S: std::fmt::Debug> std::fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .field("retries", &self.retries)
            .field("cache", &self.cache.as_ref().map(|c| lock(c).cap()))
            .finish()
    }
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store`, with no retry.
    pub fn new(store: S) -> Self {
        Self {
            store,
            retries: 0,
            cache: None,
            category: Arc::from(A::NAME),
            _aggregate: PhantomData,
        }
    }

    /// Keeps the state and version of up to `capacity` aggregates (the most recently used)
    /// between commands: a command on a kept aggregate decides on that state and only
    /// appends, expecting its version: one round trip instead of two, and no fold of the
    /// stream (unless its events carry personal fields: see below). A `capacity` of 0 keeps
    /// nothing.
    ///
    /// Writers elsewhere (another process, a repository without this cache) are caught by
    /// that expectation: the append conflicts, and the command is decided again on the
    /// store's state, as a repository without the cache would have decided it. A refusal,
    /// or a decision to do nothing, on a kept state is checked the same way before it is
    /// returned.
    ///
    /// A `forget` made through the store (or a clone of it) drops every aggregate kept
    /// before it, as a kept state may hold the forgotten subject's plaintext. One made in
    /// another process is not seen here, so a command whose events carry personal fields is
    /// never appended as decided on a kept state: it is decided again on the store's state
    /// (one load), where a forgotten field reads as forgotten, so the plaintext kept here is
    /// not written back (a forget landing between that load and the append is the race any
    /// command has, cache or not).
    ///
    /// Clones of the repository share the cache; [`Repository::load`] and
    /// [`Repository::execute_expecting`] never take a kept state (they read the store,
    /// except a command expecting no stream, which needs no read).
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = std::num::NonZeroUsize::new(capacity).map(|c| {
            Arc::new(Mutex::new(lru::LruCache::with_hasher(
                c,
                foldhash::quality::RandomState::default(),
            )))
        });
        self
    }

    /// The aggregate kept for `stream`, taken out of the cache (a command in flight owns
    /// it; it goes back when the command is decided or appended).
    fn take_cached(&self, stream: &StreamId) -> Option<Loaded<A>> {
        let cached = lock(self.cache.as_ref()?).get_mut(stream)?.take()?;
        // Kept before a forget: read again.
        if cached.forgets != self.store.forgets() {
            return None;
        }
        Some(Loaded {
            state: cached.state,
            version: cached.version,
            snapshot: cached.snapshot,
        })
    }

    /// Keeps `loaded` for the next command on `stream`; `forgets`: the store's count of
    /// forgets before the state was read; `used`: the command marked the stream used
    /// already ([`Repository::take_cached`] did), so it is not marked again (each mark
    /// relinks the cache's list, which touches its neighbours' entries).
    fn keep(&self, stream: &StreamId, loaded: Loaded<A>, forgets: u64, used: bool) {
        if let Some(cache) = &self.cache {
            let cached = Cached {
                state: loaded.state,
                version: loaded.version,
                snapshot: loaded.snapshot,
                forgets,
            };
            let mut cache = lock(cache);
            let slot = if used {
                cache.peek_mut(stream)
            } else {
                cache.get_mut(stream)
            };
            match slot {
                Some(slot) => *slot = Some(cached),
                None => {
                    cache.put(stream.clone(), Some(cached));
                }
            }
        }
    }

    /// After a [`Error::Conflict`], up to `retries` more attempts, each re-loading and
    /// re-deciding, with jittered exponential backoff from about 1 ms. Nothing else is
    /// retried; a rejected command never is. The backoff sleeps on Tokio's timer: run it
    /// in a Tokio runtime with time enabled (the default of `#[tokio::main]`).
    #[must_use]
    pub fn with_retry(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream of the aggregate with this id: `"{A::NAME}-{id}"`.
    pub fn stream_id(&self, id: &A::Id) -> StreamId {
        // A `String` id is its own text: no formatting.
        if let Some(text) = (id as &dyn std::any::Any).downcast_ref::<String>() {
            return StreamId::in_category(&self.category, text);
        }
        // Written into the thread's buffer, so the id is allocated once (in the stream id).
        crate::payload_text::with_buffer(|buffer| {
            use std::io::Write as _;
            write!(buffer, "{id}").ok()?;
            let text = std::str::from_utf8(buffer).ok()?;
            Some(StreamId::in_category(&self.category, text))
        })
        .flatten()
        .unwrap_or_else(|| StreamId::in_category(&self.category, &id.to_string()))
    }

    /// Folds the aggregate's stream into its state.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the event that no longer reads; [`Error::Store`].
    pub async fn load(&self, id: &A::Id) -> Result<Loaded<A>, Error<A::Error>> {
        self.load_stream(&self.stream_id(id)).await
    }

    /// The state after `version` events of the aggregate's stream (all of them when it has
    /// fewer: [`Loaded::version`] says how many were folded). Starts from a snapshot only
    /// if it is not past `version`.
    ///
    /// # Errors
    ///
    /// As [`Repository::load`].
    pub async fn load_at(&self, id: &A::Id, version: u64) -> Result<Loaded<A>, Error<A::Error>> {
        self.fold(&self.stream_id(id), Until::Version(version))
            .await
    }

    /// The state as it was at `time`: the longest prefix of the aggregate's stream recorded
    /// at or before it.
    ///
    /// # Errors
    ///
    /// As [`Repository::load`].
    pub async fn load_as_of(
        &self,
        id: &A::Id,
        time: DateTime<Utc>,
    ) -> Result<Loaded<A>, Error<A::Error>> {
        self.fold(&self.stream_id(id), Until::Time(time)).await
    }

    /// The audit log: every event of the aggregate's stream, in order, with its version,
    /// time and metadata, read as today's types (through the upcasting chain). A plain
    /// method: the stream owns what it needs.
    pub fn history(
        &self,
        id: &A::Id,
    ) -> impl Stream<Item = Result<Envelope<A::Event>, Error<A::Error>>> + Send + Unpin + 'static
    {
        self.store
            .read_stream(&self.stream_id(id), 1)
            .map(|item| match item {
                Ok(record) => decode::<A::Event>(record).map_err(Error::Corrupt),
                Err(e) => Err(Error::from(e)),
            })
    }

    async fn load_stream(&self, stream: &StreamId) -> Result<Loaded<A>, Error<A::Error>> {
        self.fold(stream, Until::End).await
    }

    /// Folds `stream` up to `until`: from the newest usable snapshot (of this aggregate's
    /// snapshot version, not past `until`), or from the start.
    async fn fold(&self, stream: &StreamId, until: Until) -> Result<Loaded<A>, Error<A::Error>> {
        if let Some((state, version)) = self.snapshot(stream, until).await {
            let mut loaded = Loaded {
                state,
                version,
                snapshot: Some(version),
            };
            // Fold from the snapshot's own event: it must be there (a snapshot past the
            // stream is not this stream's), and its time tells `load_as_of` whether the
            // snapshot is old enough. It is in the state already: checked, not applied.
            match self
                .fold_from(&mut loaded, stream, version, until, Some(version))
                .await?
            {
                Anchor::Found => return Ok(loaded),
                Anchor::Late => {}
                Anchor::Missing => tracing::warn!(
                    stream = %stream,
                    version,
                    "a snapshot is past its stream's end; replaying the stream"
                ),
            }
        }
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
            snapshot: None,
        };
        self.fold_from(&mut loaded, stream, 1, until, None).await?;
        Ok(loaded)
    }

    /// Folds the events of `stream` from version `from` up to `until` into `loaded`: lent
    /// by the store if it keeps them decoded, else read and decoded here. With an `anchor`
    /// (a snapshot's version, `from` itself), the first event is checked, not applied: the
    /// fold goes on only if it is there and not past `until`. Nothing past `until` is
    /// decoded.
    async fn fold_from(
        &self,
        loaded: &mut Loaded<A>,
        stream: &StreamId,
        from: u64,
        until: Until,
        anchor: Option<u64>,
    ) -> Result<Anchor, Error<A::Error>> {
        let mut found = if anchor.is_some() {
            Anchor::Missing
        } else {
            Anchor::Found
        };
        let mut step = |version: u64, recorded_at: DateTime<Utc>| {
            if found == Anchor::Missing {
                // The first event, checked against the snapshot.
                if anchor != Some(version) {
                    return FoldStep::Stop;
                }
                if until.past(version, recorded_at) {
                    found = Anchor::Late;
                    return FoldStep::Stop;
                }
                found = Anchor::Found;
                return FoldStep::Skip;
            }
            if until.past(version, recorded_at) {
                FoldStep::Stop
            } else {
                FoldStep::Take
            }
        };
        let lent = self
            .store
            .fold_decoded::<A::Event>(stream, from, &mut step, &mut |decoded| {
                loaded.state.apply(decoded.event);
                loaded.version = decoded.version;
            });
        match lent {
            Some(folded) => folded.map_err(Error::Corrupt)?,
            None => {
                let mut records = std::pin::pin!(self.store.read_for_load(stream, from));
                while let Some(record) = records.try_next().await? {
                    match step(record.version, record.recorded_at) {
                        FoldStep::Take => {}
                        FoldStep::Skip => continue,
                        FoldStep::Stop => break,
                    }
                    let version = record.version;
                    let event = record.decode::<A::Event>(stream)?;
                    loaded.state.apply(&event);
                    loaded.version = version;
                }
            }
        }
        Ok(found)
    }

    /// The newest usable snapshot of `stream`: its state and version. One of another
    /// snapshot version, past `until`'s version, that does not decode, or that cannot be
    /// read is ignored (logged), and the stream replayed.
    async fn snapshot(&self, stream: &StreamId, until: Until) -> Option<(A, u64)> {
        let policy = A::SNAPSHOT?;
        let snapshot = match self.store.load_snapshot(stream, policy.version).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "cannot read a snapshot; replaying the stream");
                return None;
            }
        };
        if snapshot.snapshot_version != policy.version || snapshot.stream != *stream {
            tracing::warn!(
                stream = %stream,
                snapshot_version = snapshot.snapshot_version,
                expected = policy.version,
                "a snapshot of another stream or version; replaying the stream"
            );
            return None;
        }
        if let Until::Version(v) = until
            && snapshot.version > v
        {
            return None;
        }
        match A::from_snapshot(snapshot.state)? {
            Ok(state) => Some((state, snapshot.version)),
            Err(e) => {
                tracing::warn!(
                    stream = %stream,
                    version = snapshot.version,
                    error = %e,
                    "a snapshot does not decode; replaying the stream"
                );
                None
            }
        }
    }

    /// Whether a command that took the stream to `version`, loaded from the snapshot at
    /// `since`, takes a snapshot: at least `every` events were folded since that one.
    fn snapshot_due(version: u64, since: Option<u64>) -> bool {
        A::SNAPSHOT.is_some_and(|p| version.saturating_sub(since.unwrap_or(0)) >= p.every)
    }

    /// A snapshot of `state` at `version`. A failed write is logged, never the command's
    /// error.
    async fn take_snapshot(&self, stream: &StreamId, state: &A, version: u64) {
        let Some(policy) = A::SNAPSHOT else { return };
        let json = match state.to_snapshot() {
            Some(Ok(json)) => json,
            Some(Err(e)) => {
                tracing::warn!(stream = %stream, version, error = %e, "a snapshot does not serialize; not taken");
                return;
            }
            None => return,
        };
        let snapshot = Snapshot::new(stream.clone(), policy.version, version, json);
        if let Err(e) = self.store.save_snapshot(snapshot).await {
            tracing::warn!(stream = %stream, version, error = %e, "cannot save a snapshot");
        }
    }

    /// Loads, decides `command`, and appends its events expecting the loaded version.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] (nothing written), [`Error::Conflict`] (after the retries, if any),
    /// and the load and store errors.
    pub async fn execute(
        &self,
        id: &A::Id,
        command: impl Into<A::Command>,
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        self.run(
            id,
            command.into(),
            Metadata::default(),
            None,
            Ids::Fresh,
            &[],
        )
        .await
    }

    /// [`Repository::execute`] with metadata stored on every event it appends.
    ///
    /// # Errors
    ///
    /// As [`Repository::execute`].
    pub async fn execute_with(
        &self,
        id: &A::Id,
        command: impl Into<A::Command>,
        metadata: Metadata,
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        self.run(id, command.into(), metadata, None, Ids::Fresh, &[])
            .await
    }

    /// Executes `command` only if the stream is at the caller's `expected` version (an
    /// HTTP `If-Match`): the loaded version is checked before deciding, so a stale
    /// expectation is a conflict whatever the command, and the append expects it too (a
    /// writer between the load and the append is a conflict as well). Never retried.
    ///
    /// Expecting no stream (`NoStream`, or `Exact(0)`), as a command that creates an
    /// aggregate does, needs no load: the command is decided on the default state and the
    /// append is the check. The outcomes are a load's: a stream with events is the conflict,
    /// and a command refused on a new stream is the refusal. A command the default state
    /// refuses or does nothing on is decided after a load, as before. Two differences on a
    /// stream that has events: an error found before the append (an event that does not
    /// encode, or is over a size limit) comes instead of the conflict, and so does the
    /// conflict instead of a [`Error::Corrupt`] the load would have met.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the stream is not at `expected`; as [`Repository::execute`].
    pub async fn execute_expecting(
        &self,
        id: &A::Id,
        command: impl Into<A::Command>,
        expected: ExpectedVersion,
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        self.run(
            id,
            command.into(),
            Metadata::default(),
            Some(expected),
            Ids::Fresh,
            &[],
        )
        .await
    }

    /// Appends `records`, with the claims when there are any.
    async fn append_records(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        records: Vec<NewEvent>,
        claims: &[StreamId],
        metadata: &Metadata,
    ) -> Result<crate::Appended, StoreError> {
        if claims.is_empty() {
            self.store.append(stream, expected, records).await
        } else {
            claims::append(&self.store, stream, expected, records, claims, metadata).await
        }
    }

    /// Appends events whose payloads are JSON text: as text (the store keeps it or reads
    /// it), or read into values for the claims' `append_all`.
    async fn append_texts(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        texts: Vec<crate::store::TextEvent>,
        claims: &[StreamId],
        metadata: &Metadata,
    ) -> Result<crate::Appended, StoreError> {
        if claims.is_empty() {
            return self.store.append_text(stream, expected, texts).await;
        }
        let records = texts
            .into_iter()
            .map(|t| t.into_new_event(stream))
            .collect::<Result<Vec<_>, _>>()?;
        self.append_records(stream, expected, records, claims, metadata)
            .await
    }

    async fn run(
        &self,
        id: &A::Id,
        command: A::Command,
        mut metadata: Metadata,
        expected: Option<ExpectedVersion>,
        ids: Ids<'_>,
        claims: &[StreamId],
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        metadata.extra.values_mut().for_each(positive_zeros);
        let stream = self.stream_id(id);
        let retries = if expected.is_some() { 0 } else { self.retries };
        // Looked for in the cache (which marks it used) on the first attempt at least.
        let used = expected.is_none();
        let mut attempt = 0;
        // Decide on the store's state, not a kept one (a kept one refused or did nothing).
        let mut reload = false;
        loop {
            // Read before the state: what is kept is dropped after a forget made since.
            let forgets = self.store.forgets();
            // A kept aggregate, unless the caller's If-Match must be checked against the
            // store itself.
            let cached = if expected.is_none() && !reload {
                self.take_cached(&stream)
            } else {
                None
            };
            let from_cache = cached.is_some();
            // A stream the caller expects to have no events needs no load on the first
            // attempt: its state can only be the default. If it has events after all, the
            // append says so (the conflict a load would have given); a refusal, or a decision
            // to do nothing, is only final on the store's state, as for a kept one.
            let assumed = !from_cache
                && !reload
                && matches!(
                    expected,
                    Some(ExpectedVersion::NoStream | ExpectedVersion::Exact(0))
                );
            let loaded = match cached {
                Some(loaded) => loaded,
                None if assumed => Loaded {
                    state: A::default(),
                    version: 0,
                    snapshot: None,
                },
                None => self.load_stream(&stream).await?,
            };
            // If-Match: a stale expectation is a conflict before anything is decided, even
            // for a command that would emit nothing (it was meant for another state).
            if let Some(expected) = expected
                && !expected.matches(loaded.version)
            {
                return Err(Error::Conflict {
                    stream,
                    expected,
                    actual: loaded.version,
                });
            }
            let events = match loaded.state.handle(command.clone()) {
                // A kept state may be behind the stream (another writer): a refusal, or a
                // decision to do nothing, is only final on the store's state.
                Err(_) if from_cache || assumed => {
                    reload = true;
                    continue;
                }
                Ok(events) if events.is_empty() && (from_cache || assumed) => {
                    reload = true;
                    continue;
                }
                // Personal fields decided on a kept state: decided again on the store's. The
                // kept state may hold a subject's plaintext that a process with no cache of
                // this one forgot since; appended, it would be sealed under a new key and
                // the forgotten data would read again.
                Ok(events) if from_cache && events.iter().any(|e| !e.personal().is_empty()) => {
                    reload = true;
                    continue;
                }
                Ok(events) => events,
                Err(rejected) => {
                    // Nothing changed: the state is still the stream's.
                    self.keep(&stream, loaded, forgets, used);
                    return Err(Error::Rejected(rejected));
                }
            };
            if events.is_empty() {
                let version = loaded.version;
                self.keep(&stream, loaded, forgets, used);
                return Ok(Executed {
                    events: Vec::new(),
                    version,
                    position: None,
                });
            }
            let append_expected = expected.unwrap_or(ExpectedVersion::Exact(loaded.version));
            // The envelopes the command returns, each with its event's id (written with the
            // event); their versions, positions and time are the store's, set once it has
            // appended them.
            let mut envelopes: Vec<Envelope<A::Event>> = events
                .into_iter()
                .enumerate()
                .map(|(index, event)| Envelope {
                    event_id: ids.event_id(index),
                    stream: stream.clone(),
                    version: 0,
                    position: Position::new(0, 0),
                    recorded_at: DateTime::<Utc>::default(),
                    metadata: metadata.clone(),
                    event,
                })
                .collect();
            // The payloads written straight from the events as JSON text where that reads
            // back the same, whatever the store (so that every store takes the same events
            // the same way): kept as written by a store that keeps text, read into values
            // by the others. Else, as values.
            let appended = match encode_text(&envelopes) {
                Some(texts) => {
                    self.append_texts(&stream, append_expected, texts, claims, &metadata)
                        .await
                }
                None => {
                    let records = encode(&envelopes)?;
                    self.append_records(&stream, append_expected, records, claims, &metadata)
                        .await
                }
            };
            match appended {
                Ok(appended) => {
                    let count = u64::try_from(envelopes.len()).unwrap_or(u64::MAX);
                    // Appended right after the state decided on (not an earlier outcome
                    // returned to a retry): the state with these events is the stream's.
                    let fresh = appended.version == loaded.version.saturating_add(count);
                    let due = Self::snapshot_due(appended.version, loaded.snapshot);
                    if fresh && (due || self.cache.is_some()) {
                        let mut state = loaded.state;
                        envelopes.iter().for_each(|e| state.apply(&e.event));
                        let mut snapshot = loaded.snapshot;
                        if due {
                            self.take_snapshot(&stream, &state, appended.version).await;
                            snapshot = Some(appended.version);
                        }
                        let version = appended.version;
                        self.keep(
                            &stream,
                            Loaded {
                                state,
                                version,
                                snapshot,
                            },
                            forgets,
                            used,
                        );
                    }
                    let first = appended.version.saturating_sub(count) + 1;
                    for ((envelope, position), version) in envelopes
                        .iter_mut()
                        .zip(appended.positions.iter().copied())
                        .zip(first..)
                    {
                        envelope.version = version;
                        envelope.position = position;
                        envelope.recorded_at = appended.recorded_at;
                    }
                    return Ok(Executed {
                        events: envelopes,
                        version: appended.version,
                        position: appended.positions.last().copied(),
                    });
                }
                // A claim taken is final: never retried.
                Err(StoreError::Conflict { stream: taken, .. }) if claims.contains(&taken) => {
                    return Err(Error::Claimed { claim: taken });
                }
                // Decided on a kept state that was behind the stream: decide again on the
                // store's (what a repository without the cache would have done first).
                Err(StoreError::Conflict { .. }) if from_cache => reload = true,
                Err(StoreError::Conflict { .. }) if attempt < retries => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Reads a stored record as a typed envelope.
fn decode<E: EventSet>(record: RecordedEvent) -> Result<Envelope<E>, Box<CorruptEvent>> {
    let RecordedEvent {
        position,
        stream,
        version,
        event_id,
        event_type,
        schema_version,
        payload,
        metadata,
        recorded_at,
    } = record;
    match E::from_stored(&event_type, schema_version, payload) {
        Ok(event) => Ok(Envelope {
            event_id,
            stream,
            version,
            position,
            recorded_at,
            metadata,
            event,
        }),
        Err(source) => Err(Box::new(CorruptEvent {
            stream,
            version,
            event_type,
            schema_version,
            source,
        })),
    }
}

/// Jittered exponential backoff: about 1 ms, 2 ms, 4 ms ... capped at about 256 ms, each
/// scaled by a random factor in [0.5, 1.5) so racing writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base_us = 1_000u64 << attempt.min(8);
    Duration::from_micros(base_us / 2 + fastrand::u64(0..base_us))
}

fn encode<E: EventSet>(events: &[Envelope<E>]) -> Result<Vec<NewEvent>, EncodeError> {
    events
        .iter()
        .map(|envelope| {
            let event = &envelope.event;
            let event_type = event.name();
            let mut payload = event
                .to_payload()
                .map_err(|source| EncodeError::Serialize { event_type, source })?;
            positive_zeros(&mut payload);
            if !payload.is_object() {
                return Err(EncodeError::NotAnObject {
                    event_type,
                    found: json_kind(&payload),
                });
            }
            mark_personal(&mut payload, event.personal(), event_type)?;
            Ok(NewEvent {
                event_id: envelope.event_id,
                event_type: event_type.to_owned(),
                schema_version: event.schema_version(),
                payload,
                metadata: envelope.metadata.clone(),
            })
        })
        .collect()
}

/// The events to append with their payloads as JSON text, each written straight from its
/// event (`EventSet::to_payload_text`); `None` when one cannot be (it goes as a value).
fn encode_text<E: EventSet>(events: &[Envelope<E>]) -> Option<Vec<crate::store::TextEvent>> {
    events
        .iter()
        .map(|envelope| {
            Some(crate::store::TextEvent {
                payload: envelope.event.to_payload_text()?,
                event_id: envelope.event_id,
                event_type: envelope.event.name(),
                schema_version: envelope.event.schema_version(),
                metadata: envelope.metadata.clone(),
            })
        })
        .collect()
}

/// Wraps each personal field for the store to seal under its subject:
/// `{"$es_seal": {"subject": "<the subject field as a string>", "value": <the field>}}`.
fn mark_personal(
    payload: &mut serde_json::Value,
    personal: &[crate::Personal],
    event_type: &'static str,
) -> Result<(), EncodeError> {
    for p in personal {
        let subject = match payload.get(p.subject) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::String(_) | serde_json::Value::Null) | None => {
                return Err(EncodeError::Personal {
                    event_type,
                    field: p.field,
                    subject: p.subject,
                });
            }
            Some(other) => other.to_string(),
        };
        if let Some(value) = payload.get_mut(p.field) {
            let plain = value.take();
            *value = serde_json::json!({
                crate::store::personal::SEAL: { "subject": subject, "value": plain }
            });
        }
    }
    Ok(())
}

/// Replaces `-0.0` with `0.0` (equal as `f64` and as JSON): no store can keep the sign of a
/// zero (PostgreSQL's `jsonb` holds numbers as decimals), and stores refuse it rather than
/// change it, so the repository writes the zero they can keep.
fn positive_zeros(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n)
            if n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) =>
        {
            *value = serde_json::json!(0.0);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(positive_zeros),
        serde_json::Value::Object(map) => map.values_mut().for_each(positive_zeros),
        _ => {}
    }
}

/// The cache, even after a panic while it was held (it holds no invariant a panic breaks:
/// an entry is whole, taken or absent).
fn lock<A>(
    cache: &Cache<A>,
) -> MutexGuard<'_, lru::LruCache<StreamId, Option<Cached<A>>, foldhash::quality::RandomState>> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}
