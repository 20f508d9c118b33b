//! Stored data that no longer reads, written with raw SQL: an unknown event type, a payload
//! that no longer deserializes, a schema version the code does not read, metadata that is
//! not metadata. Each is a typed error naming stream, version and type; none panics.

use bank::domain::account::{Account, AccountId, Deposit, OpenAccount};
use es_core::{DecodeError, Error, EventStore, Repository, StoreError};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::support;

async fn insert_raw(
    store: &es_postgres::PostgresStore,
    stream_id: &str,
    version: i64,
    event_type: &str,
    schema_version: i32,
    payload: &str,
    metadata: &str,
) {
    let sql = format!(
        "INSERT INTO \"{}\".events (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
         VALUES ('account', $1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)",
        store.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(stream_id)
        .bind(version)
        .bind(event_type)
        .bind(schema_version)
        .bind(payload)
        .bind(metadata)
        .bind(Uuid::now_v7())
        .execute(store.pool())
        .await
        .expect("raw insert");
}

#[tokio::test]
async fn events_that_no_longer_read_are_typed_errors_naming_stream_version_and_type() {
    let store = support::store().await;
    let accounts = Repository::<Account, _>::new(store.clone());
    let cases = [
        ("MoneyTeleported", 1, r#"{"amount": 1}"#),
        ("MoneyDeposited", 1, r#"{"amount": "a lot"}"#),
        ("MoneyDeposited", 7, r#"{"amount": 1}"#),
    ];
    for (event_type, schema_version, payload) in cases {
        let id = AccountId::new();
        accounts
            .execute(
                &id,
                OpenAccount {
                    owner: "ada".into(),
                },
            )
            .await
            .expect("open");
        insert_raw(
            &store,
            &id.to_string(),
            2,
            event_type,
            schema_version,
            payload,
            "{}",
        )
        .await;
        let err = accounts.load(&id).await.expect_err("corrupt");
        let Error::Corrupt(corrupt) = &err else {
            panic!("expected Corrupt, got {err:?}");
        };
        assert_eq!(corrupt.stream.to_string(), format!("account-{id}"));
        assert_eq!(corrupt.version, 2);
        assert_eq!(corrupt.event_type, event_type);
        match (&corrupt.source, schema_version) {
            (DecodeError::UnknownType { .. }, _) if event_type == "MoneyTeleported" => {}
            (DecodeError::Payload(_), 1) => {}
            (
                DecodeError::UnsupportedVersion {
                    stored: 7,
                    current: 1,
                },
                7,
            ) => {}
            (other, _) => panic!("wrong decode error for {event_type}: {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&format!("account-{id}")) && message.contains(event_type),
            "{message}"
        );
        // Deciding on a corrupt stream fails the same way and writes nothing.
        let err = accounts
            .execute(&id, Deposit { amount: 5 })
            .await
            .expect_err("corrupt");
        assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
        assert_eq!(
            store
                .stream_version(&accounts_stream(&id))
                .await
                .expect("version"),
            2
        );
    }
}

fn accounts_stream(id: &AccountId) -> es_core::StreamId {
    es_core::StreamId::new(<Account as es_core::AggregateRoot>::NAME, id.to_string())
}

#[tokio::test]
async fn metadata_that_is_not_metadata_is_a_corrupt_record() {
    let store = support::store().await;
    let id = AccountId::new();
    insert_raw(
        &store,
        &id.to_string(),
        1,
        "AccountOpened",
        1,
        r#"{"owner": "ada"}"#,
        r#"{"actor": 42}"#,
    )
    .await;
    let err = store
        .read_stream(&accounts_stream(&id), 1)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("corrupt metadata");
    match err {
        StoreError::Corrupt {
            stream,
            version,
            position,
            reason,
        } => {
            assert_eq!(stream, accounts_stream(&id));
            assert_eq!(version, 1);
            assert!(position.is_some(), "the error says where the record is");
            assert!(reason.contains("metadata"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The bank demo's scenario runs unchanged on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_scenario_runs_on_postgres() {
    let store = support::store_with(16).await;
    let mut out = Vec::new();
    let summary = bank::scenario::run(store, &mut out)
        .await
        .expect("the scenario succeeds");
    assert_eq!(
        (summary.accepted, summary.rejected, summary.conflicts),
        (14, 8, 1)
    );
    assert_eq!((summary.final_balance, summary.stream_events), (0, 14));
}

/// The transfer saga on PostgreSQL: a success, a refused credit refunded, a refused debit;
/// money conserved; restarted from an older checkpoint, it moves nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transfer_saga_runs_on_postgres() {
    let store = support::store_with(16).await;
    let mut out = Vec::new();
    let report = bank::transfers::run(store.clone(), &mut out)
        .await
        .expect("the transfer demo succeeds");
    // Statements in tables, then rebuilt into the other version and back: each time the
    // serving version's views agree with the fold.
    for _ in 0..2 {
        bank::rebuild_demo::run(&store, &mut out, &report)
            .await
            .expect("the rebuild demo succeeds");
    }
    let printed = String::from_utf8(out).expect("UTF-8");
    assert!(
        printed.contains("caught up: version 2 serves now"),
        "{printed}"
    );
    assert!(
        printed.contains("caught up: version 1 serves now"),
        "{printed}"
    );
    assert_eq!(
        (report.completed, report.refunded, report.debit_refused),
        (1, 1, 1)
    );
    assert_eq!(report.balances, [7_000, 3_000, 0]);
    assert_eq!(report.totals, (10_000, 10_000));
    assert_eq!(report.redelivery.0, report.redelivery.1);
}

/// Set-based validation on PostgreSQL: of 16 concurrent registrations of one e-mail address
/// (16 transactions racing on the claim stream), exactly one succeeds and nothing of the
/// others is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_sixteen_registrations_of_one_email_wins() {
    let store = support::store_with(20).await;
    let race = bank::scenario::register_concurrently(store, "ada@example.com", 16)
        .await
        .expect("registrations");
    assert_eq!(
        race,
        bank::scenario::RegistrationRace {
            registered: 1,
            claimed: 15,
            written: 1
        }
    );
}

/// A record that no longer reads, in the middle of the log: reads and subscriptions deliver
/// what comes before it, then the error naming it, then what comes after it (the consumer
/// decides whether to stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_reported_in_place_and_never_hides_its_neighbours() {
    let store = support::store().await;
    let id = AccountId::new();
    let stream = accounts_stream(&id);
    let owner = r#"{"owner": "ada"}"#;
    insert_raw(&store, &id.to_string(), 1, "AccountOpened", 1, owner, "{}").await;
    insert_raw(
        &store,
        &id.to_string(),
        2,
        "MoneyDeposited",
        1,
        r#"{"amount": 1}"#,
        r#"{"actor": 42}"#,
    )
    .await;
    insert_raw(
        &store,
        &id.to_string(),
        3,
        "MoneyDeposited",
        1,
        r#"{"amount": 2}"#,
        "{}",
    )
    .await;

    let check = |items: Vec<Result<es_core::RecordedEvent, StoreError>>| {
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(items[0].as_ref().expect("v1 reads").version, 1);
        match &items[1] {
            Err(StoreError::Corrupt {
                version: 2,
                position: Some(p),
                ..
            }) => {
                assert!(*p > items[0].as_ref().expect("v1").position);
            }
            other => panic!("expected v2 to be corrupt, got {other:?}"),
        }
        assert_eq!(items[2].as_ref().expect("v3 reads").version, 3);
    };
    let read: Vec<_> = futures::StreamExt::collect(store.read_stream(&stream, 1)).await;
    check(read);
    // The whole log stops at the database's horizon: a transaction another test holds open
    // (the late-commit tests do, on purpose) hides what follows until it ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let read = loop {
        let read: Vec<_> =
            futures::StreamExt::collect(store.clone().with_batch_size(1).read_all(None)).await;
        if read.len() >= 3 || std::time::Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    check(read);
    let mut sub = store.subscribe(None);
    let mut live = Vec::new();
    for _ in 0..3 {
        let item = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            futures::StreamExt::next(&mut sub),
        )
        .await
        .expect("within 20 s")
        .expect("goes on");
        live.push(item);
    }
    check(live);
}
