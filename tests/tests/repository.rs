//! The repository end to end on the in-memory store, with the bank's `Account`: what
//! `execute` returns matches what is stored, rejections and conflicts write nothing, retries
//! conserve money, and stored events that no longer read are typed errors naming the stream,
//! version and type.

use std::sync::Arc;

use bank::domain::account::{
    Account, AccountError, AccountEvent, AccountId, Deposit, MoneyDeposited, OpenAccount, Withdraw,
};
use es_core::prelude::*;
use es_core::testing::Instrumented;
use es_core::{DecodeError, EncodeError, Error, NewEvent};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn accounts(store: &InMemoryStore) -> Repository<Account, InMemoryStore> {
    Repository::new(store.clone())
}

async fn opened(store: &InMemoryStore) -> AccountId {
    let id = AccountId::new();
    accounts(store)
        .execute(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
        )
        .await
        .expect("opens");
    id
}

#[tokio::test]
async fn executed_envelopes_match_the_stored_records() {
    let store = InMemoryStore::new();
    let id = opened(&store).await;
    let correlation = Uuid::now_v7();
    let done = accounts(&store)
        .execute_with(
            &id,
            Deposit { amount: 25 },
            Metadata::default()
                .correlation_id(correlation)
                .actor("teller-1"),
        )
        .await
        .expect("deposits");
    assert_eq!(done.version, 2);
    assert_eq!(done.events.len(), 1);
    let envelope = &done.events[0];
    assert_eq!(done.position, Some(envelope.position));
    assert_eq!(
        envelope.event,
        AccountEvent::MoneyDeposited(MoneyDeposited { amount: 25 })
    );

    let stream = accounts(&store).stream_id(&id);
    let stored: Vec<_> = store
        .read_stream(&stream, 2)
        .try_collect()
        .await
        .expect("reads");
    assert_eq!(stored.len(), 1);
    let record = &stored[0];
    assert_eq!(record.event_id, envelope.event_id);
    assert_eq!(record.version, envelope.version);
    assert_eq!(record.position, envelope.position);
    assert_eq!(record.recorded_at, envelope.recorded_at);
    assert_eq!(record.stream, envelope.stream);
    assert_eq!(record.event_type, "MoneyDeposited");
    assert_eq!(record.payload, serde_json::json!({ "amount": 25 }));
    assert_eq!(record.metadata.correlation_id, Some(correlation));
    assert_eq!(record.metadata.actor.as_deref(), Some("teller-1"));
    assert_eq!(envelope.metadata, record.metadata);
    assert_eq!(
        envelope.event_id.get_version_num(),
        7,
        "event ids are UUID v7"
    );
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let store = InMemoryStore::new();
    let id = opened(&store).await;
    let before = store.len();
    let err = accounts(&store)
        .execute(&id, Withdraw { amount: 1 })
        .await
        .expect_err("no funds");
    assert!(
        matches!(
            err,
            Error::Rejected(AccountError::InsufficientFunds {
                balance: 0,
                requested: 1
            })
        ),
        "{err:?}"
    );
    assert_eq!(store.len(), before);
    assert_eq!(accounts(&store).load(&id).await.expect("loads").version, 1);
}

#[tokio::test]
async fn execute_expecting_a_stale_version_is_a_conflict_and_is_never_retried() {
    let store = InMemoryStore::new();
    let id = opened(&store).await;
    let repo = accounts(&store).with_retry(5);
    repo.execute(&id, Deposit { amount: 1 }).await.expect("v2");
    let err = repo
        .execute_expecting(&id, Deposit { amount: 1 }, ExpectedVersion::Exact(1))
        .await
        .expect_err("stale");
    match err {
        Error::Conflict {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream.to_string(), format!("account-{id}"));
            assert_eq!(expected, ExpectedVersion::Exact(1));
            assert_eq!(actual, 2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.len(), 2, "the conflict wrote nothing");
    let done = repo
        .execute_expecting(&id, Deposit { amount: 1 }, ExpectedVersion::Exact(2))
        .await
        .expect("current version");
    assert_eq!(done.version, 3);
    assert!(
        accounts(&store)
            .execute_expecting(
                &AccountId::new(),
                OpenAccount { owner: "bo".into() },
                ExpectedVersion::NoStream
            )
            .await
            .is_ok()
    );
}

/// 32 tasks deposit into one account. Without retry some lose with a typed conflict and
/// write nothing; with retry all land. Either way the balance is the sum of accepted deposits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deposits_conserve_money() {
    for retries in [0, 100] {
        let store = InMemoryStore::new();
        let id = opened(&store).await;
        let repo = Arc::new(accounts(&store).with_retry(retries));
        let tasks: Vec<_> = (1..=32u64)
            .map(|amount| {
                let repo = Arc::clone(&repo);
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    (amount, repo.execute(&id, Deposit { amount }).await)
                })
            })
            .collect();
        let (mut accepted, mut sum, mut conflicts) = (0, 0, 0);
        for task in tasks {
            match task.await.expect("task") {
                (amount, Ok(_)) => {
                    accepted += 1;
                    sum += amount;
                }
                (
                    _,
                    Err(Error::Conflict {
                        actual, expected, ..
                    }),
                ) => {
                    assert!(matches!(expected, ExpectedVersion::Exact(v) if v < actual));
                    conflicts += 1;
                }
                (_, Err(other)) => panic!("unexpected {other:?}"),
            }
        }
        let loaded = accounts(&store).load(&id).await.expect("loads");
        assert_eq!(loaded.state.balance(), sum, "retries={retries}");
        assert_eq!(loaded.version, 1 + accepted, "retries={retries}");
        assert_eq!(accepted + conflicts, 32);
        if retries > 0 {
            assert_eq!(accepted, 32, "with retry every deposit lands");
        }
    }
}

async fn append_raw(
    store: &InMemoryStore,
    id: &AccountId,
    event_type: &str,
    version: u16,
    payload: serde_json::Value,
) {
    let stream = accounts(store).stream_id(id);
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.into(),
                schema_version: version,
                payload,
                metadata: Metadata::default(),
            }],
        )
        .await
        .expect("raw append");
}

#[tokio::test]
async fn stored_events_that_no_longer_read_name_stream_version_and_type() {
    let cases: [(&str, u16, serde_json::Value); 3] = [
        ("MoneyTeleported", 1, serde_json::json!({ "amount": 1 })),
        ("MoneyDeposited", 1, serde_json::json!({ "amount": "lots" })),
        ("MoneyDeposited", 9, serde_json::json!({ "amount": 1 })),
    ];
    for (event_type, schema_version, payload) in cases {
        let store = InMemoryStore::new();
        let id = opened(&store).await;
        append_raw(&store, &id, event_type, schema_version, payload).await;
        let err = accounts(&store).load(&id).await.expect_err("corrupt");
        let Error::Corrupt(corrupt) = &err else {
            panic!("expected Corrupt, got {err:?}");
        };
        assert_eq!(corrupt.stream.to_string(), format!("account-{id}"));
        assert_eq!(corrupt.version, 2);
        assert_eq!(corrupt.event_type, event_type);
        assert_eq!(corrupt.schema_version, schema_version);
        match (event_type, schema_version, &corrupt.source) {
            ("MoneyTeleported", _, DecodeError::UnknownType { expected }) => {
                assert!(expected.contains(&"MoneyDeposited"));
            }
            (_, 1, DecodeError::Payload(_)) => {}
            (
                _,
                9,
                DecodeError::UnsupportedVersion {
                    stored: 9,
                    current: 1,
                },
            ) => {}
            other => panic!("wrong decode error {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&format!("account-{id}")), "{message}");
        assert!(message.contains("version 2"), "{message}");
        assert!(message.contains(event_type), "{message}");
        // A command on the corrupt stream fails the same way and writes nothing.
        let before = store.len();
        assert!(matches!(
            accounts(&store).execute(&id, Deposit { amount: 1 }).await,
            Err(Error::Corrupt(_))
        ));
        assert_eq!(store.len(), before);
    }
}

/// An event whose `Serialize` does not produce a JSON object.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Weird {}

impl Serialize for Weird {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("weird")
    }
}

impl es_core::Event for Weird {
    const NAME: &'static str = "Weird";
    const VERSION: u16 = 1;
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct DoWeird;

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct DoNothing;

#[derive(Debug)]
struct Never;

#[derive(Aggregate, Default)]
#[aggregate(error = Never)]
struct Oddity;

#[aggregate_impl]
impl Oddity {
    #[command]
    fn weird(&self, _: DoWeird) -> Result<Weird, Never> {
        Ok(Weird {})
    }

    #[command]
    fn nothing(&self, _: DoNothing) -> Result<(), Never> {
        Ok(())
    }

    #[apply]
    fn applied(&mut self, _: &Weird) {}
}

#[tokio::test]
async fn an_event_that_is_not_a_json_object_is_an_encode_error_and_writes_nothing() {
    let store = InMemoryStore::new();
    let repo = Repository::<Oddity, _>::new(store.clone());
    let err = repo
        .execute(&Uuid::now_v7(), DoWeird)
        .await
        .expect_err("not an object");
    assert!(
        matches!(
            err,
            Error::Encode(EncodeError::NotAnObject {
                event_type: "Weird",
                found: "string"
            })
        ),
        "{err:?}"
    );
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_command_that_emits_nothing_appends_nothing() {
    let store = InMemoryStore::new();
    let repo = Repository::<Oddity, _>::new(store.clone());
    let done = repo.execute(&Uuid::now_v7(), DoNothing).await.expect("ok");
    assert!(done.events.is_empty());
    assert_eq!(done.version, 0);
    assert_eq!(done.position, None);
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_subscriber_sees_every_executed_event_in_order() {
    let store = InMemoryStore::new();
    let mut feed = store.subscribe(None);
    let id = opened(&store).await;
    let repo = accounts(&store);
    for amount in 1..=20 {
        repo.execute(&id, Deposit { amount })
            .await
            .expect("deposit");
    }
    let mut versions = Vec::new();
    while versions.len() < 21 {
        let record = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
            .await
            .expect("live event within 10s")
            .expect("stream goes on")
            .expect("no error");
        versions.push(record.version);
    }
    assert_eq!(versions, (1..=21).collect::<Vec<u64>>());
}

#[tokio::test]
async fn with_retry_n_makes_n_more_attempts_on_conflict_only() {
    let id = AccountId::new();
    let flaky = |conflicts| {
        let store = Instrumented::new(InMemoryStore::new());
        store.refuse_next_appends(conflicts);
        store
    };
    let counts = |s: &Instrumented<InMemoryStore>| (s.appends(), s.stream_reads());

    // Three conflicts, three retries: the fourth attempt lands; each attempt re-loads.
    let store = flaky(3);
    let repo = Repository::<Account, _>::new(store.clone()).with_retry(3);
    repo.execute(
        &id,
        OpenAccount {
            owner: "ada".into(),
        },
    )
    .await
    .expect("lands on the fourth attempt");
    assert_eq!(counts(&store), (4, 4));

    // Three conflicts, two retries: the conflict comes back after three attempts.
    let store = flaky(3);
    let repo = Repository::<Account, _>::new(store.clone()).with_retry(2);
    let err = repo
        .execute(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
        )
        .await
        .expect_err("out of retries");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(counts(&store), (3, 3));
    assert!(store.inner().is_empty(), "nothing written");

    // A rejection is never retried and never reaches the store's append.
    let store = flaky(3);
    let repo = Repository::<Account, _>::new(store.clone()).with_retry(5);
    let err = repo
        .execute(&id, Deposit { amount: 1 })
        .await
        .expect_err("not open");
    assert!(
        matches!(err, Error::Rejected(AccountError::NotOpen)),
        "{err:?}"
    );
    assert_eq!(counts(&store), (0, 1));

    // execute_expecting is never retried, whatever `with_retry` says.
    let store = flaky(1);
    let repo = Repository::<Account, _>::new(store.clone()).with_retry(5);
    let err = repo
        .execute_expecting(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
            ExpectedVersion::NoStream,
        )
        .await
        .expect_err("conflict");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(counts(&store), (1, 0), "expecting no stream: no load");
}

/// A command expected to find no stream is decided on the default state without a load;
/// every outcome is the one a load first would give: a stream that has events is a conflict
/// naming its version (even for a command the default state refuses), a new one a refusal.
#[tokio::test]
async fn a_command_expecting_no_stream_is_decided_without_a_load() {
    let counted = Instrumented::new(InMemoryStore::new());
    let repo = Repository::<Account, _>::new(counted.clone()).with_cache(10);
    let reads = || counted.stream_reads();
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(0)] {
        let id = AccountId::new();
        let open = || OpenAccount {
            owner: "ada".into(),
        };
        let before = reads();
        let done = repo
            .execute_expecting(&id, open(), expected)
            .await
            .expect("opens");
        assert_eq!(done.version, 1);
        assert_eq!(reads(), before, "no load for a new stream");
        // Kept by the cache: the next command needs no load either.
        repo.execute(&id, Deposit { amount: 5 })
            .await
            .expect("deposits");
        assert_eq!(reads(), before);
        let balance = |loaded: Loaded<Account>| loaded.state.balance();
        assert_eq!(balance(repo.load(&id).await.expect("loads")), 5);

        let stored = counted.inner().len();
        for err in [
            repo.execute_expecting(&id, open(), expected).await,
            // Refused by the default state, but the stream has events: the conflict.
            repo.execute_expecting(&id, Deposit { amount: 1 }, expected)
                .await,
        ] {
            match err.expect_err("the stream has events") {
                Error::Conflict {
                    expected: e,
                    actual,
                    ..
                } => {
                    assert_eq!((e, actual), (expected, 2));
                }
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
        assert_eq!(counted.inner().len(), stored, "the conflicts wrote nothing");

        let err = repo
            .execute_expecting(&AccountId::new(), Deposit { amount: 1 }, expected)
            .await
            .expect_err("not open");
        assert!(
            matches!(err, Error::Rejected(AccountError::NotOpen)),
            "{err:?}"
        );
        assert_eq!(counted.inner().len(), stored, "the refusal wrote nothing");
    }
}

/// `Repository` is `Send + Sync` and its futures are `Send`, for every store: shared in an
/// `Arc` and used from `tokio::spawn`. Checked at compile time for any `S: EventStore`.
fn repository_futures_are_send<S: EventStore>(repo: &Repository<Account, S>, id: &AccountId) {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Repository<Account, S>>();
    send(&repo.load(id));
    send(&repo.execute(id, Deposit { amount: 1 }));
    send(&repo.execute_with(id, Deposit { amount: 1 }, Metadata::default()));
    send(&repo.execute_expecting(id, Deposit { amount: 1 }, ExpectedVersion::Any));
}

#[tokio::test]
async fn repositories_move_across_tasks() {
    let store = InMemoryStore::new();
    let repo = Arc::new(accounts(&store));
    repository_futures_are_send(&repo, &AccountId::new());
    let id = AccountId::new();
    let handle = tokio::spawn({
        let repo = Arc::clone(&repo);
        async move {
            repo.execute(
                &id,
                OpenAccount {
                    owner: "ada".into(),
                },
            )
            .await
        }
    });
    assert_eq!(handle.await.expect("task").expect("opens").version, 1);
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Measured {
    celsius: f64,
    samples: Vec<f64>,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Measure {
    celsius: f64,
}

#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(error = Never)]
struct Thermometer {
    last: Option<f64>,
}

#[aggregate_impl]
impl Thermometer {
    #[command]
    fn measure(&self, cmd: Measure) -> Result<Measured, Never> {
        Ok(Measured {
            celsius: cmd.celsius,
            samples: vec![cmd.celsius, 1e300, -0.0],
        })
    }

    #[apply]
    fn measured(&mut self, e: &Measured) {
        self.last = Some(e.celsius);
    }
}

/// No store keeps the sign of a zero (PostgreSQL's `jsonb` holds decimals), and stores refuse
/// `-0.0` rather than change it: the repository writes `0.0` for it (equal as `f64`), in
/// payloads and in metadata, so a command never fails on a computed negative zero.
#[tokio::test]
async fn a_negative_zero_is_written_as_zero() {
    let store = InMemoryStore::new();
    let repo = Repository::<Thermometer, _>::new(store.clone());
    let id = Uuid::now_v7();
    let done = repo
        .execute_with(
            &id,
            Measure { celsius: -0.0 },
            Metadata::default().with("offset", -0.0),
        )
        .await
        .expect("a negative zero is fine");
    assert_eq!(done.version, 1);
    let stored: Vec<_> = store
        .read_stream(&repo.stream_id(&id), 1)
        .try_collect()
        .await
        .expect("read");
    let celsius = stored[0].payload["celsius"].as_f64().expect("a float");
    assert!(celsius == 0.0 && celsius.is_sign_positive(), "{celsius}");
    assert!(
        stored[0].payload["samples"][2]
            .as_f64()
            .is_some_and(f64::is_sign_positive)
    );
    assert_eq!(stored[0].payload["samples"][1].as_f64(), Some(1e300));
    assert!(
        stored[0].metadata.extra["offset"]
            .as_f64()
            .is_some_and(f64::is_sign_positive)
    );
    assert_eq!(repo.load(&id).await.expect("load").state.last, Some(0.0));
}

/// A cause for `execute_caused_by`: an event of another stream.
fn a_cause() -> Envelope<MoneyDeposited> {
    es_core::testing::envelope(
        StreamId::new("transfer", Uuid::now_v7().to_string()),
        1,
        MoneyDeposited { amount: 1 },
    )
}

/// The same cause sending the same command to the same stream again (a redelivery) gets the
/// first outcome and appends nothing, from a new repository too (a restart); the events
/// carry the cause as causation and its correlation id.
#[tokio::test]
async fn a_caused_command_redelivered_returns_the_first_outcome() {
    let store = InMemoryStore::new();
    let id = opened(&store).await;
    let mut cause = a_cause();
    let correlation = Uuid::now_v7();
    cause.metadata = Metadata::default().correlation_id(correlation);
    let first = accounts(&store)
        .execute_caused_by(&cause, &id, Deposit { amount: 10 })
        .await
        .expect("first delivery");
    assert_eq!(first.version, 2);
    let meta = &first.events[0].metadata;
    assert_eq!(meta.causation_id, Some(cause.event_id));
    assert_eq!(meta.correlation_id, Some(correlation));
    let stored = store.len();
    for _ in 0..3 {
        let again = accounts(&store)
            .execute_caused_by(&cause, &id, Deposit { amount: 10 })
            .await
            .expect("redelivery");
        assert_eq!(again.version, first.version);
        assert_eq!(again.position, first.position);
        assert_eq!(again.events, first.events, "the first outcome, read back");
    }
    assert_eq!(store.len(), stored, "redeliveries appended nothing");
    assert_eq!(
        accounts(&store)
            .load(&id)
            .await
            .expect("load")
            .state
            .balance(),
        10
    );

    // Another command, or the same command to another stream: not a redelivery.
    let other = accounts(&store)
        .execute_caused_by(&cause, &id, Deposit { amount: 11 })
        .await
        .expect("another command");
    assert_eq!(other.version, 3);
    let elsewhere = opened(&store).await;
    let there = accounts(&store)
        .execute_caused_by(&cause, &elsewhere, Deposit { amount: 10 })
        .await
        .expect("another stream");
    assert_eq!(there.version, 2);
    // A cause without a correlation id is the correlation itself.
    let bare = a_cause();
    let done = accounts(&store)
        .execute_caused_by(&bare, &id, Deposit { amount: 1 })
        .await
        .expect("bare cause");
    assert_eq!(done.events[0].metadata.correlation_id, Some(bare.event_id));
}

/// A first delivery that appended nothing records nothing: the redelivery decides again.
#[tokio::test]
async fn a_rejected_caused_command_is_decided_again_on_redelivery() {
    let store = InMemoryStore::new();
    let id = AccountId::new();
    let cause = a_cause();
    let err = accounts(&store)
        .execute_caused_by(&cause, &id, Deposit { amount: 5 })
        .await
        .expect_err("not open yet");
    assert!(
        matches!(err, Error::Rejected(AccountError::NotOpen)),
        "{err:?}"
    );
    accounts(&store)
        .execute(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
        )
        .await
        .expect("open");
    let done = accounts(&store)
        .execute_caused_by(&cause, &id, Deposit { amount: 5 })
        .await
        .expect("decided again");
    assert_eq!(done.version, 2);
}

/// Redeliveries racing each other (and the first delivery): one deposit is appended, and
/// every call returns that outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_redeliveries_append_once() {
    let store = InMemoryStore::new();
    let id = opened(&store).await;
    let cause = Arc::new(a_cause());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, cause) = (store.clone(), Arc::clone(&cause));
            tokio::spawn(async move {
                Repository::<Account, _>::new(store)
                    .with_retry(16)
                    .execute_caused_by(&cause, &id, Deposit { amount: 7 })
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task").expect("every delivery succeeds"));
    }
    assert!(
        outcomes.windows(2).all(|w| w[0].events == w[1].events),
        "one outcome"
    );
    assert_eq!(
        accounts(&store)
            .load(&id)
            .await
            .expect("load")
            .state
            .balance(),
        7
    );
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Named")]
struct Named {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Name {}

#[derive(Debug)]
struct NeverNamed;

#[derive(Aggregate, Default)]
#[aggregate(name = "label", id = String, error = NeverNamed)]
struct Label {
    named: bool,
}

#[aggregate_impl]
impl Label {
    #[command]
    fn name(&self, _: Name) -> Result<Named, NeverNamed> {
        Ok(Named {})
    }

    #[apply]
    fn named(&mut self, _: &Named) {
        self.named = true;
    }
}

/// A `String` id is taken as it is (no formatting), and reads back the same as any id: its
/// `Display`, in the category's stream.
#[tokio::test]
async fn a_string_id_is_its_stream_id() {
    let store = InMemoryStore::new();
    let labels = Repository::<Label, _>::new(store.clone());
    for id in ["plain", "with-dashes-and ünïcode", "", "  spaced  "] {
        let id = id.to_owned();
        let stream = labels.stream_id(&id);
        assert_eq!((stream.category(), stream.id()), ("label", id.as_str()));
        assert_eq!(stream, StreamId::new("label", id.clone()));
        if !id.is_empty() {
            labels.execute(&id, Name {}).await.expect("names");
            assert!(labels.load(&id).await.expect("loads").state.named);
        }
    }
    // A newtype id goes through its `Display`.
    let id = AccountId::new();
    assert_eq!(accounts(&store).stream_id(&id).id(), id.to_string());
}
