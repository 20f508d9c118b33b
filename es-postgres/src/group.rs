//! Group commit ([`PostgresStore::with_group_commit`](crate::PostgresStore::with_group_commit)):
//! appends that arrive together go to PostgreSQL in one statement, one transaction and one
//! commit, and each caller learns its own outcome.
//!
//! One committer task per store takes the appends waiting for it, at most one per stream
//! (a second append to a stream waits for the next batch, keeping their order), and sends
//! them as one `INSERT ... SELECT`: a list of (append, stream, expected version), each with
//! the stream's current version, joined to the `UNNEST`ed events, and each append's rows kept
//! only where its own expected version holds. The statement runs on its own (autocommit), so
//! its answer comes after the commit: nobody hears of success before it. While one batch
//! commits, the next gathers; with nothing else in flight the committer sends at once.
//!
//! An append refused by its expected version fails alone (the caller looks whether it is a
//! retry of an append that already landed, as a lone append does); the rest land. When the
//! statement fails as a whole (a writer outside the batch took a version first, an event id
//! already stored, a lost connection), it is sent once more, then every append of the batch
//! runs on its own, each with the lone append's checks and outcome: an append whose batch
//! committed before the connection broke finds its events stored and gets its outcome.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::{Appended, Position};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row, SqlStr};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::append::Columns;
use crate::error::unique_violation;
use crate::pinned::pinned;
use crate::wake::Wake;

/// How a store batches appends: opt in with
/// [`PostgresStore::with_group_commit`](crate::PostgresStore::with_group_commit).
///
/// `max_batch` bounds the appends one statement carries (and so the rows it returns);
/// `max_wait` bounds how long the committer waits for more appends when others are on their
/// way (only then: a lone writer never waits). The defaults, 256 appends and no wait, batch
/// what arrives while the previous batch commits, which is where the gain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommit {
    /// The most appends one statement carries (at least 1).
    pub max_batch: usize,
    /// The longest the committer waits to fill a batch while other appends are in flight.
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

/// How often a batch's statement is sent before its appends run on their own.
const ATTEMPTS: usize = 2;

/// What a grouped append learns.
pub(crate) enum Outcome {
    /// Its events landed, committed.
    Landed(Appended),
    /// Its expected version did not hold: the stream was at this version. Nothing written.
    Refused(u64),
    /// The batch failed as a whole: run the append on its own.
    Alone,
}

/// One append waiting for the committer.
pub(crate) struct Request {
    pub(crate) category: String,
    pub(crate) stream_id: String,
    /// `None`: any version.
    pub(crate) expected: Option<i64>,
    pub(crate) columns: Columns,
    reply: oneshot::Sender<Outcome>,
}

/// What the committer needs from its store (never the store itself: the committer must end
/// when the store is dropped).
pub(crate) struct Committer {
    pub(crate) pool: PgPool,
    pub(crate) sql: SqlStr,
    pub(crate) pooled: bool,
    pub(crate) wake: Arc<Wake>,
}

/// A store's group commit: the committer's queue, started on first use and again when its
/// task is gone (the runtime it ran on shut down).
pub(crate) struct Group {
    config: GroupCommit,
    queue: Mutex<Option<mpsc::UnboundedSender<Request>>>,
    /// Appends handed to the group and not yet answered.
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Group {
    pub(crate) fn new(config: GroupCommit) -> Self {
        Self {
            config,
            queue: Mutex::new(None),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands one append to the committer and waits for its outcome. `committer` starts the
    /// task when none runs.
    pub(crate) async fn append(
        &self,
        committer: impl FnOnce() -> Committer,
        category: &str,
        stream_id: &str,
        expected: Option<i64>,
        columns: Columns,
    ) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            category: category.to_owned(),
            stream_id: stream_id.to_owned(),
            expected,
            columns,
            reply,
        };
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let sent = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = match &*queue {
                Some(q) if !q.is_closed() => q.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(run(
                        committer(),
                        self.config,
                        rx,
                        Arc::clone(&self.in_flight),
                    ));
                    *queue = Some(tx.clone());
                    tx
                }
            };
            queue.send(request)
        };
        match sent {
            // Not counted by the committer any more: it answers no one.
            Err(_) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                Outcome::Alone
            }
            // The committer went away (its runtime shut down) before answering.
            Ok(()) => outcome.await.unwrap_or(Outcome::Alone),
        }
    }
}

/// The committer: batch after batch, until the store is dropped.
async fn run(
    committer: Committer,
    config: GroupCommit,
    mut queue: mpsc::UnboundedReceiver<Request>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut waiting: VecDeque<Request> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(request) => waiting.push_back(request),
                None => return,
            }
        }
        while let Ok(request) = queue.try_recv() {
            waiting.push_back(request);
        }
        if !config.max_wait.is_zero() {
            let deadline = tokio::time::Instant::now() + config.max_wait;
            // Others are on their way when more appends are in flight than are waiting.
            while waiting.len() < config.max_batch
                && in_flight.load(Ordering::Acquire) > waiting.len()
            {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(request)) => waiting.push_back(request),
                    _ => break,
                }
            }
        }
        let batch = take_batch(&mut waiting, config.max_batch);
        commit(&committer, batch, &in_flight).await;
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
        if streams.insert((request.category.clone(), request.stream_id.clone())) {
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
    place: Vec<i64>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    event_ids: Vec<Uuid>,
}

fn arrays(batch: &[Request]) -> Arrays {
    let mut a = Arrays::default();
    for (i, request) in (0_i32..).zip(batch) {
        a.append.push(i);
        a.categories.push(request.category.clone());
        a.stream_ids.push(request.stream_id.clone());
        a.expected.push(request.expected);
        let c = &request.columns;
        a.owner.extend(std::iter::repeat_n(i, c.event_ids.len()));
        a.place
            .extend(1..=i64::try_from(c.event_ids.len()).unwrap_or(i64::MAX));
        a.event_types.extend_from_slice(&c.event_types);
        a.schema_versions.extend_from_slice(&c.schema_versions);
        a.payloads.extend_from_slice(&c.payloads);
        a.metadata.extend_from_slice(&c.metadata);
        a.event_ids.extend_from_slice(&c.event_ids);
    }
    a
}

/// Sends one batch and answers each of its appends.
async fn commit(committer: &Committer, batch: Vec<Request>, in_flight: &AtomicUsize) {
    let arrays = arrays(&batch);
    let mut outcomes = None;
    for _ in 0..ATTEMPTS {
        match send(committer, &arrays).await {
            Ok(rows) => {
                outcomes = Some(outcomes_of(&batch, &rows));
                break;
            }
            // A writer outside the batch took a version first: a fresh statement sees it.
            Err(e) if unique_violation(&e) == Some("events_stream_version_key") => {}
            Err(_) => break,
        }
    }
    let outcomes = outcomes.unwrap_or_else(|| batch.iter().map(|_| Outcome::Alone).collect());
    if outcomes.iter().any(|o| matches!(o, Outcome::Landed(_))) {
        committer.wake.appended(!committer.pooled);
    }
    for (request, outcome) in batch.into_iter().zip(outcomes) {
        in_flight.fetch_sub(1, Ordering::AcqRel);
        // A caller that gave up waiting (its future dropped) hears nothing; what landed stays.
        let _ = request.reply.send(outcome);
    }
}

async fn send(committer: &Committer, a: &Arrays) -> Result<Vec<PgRow>, sqlx::Error> {
    let mut conn = committer.pool.acquire().await?;
    let pooled = committer.pooled;
    pinned!(pooled, conn, |c| {
        sqlx::query(committer.sql.clone())
            .persistent(!pooled)
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
            .bind(&a.event_ids)
            .fetch_all(c)
            .await
    })
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
