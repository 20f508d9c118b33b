//! The store conformance suite against [`InMemoryStore`](es_core::InMemoryStore).

es_core::conformance_tests!(async || es_core::InMemoryStore::new());

mod listeners {
    es_core::projection_tests!(async || es_core::InMemoryStore::new());
}

mod evolution {
    es_core::evolution_tests!(async || es_core::InMemoryStore::new());
}
