//! The evolution suite: what every store gives aggregates and listeners that live with their
//! events for years. Old payloads written as raw JSON read back as today's types through the
//! upcasting chain (`#[event(previous = ..)]` and `#[event(upcast = ..)]`), in the repository
//! and in projections; a payload no step can read is a typed error naming stream, version
//! and type. Run it with [`evolution_tests!`](crate::evolution_tests).
//!
//! Each check uses streams of its own (a fresh id), so a store shared by tests running in
//! parallel passes too.

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::prelude::*;
use crate::{CorruptEvent, DecodeError, Error, EventStore, NewEvent, StreamId};

/// How long a check waits for a listener before it fails instead of hanging.
const WAIT: Duration = Duration::from_secs(20);

/// Runs the evolution suite: one `#[test]` per check of
/// [`testing::evolution`](crate::testing::evolution), each with a fresh store.
#[macro_export]
macro_rules! evolution_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@tests evolution ($make)
            a_v1_event_stored_as_raw_json_loads_as_todays_type,
            a_payload_the_chain_cannot_read_is_a_typed_error,
            projections_read_old_events_through_the_chain,
        );
    };
}

/// Version 1 of a deposit: whole units, no currency.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "LedgerDeposited", version = 1)]
pub struct DepositedV1 {
    /// Whole units.
    pub amount: u64,
}

/// Version 2: a currency (the old ones were all euros).
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "LedgerDeposited", version = 2, previous = DepositedV1)]
pub struct DepositedV2 {
    /// Whole units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
}

impl From<DepositedV1> for DepositedV2 {
    fn from(v1: DepositedV1) -> Self {
        Self {
            amount: v1.amount,
            currency: "EUR".to_owned(),
        }
    }
}

/// Version 3, today's: cents.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "LedgerDeposited", version = 3, previous = DepositedV2)]
pub struct Deposited {
    /// Hundredths of a unit.
    pub cents: u64,
    /// ISO 4217.
    pub currency: String,
}

impl From<DepositedV2> for Deposited {
    fn from(v2: DepositedV2) -> Self {
        Self {
            cents: v2.amount * 100,
            currency: v2.currency,
        }
    }
}

/// A note, version 2: its version 1 (`{"note": "..."}`) is read by a JSON step, no type kept.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "LedgerNoted", version = 2, upcast = note_from_v1)]
pub struct Noted {
    /// The text.
    pub text: String,
    /// Tags (none in version 1).
    pub tags: Vec<String>,
}

/// Why a version 1 note does not read.
#[derive(Debug, thiserror::Error)]
#[error("a version 1 note holds a string `note`")]
pub struct NoteV1Error;

/// `{"note": "..."}` to `{"text": "...", "tags": []}`.
///
/// # Errors
///
/// When `note` is missing or not a string.
pub fn note_from_v1(v1: Value) -> Result<Value, NoteV1Error> {
    let text = v1.get("note").and_then(Value::as_str).ok_or(NoteV1Error)?;
    Ok(json!({ "text": text, "tags": [] }))
}

/// Deposit cents.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Deposit {
    /// Hundredths of a unit.
    pub cents: u64,
}

/// Write a note.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Note {
    /// The text.
    pub text: String,
}

/// The ledger says no.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// A deposit of nothing.
    #[error("a deposit of nothing")]
    Nothing,
}

/// An aggregate whose events have old versions in the store.
#[derive(Aggregate, Default, Clone, Debug, Serialize, Deserialize)]
#[aggregate(name = "ledger", error = LedgerError)]
pub struct Ledger {
    /// Cents deposited.
    pub cents: u64,
    /// The currencies seen, in order.
    pub currencies: Vec<String>,
    /// The notes' texts.
    pub notes: Vec<String>,
}

#[aggregate_impl]
impl Ledger {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, LedgerError> {
        if cmd.cents == 0 {
            return Err(LedgerError::Nothing);
        }
        Ok(Deposited {
            cents: cmd.cents,
            currency: "EUR".to_owned(),
        })
    }

    #[command]
    fn note(&self, cmd: Note) -> Result<Noted, LedgerError> {
        Ok(Noted {
            text: cmd.text,
            tags: Vec::new(),
        })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.cents += e.cents;
        self.currencies.push(e.currency.clone());
    }

    #[apply]
    fn noted(&mut self, e: &Noted) {
        self.notes.push(e.text.clone());
    }
}

/// A raw stored event, as an older release of the code wrote it.
fn raw(event_type: &str, schema_version: u16, payload: Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version,
        payload,
        metadata: Metadata::default(),
    }
}

fn stream_of(id: Uuid) -> StreamId {
    StreamId::new(<Ledger as crate::AggregateRoot>::NAME, id.to_string())
}

/// Deposits of versions 1, 2 and 3 and notes of versions 1 and 2, written as raw JSON, load
/// as today's types; a command then appends today's version beside them.
pub async fn a_v1_event_stored_as_raw_json_loads_as_todays_type<S: EventStore + Clone>(store: S) {
    let id = Uuid::now_v7();
    store
        .append(
            &stream_of(id),
            ExpectedVersion::NoStream,
            vec![
                raw("LedgerDeposited", 1, json!({ "amount": 5 })),
                raw("LedgerNoted", 1, json!({ "note": "opened by post" })),
                raw(
                    "LedgerDeposited",
                    2,
                    json!({ "amount": 2, "currency": "USD" }),
                ),
                raw(
                    "LedgerDeposited",
                    3,
                    json!({ "cents": 7, "currency": "CHF" }),
                ),
                raw("LedgerNoted", 2, json!({ "text": "today", "tags": ["a"] })),
            ],
        )
        .await
        .expect("raw append");
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let loaded = ledgers.load(&id).await.expect("old versions load");
    assert_eq!(loaded.version, 5);
    assert_eq!(loaded.state.cents, 500 + 200 + 7);
    assert_eq!(loaded.state.currencies, ["EUR", "USD", "CHF"]);
    assert_eq!(loaded.state.notes, ["opened by post", "today"]);

    let done = ledgers
        .execute(&id, Deposit { cents: 1 })
        .await
        .expect("a command after old events");
    assert_eq!(done.version, 6);
    let stored = store
        .read_stream(&stream_of(id), 6)
        .next()
        .await
        .expect("the new event")
        .expect("reads");
    assert_eq!(
        (stored.event_type.as_str(), stored.schema_version),
        ("LedgerDeposited", 3),
        "today's version is what gets written"
    );
}

/// The corrupt event of a load, or a panic naming what came instead.
async fn corrupt_at<S: EventStore + Clone>(store: &S, id: Uuid) -> Box<CorruptEvent> {
    match Repository::<Ledger, _>::new(store.clone()).load(&id).await {
        Err(Error::Corrupt(corrupt)) => corrupt,
        Err(other) => panic!("expected a corrupt event, got {other:?}"),
        Ok(loaded) => panic!("expected a corrupt event, loaded {loaded:?}"),
    }
}

/// A payload no step reads, a version older than the chain or newer than the code, and a
/// failing JSON step: each is a typed error naming stream, version and type.
pub async fn a_payload_the_chain_cannot_read_is_a_typed_error<S: EventStore + Clone>(store: S) {
    let cases = [
        // A version 1 payload that is not version 1's shape.
        (
            raw("LedgerDeposited", 1, json!({ "amount": "five" })),
            "payload",
        ),
        // Below the chain, and above the code.
        (raw("LedgerDeposited", 0, json!({ "amount": 5 })), "version"),
        (raw("LedgerDeposited", 4, json!({ "cents": 5 })), "version"),
        // The JSON step refuses.
        (
            raw("LedgerNoted", 1, json!({ "text": "not a v1 note" })),
            "upcast",
        ),
        // Nothing reads version 0 of the note (its step reads version 1 only).
        (raw("LedgerNoted", 0, json!({ "note": "x" })), "version"),
    ];
    for (event, kind) in cases {
        let id = Uuid::now_v7();
        let (event_type, schema_version) = (event.event_type.clone(), event.schema_version);
        store
            .append(
                &stream_of(id),
                ExpectedVersion::NoStream,
                vec![
                    raw(
                        "LedgerDeposited",
                        3,
                        json!({ "cents": 1, "currency": "EUR" }),
                    ),
                    event,
                ],
            )
            .await
            .expect("raw append");
        let corrupt = corrupt_at(&store, id).await;
        assert_eq!(corrupt.stream, stream_of(id), "{kind}");
        assert_eq!(corrupt.version, 2, "{kind}");
        assert_eq!(corrupt.event_type, event_type, "{kind}");
        assert_eq!(corrupt.schema_version, schema_version, "{kind}");
        let matched = match (&corrupt.source, kind) {
            (DecodeError::Payload(_), "payload") => true,
            (DecodeError::UnsupportedVersion { stored, .. }, "version") => {
                *stored == schema_version
            }
            (
                DecodeError::Upcast {
                    from: 1,
                    to: 2,
                    source,
                },
                "upcast",
            ) => source.downcast_ref::<NoteV1Error>().is_some(),
            _ => false,
        };
        assert!(matched, "{kind}: {:?}", corrupt.source);
        let message = corrupt.to_string();
        assert!(
            message.contains(&stream_of(id).to_string()) && message.contains(&event_type),
            "the message names stream and type: {message}"
        );
    }
}

/// Per ledger, the cents deposited and the notes, folded from today's types.
#[derive(Projection, Default, Clone, Debug)]
#[projection(name = "evolution_ledgers")]
pub struct Ledgers {
    /// Cents per ledger id.
    pub cents: std::collections::BTreeMap<String, u64>,
    /// Notes per ledger id.
    pub notes: std::collections::BTreeMap<String, Vec<String>>,
}

#[projection_impl]
impl Ledgers {
    #[on]
    fn deposited(&mut self, e: &Envelope<Deposited>) {
        *self.cents.entry(e.stream.id().to_owned()).or_default() += e.event.cents;
    }

    #[on]
    fn noted(&mut self, e: &Envelope<Noted>) {
        self.notes
            .entry(e.stream.id().to_owned())
            .or_default()
            .push(e.event.text.clone());
    }
}

/// A projection's handlers get today's types from old payloads.
pub async fn projections_read_old_events_through_the_chain<S>(store: S)
where
    S: EventStore + crate::projection::ContextStore<()> + Clone,
{
    let id = Uuid::now_v7();
    let done = store
        .append(
            &stream_of(id),
            ExpectedVersion::NoStream,
            vec![
                raw("LedgerDeposited", 1, json!({ "amount": 3 })),
                raw(
                    "LedgerDeposited",
                    2,
                    json!({ "amount": 1, "currency": "USD" }),
                ),
                raw("LedgerNoted", 1, json!({ "note": "old" })),
            ],
        )
        .await
        .expect("raw append");
    let ledgers = Projector::new(store.clone(), Ledgers::default()).spawn();
    let last = *done.positions.last().expect("appended");
    ledgers.wait_for(last, WAIT).await.expect("caught up");
    let key = id.to_string();
    assert_eq!(ledgers.read(|l| l.cents.get(&key).copied()), Some(400));
    assert_eq!(
        ledgers.read(|l| l.notes.get(&key).cloned()),
        Some(vec!["old".to_owned()])
    );
    ledgers.stop().await;
}
