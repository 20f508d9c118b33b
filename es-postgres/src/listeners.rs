//! What listeners (read models, reactors) get from PostgreSQL: checkpoints in a table, and
//! for read models kept in tables, a transaction that holds their writes and their checkpoint
//! together, under a per-listener lock taken for that transaction only.

use std::sync::Arc;

use es_core::Position;
use es_core::StoreError;
use es_core::projection::{Checkpoints, ContextStore};
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

impl ContextStore<PgConnection> for PostgresStore {
    type Unit = ListenerTx;
    const DURABLE: bool = true;

    async fn begin(&self, name: &str) -> Result<ListenerTx, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(backend)?;
        // Waits while another process's runner of this listener is inside a batch: runners
        // take turns, and each batch starts from the checkpoint it finds under the lock.
        sqlx::query(self.inner.sql.lock_listener.clone())
            .persistent(!self.inner.settings.pooled)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        Ok(ListenerTx {
            tx,
            inner: Arc::clone(&self.inner),
        })
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
