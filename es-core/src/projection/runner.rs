//! [`Projector`]: runs one listener on a store. It catches up from the listener's checkpoint
//! (or the start, or the end of the log for a reactor's first run) in batches, then follows
//! the log live through `subscribe`.
//!
//! A batch of records is handled in one unit of work of the store: for a read model kept in
//! the store, one transaction holding its writes and its checkpoint, so after a crash
//! anywhere no effect is doubled or lost. When a handler fails, the unit is rolled back, the
//! records before the failing one are committed on their own, and the failing record is
//! retried alone with capped exponential backoff until it succeeds, is skipped, or the
//! listener is stopped.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use super::handle::{Control, ProjectionHandle, ProjectionState, ProjectionStatus, SkipError};
use super::{ContextStore, HandlerError, Kind, Projection};
use crate::position::Position;
use crate::store::{Delivery, RecordedEvent, StoreError};

/// How many records one unit of work handles at most.
const BATCH: usize = 500;

/// The first wait before retrying a failing record, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between retries of a failing record.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often, at most, a listener catching up counts how far behind the log it is.
const BEHIND_EVERY: Duration = Duration::from_secs(1);

/// How long a listener's lease lasts ([`Checkpoints::claim`](super::Checkpoints::claim)):
/// a standby takes over this long after the runner holding it died.
const LEASE: Duration = Duration::from_secs(10);

/// How often the runner holding a lease renews it, busy or idle.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// How often a standby looks whether it may run, and how far the holder got.
const STANDBY_POLL: Duration = Duration::from_millis(250);

/// How long a stopping runner waits for its store to take its lease back.
const RELEASE_WITHIN: Duration = Duration::from_secs(2);

/// Where a listener without a checkpoint starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// A read model from the start, a reactor at the end of the log.
    Default,
    /// From the start of the log.
    Beginning,
    /// After this position.
    After(Position),
}

/// One of `count` partitions of a listener ([`Projector::partition`]): it takes the records
/// of the streams that hash to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    index: u32,
    count: u32,
}

impl Partition {
    /// Partition `index` of `count`.
    ///
    /// # Panics
    ///
    /// When `index` is not below `count`.
    #[must_use]
    pub fn new(index: u32, count: u32) -> Self {
        assert!(
            index < count,
            "partition {index} of {count}: the index must be below the count"
        );
        Self { index, count }
    }

    /// Which partition of `count` a stream belongs to: a hash of its category, a `0xff`
    /// byte and its id (XXH3, 64 bits, a specified algorithm: the same in every process
    /// and build), modulo `count`. Every bit of every byte counts: ids that differ only in
    /// a letter or a digit spread like any others. (FNV-1a before 2026-12-01, which modulo
    /// 2 or 4 saw only the low bits of each byte: a partitioned listener that ran under it
    /// needs a new version, as for a new count.)
    #[must_use]
    pub fn of(stream: &crate::StreamId, count: u32) -> u32 {
        let mut hash = xxhash_rust::xxh3::Xxh3Default::new();
        hash.update(stream.category().as_bytes());
        hash.update(&[0xff]);
        hash.update(stream.id().as_bytes());
        u32::try_from(hash.digest() % u64::from(count.max(1))).unwrap_or(0)
    }

    /// Whether the partition takes the records of `stream`.
    #[must_use]
    pub fn holds(self, stream: &crate::StreamId) -> bool {
        Self::of(stream, self.count) == self.index
    }

    /// The partition's index.
    #[must_use]
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many partitions there are.
    #[must_use]
    pub fn count(self) -> u32 {
        self.count
    }

    /// The checkpoint key of this partition of the listener keyed `key`: `{key}#{index}/{count}`.
    fn key(self, key: &str) -> String {
        format!("{key}#{}/{}", self.index, self.count)
    }
}

/// Runs a listener (a read model or a reactor) on a store: `Projector::new(store,
/// listener).spawn()`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use es_core::prelude::*;
/// use es_core::projection::{HandleFuture, HandlerError, Kind};
/// use es_core::{RecordedEvent, Projection};
///
/// #[derive(Default)]
/// struct Count { events: u64 }
///
/// impl es_core::ReadModel for Count {}
/// impl Projection for Count {
///     const NAME: &'static str = "count";
///     const VERSION: u32 = 1;
///     const KIND: Kind = Kind::ReadModel;
///     const EVENT_TYPES: &'static [&'static str] = &["Noted"];
///     type Context = ();
///     fn handle<'a>(&'a mut self, _: &'a RecordedEvent, _: &'a mut ()) -> HandleFuture<'a> {
///         self.events += 1;
///         Box::pin(async { Ok::<(), HandlerError>(()) })
///     }
/// }
///
/// let store = InMemoryStore::new();
/// let count = Projector::new(store.clone(), Count::default()).spawn();
/// let event = es_core::NewEvent {
///     event_id: uuid::Uuid::now_v7(),
///     event_type: "Noted".into(),
///     schema_version: 1,
///     payload: serde_json::json!({}),
///     metadata: Metadata::default(),
/// };
/// let done = store.append(&StreamId::new("note", "1"), ExpectedVersion::Any, vec![event]).await.unwrap();
/// count.wait_for(done.positions[0], Duration::from_secs(5)).await.unwrap();
/// assert_eq!(count.read(|c| c.events), 1);
/// count.stop().await;
/// # });
/// ```
#[must_use = "a projector does nothing until `spawn`"]
pub struct Projector<S, P> {
    store: S,
    listener: P,
    start: Start,
    partition: Option<Partition>,
}

impl<S, P> std::fmt::Debug for Projector<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl<S, P: Projection> Projector<S, P> {
    /// A projector for `listener` on `store`.
    pub fn new(store: S, listener: P) -> Self {
        Self {
            store,
            listener,
            start: Start::Default,
            partition: None,
        }
    }

    /// Runs this listener as partition `index` of `count` (competing consumers): it takes
    /// only the records of the streams that hash to `index` ([`Partition::of`]), so each
    /// stream's records stay in order within one partition, and keeps a checkpoint of its
    /// own (`{key}#{index}/{count}`). Run the `count` partitions in one process or spread
    /// over several, each with its own `Projector`; on PostgreSQL a partition runs in one
    /// process at a time, as an unpartitioned listener does, so a process that also runs
    /// another's partition stands by for it and takes it over when that one stops.
    ///
    /// A read model kept in the store gets every partition's writes in the same tables; a
    /// new version takes over once every partition has caught up. A read model in memory
    /// holds its partition's part. Each partition reads the whole log of its types and
    /// keeps its share. Changing `count` of a read model that already ran is a new version
    /// (a new checkpoint per partition would fold everything again into the same tables).
    ///
    /// # Panics
    ///
    /// When `index` is not below `count`.
    pub fn partition(mut self, index: u32, count: u32) -> Self {
        self.partition = Some(Partition::new(index, count));
        self
    }

    /// On its first run (no checkpoint yet), start from the beginning of the log (a
    /// reactor's default is the end).
    pub fn from_start(mut self) -> Self {
        self.start = Start::Beginning;
        self
    }

    /// On its first run (no checkpoint yet), start after `position`.
    pub fn after(mut self, position: Position) -> Self {
        self.start = Start::After(position);
        self
    }
}

impl<S, P> Projector<S, P>
where
    P: Projection,
    S: ContextStore<P::Context>,
{
    /// Starts the listener on the current Tokio runtime and returns its handle.
    pub fn spawn(self) -> ProjectionHandle<P> {
        let (status_tx, status) = watch::channel(ProjectionStatus::new(P::NAME));
        let (control, control_rx) = mpsc::unbounded_channel();
        // A read model without a durable context lives in memory, readable by handles; a
        // durable one, or a reactor, is owned by the runner (its handlers are async and hold
        // it across their awaits).
        let (model, state) = if S::DURABLE || P::KIND == Kind::Reactor {
            (Model::Owned(self.listener), None)
        } else {
            let shared = Arc::new(RwLock::new(self.listener));
            (Model::Shared(Arc::clone(&shared)), Some(shared))
        };
        let data = match P::KIND {
            Kind::Reactor => P::NAME.to_owned(),
            Kind::ReadModel => super::version_key(P::NAME, P::VERSION),
        };
        let key = self
            .partition
            .map_or_else(|| data.clone(), |p| p.key(&data));
        let runner = Runner {
            store: self.store,
            partition: self.partition,
            data,
            key,
            rebuild: None,
            model,
            start: self.start,
            position: None,
            status: status_tx,
            control: control_rx,
            rate: Rate::new(),
            behind_left: None,
            behind_at: None,
            behind_after: None,
            counts: true,
            leased_at: None,
            stopping: None,
        };
        tokio::spawn(runner.run());
        ProjectionHandle {
            name: P::NAME,
            state,
            status,
            control,
        }
    }
}

enum Model<P> {
    Shared(Arc<RwLock<P>>),
    Owned(P),
}

/// What to do after waiting on a failure or a control message.
enum Flow {
    Go,
    Stop,
}

/// Whether a runner runs the rest of a batch ([`Runner::lead`]).
enum Lead {
    /// It holds the lease (or the store keeps none): run it.
    Run,
    /// A standby, and the holder has committed past it: done.
    Done,
    /// A standby: look again.
    Wait,
    Stop,
}

/// Records per second, over windows of about a second.
struct Rate {
    since: Instant,
    count: u64,
    rate: f64,
}

impl Rate {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            count: 0,
            rate: 0.0,
        }
    }

    fn add(&mut self, n: u64) -> f64 {
        self.count += n;
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let rate = self.count as f64 / elapsed.as_secs_f64();
            self.rate = rate;
            self.count = 0;
            self.since = Instant::now();
        }
        self.rate
    }
}

struct Runner<S, P: Projection> {
    store: S,
    partition: Option<Partition>,
    /// Whose data the handlers write: the name for a reactor, `{name}_v{version}` for a read
    /// model (each version has its own).
    data: String,
    /// The checkpoint's key: `data`, or a partition's key of it.
    key: String,
    /// While a new version is built beside the serving one: where it takes over.
    rebuild: Option<Rebuild>,
    model: Model<P>,
    start: Start,
    /// The last position processed (committed, for a durable listener).
    position: Option<Position>,
    status: watch::Sender<ProjectionStatus>,
    control: mpsc::UnboundedReceiver<Control>,
    rate: Rate,
    /// How far behind the log it is, as last counted less what it took since (`None`:
    /// not counted), and when the last count was.
    behind_left: Option<u64>,
    behind_at: Option<Instant>,
    /// How far behind it will be at a batch's end (counted before the batch, published
    /// with the position, so a caller woken by `wait_for` reads both).
    behind_after: Option<(Option<Position>, Option<u64>)>,
    /// Whether the store counts (false once it said it cannot).
    counts: bool,
    /// When it last claimed or renewed the listener's lease, while it holds it.
    leased_at: Option<Instant>,
    /// The caller of `stop`, answered when the runner has stopped.
    stopping: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A rebuild in progress: the position at which the new version takes over, and how many
/// events it folds to get there.
#[derive(Clone, Copy, Debug)]
struct Rebuild {
    target: Position,
    total: u64,
    done: u64,
}

type Records = std::pin::Pin<Box<dyn Stream<Item = Result<Delivery, StoreError>> + Send>>;

impl<S, P> Runner<S, P>
where
    P: Projection,
    S: ContextStore<P::Context>,
{
    /// A unit of work for this listener (or its partition): unpartitioned, `data` and `key`
    /// are the same, which is `begin(key)`.
    async fn begin(&self) -> Result<S::Unit, StoreError> {
        self.store.begin_partition(&self.data, &self.key).await
    }

    /// Whether every partition of this listener has reached `target` (true when it is not
    /// partitioned): a new version takes over only then.
    async fn all_partitions_reached(&self, target: Position) -> Result<bool, StoreError> {
        let Some(me) = self.partition else {
            return Ok(true);
        };
        for index in (0..me.count()).filter(|i| *i != me.index()) {
            let key = Partition::new(index, me.count()).key(&self.data);
            if self
                .store
                .load_checkpoint(&key)
                .await?
                .is_none_or(|p| p < target)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the listener resumes from a stored checkpoint.
    fn keeps_checkpoint() -> bool {
        S::DURABLE || P::KIND == Kind::Reactor
    }

    async fn run(mut self) {
        self.go().await;
        // A standby elsewhere takes over at once, rather than when the lease runs out; and
        // before `stop().await` returns, so a process that exits right after leaves no lease.
        // Bounded: a store that does not answer leaves the lease to run out instead.
        if self.leased_at.take().is_some() {
            match tokio::time::timeout(RELEASE_WITHIN, self.store.release(&self.key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(projection = P::NAME, error = %e, "releasing the lease failed");
                }
                Err(_) => tracing::warn!(projection = P::NAME, "releasing the lease timed out"),
            }
        }
        // Stopped before the caller hears so: `stop().await` then sees it.
        self.status
            .send_modify(|s| s.state = ProjectionState::Stopped);
        if let Some(reply) = self.stopping.take() {
            let _ = reply.send(());
        }
    }

    /// Readies the version, finds where to start, and follows the log until stopped.
    async fn go(&mut self) {
        // The version first: a version whose tables are new starts with no checkpoint.
        let Some(serving) = self.prepare().await else {
            return;
        };
        let stop = loop {
            match self.starting_position().await {
                Ok(position) => {
                    self.position = position;
                    break None;
                }
                Err(e) => {
                    tracing::error!(projection = P::NAME, error = %e, "cannot read the checkpoint");
                    if let Flow::Stop = self.pause(FIRST_BACKOFF * 20, None).await {
                        break Some(());
                    }
                }
            }
        };
        let stop = match stop {
            Some(()) => Some(()),
            None => self.versions(serving).await,
        };
        if stop.is_none() {
            self.publish(0);
            self.follow().await;
        }
    }

    /// Readies the read model's version (a durable one: its tables, with a fresh checkpoint
    /// when they are new) and returns the version serving readers; `None` when stopped.
    async fn prepare(&mut self) -> Option<Option<u32>> {
        if !S::DURABLE || P::KIND != Kind::ReadModel {
            return Some(Some(P::VERSION));
        }
        loop {
            match self.store.prepare(P::NAME, P::VERSION, P::DDL).await {
                Ok(serving) => return Some(serving),
                Err(e) => {
                    tracing::error!(projection = P::NAME, error = %e, "cannot ready the read model's version");
                    if let Flow::Stop = self.pause(FIRST_BACKOFF * 20, None).await {
                        return None;
                    }
                }
            }
        }
    }

    /// When another version serves readers, this one is rebuilt beside it and takes over
    /// once caught up; when none does, this one serves as it catches up. Returns `Some` when
    /// stopped.
    async fn versions(&mut self, serving: Option<u32>) -> Option<()> {
        if !S::DURABLE || P::KIND != Kind::ReadModel {
            return None;
        }
        loop {
            match self.plan_versions(serving).await {
                Ok(()) => return None,
                Err(e) => {
                    tracing::error!(projection = P::NAME, error = %e, "cannot plan the read model's version");
                    if let Flow::Stop = self.pause(FIRST_BACKOFF * 20, None).await {
                        return Some(());
                    }
                }
            }
        }
    }

    async fn plan_versions(&mut self, serving: Option<u32>) -> Result<(), StoreError> {
        match serving {
            Some(v) if v == P::VERSION => {}
            // Another version serves: build this one beside it, up to the log's end now.
            Some(_) => match self.store.head().await? {
                Some(target) if self.position.is_none_or(|p| p < target) => {
                    let total = self
                        .store
                        .count(self.position, target, P::EVENT_TYPES)
                        .await?
                        .unwrap_or(0);
                    tracing::info!(
                        projection = P::NAME,
                        version = P::VERSION,
                        total,
                        "rebuilding beside the serving version"
                    );
                    self.rebuild = Some(Rebuild {
                        target,
                        total,
                        done: 0,
                    });
                    self.status
                        .send_modify(|s| s.state = ProjectionState::Rebuilding { done: 0, total });
                }
                _ => self.store.activate(P::NAME, P::VERSION).await?,
            },
            // Nothing serves yet: this version serves as it catches up.
            None => self.store.activate(P::NAME, P::VERSION).await?,
        }
        Ok(())
    }

    /// After a batch: a rebuild that reached its target takes over.
    async fn rebuilt(&mut self) -> Flow {
        let Some(rebuild) = self.rebuild else {
            return Flow::Go;
        };
        if self.position.is_none_or(|p| p < rebuild.target) {
            return Flow::Go;
        }
        // A partition that got there first leaves the switch to the last one (each checks
        // again after its next batch).
        match self.all_partitions_reached(rebuild.target).await {
            Ok(true) => {}
            Ok(false) => return Flow::Go,
            Err(e) => {
                tracing::warn!(projection = P::NAME, error = %e, "cannot read the other partitions' checkpoints");
                return Flow::Go;
            }
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.store.activate(P::NAME, P::VERSION).await {
                Ok(()) => {
                    tracing::info!(
                        projection = P::NAME,
                        version = P::VERSION,
                        "rebuilt: this version serves now"
                    );
                    self.rebuild = None;
                    self.status
                        .send_modify(|s| s.state = ProjectionState::Running);
                    return Flow::Go;
                }
                Err(e) => {
                    tracing::error!(projection = P::NAME, error = %e, "cannot switch to the rebuilt version");
                    if let Flow::Stop = self.pause(backoff, None).await {
                        return Flow::Stop;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The checkpoint, or where a first run starts (and then records it, so a restart
    /// resumes there rather than at a later end of the log).
    async fn starting_position(&self) -> Result<Option<Position>, StoreError> {
        if Self::keeps_checkpoint()
            && let Some(position) = self.store.load_checkpoint(&self.key).await?
        {
            return Ok(Some(position));
        }
        let start = match self.start {
            Start::Beginning => None,
            Start::After(position) => Some(position),
            Start::Default if P::KIND == Kind::Reactor => self.store.head().await?,
            Start::Default => None,
        };
        if Self::keeps_checkpoint()
            && let Some(position) = start
        {
            self.store.save_checkpoint(&self.key, position).await?;
        }
        Ok(start)
    }

    /// The log after the position reached, filtered to the listener's types.
    fn subscribe(&self) -> impl Stream<Item = Result<Delivery, StoreError>> + Send + 'static {
        self.store.subscribe_types(self.position, P::EVENT_TYPES)
    }

    /// Follows the log until stopped.
    async fn follow(&mut self) {
        let mut records: Records = Box::pin(self.subscribe());
        self.status.send_modify(|s| s.started = true);
        if let Some(behind) = self.count_behind(self.position, false, 0).await {
            self.behind_left = behind;
            self.status.send_modify(|s| s.behind = behind);
        }
        loop {
            let item = tokio::select! {
                biased;
                message = self.control.recv() => match message {
                    None => return,
                    Some(Control::Stop(reply)) => {
                        // Answered once the lease is given up (`run`).
                        self.stopping = Some(reply);
                        return;
                    }
                    Some(Control::Skip(position, reply)) => {
                        let state = self.status.borrow().state.clone();
                        let _ = reply.send(Err(SkipError::NotFailingThere { name: P::NAME, position, state }));
                        continue;
                    }
                },
                item = records.next() => item,
                // Idle while it holds the lease: renew it, so that a standby does not take
                // over a runner that only has nothing to do.
                () = tokio::time::sleep(RENEW_EVERY), if self.leased_at.is_some() => {
                    self.renew().await;
                    continue;
                }
            };
            let Some(item) = item else {
                // A subscription never ends on its own; if it does, follow it again.
                records = Box::pin(self.subscribe());
                continue;
            };
            // What is ready now joins the batch (bounded), so catching up is batched.
            let mut batch = Vec::with_capacity(16);
            let mut failed_read = None;
            match item {
                Ok(record) => batch.push(record),
                Err(e) => failed_read = Some(e),
            }
            while failed_read.is_none() && batch.len() < BATCH {
                match records.next().now_or_never() {
                    Some(Some(Ok(record))) => batch.push(record),
                    Some(Some(Err(e))) => failed_read = Some(e),
                    Some(None) | None => break,
                }
            }
            // A batch short of full took everything the subscription had ready.
            let end = batch.last().map(Delivery::position);
            let drained = failed_read.is_none() && batch.len() < BATCH;
            let taken = batch
                .iter()
                .filter(|d| matches!(d, Delivery::Record(_)))
                .count();
            let taken = u64::try_from(taken).unwrap_or(u64::MAX);
            let counted = self.count_behind(end, drained, taken).await;
            self.behind_left = match counted {
                Some(behind) => behind,
                None => self.behind_left.map(|left| left.saturating_sub(taken)),
            };
            self.behind_after = counted.map(|behind| (end, behind));
            if let Flow::Stop = self.process(&batch).await {
                return;
            }
            if let Flow::Stop = self.rebuilt().await {
                return;
            }
            if let Some(error) = failed_read {
                if let Flow::Stop = self.failed_read(error).await {
                    return;
                }
                // Read again from where we are: a corrupt record skipped moved us past it.
                records = Box::pin(self.subscribe());
            }
        }
    }

    /// A record that could not be read: a corrupt one stops the listener there, as a
    /// failing handler does (until repaired, then retried, or skipped); a backend failure is
    /// logged and the log read again after a pause.
    async fn failed_read(&mut self, error: StoreError) -> Flow {
        match error {
            StoreError::Corrupt {
                position: Some(position),
                ref stream,
                version,
                ..
            } => {
                let message = error.to_string();
                tracing::error!(projection = P::NAME, %position, %stream, version, error = %message, "a record does not read");
                self.status.send_modify(|s| {
                    s.state = ProjectionState::Failed {
                        position,
                        error: message.clone(),
                    };
                });
                // Each retry reads it again: wait, then let the caller resubscribe; stop
                // waiting when it is skipped.
                match self.pause(FIRST_BACKOFF * 20, Some(position)).await {
                    Flow::Stop => Flow::Stop,
                    Flow::Go if self.status.borrow().skipped.last() == Some(&position) => {
                        self.step_over(position).await
                    }
                    Flow::Go => Flow::Go,
                }
            }
            other => {
                tracing::warn!(projection = P::NAME, error = %other, "reading the log failed; reading again");
                self.pause(FIRST_BACKOFF * 20, None).await
            }
        }
    }

    /// Handles a batch: in one unit when it goes through; otherwise the records before the
    /// failing one, then the failing one alone until it succeeds or is skipped.
    async fn process(&mut self, batch: &[Delivery]) -> Flow {
        let mut start = 0;
        while start < batch.len() {
            match self.lead(&batch[start..]).await {
                Lead::Run => {}
                Lead::Done => return Flow::Go,
                Lead::Wait => continue,
                Lead::Stop => return Flow::Stop,
            }
            let mut end = batch.len();
            loop {
                match self.attempt(&batch[start..end]).await {
                    Ok(handled) => {
                        self.publish(handled);
                        start = end;
                        break;
                    }
                    // A durable unit was rolled back: commit what came before on its own.
                    Err((i, _)) if i > 0 && S::DURABLE => end = start + i,
                    // In memory what came before stays applied.
                    Err((i, error)) => {
                        let Delivery::Record(failing) = &batch[start + i] else {
                            // Only a record's handler fails; a unit that could not even begin
                            // or commit fails at its first delivery: retry it whole.
                            tracing::warn!(projection = P::NAME, %error, "a unit of work failed; retrying");
                            if let Flow::Stop = self.pause(FIRST_BACKOFF * 20, None).await {
                                return Flow::Stop;
                            }
                            break;
                        };
                        if i > 0 {
                            self.position = Some(batch[start + i - 1].position());
                            self.publish(0);
                        }
                        if let Flow::Stop = self.retry(failing, error).await {
                            return Flow::Stop;
                        }
                        start += i + 1;
                        break;
                    }
                }
            }
        }
        Flow::Go
    }

    /// One unit of work over `records`: every record its handler takes, then the checkpoint
    /// at the last one. On failure: the index of the failing record, and why.
    async fn attempt(&mut self, records: &[Delivery]) -> Result<u64, (usize, HandlerError)> {
        let Some(last) = records.last().map(Delivery::position) else {
            return Ok(0);
        };
        let store_failed = |e: StoreError| (0, HandlerError::Store(e.to_string()));
        let mut unit = self.begin().await.map_err(store_failed)?;
        // Another runner (a process that held the lock before us) may have moved on.
        let committed = if S::DURABLE {
            S::checkpoint_in(&mut unit, &self.key)
                .await
                .map_err(store_failed)?
        } else {
            None
        };
        // The records this listener takes, with their index in the batch.
        let wanted = records
            .iter()
            .enumerate()
            .filter_map(|(i, delivery)| match delivery {
                Delivery::Record(record)
                    if committed.is_none_or(|c| record.position > c)
                        && P::EVENT_TYPES.contains(&record.event_type.as_str())
                        && self.partition.is_none_or(|p| p.holds(&record.stream)) =>
                {
                    Some((i, record))
                }
                _ => None,
            });
        let mut handled = 0;
        match &mut self.model {
            Model::Owned(listener) => {
                for (i, record) in wanted {
                    let cx = S::context(&mut unit);
                    listener.handle(record, cx).await.map_err(|e| (i, e))?;
                    handled += 1;
                }
            }
            // Folded in memory, synchronously: one lock for the batch.
            Model::Shared(shared) => {
                let mut listener = shared.write().unwrap_or_else(PoisonError::into_inner);
                for (i, record) in wanted {
                    let cx = S::context(&mut unit);
                    listener
                        .handle(record, cx)
                        .now_or_never()
                        .unwrap_or_else(|| {
                            Err(HandlerError::Handler(
                                "a listener whose handlers take no context must handle records synchronously"
                                    .to_owned(),
                            ))
                        })
                        .map_err(|e| (i, e))?;
                    handled += 1;
                }
            }
        }
        let position = committed.map_or(last, |c| c.max(last));
        S::commit(unit, &self.key, position)
            .await
            .map_err(|e| (0, HandlerError::Store(e.to_string())))?;
        if !S::DURABLE && P::KIND == Kind::Reactor {
            // A reactor's effects are its commands; its checkpoint only saves replaying
            // them (they are idempotent), so a failure to save it is logged, not fatal.
            if let Err(e) = self.store.save_checkpoint(&self.key, position).await {
                tracing::warn!(projection = P::NAME, error = %e, "cannot save the checkpoint");
            }
        }
        self.position = Some(position);
        Ok(handled)
    }

    /// Retries one failing record with capped exponential backoff until it goes through, is
    /// skipped, or the listener is stopped.
    async fn retry(&mut self, record: &RecordedEvent, error: HandlerError) -> Flow {
        let position = record.position;
        let mut error = error;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let message = error.to_string();
            tracing::error!(
                projection = P::NAME,
                %position,
                stream = %record.stream,
                version = record.version,
                error = %message,
                "a handler failed; retrying"
            );
            self.status.send_modify(|s| {
                s.state = ProjectionState::Failed {
                    position,
                    error: message.clone(),
                };
            });
            if let Flow::Stop = self.pause(backoff, Some(position)).await {
                return Flow::Stop;
            }
            if self.status.borrow().skipped.last() == Some(&position) {
                // Skipped: move the checkpoint past it in a unit of its own.
                return self.step_over(position).await;
            }
            match self.attempt(&[Delivery::Record(record.clone())]).await {
                Ok(handled) => {
                    self.publish(handled);
                    return Flow::Go;
                }
                Err((_, e)) => error = e,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Commits the checkpoint at `position` without handing that record to a handler.
    async fn step_over(&mut self, position: Position) -> Flow {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = async {
                let unit = self.begin().await?;
                S::commit(unit, &self.key, position).await?;
                if !S::DURABLE && P::KIND == Kind::Reactor {
                    self.store.save_checkpoint(&self.key, position).await?;
                }
                Ok::<(), StoreError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    self.position = Some(position);
                    self.publish(0);
                    return Flow::Go;
                }
                Err(e) => {
                    tracing::error!(projection = P::NAME, error = %e, "cannot record a skip");
                    if let Flow::Stop = self.pause(backoff, None).await {
                        return Flow::Stop;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Waits `duration`, answering handles meanwhile. A skip of `failing` (the position the
    /// listener is failing at) is recorded and ends the wait early.
    async fn pause(&mut self, duration: Duration, failing: Option<Position>) -> Flow {
        let sleep = tokio::time::sleep(duration);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return Flow::Go,
                message = self.control.recv() => match message {
                    None => return Flow::Stop,
                    Some(Control::Stop(reply)) => {
                        // Answered once the lease is given up (`run`).
                        self.stopping = Some(reply);
                        return Flow::Stop;
                    }
                    Some(Control::Skip(position, reply)) if Some(position) == failing => {
                        tracing::warn!(projection = P::NAME, %position, "skipped");
                        self.status.send_modify(|s| {
                            s.skipped.push(position);
                            s.state = ProjectionState::Running;
                        });
                        let _ = reply.send(Ok(()));
                        return Flow::Go;
                    }
                    Some(Control::Skip(position, reply)) => {
                        let state = self.status.borrow().state.clone();
                        let _ = reply.send(Err(SkipError::NotFailingThere { name: P::NAME, position, state }));
                    }
                },
            }
        }
    }

    /// How many events of its types lie after `after`, the end of a batch of `records`
    /// records (`Some(None)` where the store cannot count cheaply), for its status; `None`:
    /// not counted now. Counted when it has not been for [`BEHIND_EVERY`], and for a batch
    /// that should reach the end of the log by the last count less what was taken since; a
    /// listener that kept up and takes a batch that took everything ready (`drained`) is
    /// taken to keep up (`Some(0)`, uncounted), so it costs the store no more than a count
    /// a second. Never for a partition (the count would take every partition's events).
    async fn count_behind(
        &mut self,
        after: Option<Position>,
        drained: bool,
        records: u64,
    ) -> Option<Option<u64>> {
        if self.partition.is_some() || !self.counts {
            return None;
        }
        let due = self.behind_at.is_none_or(|at| at.elapsed() >= BEHIND_EVERY);
        if !due {
            match self.behind_left {
                Some(0) if drained => return Some(Some(0)),
                // This batch should take it to the end (full or not): count, to be sure.
                Some(left) if left <= records => {}
                _ => return None,
            }
        }
        self.behind_at = Some(Instant::now());
        let counted = match self.store.head().await {
            Ok(None) => Ok(Some(0)),
            Ok(Some(head)) if after.is_some_and(|p| p >= head) => Ok(Some(0)),
            Ok(Some(head)) => self.store.count(after, head, P::EVENT_TYPES).await,
            Err(e) => Err(e),
        };
        match counted {
            Ok(None) => {
                self.counts = false;
                Some(None)
            }
            Ok(behind) => Some(behind),
            // Only the status waits for it: the estimate stands until the next count.
            Err(e) => {
                tracing::debug!(projection = P::NAME, error = %e, "counting how far behind failed");
                None
            }
        }
    }

    /// Whether this runner runs `rest`, the rest of a batch, now. A listener that keeps a
    /// checkpoint runs in one process at a time: the runner holding its lease (claimed, or
    /// renewed every [`RENEW_EVERY`]). Another process's runner is a standby: it follows
    /// the holder's checkpoint (its position, and so `wait_for`, go on with it) and takes
    /// over once the lease is released or runs out. Runners sharing one store (a process)
    /// share its lease, and take turns batch by batch as without one.
    async fn lead(&mut self, rest: &[Delivery]) -> Lead {
        if !Self::keeps_checkpoint() || self.leased_at.is_some_and(|at| at.elapsed() < RENEW_EVERY)
        {
            return Lead::Run;
        }
        if self.hold_lease().await {
            return Lead::Run;
        }
        let Some(end) = rest.last().map(Delivery::position) else {
            return Lead::Done;
        };
        match self.store.load_checkpoint(&self.key).await {
            Ok(Some(reached)) if reached >= end => {
                self.position = Some(end);
                self.publish(0);
                return Lead::Done;
            }
            Ok(Some(reached)) if self.position.is_none_or(|p| reached > p) => {
                self.position = Some(reached);
                self.publish(0);
            }
            _ => {}
        }
        match self.pause(STANDBY_POLL, None).await {
            Flow::Go => Lead::Wait,
            Flow::Stop => Lead::Stop,
        }
    }

    /// Renews the lease it holds, when due (idle: no batch renewed it).
    async fn renew(&mut self) {
        if self.leased_at.is_some_and(|at| at.elapsed() >= RENEW_EVERY) {
            self.hold_lease().await;
        }
    }

    /// Claims or renews the listener's lease: whether this runner holds it now. A claim that
    /// fails counts as held until the next renewal: runners then run as they do without
    /// leases (the lock and the checkpoint still make each effect once), so a store whose
    /// leases cannot be read (not migrated yet) does not stop its listeners.
    async fn hold_lease(&mut self) -> bool {
        let held = match self.store.claim(&self.key, LEASE).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(projection = P::NAME, error = %e, "claiming the lease failed; running without it");
                true
            }
        };
        match (held, self.leased_at.is_some()) {
            (true, false) => {
                tracing::info!(projection = P::NAME, key = %self.key, "running (holds the lease)");
            }
            (false, true) => {
                tracing::warn!(projection = P::NAME, key = %self.key, "lost the lease: standing by");
            }
            _ => {}
        }
        self.leased_at = held.then(Instant::now);
        held
    }

    /// Publishes the position reached and the rate.
    fn publish(&mut self, handled: u64) {
        let rate = self.rate.add(handled);
        let position = self.position;
        let progress = self.rebuild.as_mut().map(|r| {
            r.done += handled;
            *r
        });
        if let Some(r) = progress
            && r.done % 10_000 < handled
        {
            tracing::info!(
                projection = P::NAME,
                done = r.done,
                total = r.total,
                rate,
                "rebuilding"
            );
        }
        // The count made for this position, if the batch got there.
        let behind = self
            .behind_after
            .filter(|(at, _)| *at == position)
            .map(|(_, behind)| behind);
        self.status.send_modify(|s| {
            s.position = position;
            if let Some(behind) = behind {
                s.behind = behind;
            }
            s.handled += handled;
            s.rate = rate;
            match (&s.state, progress) {
                (ProjectionState::Stopped, _) => {}
                (_, Some(r)) => {
                    s.state = ProjectionState::Rebuilding {
                        done: r.done,
                        total: r.total.max(r.done),
                    };
                }
                (ProjectionState::Failed { .. }, None) => s.state = ProjectionState::Running,
                _ => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Partition;
    use crate::StreamId;

    /// The hash is XXH3-64 of `category 0xff id`: values computed apart from this crate
    /// (Python's `xxhash.xxh3_64_intdigest`), so a change of algorithm or input fails here.
    #[test]
    fn a_streams_partition_is_fixed() {
        for (category, id, hash) in [
            ("account", "1", 0x4f0e_760c_0e6e_00d6_u64),
            ("acct", "42", 0xa699_0928_4474_1e89),
            ("order", "7f3c", 0x411e_1481_9a06_4d54),
        ] {
            let stream = StreamId::new(category, id);
            for count in [1, 2, 3, 4, 16] {
                assert_eq!(
                    u64::from(Partition::of(&stream, count)),
                    hash % u64::from(count),
                    "{stream} in {count}"
                );
            }
        }
    }

    /// Ids whose bytes differ only above their two low bits (`a e i m q u y`) still spread
    /// over the partitions (FNV-1a put all of them in one of 2 or 4), and so do sequential
    /// numbers: every partition within half of its share either way.
    #[test]
    fn streams_spread_over_the_partitions() {
        let letters = ["a", "e", "i", "m", "q", "u", "y"];
        let mut alike = Vec::new();
        for a in letters {
            for b in letters {
                for c in letters {
                    alike.push(format!("{a}{b}{c}"));
                }
            }
        }
        let numbers: Vec<String> = (1..=2_000).map(|n| n.to_string()).collect();
        for ids in [alike, numbers] {
            for count in [2_u32, 3, 4, 8] {
                let mut sizes = vec![0_usize; count as usize];
                for id in &ids {
                    sizes[Partition::of(&StreamId::new("user", id.as_str()), count) as usize] += 1;
                }
                let expected = ids.len() / count as usize;
                assert!(
                    sizes
                        .iter()
                        .all(|&n| n * 2 >= expected && n * 2 <= expected * 3),
                    "{} ids in {count} partitions: {sizes:?}",
                    ids.len()
                );
            }
        }
    }
}
