//! A store that holds appends at a barrier: the demo's two racing writers each load and
//! decide, then wait here until both are about to append, so the race is real on every store
//! (both loaded the same version before either wrote) and the store's expected-version check,
//! not a later load, decides who wins.

use std::sync::Arc;

use es_core::{Appended, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent};
use es_core::{Snapshot, StoreError, StreamAppend, StreamId};
use futures::Stream;
use tokio::sync::Barrier;

/// Wraps a store; every append waits until `n` appends are waiting, then all go on at once.
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    barrier: Arc<Barrier>,
}

impl<S> Gated<S> {
    /// `inner`, with appends released `n` at a time.
    pub fn new(inner: S, n: usize) -> Self {
        Self {
            inner,
            barrier: Arc::new(Barrier::new(n)),
        }
    }
}

impl<S: EventStore> EventStore for Gated<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        self.barrier.wait().await;
        self.inner.append(stream, expected, events).await
    }

    async fn append_all(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, StoreError> {
        self.barrier.wait().await;
        self.inner.append_all(parts).await
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<S>
    {
        self.inner.read_stream(stream, from)
    }

    fn read_for_load(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<es_core::LoadRecord, StoreError>> + Send + Unpin + 'static + use<S>
    {
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
        self.inner.save_snapshot(snapshot).await
    }

    async fn forget(&self, subject: &str) -> Result<(), StoreError> {
        self.inner.forget(subject).await
    }

    fn forgets(&self) -> u64 {
        self.inner.forgets()
    }
}
