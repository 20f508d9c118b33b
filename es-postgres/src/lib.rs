//! PostgreSQL event store for `es-core`.
//!
//! Not built yet: this crate compiles empty until its own issue lands `PostgresStore`
//! (sqlx, migrations, a gap-free global log ordered by transaction id and sequence).
