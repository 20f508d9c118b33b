//! Reads: one stream from a version, the global log after a position, subscriptions, and the
//! horizon subscribers wait behind. Every read is paged (`LIMIT batch`), so memory is bounded
//! by one batch; rows that no longer decode are typed errors naming stream and version.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use es_core::{Metadata, Position, RecordedEvent, StoreError, StreamId};
use futures::{Stream, StreamExt, stream};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgRow};
use sqlx::types::Json;
use uuid::Uuid;

use crate::Inner;
use crate::error::backend;

/// The transaction every subscriber of the server is waiting behind.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Horizon {
    /// `pg_snapshot_xmin(pg_current_snapshot())`: events of transactions from this id on
    /// are not delivered yet.
    pub xmin: u64,
    /// The oldest backend with a transaction id, if any: the one holding the horizon.
    pub holder: Option<Holder>,
}

/// How far a subscriber is behind the log.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Lag {
    /// Committed events after the subscriber's position.
    pub events: u64,
    /// The age of the oldest of them, in seconds (`None` when there is none).
    pub seconds: Option<f64>,
}

/// A backend holding the horizon (from `pg_stat_activity`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Holder {
    /// Its process id (`pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// Its database.
    pub database: Option<String>,
    /// Its application name.
    pub application: Option<String>,
    /// Its state (`active`, `idle in transaction`, ...).
    pub state: Option<String>,
    /// When its transaction started.
    pub transaction_started: Option<DateTime<Utc>>,
    /// The start of its current or last query.
    pub query: Option<String>,
}

fn to_u64(n: i64, what: &str, stream: &StreamId, version: u64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt {
        stream: stream.clone(),
        version,
        reason: format!("{what} {n} is negative"),
    })
}

pub(crate) fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let category: String = row.try_get("category").map_err(backend)?;
    let stream_id: String = row.try_get("stream_id").map_err(backend)?;
    let stream = StreamId::new(category, stream_id);
    let raw_version: i64 = row.try_get("version").map_err(backend)?;
    let version = to_u64(raw_version, "version", &stream, 0)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version,
        reason,
    };
    let get = |e: sqlx::Error| corrupt(e.to_string());
    let sequence: i64 = row.try_get("position").map_err(get)?;
    let transaction: String = row.try_get("transaction_xid").map_err(get)?;
    let transaction: u64 = transaction
        .parse()
        .map_err(|_| corrupt(format!("transaction id {transaction:?} is not a u64")))?;
    let schema_version: i32 = row.try_get("schema_version").map_err(get)?;
    let schema_version = u16::try_from(schema_version)
        .map_err(|_| corrupt(format!("schema version {schema_version} is out of range")))?;
    let Json(payload): Json<serde_json::Value> = row.try_get("payload").map_err(get)?;
    let Json(metadata): Json<serde_json::Value> = row.try_get("metadata").map_err(get)?;
    let metadata: Metadata = serde_json::from_value(metadata)
        .map_err(|e| corrupt(format!("metadata does not read: {e}")))?;
    let event_id: Uuid = row.try_get("event_id").map_err(get)?;
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at").map_err(get)?;
    let position = Position::new(transaction, to_u64(sequence, "position", &stream, version)?);
    let event_type: String = row.try_get("event_type").map_err(get)?;
    Ok(RecordedEvent {
        position,
        stream,
        version,
        event_id,
        event_type,
        schema_version,
        payload,
        metadata,
        recorded_at,
    })
}

/// Flattens pages of records into a stream of records; an error ends the stream after it
/// is delivered.
fn flatten<S>(pages: S) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin
where
    S: Stream<Item = Result<Vec<RecordedEvent>, StoreError>> + Send + Unpin,
{
    pages.flat_map(|page| {
        stream::iter(match page {
            Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    })
}

async fn stream_page(
    inner: &Inner,
    stream: &StreamId,
    from: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(inner.sql.read_stream.clone())
        .bind(stream.category())
        .bind(stream.id())
        .bind(from)
        .bind(inner.batch)
        .fetch_all(&inner.pool)
        .await
        .map_err(backend)?;
    rows.iter().map(decode).collect()
}

/// Where a paged read is: the next version of a stream, or the last position of the log.
enum Cursor {
    Stream { stream: StreamId, from: i64 },
    Log { after: Option<Position> },
}

impl Cursor {
    async fn page(&self, inner: &Inner) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Self::Stream { stream, from } => stream_page(inner, stream, *from).await,
            Self::Log { after } => log_page(inner, *after).await,
        }
    }

    /// Moves past `last`; false when nothing can follow it.
    fn advance(&mut self, last: &RecordedEvent) -> bool {
        match self {
            Self::Stream { from, .. } => {
                match i64::try_from(last.version)
                    .ok()
                    .and_then(|v| v.checked_add(1))
                {
                    Some(next) => {
                        *from = next;
                        true
                    }
                    None => false,
                }
            }
            Self::Log { after } => {
                *after = Some(last.position);
                true
            }
        }
    }
}

/// Reads page after page until a short page: memory holds one page at a time.
fn paged(
    inner: Arc<Inner>,
    cursor: Option<Cursor>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    let pages = stream::unfold((inner, cursor), |(inner, cursor)| async move {
        let mut cursor = cursor?;
        match cursor.page(&inner).await {
            Ok(page) => {
                let last = page.last()?;
                let full = i64::try_from(page.len()).is_ok_and(|n| n >= inner.batch);
                let more = full && cursor.advance(last);
                Some((Ok(page), (inner, more.then_some(cursor))))
            }
            Err(e) => Some((Err(e), (inner, None))),
        }
    });
    flatten(Box::pin(pages))
}

pub(crate) fn read_stream(
    inner: Arc<Inner>,
    stream: StreamId,
    from: u64,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    // Versions past i64::MAX cannot exist: nothing to read.
    let cursor = i64::try_from(from.max(1))
        .ok()
        .map(|from| Cursor::Stream { stream, from });
    paged(inner, cursor)
}

pub(crate) fn read_all(
    inner: Arc<Inner>,
    after: Option<Position>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    paged(inner, Some(Cursor::Log { after }))
}

/// The `(transaction id, sequence)` parameters of a position (the start of the log: 0, 0).
fn position_params(after: Option<Position>) -> (String, i64) {
    let (transaction, sequence) = after.map_or((0, 0), |p| (p.major(), p.minor()));
    (
        transaction.to_string(),
        i64::try_from(sequence).unwrap_or(i64::MAX),
    )
}

pub(crate) async fn lag(inner: &Inner, after: Option<Position>) -> Result<Lag, StoreError> {
    let (transaction, sequence) = position_params(after);
    let row = sqlx::query(inner.sql.lag.clone())
        .bind(transaction)
        .bind(sequence)
        .fetch_one(&inner.pool)
        .await
        .map_err(backend)?;
    let events: i64 = row.try_get("events").map_err(backend)?;
    Ok(Lag {
        events: u64::try_from(events).unwrap_or(0),
        seconds: row.try_get("seconds").map_err(backend)?,
    })
}

/// One page of the global log after `after`, below the horizon.
async fn log_page(
    inner: &Inner,
    after: Option<Position>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let (transaction, sequence) = position_params(after);
    let rows = sqlx::query(inner.sql.read_all.clone())
        .bind(transaction)
        .bind(sequence)
        .bind(inner.batch)
        .fetch_all(&inner.pool)
        .await
        .map_err(backend)?;
    rows.iter().map(decode).collect()
}

struct Subscription {
    inner: Arc<Inner>,
    after: Option<Position>,
    local: tokio::sync::watch::Receiver<u64>,
    listener: Option<PgListener>,
    /// Whether to try (again) to LISTEN before the next wait.
    try_listen: bool,
    /// The last read failed: wait a poll interval before the next.
    failed: bool,
}

impl Subscription {
    async fn listen(&mut self) {
        self.try_listen = false;
        let connected = async {
            let mut listener = PgListener::connect_with(&self.inner.pool).await?;
            listener.listen(self.inner.wake.channel()).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => self.listener = Some(listener),
            Err(e) => tracing::debug!(error = %e, "LISTEN failed; the subscription polls"),
        }
    }

    /// Waits for a wake-up: a local append, a notification, or the poll interval.
    async fn wait(&mut self) {
        if self.inner.listen && self.try_listen {
            self.listen().await;
        }
        let poll = tokio::time::sleep(self.inner.poll);
        let local = self.local.changed();
        let notified = async {
            match self.listener.as_mut() {
                Some(listener) => listener.recv().await.map(drop),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = poll => {}
            changed = local => {
                // The sender lives as long as the store: a closed channel cannot happen
                // while we hold it, but never spin on one.
                if changed.is_err() {
                    tokio::time::sleep(self.inner.poll).await;
                }
            }
            received = notified => {
                if received.is_err() {
                    // Reconnect before the next wait; a notification lost meanwhile is
                    // covered by the poll.
                    self.listener = None;
                    self.try_listen = true;
                }
            }
        }
    }

    async fn next_page(mut self) -> Option<(Result<Vec<RecordedEvent>, StoreError>, Self)> {
        loop {
            if self.failed {
                self.failed = false;
                tokio::time::sleep(self.inner.poll).await;
            }
            // Seen before reading, so an append that commits after the read wakes us.
            self.local.borrow_and_update();
            match log_page(&self.inner, self.after).await {
                Ok(page) if !page.is_empty() => {
                    self.after = page.last().map(|r| r.position);
                    return Some((Ok(page), self));
                }
                Ok(_) => self.wait().await,
                Err(e) => {
                    self.failed = true;
                    return Some((Err(e), self));
                }
            }
        }
    }
}

pub(crate) fn subscribe(
    inner: Arc<Inner>,
    after: Option<Position>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    let local = inner.wake.local();
    let subscription = Subscription {
        inner,
        after,
        local,
        listener: None,
        try_listen: true,
        failed: false,
    };
    flatten(Box::pin(stream::unfold(
        subscription,
        Subscription::next_page,
    )))
}

const HOLDER: &str = "SELECT pid, datname, application_name, state, xact_start, left(query, 200) AS query \
     FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY age(backend_xid) DESC LIMIT 1";

pub(crate) async fn horizon(inner: &Inner) -> Result<Horizon, StoreError> {
    let xmin: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(&inner.pool)
        .await
        .map_err(backend)?;
    let xmin = xmin
        .parse()
        .map_err(|_| StoreError::Backend(format!("xmin {xmin:?} is not a u64").into()))?;
    let holder = sqlx::query(HOLDER)
        .fetch_optional(&inner.pool)
        .await
        .map_err(backend)?
        .map(|row| -> Result<Holder, sqlx::Error> {
            Ok(Holder {
                pid: row.try_get("pid")?,
                database: row.try_get("datname")?,
                application: row.try_get("application_name")?,
                state: row.try_get("state")?,
                transaction_started: row.try_get("xact_start")?,
                query: row.try_get("query")?,
            })
        })
        .transpose()
        .map_err(backend)?;
    Ok(Horizon { xmin, holder })
}
