//! Aggregate snapshots in the `snapshots` table: the newest per (stream, snapshot version),
//! the state kept as JSON text exactly as written. A row that does not read is the caller's
//! to ignore: the repository logs it and replays the stream.

use es_core::{Snapshot, StoreError, StreamId};
use sqlx::Row;

use crate::Inner;
use crate::error::backend;
use crate::pinned::pinned;

pub(crate) async fn load(
    inner: &Inner,
    stream: &StreamId,
    snapshot_version: u32,
) -> Result<Option<Snapshot>, StoreError> {
    // A stream no store can hold has no snapshot; a version past i32 was never written.
    let Ok(key_version) = i32::try_from(snapshot_version) else {
        return Ok(None);
    };
    if !es_core::store::is_storable_stream(stream) {
        return Ok(None);
    }
    let pooled = inner.settings.pooled;
    let mut conn = inner.pool.acquire().await.map_err(backend)?;
    let row = pinned!(pooled, conn, |c| {
        sqlx::query(inner.sql.snapshot_load.clone())
            .persistent(!pooled)
            .bind(stream.category())
            .bind(stream.id())
            .bind(key_version)
            .fetch_optional(c)
            .await
    })
    .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: 0,
        position: None,
        reason: format!("snapshot version {snapshot_version}: {reason}"),
    };
    let version: i64 = row.try_get("version").map_err(backend)?;
    let version =
        u64::try_from(version).map_err(|_| corrupt(format!("negative version {version}")))?;
    let state: String = row.try_get("state").map_err(backend)?;
    let state =
        serde_json::from_str(&state).map_err(|e| corrupt(format!("state is not JSON: {e}")))?;
    Ok(Some(Snapshot::new(
        stream.clone(),
        snapshot_version,
        version,
        state,
    )))
}

pub(crate) async fn save(inner: &Inner, snapshot: &Snapshot) -> Result<(), StoreError> {
    let (Ok(key_version), Ok(version)) = (
        i32::try_from(snapshot.snapshot_version),
        i64::try_from(snapshot.version),
    ) else {
        return Err(StoreError::Unstorable {
            stream: snapshot.stream.clone(),
            reason: "a snapshot version past i32 or a stream version past i64".to_owned(),
        });
    };
    if !es_core::store::is_storable_stream(&snapshot.stream) {
        return Ok(());
    }
    let state = snapshot.state.to_string();
    let pooled = inner.settings.pooled;
    let mut conn = inner.pool.acquire().await.map_err(backend)?;
    pinned!(pooled, conn, |c| {
        sqlx::query(inner.sql.snapshot_save.clone())
            .persistent(!pooled)
            .bind(snapshot.stream.category())
            .bind(snapshot.stream.id())
            .bind(key_version)
            .bind(version)
            .bind(&state)
            .execute(c)
            .await
    })
    .map_err(backend)?;
    Ok(())
}
