//! Appends: one `INSERT ... SELECT ... UNNEST` per call that checks the expected version
//! and writes every event, atomically. A clash on (stream, version) is the conflict; `Any`
//! retries it; an event id already stored is its own error.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use es_core::{
    Appended, ExpectedVersion, NewEvent, Position, RecordedEvent, StoreError, StreamId,
    replayed_append,
};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Inner;
use crate::error::{backend, unique_violation};
use crate::read::decode_row;

/// How often an `Any` append retries a race before giving up with the conflict (each retry
/// means another writer made progress).
const ANY_RETRIES: usize = 1_000;

pub(crate) async fn stream_version(inner: &Inner, stream: &StreamId) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(inner.sql.stream_version.clone())
        .bind(stream.category())
        .bind(stream.id())
        .fetch_one(&inner.pool)
        .await
        .map_err(backend)?;
    u64::try_from(version).map_err(|_| StoreError::Corrupt {
        stream: stream.clone(),
        version: 0,
        position: None,
        reason: format!("negative version {version}"),
    })
}

/// How deep a payload may nest: serde_json reads back at most 128 levels, and a payload the
/// store could write but never read again would stop every reader.
const MAX_DEPTH: usize = 128;

/// Why PostgreSQL could not hold this JSON, or could not give it back: a NUL character
/// (`jsonb` rejects `\u0000`), or nesting past [`MAX_DEPTH`].
fn unstorable_json(value: &serde_json::Value, depth: usize) -> Option<&'static str> {
    if depth > MAX_DEPTH {
        return Some("nests deeper than 128 levels, which cannot be read back");
    }
    let nul = "holds a NUL character (\\u0000), which PostgreSQL cannot store";
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(nul),
        serde_json::Value::Array(items) => items.iter().find_map(|v| unstorable_json(v, depth + 1)),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(nul)
            } else {
                unstorable_json(v, depth + 1)
            }
        }),
        _ => None,
    }
}

/// The events as the five arrays the statement unnests.
struct Columns {
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    event_ids: Vec<Uuid>,
}

fn columns(stream: &StreamId, events: &[NewEvent]) -> Result<Columns, StoreError> {
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
            .map_err(|e| unstorable(format!("metadata does not serialize: {e}")))?;
        let problem = if event.event_type.contains('\0') {
            Some(("type", "holds a NUL character"))
        } else {
            unstorable_json(&event.payload, 1)
                .map(|p| ("payload", p))
                .or_else(|| unstorable_json(&metadata, 1).map(|p| ("metadata", p)))
        };
        if let Some((part, problem)) = problem {
            return Err(unstorable(format!(
                "the {part} of event `{}` ({}) {problem}",
                event.event_type.replace('\0', "\\0"),
                event.event_id
            )));
        }
        cols.payloads.push(event.payload.to_string());
        cols.metadata.push(metadata.to_string());
        cols.event_types.push(event.event_type.clone());
        cols.schema_versions.push(i32::from(event.schema_version));
        cols.event_ids.push(event.event_id);
    }
    Ok(cols)
}

/// Appends on the pool (its own transaction), or on `conn`, inside the caller's transaction
/// (which then commits or rolls back the events with whatever else it wrote).
pub(crate) async fn append(
    inner: &Inner,
    mut conn: Option<&mut PgConnection>,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Appended, StoreError> {
    let conflict = |actual: u64| StoreError::Conflict {
        stream: stream.clone(),
        expected,
        actual,
    };
    if stream.category().contains('\0') || stream.id().contains('\0') {
        return Err(StoreError::Unstorable {
            stream: stream.clone(),
            reason: "the stream's category or id holds a NUL character".to_owned(),
        });
    }
    if events.is_empty() {
        let actual = stream_version(inner, stream).await?;
        return if expected.matches(actual) {
            Ok(Appended {
                version: actual,
                positions: Vec::new(),
                recorded_at: Utc::now().trunc_subsecs(6),
            })
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
            Err(_) => return Err(conflict(stream_version(inner, stream).await?)),
        },
    };
    let count = events.len();
    let cols = columns(stream, &events)?;

    let mut attempts = 0;
    loop {
        let query = sqlx::query(inner.sql.append.clone())
            .bind(stream.category())
            .bind(stream.id())
            .bind(expected_version)
            .bind(&cols.event_types)
            .bind(&cols.schema_versions)
            .bind(&cols.payloads)
            .bind(&cols.metadata)
            .bind(&cols.event_ids);
        let result = match conn.as_deref_mut() {
            Some(conn) => query.fetch_all(conn).await,
            None => query.fetch_all(&inner.pool).await,
        };
        let refusal = match result {
            Ok(rows) if rows.len() == count => {
                // In the caller's transaction, nothing is visible before it commits: the
                // caller wakes subscribers then (`PostgresStore::notify_committed`).
                if conn.is_none() {
                    inner.wake.appended();
                }
                return appended(stream, &rows);
            }
            // The WHERE on the expected version filtered everything out.
            Ok(_) => None,
            Err(e) => Some(e),
        };
        // Refused. A retry of an append that already landed gets its original outcome, as
        // in memory: when its first event is stored, it is that retry or a duplicate.
        let stored = stored_records(inner, &cols.event_ids).await?;
        if stored.contains_key(&events[0].event_id) {
            let records: Vec<Option<&RecordedEvent>> =
                events.iter().map(|e| stored.get(&e.event_id)).collect();
            return replayed_append(stream, expected, &events, &records).ok_or(
                StoreError::DuplicateEventId {
                    event_id: events[0].event_id,
                },
            );
        }
        let Some(error) = refusal else {
            return Err(conflict(stream_version(inner, stream).await?));
        };
        match unique_violation(&error) {
            Some("events_stream_version_key") => {
                attempts += 1;
                // A failed statement aborts the caller's transaction: no retry inside it.
                if expected_version.is_some() || conn.is_some() || attempts >= ANY_RETRIES {
                    return Err(conflict(stream_version(inner, stream).await?));
                }
                // `Any` lost a race: the next attempt reads the new version.
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

/// The stored records of these event ids (only those stored).
async fn stored_records(
    inner: &Inner,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, RecordedEvent>, StoreError> {
    let rows = sqlx::query(inner.sql.stored_events.clone())
        .bind(ids)
        .fetch_all(&inner.pool)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| decode_row(row).map(|r| (r.event_id, r)))
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
