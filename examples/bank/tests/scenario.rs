//! The demo's scenario as a test: it runs to the end on the in-memory store, prints every
//! section, and its own checks (money conserved, one winner per race) hold.

use bank::scenario::{self, Summary};
use es_core::InMemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenario_runs_to_the_end_on_the_in_memory_store() {
    let mut out = Vec::new();
    let summary = scenario::run(InMemoryStore::new(), &mut out)
        .await
        .expect("the scenario succeeds");
    assert_eq!(
        summary,
        Summary {
            accepted: 14,
            rejected: 8,
            conflicts: 1,
            final_balance: 0,
            stream_events: 14,
        }
    );
    let printed = String::from_utf8(out).expect("UTF-8");
    for section in ["1. ", "2. ", "3. ", "4. ", "5. ", "6. ", "7. "] {
        assert!(
            printed.contains(section),
            "section {section} missing:\n{printed}"
        );
    }
    assert!(
        printed.contains("x rejected: insufficient funds"),
        "{printed}"
    );
    assert!(printed.contains("got a conflict"), "{printed}");
}

/// Set-based validation: of 16 concurrent registrations of one e-mail address, exactly one
/// succeeds, and nothing of the others is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_sixteen_registrations_of_one_email_wins() {
    let race = scenario::register_concurrently(InMemoryStore::new(), "ada@example.com", 16)
        .await
        .expect("registrations");
    assert_eq!(
        race,
        scenario::RegistrationRace {
            registered: 1,
            claimed: 15,
            written: 1
        }
    );
}
