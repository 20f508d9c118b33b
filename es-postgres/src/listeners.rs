//! What listeners (read models, reactors) get from PostgreSQL: checkpoints in a table, and
//! for read models kept in tables, a transaction that holds their writes and their checkpoint
//! together, under a per-listener lock taken for that transaction only.

use std::sync::Arc;

use es_core::Position;
use es_core::StoreError;
use es_core::projection::{Checkpoints, ContextStore, version_key};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::error::backend;
use crate::pinned::pinned;
use crate::read::position_params;
use crate::{Inner, PostgresStore};

fn position(row: &PgRow) -> Result<Position, StoreError> {
    let transaction: String = row.try_get("transaction_xid").map_err(backend)?;
    let sequence: i64 = row.try_get("position").map_err(backend)?;
    let bad = || StoreError::Backend(format!("bad position ({transaction}, {sequence})").into());
    Ok(Position::new(
        transaction.parse().map_err(|_| bad())?,
        u64::try_from(sequence).map_err(|_| bad())?,
    ))
}

/// `own`: the store's pool connection (pinned behind a transaction-pooling proxy), not a
/// unit's transaction.
async fn load(
    conn: &mut PgConnection,
    inner: &Inner,
    name: &str,
    own: bool,
) -> Result<Option<Position>, StoreError> {
    let pooled = inner.settings.pooled;
    let row = pinned!(own && pooled, conn, |c| {
        sqlx::query(inner.sql.load_checkpoint.clone())
            .persistent(!pooled)
            .bind(name)
            .fetch_optional(c)
            .await
    })
    .map_err(backend)?;
    row.as_ref().map(position).transpose()
}

async fn save(
    conn: &mut PgConnection,
    inner: &Inner,
    name: &str,
    at: Position,
    own: bool,
) -> Result<(), StoreError> {
    let (transaction, sequence) = position_params(Some(at));
    let pooled = inner.settings.pooled;
    pinned!(own && pooled, conn, |c| {
        sqlx::query(inner.sql.save_checkpoint.clone())
            .persistent(!pooled)
            .bind(name)
            .bind(&transaction)
            .bind(sequence)
            .execute(c)
            .await
    })
    .map_err(backend)?;
    Ok(())
}

impl Checkpoints for PostgresStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        load(&mut conn, &self.inner, name, true).await
    }

    async fn save_checkpoint(&self, name: &str, at: Position) -> Result<(), StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        save(&mut conn, &self.inner, name, at, true).await
    }

    async fn count(
        &self,
        after: Option<Position>,
        up_to: Position,
        types: &'static [&'static str],
    ) -> Result<Option<u64>, StoreError> {
        let (after_x, after_p) = position_params(after);
        let (up_x, up_p) = position_params(Some(up_to));
        let events = format!("\"{}\".events", self.inner.sql.schema);
        let pooled = self.inner.settings.pooled;
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        let n: i64 = pinned!(pooled, conn, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {events} WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                 AND (transaction_id, position) <= ($3::text::xid8, $4) AND event_type = ANY($5)"
            )))
            .persistent(false)
            .bind(&after_x)
            .bind(after_p)
            .bind(&up_x)
            .bind(up_p)
            .bind(types)
            .fetch_one(c)
            .await
        })
        .map_err(backend)?;
        Ok(u64::try_from(n).ok())
    }

    /// A lease per listener key in `listener_leases`, held by this store and its copies
    /// (`Inner::owner`): another store (another process) holding an unexpired one makes
    /// this one's runner a standby.
    async fn claim(&self, key: &str, lease: std::time::Duration) -> Result<bool, StoreError> {
        let pooled = self.inner.settings.pooled;
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        let held: Option<uuid::Uuid> = pinned!(pooled, conn, |c| {
            sqlx::query_scalar(self.inner.sql.lease_claim.clone())
                .persistent(!pooled)
                .bind(key)
                .bind(self.inner.owner)
                .bind(lease.as_secs_f64())
                .fetch_optional(c)
                .await
        })
        .map_err(backend)?;
        Ok(held.is_some())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let pooled = self.inner.settings.pooled;
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        pinned!(pooled, conn, |c| {
            sqlx::query(self.inner.sql.lease_release.clone())
                .persistent(!pooled)
                .bind(key)
                .bind(self.inner.owner)
                .execute(c)
                .await
        })
        .map_err(backend)?;
        Ok(())
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let pooled = self.inner.settings.pooled;
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        let row = pinned!(pooled, conn, |c| {
            sqlx::query(self.inner.sql.head.clone())
                .persistent(!pooled)
                .fetch_optional(c)
                .await
        })
        .map_err(backend)?;
        row.as_ref().map(position).transpose()
    }
}

/// A read model's unit of work on PostgreSQL: a transaction holding the listener's lock;
/// handlers write through its connection, and the checkpoint commits with their writes.
#[derive(Debug)]
pub struct ListenerTx {
    tx: Transaction<'static, Postgres>,
    inner: Arc<Inner>,
}

/// A schema name derived from the store's and a read model's: `[a-z0-9_]` and at most 63
/// bytes (PostgreSQL would cut a longer one short, silently).
fn derived_schema(inner: &Inner, suffix: &str) -> Result<String, StoreError> {
    let name = format!("{}__{suffix}", inner.sql.schema);
    let valid = name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(StoreError::Backend(
            format!(
                "the read model's schema would be {name:?}: use a name of `[a-z0-9_]` short enough for 63 bytes with the store's schema"
            )
            .into(),
        ))
    }
}

/// The tables of a schema (not its views), quoted.
async fn tables_of(
    conn: &mut PgConnection,
    schema: &str,
    kind: &str,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_type = $2 ORDER BY 1",
    )
    .persistent(false)
    .bind(schema)
    .bind(kind)
    .fetch_all(conn)
    .await
    .map_err(backend)?;
    Ok(names
        .into_iter()
        .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
        .collect())
}

async fn lock(conn: &mut PgConnection, inner: &Inner, name: &str) -> Result<(), StoreError> {
    sqlx::query(inner.sql.lock_listener.clone())
        .persistent(!inner.settings.pooled)
        .bind(name)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

impl ContextStore<PgConnection> for PostgresStore {
    type Unit = ListenerTx;
    const DURABLE: bool = true;

    async fn begin(&self, name: &str) -> Result<ListenerTx, StoreError> {
        <Self as ContextStore<PgConnection>>::begin_partition(self, name, name).await
    }

    /// A partition's unit: its own lock (`key`), the read model's schema (`name`'s).
    async fn begin_partition(&self, name: &str, key: &str) -> Result<ListenerTx, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(backend)?;
        // Waits while another runner of this listener is inside a batch (one of the same
        // process: another process's stands by, `Checkpoints::claim`); each batch starts from
        // the checkpoint it finds under the lock.
        // Handlers write unqualified names into this version's schema.
        let data = derived_schema(&self.inner, name)?;
        let search_path = format!("\"{data}\", \"{}\"", self.inner.sql.schema);
        sqlx::query(self.inner.sql.begin_listener.clone())
            .persistent(!self.inner.settings.pooled)
            .bind(key)
            .bind(search_path)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        Ok(ListenerTx {
            tx,
            inner: Arc::clone(&self.inner),
        })
    }

    async fn prepare(
        &self,
        name: &str,
        version: u32,
        ddl: &str,
    ) -> Result<Option<u32>, StoreError> {
        let key = version_key(name, version);
        let data = derived_schema(&self.inner, &key)?;
        let version =
            i32::try_from(version).map_err(|_| StoreError::Backend("version past i32".into()))?;
        let mut tx = self.inner.pool.begin().await.map_err(backend)?;
        lock(&mut tx, &self.inner, name).await?;
        let known: Option<i32> = sqlx::query_scalar(self.inner.sql.version_known.clone())
            .persistent(false)
            .bind(name)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if known.is_none() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{data}\"; SET LOCAL search_path TO \"{data}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if !ddl.trim().is_empty() {
                sqlx::raw_sql(sqlx::AssertSqlSafe(ddl.to_owned()))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            // New tables start from the start: a checkpoint left by a dropped version of the
            // same number must not apply to them.
            sqlx::query(self.inner.sql.checkpoint_delete.clone())
                .persistent(false)
                .bind(&key)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query(self.inner.sql.version_add.clone())
                .persistent(false)
                .bind(name)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let serving: Option<i32> = sqlx::query_scalar(self.inner.sql.version_serving.clone())
            .persistent(false)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(serving.and_then(|v| u32::try_from(v).ok()))
    }

    async fn activate(&self, name: &str, version: u32) -> Result<(), StoreError> {
        let data = derived_schema(&self.inner, &version_key(name, version))?;
        let views = derived_schema(&self.inner, name)?;
        let version =
            i32::try_from(version).map_err(|_| StoreError::Backend("version past i32".into()))?;
        let mut tx = self.inner.pool.begin().await.map_err(backend)?;
        lock(&mut tx, &self.inner, name).await?;
        // Readers see the old version or the new one, never a mix: one transaction.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{views}\""
        )))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        for view in tables_of(&mut tx, &views, "VIEW").await? {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP VIEW \"{views}\".{view}")))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        for table in tables_of(&mut tx, &data, "BASE TABLE").await? {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE VIEW \"{views}\".{table} AS SELECT * FROM \"{data}\".{table}"
            )))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        sqlx::query(self.inner.sql.version_activate.clone())
            .persistent(false)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    fn context(unit: &mut ListenerTx) -> &mut PgConnection {
        &mut unit.tx
    }

    async fn checkpoint_in(
        unit: &mut ListenerTx,
        name: &str,
    ) -> Result<Option<Position>, StoreError> {
        load(&mut unit.tx, &unit.inner, name, false).await
    }

    async fn commit(mut unit: ListenerTx, name: &str, at: Position) -> Result<(), StoreError> {
        save(&mut unit.tx, &unit.inner, name, at, false).await?;
        unit.tx.commit().await.map_err(backend)
    }
}

/// An inline projection, type-erased for the store.
pub(crate) trait InlineProjection: Send + Sync {
    /// The projection's name.
    fn name(&self) -> &'static str;

    /// Runs the handlers of `records` on `conn`, inside the append's transaction.
    fn apply<'a>(
        &'a self,
        records: &'a [es_core::RecordedEvent],
        conn: &'a mut PgConnection,
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>>;
}

/// A projection run inline, one append at a time.
pub(crate) struct Inline<P>(pub(crate) tokio::sync::Mutex<P>);

impl std::fmt::Debug for dyn InlineProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InlineProjection")
            .field(&self.name())
            .finish()
    }
}

impl<P: es_core::Projection<Context = PgConnection>> InlineProjection for Inline<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn apply<'a>(
        &'a self,
        records: &'a [es_core::RecordedEvent],
        conn: &'a mut PgConnection,
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut projection = self.0.lock().await;
            for record in records {
                if !P::EVENT_TYPES.contains(&record.event_type.as_str()) {
                    continue;
                }
                if let Err(e) = projection.handle(record, conn).await {
                    return Err(StoreError::InlineProjection {
                        projection: P::NAME,
                        position: record.position,
                        error: e.to_string(),
                    });
                }
            }
            Ok(())
        })
    }
}

/// Drops a version that does not serve: its schema and its row.
pub(crate) async fn drop_version(
    inner: &Inner,
    name: &str,
    version: u32,
) -> Result<(), StoreError> {
    let key = version_key(name, version);
    let data = derived_schema(inner, &key)?;
    let version =
        i32::try_from(version).map_err(|_| StoreError::Backend("version past i32".into()))?;
    let mut tx = inner.pool.begin().await.map_err(backend)?;
    lock(&mut tx, inner, name).await?;
    let active: Option<bool> = sqlx::query_scalar(inner.sql.version_active.clone())
        .persistent(false)
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
    if active == Some(true) {
        return Err(StoreError::Backend(
            format!("version {version} of `{name}` serves readers: activate another first").into(),
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{data}\" CASCADE"
    )))
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    sqlx::query(inner.sql.checkpoint_delete.clone())
        .persistent(false)
        .bind(&key)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(inner.sql.version_delete.clone())
        .persistent(false)
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}
