//! PostgreSQL store tests: the es-core conformance suite, the late-commit proof of the
//! gap-free global log, concurrency and contention, bad stored data, and the edges of
//! append. See `support` for how the server is found or started.

mod support;

mod append;
mod bad_data;
mod cache;
mod caused;
mod concurrency;
mod erasure;
mod group;
mod held;
mod inline;
mod late_commit;
mod listeners;
mod load;
mod rebuild;
mod replica;
mod wake;

mod conformance {
    es_core::conformance_tests!(async || crate::support::store().await);
}

/// The whole suite again with group commit: every append that can be grouped is.
mod conformance_grouped {
    es_core::conformance_tests!(async || crate::support::store()
        .await
        .with_group_commit(es_postgres::GroupCommit::new()));
}

mod listener_suite {
    es_core::projection_tests!(async || crate::support::store().await);
}

mod evolution_suite {
    es_core::evolution_tests!(async || crate::support::store().await);
}
