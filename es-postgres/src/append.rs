//! Appends: one `INSERT ... SELECT ... UNNEST` per call that checks the expected version
//! and writes every event, atomically. A clash on (stream, version) is the conflict; `Any`
//! retries it; an event id already stored is its own error.
//!
//! Everything an append runs, the refusal's diagnostics included, runs on one connection: a
//! pool connection of its own, or the caller's, inside the caller's transaction. There the
//! statement runs under a savepoint, so a refused append leaves the caller's transaction as
//! it was (PostgreSQL would abort it on the failed statement), and a failed statement is never
//! reported as a success.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use es_core::store::{check_storable, replayed_append};
use es_core::{
    Appended, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StreamAppend,
    StreamId,
};
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use crate::Inner;
use crate::error::{backend, unique_violation};
use crate::group::Outcome;
use crate::held::held;
use crate::personal;
use crate::pinned::pinned;
use crate::read::decode_row;

/// How often an append retries a lost race on (stream, version) before giving up with the
/// conflict. `Any` retries to succeed; an exact expectation retries once to read, in a fresh
/// statement, the version that beat it.
const RACE_RETRIES: usize = 1_000;

/// The savepoint an append inside the caller's transaction runs under.
const SAVEPOINT: &str = "es_postgres_append";

/// The stream's version, read on `conn` (0 for a stream no store can hold: it has no event).
///
/// `own`: `conn` is the store's own pool connection (not a caller's transaction), so the
/// statement is pinned in a transaction of its own behind a transaction-pooling proxy.
pub(crate) async fn stream_version(
    conn: &mut PgConnection,
    inner: &Inner,
    stream: &StreamId,
    own: bool,
) -> Result<u64, StoreError> {
    if !es_core::store::is_storable_stream(stream) {
        return Ok(0);
    }
    let pooled = inner.settings.pooled;
    let version: i64 = pinned!(own && pooled, conn, |c| {
        sqlx::query_scalar(inner.sql.stream_version.clone())
            .persistent(!pooled)
            .bind(stream.category())
            .bind(stream.id())
            .fetch_one(c)
            .await
    })
    .map_err(backend)?;
    checked_version(stream, version)
}

fn checked_version(stream: &StreamId, version: i64) -> Result<u64, StoreError> {
    u64::try_from(version).map_err(|_| StoreError::Corrupt {
        stream: stream.clone(),
        version: 0,
        position: None,
        reason: format!("negative version {version}"),
    })
}

/// Writes floats so that PostgreSQL's `numeric` (which `jsonb` keeps numbers as) gives them
/// back as the same floats: serde_json writes 1e16 and above with an exponent, which
/// `numeric` prints back as an integer (`10000000000000000`), so those are written in full
/// with a decimal point instead (Rust's exact decimal expansion: it reads back bit for bit).
struct NumericFloats;

impl serde_json::ser::Formatter for NumericFloats {
    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        if value.is_finite() && value.abs() >= 1e16 {
            write!(writer, "{value:.1}")
        } else {
            serde_json::ser::CompactFormatter.write_f64(writer, value)
        }
    }
}

fn json_text(value: &serde_json::Value) -> Result<String, serde_json::Error> {
    use serde::Serialize;
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out,
        NumericFloats,
    ))?;
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// The events as the five arrays the statement unnests.
pub(crate) struct Columns {
    pub(crate) event_types: Vec<String>,
    pub(crate) schema_versions: Vec<i32>,
    pub(crate) payloads: Vec<String>,
    pub(crate) metadata: Vec<String>,
    pub(crate) event_ids: Vec<Uuid>,
}

fn columns(
    stream: &StreamId,
    events: &[NewEvent],
    keys: Option<&personal::Keys>,
) -> Result<Columns, StoreError> {
    let unstorable = |reason: String| StoreError::Unstorable {
        stream: stream.clone(),
        reason,
    };
    let mut seen = HashSet::with_capacity(events.len());
    let mut cols = Columns {
        event_types: Vec::with_capacity(events.len()),
        schema_versions: Vec::with_capacity(events.len()),
        payloads: Vec::with_capacity(events.len()),
        metadata: Vec::with_capacity(events.len()),
        event_ids: Vec::with_capacity(events.len()),
    };
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(StoreError::DuplicateEventId {
                event_id: event.event_id,
            });
        }
        let metadata = serde_json::to_value(&event.metadata)
            .and_then(|m| json_text(&m))
            .map_err(|e| unstorable(format!("metadata does not serialize: {e}")))?;
        // Personal fields go in sealed under their subject's key.
        let sealed = match keys {
            Some(keys)
                if !es_core::store::personal::subjects_to_seal(&event.payload).is_empty() =>
            {
                let mut payload = event.payload.clone();
                es_core::store::personal::seal(&mut payload, |s| {
                    es_core::store::personal::key_of(keys, s)
                })
                .map_err(unstorable)?;
                Some(payload)
            }
            _ => None,
        };
        let payload = json_text(sealed.as_ref().unwrap_or(&event.payload))
            .map_err(|e| unstorable(format!("payload does not serialize: {e}")))?;
        cols.payloads.push(payload);
        cols.metadata.push(metadata);
        cols.event_types.push(event.event_type.clone());
        cols.schema_versions.push(i32::from(event.schema_version));
        cols.event_ids.push(event.event_id);
    }
    Ok(cols)
}

/// Appends on a pool connection of its own (autocommit), or on `conn`, inside the caller's
/// transaction (which then commits or rolls back the events with whatever else it wrote).
/// With inline projections, the append and their writes share one transaction.
pub(crate) async fn append(
    inner: &Inner,
    conn: Option<&mut PgConnection>,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Appended, StoreError> {
    check_storable(stream, &events)?;
    match conn {
        Some(conn) if conn.is_in_transaction() => {
            append_in_tx(inner, conn, stream, expected, &events).await
        }
        // Not in a transaction, no inline projection: each statement commits on its own.
        Some(conn) if inner.inline.is_empty() => {
            let result = append_on(inner, conn, false, false, stream, expected, &events).await;
            result.map(|(appended, _)| appended)
        }
        Some(conn) => {
            let mut tx = sqlx::Connection::begin(conn).await.map_err(backend)?;
            let appended = append_in_tx(inner, &mut tx, stream, expected, &events).await?;
            tx.commit().await.map_err(backend)?;
            Ok(appended)
        }
        None if inner.inline.is_empty() => {
            if let Some(result) = grouped(inner, stream, expected, &events).await {
                return result;
            }
            lone(inner, stream, expected, &events).await
        }
        None => {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let once = async {
                    let mut tx = inner.pool.begin().await.map_err(backend)?;
                    let appended = append_in_tx(inner, &mut tx, stream, expected, &events).await?;
                    tx.commit().await.map_err(backend)?;
                    Ok::<Appended, StoreError>(appended)
                };
                match once.await {
                    // A retry inside the transaction came after a writer with a later id: a
                    // new transaction appends after them.
                    Err(StoreError::TransactionTooOld { .. }) if attempts < RACE_RETRIES => {}
                    result => {
                        if result.as_ref().is_ok_and(|a| !a.positions.is_empty()) {
                            inner.wake.appended(!inner.settings.pooled);
                        }
                        return result;
                    }
                }
            }
        }
    }
}

/// An append on a pool connection of its own, autocommitted; wakes subscribers when it wrote.
async fn lone(
    inner: &Inner,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<Appended, StoreError> {
    let result = held!(inner.held, &inner.pool, |conn| {
        append_on(inner, conn, false, true, stream, expected, events).await
    });
    let result = result.map(|(appended, _)| appended);
    if result.as_ref().is_ok_and(|a| !a.positions.is_empty()) {
        inner.wake.appended(!inner.settings.pooled);
    }
    result
}

/// The append through the store's group commit, when it has one and the append can go
/// there; `None`: it runs on its own. Not there: empty appends (nothing to write, only a
/// check), appends that seal personal fields (their keys are made first, on the append's
/// connection), and expected versions no stream can reach.
async fn grouped(
    inner: &Inner,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Option<Result<Appended, StoreError>> {
    let group = inner.group.as_ref()?;
    let personal =
        |e: &NewEvent| !es_core::store::personal::subjects_to_seal(&e.payload).is_empty();
    if events.is_empty() || events.iter().any(personal) {
        return None;
    }
    let expected_version = match expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(n) => Some(i64::try_from(n).ok()?),
    };
    let cols = match columns(stream, events, None) {
        Ok(cols) => cols,
        Err(e) => return Some(Err(e)),
    };
    // Known to have reached the expected version: its batch need not look (`reached.rs`).
    let exact = expected_version
        .and_then(|n| u64::try_from(n).ok())
        .is_some_and(|n| inner.reached.has_reached(stream, n));
    let alone = async || lone(inner, stream, expected, events).await;
    let outcome = group
        .append(
            inner,
            stream.category(),
            stream.id(),
            (expected_version, exact),
            cols,
            alone,
        )
        .await;
    match outcome {
        Outcome::Landed(appended) => {
            // Committed: the stream is there for good.
            inner.reached.saw(stream, appended.version);
            Some(Ok(appended))
        }
        Outcome::Ran(result) => Some(result),
        Outcome::Alone | Outcome::Lead => None,
        // As for a lone append: a retry of an append that already landed gets its original
        // outcome; anything else is the conflict, with the version the statement saw.
        Outcome::Refused(seen) => Some(
            async {
                let mut conn = inner.pool.acquire().await.map_err(backend)?;
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                let stored = stored_records(&mut conn, inner, &ids, true).await?;
                if stored.contains_key(&events[0].event_id) {
                    let records: Vec<Option<&RecordedEvent>> =
                        events.iter().map(|e| stored.get(&e.event_id)).collect();
                    return replayed_append(stream, expected, events, &records).ok_or(
                        StoreError::DuplicateEventId {
                            event_id: events[0].event_id,
                        },
                    );
                }
                Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                    actual: seen,
                })
            }
            .await,
        ),
    }
}

/// The append inside a transaction, under a savepoint, with the inline projections: a
/// refusal, or a failing inline handler, rolls back to the savepoint and leaves the
/// transaction usable.
async fn append_in_tx(
    inner: &Inner,
    conn: &mut PgConnection,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<Appended, StoreError> {
    // Plain-text statements (simple protocol): nothing prepared, one exchange.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SAVEPOINT {SAVEPOINT}")))
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    let mut result = append_on(inner, conn, true, false, stream, expected, events).await;
    // A replayed append's events were folded when they were first appended.
    if let Ok((appended, true)) = &result
        && !inner.inline.is_empty()
    {
        let records = recorded(stream, events, appended);
        for projection in inner.inline.iter() {
            if let Err(e) = projection.apply(&records, conn).await {
                result = Err(e);
                break;
            }
        }
        if result.is_err() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ROLLBACK TO SAVEPOINT {SAVEPOINT}"
            )))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        }
    }
    // Released on success and on refusal alike (a refusal rolled back to it first); after a
    // failure to release, the transaction's state is unknown: say so.
    let release = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "RELEASE SAVEPOINT {SAVEPOINT}"
    )))
    .execute(&mut *conn)
    .await;
    match (result, release) {
        (result, Ok(_)) => result.map(|(appended, _)| appended),
        (_, Err(e)) => Err(backend(e)),
    }
}

/// The records an append wrote, as a reader would get them.
fn recorded(stream: &StreamId, events: &[NewEvent], appended: &Appended) -> Vec<RecordedEvent> {
    let first = appended.version + 1 - u64::try_from(events.len()).unwrap_or(0);
    events
        .iter()
        .zip(&appended.positions)
        .zip(first..)
        .map(|((e, position), version)| RecordedEvent {
            position: *position,
            stream: stream.clone(),
            version,
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            // As readers get it: personal fields in the clear.
            payload: es_core::store::personal::plain(&e.payload).into_owned(),
            metadata: e.metadata.clone(),
            recorded_at: appended.recorded_at,
        })
        .collect()
}

/// Appends to several streams in one transaction: each part under its own savepoint (so a
/// refusal can be looked into), the first refusal rolls back the whole.
pub(crate) async fn append_all(
    inner: &Inner,
    parts: Vec<StreamAppend>,
) -> Result<Vec<Appended>, StoreError> {
    for part in &parts {
        check_storable(&part.stream, &part.events)?;
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        match append_all_once(inner, &parts).await {
            // Another writer got in after this transaction took its id: a new transaction
            // (a new id) appends after them, or refuses on their version.
            Err(StoreError::TransactionTooOld { .. }) if attempts < RACE_RETRIES => {}
            Ok(outcomes) => {
                if outcomes.iter().any(|a| !a.positions.is_empty()) {
                    inner.wake.appended(!inner.settings.pooled);
                }
                return Ok(outcomes);
            }
            Err(e) => return Err(e),
        }
    }
}

async fn append_all_once(
    inner: &Inner,
    parts: &[StreamAppend],
) -> Result<Vec<Appended>, StoreError> {
    let mut tx = inner.pool.begin().await.map_err(backend)?;
    let mut outcomes = Vec::with_capacity(parts.len());
    for part in parts {
        // Dropping `tx` on an error rolls everything back.
        let events = part.events.clone();
        outcomes.push(append(inner, Some(&mut tx), &part.stream, part.expected, events).await?);
    }
    tx.commit().await.map_err(backend)?;
    Ok(outcomes)
}

/// The append itself, on one connection. `savepoint`: a failed statement must roll back to
/// the savepoint before anything else runs on `conn`. `own`: `conn` is the store's pool
/// connection, each statement its own transaction.
async fn append_on(
    inner: &Inner,
    conn: &mut PgConnection,
    savepoint: bool,
    own: bool,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<(Appended, bool), StoreError> {
    let conflict = |actual: u64| StoreError::Conflict {
        stream: stream.clone(),
        expected,
        actual,
    };
    if events.is_empty() {
        let actual = stream_version(conn, inner, stream, own).await?;
        return if expected.matches(actual) {
            let nothing = Appended {
                version: actual,
                positions: Vec::new(),
                recorded_at: Utc::now().trunc_subsecs(6),
            };
            Ok((nothing, false))
        } else {
            Err(conflict(actual))
        };
    }
    let expected_version: Option<i64> = match expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(n) => match i64::try_from(n) {
            Ok(n) => Some(n),
            // No stream can be that long: the stream is elsewhere.
            Err(_) => return Err(conflict(stream_version(conn, inner, stream, own).await?)),
        },
    };
    let count = events.len();
    let check = (!matches!(expected, ExpectedVersion::Any)).then_some((stream, expected));
    let keys = personal::for_append(conn, inner, events, own, check).await?;
    let cols = columns(stream, events, keys.as_ref())?;
    // On the store's own connection, on its own (autocommit), expecting a version the
    // stream is known to have reached: nothing to look at first (`reached.rs`). Never on a
    // caller's connection: sqlx does not know of a transaction begun there with a plain
    // `BEGIN`, which would commit the rows later, or roll them back.
    let alone = own && !savepoint;
    let exact = expected_version
        .filter(|&n| alone && u64::try_from(n).is_ok_and(|n| inner.reached.has_reached(stream, n)))
        .is_some();

    let mut races = 0;
    loop {
        let pooled = inner.settings.pooled;
        // The same parameters for both kinds: the exact one does not look first.
        let (one, many) = if exact {
            (&inner.sql.append_exact_one, &inner.sql.append_exact)
        } else {
            (&inner.sql.append_one, &inner.sql.append)
        };
        let statement = if count == 1 {
            // One event: its values as they are, no arrays.
            sqlx::query(one.clone())
                .bind(stream.category())
                .bind(stream.id())
                .bind(expected_version)
                .bind(&cols.event_types[0])
                .bind(cols.schema_versions[0])
                .bind(&cols.payloads[0])
                .bind(&cols.metadata[0])
                .bind(cols.event_ids[0])
        } else {
            sqlx::query(many.clone())
                .bind(stream.category())
                .bind(stream.id())
                .bind(expected_version)
                .bind(&cols.event_types)
                .bind(&cols.schema_versions)
                .bind(&cols.payloads)
                .bind(&cols.metadata)
                .bind(&cols.event_ids)
        };
        let result = pinned!(own && pooled, conn, |c| {
            statement.persistent(!pooled).fetch_all(c).await
        });
        let refusal = match result {
            Ok(rows) if rows.len() == count && inserted(&rows) => {
                let appended = appended(stream, &rows)?;
                if alone {
                    // Committed: the stream is there for good.
                    inner.reached.saw(stream, appended.version);
                }
                return Ok((appended, true));
            }
            // The WHERE filtered everything out: the one row says which version the
            // statement saw, and whether appending would have kept the stream's order.
            Ok(rows) => {
                let first = rows.first();
                if first.is_some_and(|r| r.try_get::<bool, _>("in_order").is_ok_and(|o| !o)) {
                    return Err(StoreError::TransactionTooOld {
                        stream: stream.clone(),
                    });
                }
                let seen: Option<i64> = first.and_then(|r| r.try_get("current_version").ok());
                Err(seen)
            }
            Err(e) => {
                if savepoint {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "ROLLBACK TO SAVEPOINT {SAVEPOINT}"
                    )))
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
                }
                Ok(e)
            }
        };
        // Refused. A retry of an append that already landed gets its original outcome, as
        // in memory: when its first event is stored, it is that retry or a duplicate.
        let stored = stored_records(conn, inner, &cols.event_ids, own).await?;
        if stored.contains_key(&events[0].event_id) {
            let records: Vec<Option<&RecordedEvent>> =
                events.iter().map(|e| stored.get(&e.event_id)).collect();
            return replayed_append(stream, expected, events, &records)
                .map(|a| (a, false))
                .ok_or(StoreError::DuplicateEventId {
                    event_id: events[0].event_id,
                });
        }
        let error = match refusal {
            Err(Some(seen)) => return Err(conflict(checked_version(stream, seen)?)),
            Err(None) => return Err(conflict(stream_version(conn, inner, stream, own).await?)),
            Ok(error) => error,
        };
        match unique_violation(&error) {
            Some("events_stream_version_key") => {
                races += 1;
                // An exact statement's clash says the stream is past the expected version.
                if races >= RACE_RETRIES || (expected_version.is_some() && (races > 1 || exact)) {
                    // Only in a transaction whose snapshot predates the winner (REPEATABLE
                    // READ): the row that beat us is at a version past the one expected.
                    let actual = stream_version(conn, inner, stream, own).await?;
                    let past = expected_version
                        .and_then(|v| u64::try_from(v).ok())
                        .map_or(actual, |v| actual.max(v + 1));
                    return Err(conflict(past));
                }
                // Lost a race: the next attempt reads the new version in a fresh statement
                // (and for an exact expectation, refuses with the version that won).
            }
            Some("events_event_id_key") => {
                // The first stored id in the batch's order; the clash may have been with an
                // append that rolled back meanwhile: name the first id then.
                let event_id = events
                    .iter()
                    .map(|e| e.event_id)
                    .find(|id| stored.contains_key(id))
                    .unwrap_or(events[0].event_id);
                return Err(StoreError::DuplicateEventId { event_id });
            }
            _ => return Err(backend(error)),
        }
    }
}

/// Whether the statement inserted its rows (a refusal returns one row without a position).
fn inserted(rows: &[sqlx::postgres::PgRow]) -> bool {
    rows.first().is_some_and(|r| {
        r.try_get::<Option<i64>, _>("position")
            .is_ok_and(|p| p.is_some())
    })
}

/// The stored records of these event ids (only those stored), read on `conn` (`own`: the
/// store's pool connection).
pub(crate) async fn stored_records(
    conn: &mut PgConnection,
    inner: &Inner,
    ids: &[Uuid],
    own: bool,
) -> Result<HashMap<Uuid, RecordedEvent>, StoreError> {
    let pooled = inner.settings.pooled;
    let rows = pinned!(own && pooled, conn, |c| {
        sqlx::query(inner.sql.stored_events.clone())
            .persistent(!pooled)
            .bind(ids)
            .fetch_all(c)
            .await
    })
    .map_err(backend)?;
    let refs: Vec<&sqlx::postgres::PgRow> = rows.iter().collect();
    let keys = personal::for_rows_on(conn, inner, &refs, crate::read::PAYLOAD_COLUMN, own).await?;
    rows.iter()
        .map(|row| decode_row(row, keys.as_ref()).map(|r| (r.event_id, r)))
        .collect()
}

fn appended(stream: &StreamId, rows: &[sqlx::postgres::PgRow]) -> Result<Appended, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: 0,
        position: None,
        reason,
    };
    let mut landed = Vec::with_capacity(rows.len());
    let mut recorded_at: Option<DateTime<Utc>> = None;
    for row in rows {
        let get = |e: sqlx::Error| corrupt(e.to_string());
        let sequence: i64 = row.try_get("position").map_err(get)?;
        let transaction: String = row.try_get("transaction_xid").map_err(get)?;
        let version: i64 = row.try_get("version").map_err(get)?;
        recorded_at = Some(row.try_get("recorded_at").map_err(get)?);
        let position = Position::new(
            transaction
                .parse()
                .map_err(|_| corrupt(format!("transaction id {transaction:?}")))?,
            u64::try_from(sequence).map_err(|_| corrupt(format!("position {sequence}")))?,
        );
        let version = u64::try_from(version).map_err(|_| corrupt(format!("version {version}")))?;
        landed.push((version, position));
    }
    // RETURNING promises no order: sort by version.
    landed.sort_unstable();
    Ok(Appended {
        version: landed.last().map_or(0, |(v, _)| *v),
        positions: landed.into_iter().map(|(_, p)| p).collect(),
        recorded_at: recorded_at.unwrap_or_else(Utc::now),
    })
}
