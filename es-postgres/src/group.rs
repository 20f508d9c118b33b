//! Group commit ([`PostgresStore::with_group_commit`](crate::PostgresStore::with_group_commit)):
//! appends that arrive together go to PostgreSQL in one statement, one transaction and one
//! commit, and each caller learns its own outcome.
//!
//! Appends queue up; one caller at a time leads. The leader takes the waiting appends, at
//! most one per stream (a second append to a stream waits for the next batch, keeping their
//! order), and sends them as one `INSERT ... SELECT`: a list of (append, stream, expected
//! version), each with the stream's current version, joined to the `UNNEST`ed events, and
//! each append's rows kept only where its own expected version holds. The statement runs on
//! its own (autocommit), so its answer comes after the commit: nobody hears of success
//! before it. The leader answers every append of its batch, lets the callers it answered
//! run a few scheduler rounds (a writer's next append often follows at once, and so joins
//! the next batch whole instead of leading one of itself), then hands the lead to the first
//! append still waiting: no task of its own, no hand-over between tasks on the way to the
//! database. A leader alone in its batch runs as a lone append: with nothing else in
//! flight, nothing waits and nothing changes.
//!
//! A batch of one-event appends, each to a stream the store has seen reach its expected
//! version (`reached.rs`), is a plain `INSERT` of the rows at the versions after those,
//! with no look at the streams. A version taken under one of them fails that statement; it
//! is sent again as one that skips a taken version (`ON CONFLICT ... DO NOTHING`), as are
//! the next few such batches, and an append whose row was skipped runs on its own, which
//! gives its conflict (or, for a retry of an append that landed, its first outcome).
//!
//! An append refused by its expected version fails alone (the caller looks whether it is a
//! retry of an append that already landed, as a lone append does); the rest land. When the
//! statement fails as a whole (a writer outside the batch took a version first, an event id
//! already stored, a lost connection), it is sent once more, then every append of the batch
//! runs on its own, each with the lone append's checks and outcome: an append whose batch
//! committed before the connection broke finds its events stored and gets its outcome. A
//! leader whose caller gives up (its future dropped) hands the lead on all the same, and the
//! appends of its batch run on their own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::{Appended, Position, StoreError};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::Inner;
use crate::append::Columns;
use crate::error::unique_violation;
use crate::pinned::pinned;

/// How a store batches appends: opt in with
/// [`PostgresStore::with_group_commit`](crate::PostgresStore::with_group_commit).
///
/// `max_batch` bounds the appends one statement carries (and so the rows it returns);
/// `max_wait` bounds how long a batch's leader waits for more appends when others are on their
/// way (only then: a lone writer never waits). The defaults, 256 appends and no wait, batch
/// what arrives while the previous batch commits, which is where the gain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommit {
    /// The most appends one statement carries (at least 1).
    pub max_batch: usize,
    /// The longest a leader waits to fill a batch while other appends are in flight.
    pub max_wait: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            max_batch: 256,
            max_wait: Duration::ZERO,
        }
    }
}

impl GroupCommit {
    /// The defaults: at most 256 appends per statement, no wait.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `appends` appends per statement (at least 1).
    #[must_use]
    pub fn max_batch(mut self, appends: usize) -> Self {
        self.max_batch = appends.max(1);
        self
    }

    /// Waits up to `wait` to fill a batch while other appends are in flight.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }
}

/// The most events one statement carries: a batch stops growing there (one larger append
/// still goes, alone).
const MAX_EVENTS: usize = 8_192;

/// How many scheduler rounds a leader lets the callers of the batch it answered take to
/// append again, before passing the lead on.
const YIELD_ROUNDS: usize = 4;

/// How many batches of exact appends go with the statement that skips a taken version after
/// one found a version taken (one failed statement in this many, under steady contention).
const CLASHED_BATCHES: usize = 16;

/// How often a batch's statement is sent before its appends run on their own.
const ATTEMPTS: usize = 2;

/// What a grouped append learns.
pub(crate) enum Outcome {
    /// Its events landed, committed.
    Landed(Appended),
    /// Its expected version did not hold: the stream was at this version. Nothing written.
    Refused(u64),
    /// Run the append on its own: it was alone in its batch, or the batch failed as a whole.
    Alone,
    /// Lead the next batch (the append still waits for its outcome).
    Lead,
    /// It led a batch of itself alone, and ran as a lone append holding the lead.
    Ran(Result<Appended, StoreError>),
}

/// One append waiting for a batch.
pub(crate) struct Request {
    /// Tells a leader its own append from the others.
    id: u64,
    pub(crate) category: String,
    pub(crate) stream_id: String,
    /// `None`: any version.
    pub(crate) expected: Option<i64>,
    /// One event, to a stream known to have reached `expected`: it can go in a batch that
    /// does not look at the streams (`Statements::append_group_exact`).
    exact: bool,
    pub(crate) columns: Columns,
    /// The lead, then the outcome.
    reply: mpsc::UnboundedSender<Outcome>,
}

/// A store's group commit: the appends waiting for a batch, and whether one leads.
pub(crate) struct Group {
    config: GroupCommit,
    state: Mutex<State>,
    /// Appends in the group, waiting or in a batch.
    in_flight: AtomicUsize,
    /// How many more batches of exact appends go with the statement that skips a taken
    /// version, after one found a version taken.
    clashed: AtomicUsize,
    /// Rung when an append joins the queue (for a leader waiting to fill its batch).
    arrived: Notify,
    /// The next request's id.
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Request>,
    leading: bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The lead, held while a batch is gathered and sent; dropping it hands the lead to the
/// first append still waiting, or lays it down.
struct Lead<'g>(&'g Group);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.0.lock().pass_lead();
    }
}

impl State {
    /// Hands the lead to the first append still waiting (it leads the next batch), or lays
    /// it down when none waits.
    fn pass_lead(&mut self) {
        loop {
            match self.waiting.front() {
                None => {
                    self.leading = false;
                    return;
                }
                Some(next) => {
                    if next.reply.send(Outcome::Lead).is_ok() {
                        return;
                    }
                    // Its caller is gone (and uncounted): nobody waits for it.
                    self.waiting.pop_front();
                }
            }
        }
    }
}

/// The caller's end of its append's channel. A caller that gives up after the lead was
/// handed to it, before it took it up, passes it on: a lead lost with it would leave every
/// later append waiting.
struct Waiting<'g> {
    group: &'g Group,
    outcome: mpsc::UnboundedReceiver<Outcome>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.outcome.close();
        while let Ok(message) = self.outcome.try_recv() {
            if matches!(message, Outcome::Lead) {
                self.group.lock().pass_lead();
            }
        }
    }
}

/// Counts an append in the group until its caller has the outcome (or is gone).
struct Counted<'g>(&'g Group);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Group {
    pub(crate) fn new(config: GroupCommit) -> Self {
        Self {
            config,
            state: Mutex::new(State::default()),
            in_flight: AtomicUsize::new(0),
            clashed: AtomicUsize::new(0),
            arrived: Notify::new(),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one append and waits for its outcome, leading batches when its turn comes. A
    /// leader whose batch is its own append alone runs it with `alone` (the lone append's
    /// statement, cheaper than the batch's for one append) while it holds the lead.
    pub(crate) async fn append(
        &self,
        inner: &Inner,
        category: &str,
        stream_id: &str,
        (expected, exact): (Option<i64>, bool),
        columns: Columns,
        alone: impl AsyncFnOnce() -> Result<Appended, StoreError>,
    ) -> Outcome {
        let mut alone = Some(alone);
        // The caller keeps no sender: when the leader of its batch gives up (its future
        // dropped), the channel closes and the append runs on its own.
        let (reply, outcome) = mpsc::unbounded_channel();
        let mut outcome = Waiting {
            group: self,
            outcome,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request {
            id,
            category: category.to_owned(),
            stream_id: stream_id.to_owned(),
            expected,
            exact: exact && expected.is_some() && columns.event_ids.len() == 1,
            columns,
            reply,
        };
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(self);
        let mut lead = {
            let mut state = self.lock();
            state.waiting.push_back(request);
            !std::mem::replace(&mut state.leading, true)
        };
        self.arrived.notify_one();
        loop {
            if lead {
                let held = Lead(self);
                self.gather().await;
                let batch = {
                    let mut state = self.lock();
                    take_batch(&mut state.waiting, self.config.max_batch)
                };
                if let [only] = &batch[..]
                    && only.id == id
                    && let Some(alone) = alone.take()
                {
                    let result = alone().await;
                    drop(held);
                    drop(counted);
                    return Outcome::Ran(result);
                }
                let answered = batch.len();
                commit(inner, self, batch).await;
                if answered > 1 {
                    self.let_answered_return().await;
                }
                drop(held);
            }
            match outcome.outcome.recv().await {
                Some(Outcome::Lead) => lead = true,
                Some(result) => {
                    drop(counted);
                    return result;
                }
                // Dropped unanswered: its batch's leader gave up.
                None => return Outcome::Alone,
            }
        }
    }

    /// Right after a batch is answered, before the lead is passed on: its callers often
    /// append again at once (a writer's next command), and the first of them to arrive would
    /// otherwise lead a batch of itself alone while the rest queue behind it. Lets the
    /// answered tasks run for a few scheduler rounds ([`YIELD_ROUNDS`] at most; fewer once
    /// appends wait and a round brings no more), so the next batch takes them together. No
    /// timer: a caller that does not come back costs a few rounds of the scheduler,
    /// microseconds.
    async fn let_answered_return(&self) {
        let mut waiting = self.lock().waiting.len();
        for _ in 0..YIELD_ROUNDS {
            tokio::task::yield_now().await;
            let now = self.lock().waiting.len();
            if now == waiting && now > 0 {
                return;
            }
            waiting = now;
        }
    }

    /// Waits up to `max_wait` for the appends in flight to join the queue, or for a full
    /// batch; not at all when no append is on its way.
    async fn gather(&self) {
        let wait = self.config.max_wait;
        if wait.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            let waiting = self.lock().waiting.len();
            if waiting >= self.config.max_batch || self.in_flight.load(Ordering::Acquire) <= waiting
            {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return;
            }
        }
    }
}

/// The next batch: the waiting appends in order, at most one per stream and `max_batch` in
/// all, stopping at [`MAX_EVENTS`]; the others keep their order for the next one.
fn take_batch(waiting: &mut VecDeque<Request>, max_batch: usize) -> Vec<Request> {
    let mut batch = Vec::new();
    let mut streams = HashSet::new();
    let mut events = 0;
    let mut later = VecDeque::new();
    while let Some(request) = waiting.pop_front() {
        let count = request.columns.event_ids.len();
        let full = batch.len() >= max_batch || (!batch.is_empty() && events + count > MAX_EVENTS);
        if full {
            later.push_back(request);
            later.extend(waiting.drain(..));
            break;
        }
        let stream = (request.category.clone(), request.stream_id.clone());
        if streams.insert(stream) {
            events += count;
            batch.push(request);
        } else {
            later.push_back(request);
        }
    }
    *waiting = later;
    batch
}

/// The batch's arrays: per append (index, category, stream id, expected version) and per
/// event (its append's index, its place in the append, and its columns).
#[derive(Default)]
struct Arrays {
    append: Vec<i32>,
    categories: Vec<String>,
    stream_ids: Vec<String>,
    expected: Vec<Option<i64>>,
    owner: Vec<i32>,
    /// Each event's version, if its append's expected version holds.
    versions: Vec<i64>,
    place: Vec<i64>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    event_ids: Vec<Uuid>,
}

/// Moves the batch's columns into the arrays (the event ids stay: they count the events).
fn arrays(batch: &mut [Request]) -> Arrays {
    let mut a = Arrays::default();
    for (i, request) in (0_i32..).zip(batch) {
        a.append.push(i);
        a.categories.push(request.category.clone());
        a.stream_ids.push(request.stream_id.clone());
        a.expected.push(request.expected);
        let c = &mut request.columns;
        a.owner.extend(std::iter::repeat_n(i, c.event_ids.len()));
        let places = 1..=i64::try_from(c.event_ids.len()).unwrap_or(i64::MAX);
        let after = request.expected.unwrap_or(0);
        a.versions
            .extend(places.clone().map(|p| after.saturating_add(p)));
        a.place.extend(places);
        a.event_types.append(&mut c.event_types);
        a.schema_versions.append(&mut c.schema_versions);
        a.payloads.append(&mut c.payloads);
        a.metadata.append(&mut c.metadata);
        a.event_ids.extend_from_slice(&c.event_ids);
    }
    a
}

/// Sends one batch and answers each of its appends.
async fn commit(inner: &Inner, group: &Group, mut batch: Vec<Request>) {
    // One event each, to streams known to be at their expected versions: nothing to look at.
    let exact = batch.iter().all(|r| r.exact);
    // Versions were taken lately: skip a taken one rather than fail the batch on it.
    let mut skip = exact
        && group
            .clashed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
    let arrays = arrays(&mut batch);
    let mut outcomes = None;
    for _ in 0..ATTEMPTS {
        let sent = if exact {
            send_exact(inner, &arrays, skip)
                .await
                .map(|rows| outcomes_exact(&batch, &rows))
        } else {
            send(inner, &arrays)
                .await
                .map(|rows| outcomes_of(&batch, &rows))
        };
        match sent {
            Ok(answers) => {
                outcomes = Some(answers);
                break;
            }
            // A writer outside the batch took a version first: a fresh statement sees it
            // (an exact batch skips the taken version, in this batch and the next few).
            Err(e) if unique_violation(&e) == Some("events_stream_version_key") => {
                if exact {
                    skip = true;
                    group.clashed.store(CLASHED_BATCHES, Ordering::Release);
                }
            }
            Err(_) => break,
        }
    }
    let outcomes = outcomes.unwrap_or_else(|| batch.iter().map(|_| Outcome::Alone).collect());
    if outcomes.iter().any(|o| matches!(o, Outcome::Landed(_))) {
        inner.wake.appended(!inner.settings.pooled);
    }
    for (request, outcome) in batch.into_iter().zip(outcomes) {
        // A caller that gave up waiting (its future dropped) hears nothing; what landed stays.
        let _ = request.reply.send(outcome);
    }
}

/// The batch's statement (`Statements::append_group`).
async fn send(inner: &Inner, a: &Arrays) -> Result<Vec<PgRow>, sqlx::Error> {
    let query = sqlx::query(inner.sql.append_group.clone())
        .bind(&a.append)
        .bind(&a.categories)
        .bind(&a.stream_ids)
        .bind(&a.expected)
        .bind(&a.owner)
        .bind(&a.place)
        .bind(&a.event_types)
        .bind(&a.schema_versions)
        .bind(&a.payloads)
        .bind(&a.metadata)
        .bind(&a.event_ids);
    on_held(inner, query).await
}

/// A batch of one-event appends to streams known to be at their expected versions
/// (`Statements::append_group_exact`, or `_or_skip` to skip a taken version).
async fn send_exact(inner: &Inner, a: &Arrays, skip: bool) -> Result<Vec<PgRow>, sqlx::Error> {
    let statement = if skip {
        &inner.sql.append_group_exact_or_skip
    } else {
        &inner.sql.append_group_exact
    };
    let query = sqlx::query(statement.clone())
        .bind(&a.categories)
        .bind(&a.stream_ids)
        .bind(&a.versions)
        .bind(&a.event_types)
        .bind(&a.schema_versions)
        .bind(&a.payloads)
        .bind(&a.metadata)
        .bind(&a.event_ids);
    on_held(inner, query).await
}

/// A batch's statement, on a held connection (a failed one is given up; the batch is then
/// sent again, or its appends run alone).
async fn on_held(
    inner: &Inner,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Vec<PgRow>, sqlx::Error> {
    let mut conn = inner.held.lease(&inner.pool).await?;
    let pooled = inner.settings.pooled;
    let rows = pinned!(pooled, conn, |c| {
        query.persistent(!pooled).fetch_all(c).await
    });
    conn.finish_sqlx(&rows);
    rows
}

/// Each one-event append's outcome from an exact batch's rows (one per inserted event,
/// found by its id): landed, or run on its own (its version was taken: the lone append
/// tells the conflict, or finds it a retry of an append that landed).
fn outcomes_exact(batch: &[Request], rows: &[PgRow]) -> Vec<Outcome> {
    let landed: HashMap<Uuid, &PgRow> = rows
        .iter()
        .filter_map(|row| Some((row.try_get::<Uuid, _>(0).ok()?, row)))
        .collect();
    batch
        .iter()
        .map(|request| {
            let row = request
                .columns
                .event_ids
                .first()
                .and_then(|id| landed.get(id));
            let read = |row: &PgRow| -> Option<Appended> {
                let sequence: i64 = row.try_get(1).ok()?;
                let transaction: String = row.try_get(2).ok()?;
                let version: i64 = row.try_get(3).ok()?;
                let recorded_at: DateTime<Utc> = row.try_get(4).ok()?;
                Some(Appended {
                    version: u64::try_from(version).ok()?,
                    positions: vec![Position::new(
                        transaction.parse().ok()?,
                        u64::try_from(sequence).ok()?,
                    )],
                    recorded_at,
                })
            };
            row.and_then(|row| read(row))
                .map_or(Outcome::Alone, Outcome::Landed)
        })
        .collect()
}

/// One event that landed: its version, position and time.
type Landed = (u64, Position, DateTime<Utc>);

/// What the statement's rows say of one append.
#[derive(Default)]
struct Rows {
    /// The stream's version as the statement saw it.
    current: Option<i64>,
    landed: Vec<Landed>,
    /// A row of it did not read.
    unreadable: bool,
}

/// One row of the statement's answer: an append's index, the version it saw, and one
/// inserted event (none when the append was refused). `None`: the row does not read.
fn answer(row: &PgRow) -> Option<(i64, Option<Landed>)> {
    let current: i64 = row.try_get(1).ok()?;
    let position: Option<i64> = row.try_get(2).ok()?;
    let Some(sequence) = position else {
        return Some((current, None));
    };
    let transaction: String = row.try_get(3).ok()?;
    let version: i64 = row.try_get(4).ok()?;
    let recorded_at: DateTime<Utc> = row.try_get(5).ok()?;
    let position = Position::new(transaction.parse().ok()?, u64::try_from(sequence).ok()?);
    Some((
        current,
        Some((u64::try_from(version).ok()?, position, recorded_at)),
    ))
}

/// Each append's outcome from the statement's rows. An append whose rows do not add up (a
/// row that does not read, a count that does not match) runs on its own: its check finds
/// what was stored.
fn outcomes_of(batch: &[Request], rows: &[PgRow]) -> Vec<Outcome> {
    let mut by_append: Vec<Rows> = batch.iter().map(|_| Rows::default()).collect();
    for row in rows {
        let Some(of) = row
            .try_get::<i32, _>(0)
            .ok()
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| by_append.get_mut(i))
        else {
            continue;
        };
        match answer(row) {
            Some((current, landed)) => {
                of.current = Some(current);
                of.landed.extend(landed);
            }
            None => of.unreadable = true,
        }
    }
    batch
        .iter()
        .zip(by_append)
        .map(|(request, rows)| match rows {
            Rows {
                current: Some(current),
                mut landed,
                unreadable: false,
            } => {
                if landed.is_empty() {
                    u64::try_from(current).map_or(Outcome::Alone, Outcome::Refused)
                } else if landed.len() == request.columns.event_ids.len() {
                    // RETURNING promises no order: by version.
                    landed.sort_unstable_by_key(|(v, p, _)| (*v, *p));
                    let recorded_at = landed[0].2;
                    Outcome::Landed(Appended {
                        version: landed.last().map_or(0, |(v, _, _)| *v),
                        positions: landed.into_iter().map(|(_, p, _)| p).collect(),
                        recorded_at,
                    })
                } else {
                    Outcome::Alone
                }
            }
            _ => Outcome::Alone,
        })
        .collect()
}
