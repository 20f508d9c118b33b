//! Reads: one stream from a version, the global log after a position, subscriptions, and the
//! horizon subscribers wait behind. Every read is paged (`LIMIT batch`, and a byte bound), so
//! memory is bounded by one page (a subscription: two, as it reads one page ahead of its
//! listener); rows that no longer decode are typed errors naming stream and version.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::{
    Delivery, LoadRecord, Metadata, Payload, Position, RecordedEvent, StoreError, StreamId,
};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::Inner;
use crate::error::backend;
use crate::held::held;
use crate::personal;
use crate::pinned::pinned;

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

/// What holds the horizon: a backend with an open transaction (from `pg_stat_activity`),
/// or a prepared transaction (two-phase commit, from `pg_prepared_xacts`), which holds it
/// with no backend at all until someone runs `COMMIT PREPARED` or `ROLLBACK PREPARED`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Holder {
    /// The backend's process id (`pg_terminate_backend(pid)` ends it); `None` for a
    /// prepared transaction.
    pub pid: Option<i32>,
    /// The global id of a prepared transaction (`ROLLBACK PREPARED '<gid>'` ends it).
    pub prepared: Option<String>,
    /// Its database.
    pub database: Option<String>,
    /// Its application name.
    pub application: Option<String>,
    /// Its state (`active`, `idle in transaction`, ...; `prepared` for a prepared
    /// transaction).
    pub state: Option<String>,
    /// When its transaction started (for a prepared transaction: when it was prepared).
    pub transaction_started: Option<DateTime<Utc>>,
    /// The start of its current or last query.
    pub query: Option<String>,
}

/// Where a row sits: read apart from the rest of the row, so a row that does not decode can
/// still be stepped over (and named) by its position.
struct RowKey {
    position: Option<Position>,
    version: Option<i64>,
}

/// The columns of a record, by index: every query that reads records selects
/// `schema::COLUMNS` first, in this order (an index costs no lookup of the name per row).
mod col {
    pub(super) const POSITION: usize = 0;
    pub(super) const TRANSACTION_XID: usize = 1;
    pub(super) const CATEGORY: usize = 2;
    pub(super) const STREAM_ID: usize = 3;
    pub(super) const VERSION: usize = 4;
    pub(super) const EVENT_TYPE: usize = 5;
    pub(super) const SCHEMA_VERSION: usize = 6;
    pub(super) const PAYLOAD: usize = 7;
    pub(super) const METADATA: usize = 8;
    pub(super) const EVENT_ID: usize = 9;
    pub(super) const RECORDED_AT: usize = 10;
}

fn row_key(row: &PgRow) -> RowKey {
    let sequence = row
        .try_get::<i64, _>(col::POSITION)
        .ok()
        .and_then(|s| u64::try_from(s).ok());
    let transaction = row
        .try_get_raw(col::TRANSACTION_XID)
        .ok()
        .and_then(|v| v.as_str().ok().and_then(|t| t.parse::<u64>().ok()));
    RowKey {
        position: transaction.zip(sequence).map(|(t, s)| Position::new(t, s)),
        version: row.try_get(col::VERSION).ok(),
    }
}

/// The payload's column index, for readers of raw rows.
pub(crate) const PAYLOAD_COLUMN: usize = col::PAYLOAD;

/// A whole row, key included, its sealed fields opened with `keys`.
pub(crate) fn decode_row(
    row: &PgRow,
    keys: Option<&personal::Keys>,
) -> Result<RecordedEvent, StoreError> {
    decode(row, &row_key(row), keys)
}

/// A row as a record, sealed personal fields opened with `keys` (read as `null` when the
/// subject's key is gone).
fn decode(
    row: &PgRow,
    key: &RowKey,
    keys: Option<&personal::Keys>,
) -> Result<RecordedEvent, StoreError> {
    let mut record = decode_sealed(row, key)?;
    if let Some(keys) = keys
        && let Err(reason) =
            es_core::store::personal::open_recorded(&mut record.payload, record.recorded_at, |s| {
                es_core::store::personal::dated_key_of(keys, s)
            })
    {
        return Err(StoreError::Corrupt {
            stream: record.stream,
            version: record.version,
            position: Some(record.position),
            reason,
        });
    }
    Ok(record)
}

/// The stream of a row: the one of the row this thread decoded before, when it is the same
/// (a stream's rows then share one id, counted, not copied), or a new one.
fn row_stream(category: &str, id: &str) -> StreamId {
    thread_local! {
        static LAST: std::cell::RefCell<Option<StreamId>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some(stream) if stream.category() == category && stream.id() == id => stream.clone(),
        _ => last.insert(StreamId::new(category, id)).clone(),
    })
}

fn decode_sealed(row: &PgRow, key: &RowKey) -> Result<RecordedEvent, StoreError> {
    let category: &str = row.try_get(col::CATEGORY).map_err(backend)?;
    let stream_id: &str = row.try_get(col::STREAM_ID).map_err(backend)?;
    let stream = row_stream(category, stream_id);
    let version = key.version.and_then(|v| u64::try_from(v).ok());
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: version.unwrap_or(0),
        position: key.position,
        reason,
    };
    let (Some(position), Some(version)) = (key.position, version) else {
        return Err(corrupt(
            "position, transaction id or version out of range".to_owned(),
        ));
    };
    let get = |e: sqlx::Error| corrupt(e.to_string());
    let schema_version: i32 = row.try_get(col::SCHEMA_VERSION).map_err(get)?;
    let schema_version = u16::try_from(schema_version)
        .map_err(|_| corrupt(format!("schema version {schema_version} is out of range")))?;
    let Json(payload): Json<serde_json::Value> = row.try_get(col::PAYLOAD).map_err(get)?;
    // Straight into `Metadata`: one parse, no intermediate JSON value.
    let Json(metadata): Json<Metadata> = row
        .try_get(col::METADATA)
        .map_err(|e| corrupt(format!("metadata does not read: {e}")))?;
    let event_id: Uuid = row.try_get(col::EVENT_ID).map_err(get)?;
    let recorded_at: DateTime<Utc> = row.try_get(col::RECORDED_AT).map_err(get)?;
    let event_type: String = row.try_get(col::EVENT_TYPE).map_err(get)?;
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

/// The bytes of payload and metadata a row holds, as sent.
fn row_bytes(row: &PgRow) -> usize {
    [col::PAYLOAD, col::METADATA]
        .into_iter()
        .filter_map(|column| row.try_get_raw(column).ok())
        .filter_map(|value| value.as_bytes().ok().map(<[u8]>::len))
        .sum()
}

/// One item of a subscription's page: a row the cursor moved past (decoded by the
/// listener's side), the log's head past rows of other types, or a failed read.
enum Placed {
    /// A row, with the keys to open its page's sealed fields (none: nothing sealed).
    Row(PgRow, RowKey, Option<Arc<personal::Keys>>),
    Progress(Position),
    Failed(StoreError),
}

/// Attaches to `page`'s rows the keys their sealed fields need (one query, only for a page
/// holding any). A failure to read them fails the page: the reader stops there (a
/// subscriber reads again from its own position).
async fn with_keys(inner: &Inner, mut page: Vec<Placed>) -> Result<Vec<Placed>, StoreError> {
    let rows: Vec<&PgRow> = page
        .iter()
        .filter_map(|p| match p {
            Placed::Row(row, ..) => Some(row),
            _ => None,
        })
        .collect();
    if let Some(keys) = personal::for_rows(inner, &rows, col::PAYLOAD).await? {
        for placed in &mut page {
            if let Placed::Row(_, _, slot) = placed {
                *slot = Some(Arc::clone(&keys));
            }
        }
    }
    Ok(page)
}

impl Placed {
    /// A read's item: a record, or the error in its place (a read of the whole log or of a
    /// stream has no progress items).
    fn record(self) -> Option<Result<RecordedEvent, StoreError>> {
        match self {
            Self::Row(row, key, keys) => Some(decode(&row, &key, keys.as_deref())),
            Self::Progress(_) => None,
            Self::Failed(e) => Some(Err(e)),
        }
    }

    fn deliver(self) -> Result<Delivery, StoreError> {
        match self {
            Self::Row(row, key, keys) => decode(&row, &key, keys.as_deref()).map(Delivery::Record),
            Self::Progress(head) => Ok(Delivery::Progress(head)),
            Self::Failed(e) => Err(e),
        }
    }
}

/// Where a paged read is: the next version of a stream, the last position of the log, or
/// the last position of the log read for some event types.
enum Cursor {
    Stream {
        stream: StreamId,
        from: i64,
    },
    Log {
        after: Option<Position>,
    },
    Types {
        after: Option<Position>,
        types: &'static [&'static str],
    },
}

/// One page of `query`'s rows on `conn`: rows until `bound` bytes (as `bytes` counts a
/// row's) (the first row always comes), and whether it stopped there.
async fn page(
    conn: &mut PgConnection,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    pooled: bool,
    (bound, bytes_of): (usize, fn(&PgRow) -> usize),
) -> Result<(Vec<PgRow>, bool), StoreError> {
    pinned!(pooled, conn, |c| async {
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut cut = false;
        let mut stream = query.persistent(!pooled).fetch(c);
        while let Some(row) = stream.try_next().await? {
            bytes = bytes.saturating_add(bytes_of(&row));
            rows.push(row);
            if bytes >= bound {
                // The rest of the page is read off the wire and dropped, never held.
                cut = true;
                break;
            }
        }
        drop(stream);
        Ok::<_, sqlx::Error>((rows, cut))
    }
    .await)
    .map_err(backend)
}

impl Cursor {
    /// One page: at most `batch` rows, and no more rows once they hold `batch_bytes` of
    /// payload and metadata (the first row always comes). Returns the rows and whether more
    /// may follow (the page is full by either bound).
    async fn fetch(&self, inner: &Inner) -> Result<(Vec<PgRow>, bool), StoreError> {
        let pooled = inner.settings.pooled;
        let batch = inner.settings.batch;
        let query = || match self {
            Self::Stream { stream, from } => sqlx::query(inner.sql.read_stream.clone())
                .bind(stream.category())
                .bind(stream.id())
                .bind(*from)
                .bind(batch),
            Self::Log { after } => {
                let (transaction, sequence) = position_params(*after);
                sqlx::query(inner.sql.read_all.clone())
                    .bind(transaction)
                    .bind(sequence)
                    .bind(batch)
            }
            Self::Types { after, types } => {
                let (transaction, sequence) = position_params(*after);
                sqlx::query(inner.sql.read_types.clone())
                    .bind(transaction)
                    .bind(sequence)
                    .bind(batch)
                    .bind(*types)
            }
        };
        let bound = usize::try_from(inner.settings.batch_bytes).unwrap_or(usize::MAX);
        let (rows, cut) = match self {
            // A stream's reads (the loads commands decide on) on the primary, on a held
            // connection; the global log on the replica, when there is one.
            Self::Stream { .. } => held_page(inner, query, row_bytes).await?,
            Self::Log { .. } | Self::Types { .. } => {
                let pool = inner.replica.as_ref().unwrap_or(&inner.pool);
                let mut conn = pool.acquire().await.map_err(backend)?;
                page(&mut conn, query(), pooled, (bound, row_bytes)).await?
            }
        };
        let full = cut || i64::try_from(rows.len()).is_ok_and(|n| n >= batch);
        Ok((rows, full))
    }

    /// A subscription's page, placed but not decoded: the rows in order (the cursor moved
    /// past each), and for a filtered read that covered the log up to its head, the progress
    /// past the records of other types. A row it cannot place ends the page, and `stuck` is
    /// set. Decoding is left to [`Placed::deliver`], on the listener's side of the read-ahead.
    fn place(&mut self, rows: Vec<PgRow>, full: bool) -> (Vec<Placed>, bool) {
        let filtered = matches!(self, Self::Types { .. });
        let head = if filtered {
            rows.first().and_then(|r| {
                let transaction: String = r.try_get("head_xid").ok()?;
                let sequence: i64 = r.try_get("head_position").ok()?;
                Some(Position::new(
                    transaction.parse().ok()?,
                    u64::try_from(sequence).ok()?,
                ))
            })
        } else {
            None
        };
        let mut page = Vec::with_capacity(rows.len() + 1);
        for row in rows {
            // A filtered read's row of the head alone (no record matched) has no position.
            if filtered
                && !row
                    .try_get::<Option<i64>, _>(col::POSITION)
                    .is_ok_and(|p| p.is_some())
            {
                continue;
            }
            let key = row_key(&row);
            let placed = self.advance(&key);
            page.push(Placed::Row(row, key, None));
            if !placed {
                return (page, true);
            }
        }
        if !full
            && let (Self::Types { after, .. }, Some(head)) = (&mut *self, head)
            && after.is_none_or(|a| head > a)
        {
            *after = Some(head);
            page.push(Placed::Progress(head));
        }
        (page, false)
    }

    /// Where a log cursor is (a stream cursor: `None`).
    fn position(&self) -> Option<Position> {
        match self {
            Self::Stream { .. } => None,
            Self::Log { after } | Self::Types { after, .. } => *after,
        }
    }

    /// Back to `position` (a log cursor).
    fn rewind(&mut self, position: Option<Position>) {
        if let Self::Log { after } | Self::Types { after, .. } = self {
            *after = position;
        }
    }

    /// Moves past the row at `key`; false when the key does not say where that is.
    fn advance(&mut self, key: &RowKey) -> bool {
        match self {
            Self::Stream { from, .. } => match key.version.and_then(|v| v.checked_add(1)) {
                Some(next) => {
                    *from = next;
                    true
                }
                None => false,
            },
            Self::Log { after } | Self::Types { after, .. } => match key.position {
                Some(p) => {
                    *after = Some(p);
                    true
                }
                None => false,
            },
        }
    }
}

/// Reads page after page until a short page, one page ahead of the consumer (as a
/// subscription does): memory holds two pages at most.
fn paged(
    inner: Arc<Inner>,
    cursor: Option<Cursor>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    let pages = stream::unfold((inner, cursor), |(inner, cursor)| async move {
        let mut cursor = cursor?;
        match cursor.fetch(&inner).await {
            Ok((rows, _)) if rows.is_empty() => None,
            Ok((rows, full)) => {
                let (page, stuck) = cursor.place(rows, full);
                match with_keys(&inner, page).await {
                    Ok(page) => {
                        let more = full && !stuck;
                        Some(((page, more), (inner, more.then_some(cursor))))
                    }
                    Err(e) => Some(((vec![Placed::Failed(e)], false), (inner, None))),
                }
            }
            Err(e) => Some(((vec![Placed::Failed(e)], false), (inner, None))),
        }
    });
    read_ahead(pages).flat_map(|page| stream::iter(page.into_iter().filter_map(Placed::record)))
}

pub(crate) fn read_stream(
    inner: Arc<Inner>,
    stream: StreamId,
    from: u64,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    // Versions past i64::MAX cannot exist, nor can a stream no store can hold: nothing to
    // read.
    let cursor = i64::try_from(from.max(1))
        .ok()
        .filter(|_| es_core::store::is_storable_stream(&stream))
        .map(|from| Cursor::Stream { stream, from });
    paged(inner, cursor)
}

/// The columns of a load's rows (`Statements::load_stream`), by index.
mod load_col {
    pub(super) const VERSION: usize = 0;
    pub(super) const RECORDED_AT: usize = 1;
    pub(super) const EVENT_TYPE: usize = 2;
    pub(super) const SCHEMA_VERSION: usize = 3;
    pub(super) const PAYLOAD: usize = 4;
}

/// The bytes of payload a load's row holds, as sent.
fn load_row_bytes(row: &PgRow) -> usize {
    row.try_get_raw(load_col::PAYLOAD)
        .ok()
        .and_then(|value| value.as_bytes().ok().map(<[u8]>::len))
        .unwrap_or(0)
}

/// The events of `stream` from version `from` as a load folds them: paged and read ahead
/// as [`read_stream`] reads, on a held connection, but only the columns a fold needs. A
/// payload without sealed fields stays JSON text (decoded once, by the fold); one with
/// them is parsed and opened. A row that does not read ends the read with an error naming
/// the stream and version.
pub(crate) fn read_for_load(
    inner: Arc<Inner>,
    stream: StreamId,
    from: u64,
) -> impl Stream<Item = Result<LoadRecord, StoreError>> + Send + Unpin + 'static {
    let from = i64::try_from(from.max(1))
        .ok()
        .filter(|_| es_core::store::is_storable_stream(&stream));
    let pages = stream::unfold((inner, stream, from), |(inner, stream, from)| async move {
        let from = from?;
        let (rows, full) = match load_page(&inner, &stream, from).await {
            Ok((rows, _)) if rows.is_empty() => return None,
            Ok(page) => page,
            Err(e) => return Some(((vec![Err(e)], false), (inner, stream, None))),
        };
        let refs: Vec<&PgRow> = rows.iter().collect();
        let keys = match personal::for_rows(&inner, &refs, load_col::PAYLOAD).await {
            Ok(keys) => keys,
            Err(e) => return Some(((vec![Err(e)], false), (inner, stream, None))),
        };
        let mut records = Vec::with_capacity(rows.len());
        let mut next = Some(from);
        for row in &rows {
            let record = load_record(row, &stream, keys.as_deref());
            next = match &record {
                Ok(r) => i64::try_from(r.version).ok().and_then(|v| v.checked_add(1)),
                Err(_) => None,
            };
            records.push(record);
            if next.is_none() {
                break;
            }
        }
        let more = full && next.is_some();
        if let Some(Ok(last)) = records.last() {
            // Committed (a read sees nothing else): the stream is there for good.
            inner.reached.saw(&stream, last.version);
        }
        Some(((records, more), (inner, stream, next.filter(|_| more))))
    });
    read_ahead(pages).flat_map(stream::iter)
}

/// One page of a load, and whether more may follow.
async fn load_page(
    inner: &Inner,
    stream: &StreamId,
    from: i64,
) -> Result<(Vec<PgRow>, bool), StoreError> {
    let batch = inner.settings.batch;
    let query = || {
        sqlx::query(inner.sql.load_stream.clone())
            .bind(stream.category())
            .bind(stream.id())
            .bind(from)
            .bind(batch)
    };
    let (rows, cut) = held_page(inner, query, load_row_bytes).await?;
    let full = cut || i64::try_from(rows.len()).is_ok_and(|n| n >= batch);
    Ok((rows, full))
}

/// One page of a stream's rows (`query`, made again for a second try) on a held
/// connection, bounded by bytes as `bytes_of` counts them: the rows, and whether the bound
/// cut the page.
async fn held_page<'q>(
    inner: &'q Inner,
    query: impl Fn() -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    bytes_of: fn(&PgRow) -> usize,
) -> Result<(Vec<PgRow>, bool), StoreError> {
    let pooled = inner.settings.pooled;
    let bound = usize::try_from(inner.settings.batch_bytes).unwrap_or(usize::MAX);
    held!(inner.held, &inner.pool, |conn| {
        page(conn, query(), pooled, (bound, bytes_of)).await
    })
}

/// A load's row, sealed fields opened with `keys`.
fn load_record(
    row: &PgRow,
    stream: &StreamId,
    keys: Option<&personal::Keys>,
) -> Result<LoadRecord, StoreError> {
    let version: Option<u64> = row
        .try_get::<i64, _>(load_col::VERSION)
        .ok()
        .and_then(|v| u64::try_from(v).ok());
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: version.unwrap_or(0),
        position: None,
        reason,
    };
    let Some(version) = version else {
        return Err(corrupt("version out of range".to_owned()));
    };
    let get = |e: sqlx::Error| corrupt(e.to_string());
    let schema_version: i32 = row.try_get(load_col::SCHEMA_VERSION).map_err(get)?;
    let schema_version = u16::try_from(schema_version)
        .map_err(|_| corrupt(format!("schema version {schema_version} is out of range")))?;
    let recorded_at: DateTime<Utc> = row.try_get(load_col::RECORDED_AT).map_err(get)?;
    let event_type: String = row.try_get(load_col::EVENT_TYPE).map_err(get)?;
    let Json(text): Json<&RawValue> = row.try_get(load_col::PAYLOAD).map_err(get)?;
    let payload = match keys {
        Some(keys) if text.get().contains(es_core::store::personal::SEALED) => {
            let mut value: serde_json::Value =
                serde_json::from_str(text.get()).map_err(|e| corrupt(e.to_string()))?;
            es_core::store::personal::open_recorded(&mut value, recorded_at, |s| {
                es_core::store::personal::dated_key_of(keys, s)
            })
            .map_err(corrupt)?;
            Payload::Value(value)
        }
        _ => Payload::Text(text.get().to_owned()),
    };
    Ok(LoadRecord::new(
        version,
        recorded_at,
        event_type,
        schema_version,
        payload,
    ))
}

pub(crate) fn read_all(
    inner: Arc<Inner>,
    after: Option<Position>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    paged(inner, Some(Cursor::Log { after }))
}

/// The `(transaction id, sequence)` parameters of a position (the start of the log: 0, 0).
pub(crate) fn position_params(after: Option<Position>) -> (String, i64) {
    let (transaction, sequence) = after.map_or((0, 0), |p| (p.major(), p.minor()));
    (
        transaction.to_string(),
        i64::try_from(sequence).unwrap_or(i64::MAX),
    )
}

pub(crate) async fn lag(inner: &Inner, after: Option<Position>) -> Result<Lag, StoreError> {
    let (transaction, sequence) = position_params(after);
    let pooled = inner.settings.pooled;
    let mut conn = inner.pool.acquire().await.map_err(backend)?;
    let row = pinned!(pooled, conn, |c| {
        sqlx::query(inner.sql.lag.clone())
            .persistent(!pooled)
            .bind(&transaction)
            .bind(sequence)
            .fetch_one(c)
            .await
    })
    .map_err(backend)?;
    let events: i64 = row.try_get("events").map_err(backend)?;
    Ok(Lag {
        events: u64::try_from(events).unwrap_or(0),
        seconds: row.try_get("seconds").map_err(backend)?,
    })
}

/// After a wake-up that found nothing new (the appended events were still behind another
/// transaction's horizon), look again this soon, doubling up to the poll interval.
const FIRST_RETRY: Duration = Duration::from_millis(10);

struct Subscription {
    inner: Arc<Inner>,
    cursor: Cursor,
    local: watch::Receiver<u64>,
    remote: watch::Receiver<u64>,
    /// Woken recently: if the read finds nothing, look again after this long.
    retry: Option<Duration>,
    /// The last read failed: wait a poll interval before the next.
    failed: bool,
}

impl Subscription {
    /// Waits for a wake-up: an append of this process, a notification from the database,
    /// or the poll interval (sooner, right after a wake-up that found nothing).
    async fn wait(&mut self) {
        let poll = self.inner.settings.poll;
        let timeout = self.retry.map_or(poll, |r| r.min(poll));
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                self.retry = self.retry.map(|r| r * 2).filter(|r| *r < poll);
            }
            // The senders live as long as the store, which we hold: no error to handle.
            _ = self.local.changed() => self.retry = Some(FIRST_RETRY),
            _ = self.remote.changed() => self.retry = Some(FIRST_RETRY),
        }
    }

    async fn next_page(mut self) -> Option<(Vec<Placed>, Self)> {
        loop {
            if self.failed {
                self.failed = false;
                tokio::time::sleep(self.inner.settings.poll).await;
            }
            // Seen before reading, so a wake-up during the read is not lost.
            self.local.borrow_and_update();
            self.remote.borrow_and_update();
            match self.cursor.fetch(&self.inner).await {
                Ok((rows, _)) if rows.is_empty() => self.wait().await,
                Ok((rows, full)) => {
                    // The cursor goes back if the page's keys do not read: nothing is
                    // skipped.
                    let before = self.cursor.position();
                    let (page, stuck) = self.cursor.place(rows, full);
                    let page = match with_keys(&self.inner, page).await {
                        Ok(page) => page,
                        Err(e) => {
                            self.cursor.rewind(before);
                            self.failed = true;
                            return Some((vec![Placed::Failed(e)], self));
                        }
                    };
                    if page.is_empty() {
                        self.wait().await;
                        continue;
                    }
                    self.failed = stuck;
                    self.retry = None;
                    return Some((page, self));
                }
                Err(e) => {
                    self.failed = true;
                    return Some((vec![Placed::Failed(e)], self));
                }
            }
        }
    }
}

pub(crate) fn subscribe(
    inner: Arc<Inner>,
    after: Option<Position>,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static {
    // The whole log delivers records only.
    deliveries(inner, Cursor::Log { after }).filter_map(|item| {
        std::future::ready(match item {
            Ok(Delivery::Record(record)) => Some(Ok(record)),
            Ok(Delivery::Progress(_)) => None,
            Err(e) => Some(Err(e)),
        })
    })
}

pub(crate) fn subscribe_types(
    inner: Arc<Inner>,
    after: Option<Position>,
    types: &'static [&'static str],
) -> impl Stream<Item = Result<Delivery, StoreError>> + Send + Unpin + 'static {
    deliveries(inner, Cursor::Types { after, types })
}

fn deliveries(
    inner: Arc<Inner>,
    cursor: Cursor,
) -> impl Stream<Item = Result<Delivery, StoreError>> + Send + Unpin + 'static {
    let local = inner.wake.local();
    let remote = inner.wake.remote(inner.settings.listen);
    let subscription = Subscription {
        inner,
        cursor,
        local,
        remote,
        retry: None,
        failed: false,
    };
    let pages = stream::unfold(subscription, Subscription::next_page);
    read_ahead(pages.map(|page| (page, true)))
        .flat_map(|page| stream::iter(page.into_iter().map(Placed::deliver)))
}

/// Reads the next page while the consumer decodes and handles this one. `pages` gives each
/// page with whether more may follow. The first page is read in the consumer's own task,
/// and when it is the last (a load of a short stream) nothing else runs: no task, no
/// hand-over. The pages after it come from a task of their own, one page ahead (memory
/// holds the page being handled and the next). That task ends when the stream is dropped,
/// even while it waits for new events.
fn read_ahead<T, S>(pages: S) -> impl Stream<Item = T> + Send + Unpin + 'static
where
    T: Send + 'static,
    S: Stream<Item = (T, bool)> + Send + 'static,
{
    enum Phase<S, T> {
        First(std::pin::Pin<Box<S>>),
        Rest(mpsc::Receiver<T>),
        Done,
    }
    Box::pin(stream::unfold(
        Phase::First(Box::pin(pages)),
        |phase| async move {
            match phase {
                Phase::First(mut pages) => {
                    let (first, more) = pages.next().await?;
                    if !more {
                        return Some((first, Phase::Done));
                    }
                    let (tx, rx) = mpsc::channel::<T>(1);
                    tokio::spawn(pump(pages, tx));
                    Some((first, Phase::Rest(rx)))
                }
                Phase::Rest(mut rx) => {
                    let page = rx.recv().await?;
                    Some((page, Phase::Rest(rx)))
                }
                Phase::Done => None,
            }
        },
    ))
}

/// Sends `pages` into `tx`, one ahead: a slot first, then a page. Ends with the pages, or
/// when the receiver is gone (even while a page is awaited).
async fn pump<T, S>(mut pages: std::pin::Pin<Box<S>>, tx: mpsc::Sender<T>)
where
    S: Stream<Item = (T, bool)>,
{
    while let Ok(slot) = tx.reserve().await {
        let page = tokio::select! {
            () = tx.closed() => return,
            page = pages.next() => page,
        };
        match page {
            Some((page, _)) => slot.send(page),
            None => return,
        }
    }
}

// The oldest transaction id still running: a backend's, or a prepared transaction's.
const HOLDER: &str = "SELECT pid, gid, datname, application_name, state, xact_start, query FROM ( \
       SELECT pid, NULL::text AS gid, datname::text, application_name, state, xact_start, \
              left(query, 200) AS query, age(backend_xid) AS age \
       FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
       UNION ALL \
       SELECT NULL::int4, gid, database::text, NULL, 'prepared', prepared, NULL, age(transaction) \
       FROM pg_prepared_xacts \
     ) holders ORDER BY age DESC LIMIT 1";

pub(crate) async fn horizon(inner: &Inner) -> Result<Horizon, StoreError> {
    let pooled = inner.settings.pooled;
    let mut conn = inner.pool.acquire().await.map_err(backend)?;
    let xmin: String = pinned!(pooled, conn, |c| {
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            .persistent(!pooled)
            .fetch_one(c)
            .await
    })
    .map_err(backend)?;
    let xmin = xmin
        .parse()
        .map_err(|_| StoreError::Backend(format!("xmin {xmin:?} is not a u64").into()))?;
    let holder = pinned!(pooled, conn, |c| {
        sqlx::query(HOLDER)
            .persistent(!pooled)
            .fetch_optional(c)
            .await
    })
    .map_err(backend)?
    .map(|row| -> Result<Holder, sqlx::Error> {
        Ok(Holder {
            pid: row.try_get("pid")?,
            prepared: row.try_get("gid")?,
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
