//! The es-core conformance suite on a `PostgresStore` reached through PgBouncer, with
//! `LISTEN` off and the migrations run apart on a direct connection, and a subscriber that
//! polls for another store's appends. See `bouncer` for how PgBouncer is found or started,
//! and for the pool mode (`transaction` unless `ES_PGBOUNCER_POOL_MODE=session`).

// The PostgreSQL harness, shared read-only with the `postgres` tests: the server behind
// PgBouncer (DATABASE_URL, or a throwaway one). This target uses only part of it.
#[allow(dead_code)]
#[path = "../postgres/support.rs"]
mod support;

mod bouncer;

mod conformance {
    es_core::conformance_tests!(async || crate::bouncer::store().await);
}

/// Group commit behind the proxy: each batch's statement pinned in a transaction of its own.
mod conformance_grouped {
    es_core::conformance_tests!(async || crate::bouncer::store()
        .await
        .with_group_commit(es_postgres::GroupCommit::new()));
}

mod listeners {
    es_core::projection_tests!(async || crate::bouncer::store().await);
}

mod evolution {
    es_core::evolution_tests!(async || crate::bouncer::store().await);
}

mod polling;
