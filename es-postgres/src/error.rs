//! Errors of setting a store up ([`PostgresError`]) and the mapping of sqlx errors to
//! es-core's [`StoreError`], by error kind and constraint name, never by SQLSTATE string.

use es_core::StoreError;

/// What setting up a [`PostgresStore`](crate::PostgresStore) can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The schema name is not `[a-z_][a-z0-9_]*` of at most 48 bytes, or starts with `pg_`.
    #[error(
        "invalid schema name {0:?}: use `[a-z_][a-z0-9_]*`, at most 48 bytes, not starting with `pg_`"
    )]
    InvalidSchema(String),
    /// The server could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The unique constraint a failed statement violated, if that is what failed.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Some(db.constraint().unwrap_or(""))
        }
        _ => None,
    }
}
