//! Personal-data keys in the `personal_keys` table: made on an append's first use of a
//! subject, read to open sealed fields on every read, deleted by `forget` (with the
//! snapshots of the streams that hold that subject's sealed fields, as a state may hold the
//! plaintext). The crypto is es-core's (`es_core::store::personal`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use es_core::store::personal::{self, SubjectKey};
use es_core::{ExpectedVersion, NewEvent, StoreError, StreamId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::Inner;
use crate::error::backend;
use crate::pinned::pinned;

/// Keys by subject, with when each was made.
pub(crate) type Keys = personal::DatedKeys;

/// Reads the keys of `subjects` on `conn` (`own`: the store's pool connection).
async fn read(
    conn: &mut PgConnection,
    inner: &Inner,
    subjects: &[String],
    own: bool,
) -> Result<Keys, StoreError> {
    let pooled = inner.settings.pooled;
    let rows = pinned!(own && pooled, conn, |c| {
        sqlx::query(inner.sql.keys_read.clone())
            .persistent(!pooled)
            .bind(subjects)
            .fetch_all(c)
            .await
    })
    .map_err(backend)?;
    let mut keys = Keys::with_capacity(rows.len());
    for row in rows {
        let subject: String = row.try_get("subject").map_err(backend)?;
        let bytes: Vec<u8> = row.try_get("key").map_err(backend)?;
        let made: DateTime<Utc> = row.try_get("created_at").map_err(backend)?;
        if let Some(key) = SubjectKey::from_bytes(&bytes) {
            keys.insert(subject, (key, made));
        }
    }
    Ok(keys)
}

/// The keys of every subject `events` ask to seal, made for new subjects.
///
/// With `expected` (the stream and the version the append expects), keys are made only if
/// the stream is at that version: an append refused anyway makes none (a forgotten subject
/// stays without a key).
pub(crate) async fn for_append(
    conn: &mut PgConnection,
    inner: &Inner,
    events: &[NewEvent],
    own: bool,
    expected: Option<(&StreamId, ExpectedVersion)>,
) -> Result<Option<Keys>, StoreError> {
    let mut subjects: Vec<String> = events
        .iter()
        .flat_map(|e| personal::subjects_to_seal(&e.payload))
        .collect();
    if subjects.is_empty() {
        return Ok(None);
    }
    subjects.sort_unstable();
    subjects.dedup();
    let pooled = inner.settings.pooled;
    // A subject another writer adds meanwhile is seen by the next statement.
    for _ in 0..3 {
        let keys = read(conn, inner, &subjects, own).await?;
        let missing: Vec<&String> = subjects.iter().filter(|s| !keys.contains_key(*s)).collect();
        if missing.is_empty() {
            return Ok(Some(keys));
        }
        if let Some((stream, expected)) = expected {
            let actual = crate::append::stream_version(conn, inner, stream, own).await?;
            if !expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected,
                    actual,
                });
            }
        }
        let fresh: Vec<Vec<u8>> = missing
            .iter()
            .map(|_| SubjectKey::generate().as_bytes().to_vec())
            .collect();
        pinned!(own && pooled, conn, |c| {
            sqlx::query(inner.sql.keys_add.clone())
                .persistent(!pooled)
                .bind(&missing)
                .bind(&fresh)
                .execute(c)
                .await
        })
        .map_err(backend)?;
    }
    Err(StoreError::Backend(
        "personal-data keys were not readable after being made".into(),
    ))
}

/// The subjects of the sealed fields in `rows`' payloads (only rows whose payload holds a
/// sealed field are parsed).
fn sealed_subjects(rows: &[&PgRow], payload_column: usize) -> Vec<String> {
    let marker = memchr::memmem::Finder::new(personal::SEALED.as_bytes());
    let mut subjects: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let raw = row.try_get_raw(payload_column).ok()?;
            // A NULL payload has no bytes (`as_bytes` fails on it): nothing sealed.
            let bytes = raw.as_bytes().ok()?;
            // Parsed only when it holds a sealed field.
            marker.find(bytes)?;
            let sqlx::types::Json(payload): sqlx::types::Json<serde_json::Value> =
                row.try_get(payload_column).ok()?;
            Some(personal::sealed_subjects(&payload))
        })
        .flatten()
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
}

/// The keys to open `rows` with: `None` when none holds a sealed field.
pub(crate) async fn for_rows(
    inner: &Inner,
    rows: &[&PgRow],
    payload_column: usize,
) -> Result<Option<Arc<Keys>>, StoreError> {
    let subjects = sealed_subjects(rows, payload_column);
    if subjects.is_empty() {
        return Ok(None);
    }
    let mut conn = inner.pool.acquire().await.map_err(backend)?;
    Ok(Some(Arc::new(
        read(&mut conn, inner, &subjects, true).await?,
    )))
}

/// The keys to open `rows` with, read on `conn`.
pub(crate) async fn for_rows_on(
    conn: &mut PgConnection,
    inner: &Inner,
    rows: &[&PgRow],
    payload_column: usize,
    own: bool,
) -> Result<Option<Keys>, StoreError> {
    let subjects = sealed_subjects(rows, payload_column);
    if subjects.is_empty() {
        return Ok(None);
    }
    Ok(Some(read(conn, inner, &subjects, own).await?))
}

/// Deletes `subject`'s key, and the snapshots of the streams holding its sealed fields, in
/// one transaction.
pub(crate) async fn forget(inner: &Inner, subject: &str) -> Result<(), StoreError> {
    let pooled = inner.settings.pooled;
    let mut tx = inner.pool.begin().await.map_err(backend)?;
    sqlx::query(inner.sql.keys_forget.clone())
        .persistent(!pooled)
        .bind(subject)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(inner.sql.snapshots_of_subject_delete.clone())
        .persistent(!pooled)
        .bind(subject)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(())
}
