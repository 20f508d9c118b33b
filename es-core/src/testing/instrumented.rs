//! [`Instrumented`]: a store wrapper for tests that counts what the repository does to a
//! store and can refuse appends with conflicts on demand, to make retry behaviour and
//! contention measurable without timing anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::Stream;

use crate::envelope::StreamId;
use crate::position::Position;
use crate::store::{
    Appended, EventStore, ExpectedVersion, LoadRecord, NewEvent, RecordedEvent, Snapshot,
    StoreError, StreamAppend,
};

/// Wraps any store; clones share the counters.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use es_core::testing::Instrumented;
/// use es_core::{EventStore, ExpectedVersion, InMemoryStore, StreamId};
///
/// let store = Instrumented::new(InMemoryStore::new());
/// store.refuse_next_appends(1);
/// let err = store.append(&StreamId::new("a", "1"), ExpectedVersion::Any, vec![]).await;
/// assert!(err.is_err());
/// assert_eq!((store.appends(), store.conflicts()), (1, 1));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Instrumented<S> {
    inner: S,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    conflicts: AtomicU64,
    stream_reads: AtomicU64,
    refuse: AtomicU64,
    snapshot_writes: AtomicU64,
    /// Snapshot writes fail with a backend error (nothing is kept) while set.
    fail_snapshots: AtomicBool,
}

impl<S: EventStore> Instrumented<S> {
    /// Wraps `inner`, all counters at zero.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Refuses the next `n` appends with a [`StoreError::Conflict`] (writing nothing), as if
    /// another writer had just appended.
    pub fn refuse_next_appends(&self, n: u64) {
        self.counters.refuse.store(n, Ordering::SeqCst);
    }

    /// Appends attempted, refused ones included.
    pub fn appends(&self) -> u64 {
        self.counters.appends.load(Ordering::SeqCst)
    }

    /// Appends that returned a conflict, injected or real.
    pub fn conflicts(&self) -> u64 {
        self.counters.conflicts.load(Ordering::SeqCst)
    }

    /// Stream reads started (one per repository load, two when it starts from a snapshot
    /// found not usable).
    pub fn stream_reads(&self) -> u64 {
        self.counters.stream_reads.load(Ordering::SeqCst)
    }

    /// While `fail` holds, snapshot writes fail (a backend error; nothing is kept).
    pub fn fail_snapshot_writes(&self, fail: bool) {
        self.counters.fail_snapshots.store(fail, Ordering::SeqCst);
    }

    /// Snapshot writes attempted, failed ones included.
    pub fn snapshot_writes(&self) -> u64 {
        self.counters.snapshot_writes.load(Ordering::SeqCst)
    }
}

impl<S: EventStore> EventStore for Instrumented<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        self.counters.appends.fetch_add(1, Ordering::SeqCst);
        let refuse = self
            .counters
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let result = if refuse {
            let actual = self.inner.stream_version(stream).await?;
            Err(StoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual: actual + 1,
            })
        } else {
            self.inner.append(stream, expected, events).await
        };
        if matches!(result, Err(StoreError::Conflict { .. })) {
            self.counters.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// Counted as one append; never refused by injection.
    async fn append_all(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, StoreError> {
        self.counters.appends.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.append_all(parts).await;
        if matches!(result, Err(StoreError::Conflict { .. })) {
            self.counters.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<S>
    {
        self.counters.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_stream(stream, from)
    }

    /// Counted as a stream read.
    fn read_for_load(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<LoadRecord, StoreError>> + Send + Unpin + 'static + use<S> {
        self.counters.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_for_load(stream, from)
    }

    fn read_all(
        &self,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<S>
    {
        self.inner.read_all(after)
    }

    fn subscribe(
        &self,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<S>
    {
        self.inner.subscribe(after)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn find_event(
        &self,
        stream: &StreamId,
        event_id: uuid::Uuid,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.find_event(stream, event_id).await
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_version: u32,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream, snapshot_version).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.counters.snapshot_writes.fetch_add(1, Ordering::SeqCst);
        if self.counters.fail_snapshots.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "snapshot writes are failing (injected)".into(),
            ));
        }
        self.inner.save_snapshot(snapshot).await
    }

    async fn forget(&self, subject: &str) -> Result<(), StoreError> {
        self.inner.forget(subject).await
    }

    fn forgets(&self) -> u64 {
        self.inner.forgets()
    }
}
