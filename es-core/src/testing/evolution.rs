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
use crate::testing::Instrumented;
use crate::{CorruptEvent, DecodeError, Error, EventStore, NewEvent, Snapshot, StreamId};

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
            snapshots_are_taken_every_n_events_and_loads_start_from_them,
            unusable_snapshots_are_ignored_and_the_stream_replayed,
            a_failed_snapshot_write_never_fails_the_command,
            load_at_and_load_as_of_fold_a_prefix,
            a_load_up_to_a_version_or_time_decodes_nothing_past_it,
            history_is_the_audit_log_in_todays_types,
            forgotten_personal_fields_read_as_default_and_everything_keeps_working,
            a_retried_append_of_personal_fields_gets_its_original_outcome,
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

/// The ledger's holder was named: the name is personal data of the holder.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "LedgerNamed")]
pub struct Named {
    /// The data subject: the holder's id.
    pub holder: String,
    /// The holder's name, stored encrypted under the holder's key.
    #[personal(subject = holder)]
    pub owner: String,
}

/// Name the ledger's holder.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Name {
    /// The holder's id.
    pub holder: String,
    /// The holder's name.
    pub owner: String,
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
#[aggregate(name = "ledger", error = LedgerError, snapshot(every = 3))]
pub struct Ledger {
    /// Cents deposited.
    pub cents: u64,
    /// The currencies seen, in order.
    pub currencies: Vec<String>,
    /// The notes' texts.
    pub notes: Vec<String>,
    /// The holder's name (empty once forgotten).
    pub owner: String,
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

    #[command]
    fn name(&self, cmd: Name) -> Result<Named, LedgerError> {
        Ok(Named {
            holder: cmd.holder,
            owner: cmd.owner,
        })
    }

    #[apply]
    fn named(&mut self, e: &Named) {
        self.owner = e.owner.clone();
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
    /// Holders' names per ledger id.
    pub owners: std::collections::BTreeMap<String, String>,
}

#[projection_impl]
impl Ledgers {
    #[on]
    fn deposited(&mut self, e: &Envelope<Deposited>) {
        *self.cents.entry(e.stream.id().to_owned()).or_default() += e.event.cents;
    }

    #[on]
    fn named(&mut self, e: &Envelope<Named>) {
        self.owners
            .insert(e.stream.id().to_owned(), e.event.owner.clone());
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

/// Deposits of 1, 2, 3, ... cents, one command each, on a new ledger: its id.
async fn deposits<S: EventStore + Clone>(ledgers: &Repository<Ledger, S>, n: u64) -> Uuid {
    let id = Uuid::now_v7();
    for cents in 1..=n {
        ledgers
            .execute(&id, Deposit { cents })
            .await
            .expect("deposit");
    }
    id
}

/// The sum of 1..=n.
fn sum_to(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// With `snapshot(every = 3)`: a snapshot after the command that reaches 3 events folded
/// since the last one; a load starts from the newest and folds only what came after.
pub async fn snapshots_are_taken_every_n_events_and_loads_start_from_them<S>(store: S)
where
    S: EventStore + Clone,
{
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let id = deposits(&ledgers, 2).await;
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!(
        (loaded.version, loaded.snapshot),
        (2, None),
        "2 events: none yet"
    );
    assert_eq!(
        store.load_snapshot(&stream_of(id), 1).await.expect("read"),
        None
    );

    ledgers
        .execute(&id, Deposit { cents: 3 })
        .await
        .expect("deposit");
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!((loaded.version, loaded.snapshot), (3, Some(3)));
    assert_eq!(loaded.state.cents, sum_to(3));

    for cents in 4..=5 {
        ledgers
            .execute(&id, Deposit { cents })
            .await
            .expect("deposit");
    }
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!(
        (loaded.version, loaded.snapshot),
        (5, Some(3)),
        "2 since the last"
    );
    assert_eq!(loaded.state.cents, sum_to(5));
    assert_eq!(loaded.state.currencies.len(), 5);

    ledgers
        .execute(&id, Deposit { cents: 6 })
        .await
        .expect("deposit");
    let kept = store
        .load_snapshot(&stream_of(id), 1)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.version, 6);
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!((loaded.version, loaded.snapshot), (6, Some(6)));
    assert_eq!(loaded.state.cents, sum_to(6));

    // An older snapshot never replaces a newer one.
    store
        .save_snapshot(Snapshot::new(stream_of(id), 1, 3, json!({})))
        .await
        .expect("save");
    let kept = store.load_snapshot(&stream_of(id), 1).await.expect("read");
    assert_eq!(kept.map(|k| k.version), Some(6));
}

/// A snapshot of another shape version, one that does not decode, and one past the
/// stream's end are each ignored: the stream is replayed and the state is right.
pub async fn unusable_snapshots_are_ignored_and_the_stream_replayed<S>(store: S)
where
    S: EventStore + Clone,
{
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let id = deposits(&ledgers, 2).await;
    let stream = stream_of(id);
    let good = |cents: u64| json!({ "cents": cents, "currencies": [], "notes": [] });

    // Version 2 of the shape: this code reads version 1 only.
    store
        .save_snapshot(Snapshot::new(stream.clone(), 2, 2, good(1_000)))
        .await
        .expect("save");
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!((loaded.snapshot, loaded.state.cents), (None, sum_to(2)));

    // Version 1, but not the state's shape.
    store
        .save_snapshot(Snapshot::new(
            stream.clone(),
            1,
            2,
            json!({ "cents": "lots" }),
        ))
        .await
        .expect("save");
    let loaded = ledgers
        .load(&id)
        .await
        .expect("a corrupt snapshot is ignored");
    assert_eq!((loaded.snapshot, loaded.version), (None, 2));
    assert_eq!(loaded.state.cents, sum_to(2));

    // A snapshot past the stream's end is not this stream's.
    let other = deposits(&ledgers, 1).await;
    store
        .save_snapshot(Snapshot::new(stream_of(other), 1, 40, good(1_000)))
        .await
        .expect("save");
    let loaded = ledgers.load(&other).await.expect("load");
    assert_eq!((loaded.snapshot, loaded.version), (None, 1));
    assert_eq!(loaded.state.cents, 1);

    // Commands still work over all of them (and replace the corrupt one when due).
    ledgers
        .execute(&id, Deposit { cents: 3 })
        .await
        .expect("deposit");
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!((loaded.snapshot, loaded.state.cents), (Some(3), sum_to(3)));
}

/// A snapshot write that fails leaves the command's outcome alone.
pub async fn a_failed_snapshot_write_never_fails_the_command<S>(store: S)
where
    S: EventStore + Clone,
{
    let store = Instrumented::new(store);
    store.fail_snapshot_writes(true);
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let id = deposits(&ledgers, 3).await;
    assert_eq!(store.snapshot_writes(), 1, "the third command tried");
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!((loaded.version, loaded.snapshot), (3, None));
    assert_eq!(loaded.state.cents, sum_to(3));

    store.fail_snapshot_writes(false);
    ledgers
        .execute(&id, Deposit { cents: 4 })
        .await
        .expect("deposit");
    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!((loaded.version, loaded.snapshot), (4, Some(4)));
}

/// `load_at` folds the first n events, `load_as_of` those recorded by a time; neither uses a
/// snapshot past what it asks for.
pub async fn load_at_and_load_as_of_fold_a_prefix<S>(store: S)
where
    S: EventStore + Clone,
{
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let id = Uuid::now_v7();
    let mut times = Vec::new();
    for cents in 1..=4 {
        let done = ledgers
            .execute(&id, Deposit { cents })
            .await
            .expect("deposit");
        times.push(done.events[0].recorded_at);
        // Apart by more than the stores' microsecond precision.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        ledgers.load(&id).await.expect("load").snapshot,
        Some(3),
        "the third command took one"
    );

    for (at, cents, snapshot) in [
        (0, 0, None),
        (1, 1, None),
        (2, sum_to(2), None),
        (3, sum_to(3), Some(3)),
        (4, sum_to(4), Some(3)),
    ] {
        let loaded = ledgers.load_at(&id, at).await.expect("load_at");
        assert_eq!(
            (loaded.version, loaded.state.cents, loaded.snapshot),
            (at, cents, snapshot),
            "load_at({at})"
        );
    }
    let past_the_end = ledgers.load_at(&id, 99).await.expect("load_at");
    assert_eq!(
        (past_the_end.version, past_the_end.state.cents),
        (4, sum_to(4))
    );

    let before = times[0] - chrono::Duration::seconds(1);
    let loaded = ledgers.load_as_of(&id, before).await.expect("as of");
    assert_eq!((loaded.version, loaded.state.cents), (0, 0));
    for (i, time) in times.iter().enumerate() {
        let version = i as u64 + 1;
        let loaded = ledgers.load_as_of(&id, *time).await.expect("as of");
        assert_eq!(
            (loaded.version, loaded.state.cents),
            (version, sum_to(version)),
            "as of the time of version {version}"
        );
        assert_eq!(
            loaded.snapshot,
            (version >= 3).then_some(3),
            "a snapshot only when recorded by then"
        );
    }
}

/// `load_at` and `load_as_of` stop before the first event past their limit without reading
/// it: one that no longer decodes there fails only the loads that reach it.
pub async fn a_load_up_to_a_version_or_time_decodes_nothing_past_it<S>(store: S)
where
    S: EventStore + Clone,
{
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let id = Uuid::now_v7();
    let mut last = None;
    for cents in 1..=2 {
        let done = ledgers
            .execute(&id, Deposit { cents })
            .await
            .expect("deposit");
        last = Some(done.events[0].recorded_at);
    }
    let second = last.expect("two deposits");
    // Apart by more than the stores' microsecond precision.
    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .append(
            &stream_of(id),
            ExpectedVersion::Exact(2),
            vec![raw("LedgerTeleported", 1, json!({ "cents": 1 }))],
        )
        .await
        .expect("raw append");

    let at = ledgers
        .load_at(&id, 2)
        .await
        .expect("load_at stops before it");
    assert_eq!((at.version, at.state.cents), (2, sum_to(2)));
    let as_of = ledgers
        .load_as_of(&id, second)
        .await
        .expect("load_as_of stops before it");
    assert_eq!((as_of.version, as_of.state.cents), (2, sum_to(2)));
    match ledgers.load(&id).await {
        Err(Error::Corrupt(corrupt)) => {
            assert_eq!(
                (corrupt.version, corrupt.event_type.as_str()),
                (3, "LedgerTeleported")
            );
        }
        other => panic!("a load reaching it fails on it, got {other:?}"),
    }
    // The same again, after loads that kept the first two decoded.
    let at = ledgers.load_at(&id, 2).await.expect("load_at again");
    assert_eq!((at.version, at.state.cents), (2, sum_to(2)));
}

/// `history` yields every event, in order, with version, time and metadata, old payloads
/// read as today's types.
pub async fn history_is_the_audit_log_in_todays_types<S>(store: S)
where
    S: EventStore + Clone,
{
    let id = Uuid::now_v7();
    store
        .append(
            &stream_of(id),
            ExpectedVersion::NoStream,
            vec![raw("LedgerDeposited", 1, json!({ "amount": 2 }))],
        )
        .await
        .expect("raw append");
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let done = ledgers
        .execute_with(
            &id,
            Note {
                text: "audited".into(),
            },
            Metadata::default().actor("auditor"),
        )
        .await
        .expect("note");
    let history: Vec<_> = ledgers
        .history(&id)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("history reads");
    assert_eq!(history.len(), 2);
    assert_eq!(
        history.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        history[0].event,
        LedgerEvent::Deposited(Deposited {
            cents: 200,
            currency: "EUR".into()
        })
    );
    assert_eq!(
        history[1].event,
        LedgerEvent::Noted(Noted {
            text: "audited".into(),
            tags: vec![]
        })
    );
    assert_eq!(history[1].metadata.actor.as_deref(), Some("auditor"));
    assert_eq!(history[1].recorded_at, done.events[0].recorded_at);
    assert_eq!(history[1].event_id, done.events[0].event_id);

    // A record that does not read is an error in its place.
    store
        .append(
            &stream_of(id),
            ExpectedVersion::Exact(2),
            vec![raw("LedgerDeposited", 9, json!({}))],
        )
        .await
        .expect("raw append");
    let last = ledgers
        .history(&id)
        .skip(2)
        .next()
        .await
        .expect("a third item");
    assert!(
        matches!(&last, Err(Error::Corrupt(c)) if c.version == 3),
        "{last:?}"
    );
}

/// A new ledger whose holder (a fresh subject) is named `owner`, then two deposits (its
/// third command takes a snapshot): its id and the holder.
///
/// # Panics
///
/// When a command fails.
pub async fn named_ledger<S: EventStore>(
    ledgers: &Repository<Ledger, S>,
    owner: &str,
) -> (Uuid, String) {
    let id = Uuid::now_v7();
    let holder = format!("holder-{}", Uuid::now_v7());
    let name = Name {
        holder: holder.clone(),
        owner: owner.into(),
    };
    ledgers.execute(&id, name).await.expect("named");
    for cents in 1..=2 {
        ledgers
            .execute(&id, Deposit { cents })
            .await
            .expect("deposit");
    }
    (id, holder)
}

/// After `forget`, the holder's name reads as `""` (its `Default`) everywhere: loads (and
/// no snapshot holding it is used), the audit log, a running projection and one rebuilt
/// from the start; the events themselves stay, and commands go on.
pub async fn forgotten_personal_fields_read_as_default_and_everything_keeps_working<S>(store: S)
where
    S: EventStore + crate::projection::ContextStore<()> + Clone,
{
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let (id, holder) = named_ledger(&ledgers, "Ada Lovelace").await;
    // Another holder's name in another ledger stays readable.
    let other = Uuid::now_v7();
    let other_name = Name {
        holder: format!("holder-{}", Uuid::now_v7()),
        owner: "Grace Hopper".into(),
    };
    ledgers.execute(&other, other_name).await.expect("named");

    let loaded = ledgers.load(&id).await.expect("load");
    assert_eq!(loaded.state.owner, "Ada Lovelace", "readable before");
    assert_eq!(loaded.snapshot, Some(3), "a snapshot holds the name");
    let running = Projector::new(store.clone(), Ledgers::default()).spawn();
    let last = ledgers
        .execute(&id, Deposit { cents: 3 })
        .await
        .expect("deposit");
    running
        .wait_for(last.position.expect("appended"), WAIT)
        .await
        .expect("caught up");
    let key = id.to_string();
    assert_eq!(
        running.read(|l| l.owners.get(&key).cloned()).as_deref(),
        Some("Ada Lovelace")
    );

    let forgets = store.forgets();
    store.forget(&holder).await.expect("forget");
    assert_ne!(
        store.forgets(),
        forgets,
        "a forget is counted (caches drop what they kept)"
    );
    store
        .forget("a subject never seen")
        .await
        .expect("forgetting nothing");

    let loaded = ledgers.load(&id).await.expect("still loads");
    assert_eq!(loaded.state.owner, "", "the name reads as its Default");
    assert_eq!(loaded.state.cents, sum_to(3));
    assert_eq!(loaded.version, 4);
    assert_ne!(
        loaded.snapshot,
        Some(3),
        "the snapshot holding the name is gone"
    );
    let history: Vec<_> = ledgers.history(&id).collect::<Vec<_>>().await;
    assert!(
        matches!(&history[0], Ok(e) if e.event == LedgerEvent::Named(Named { holder: holder.clone(), owner: String::new() })),
        "{:?}",
        history[0]
    );
    let raw = store
        .read_stream(&stream_of(id), 1)
        .next()
        .await
        .expect("a record")
        .expect("reads");
    assert_eq!(raw.payload["owner"], Value::Null, "raw reads give null");
    assert_eq!(raw.payload["holder"], json!(holder));
    assert_eq!(
        ledgers.load(&other).await.expect("load").state.owner,
        "Grace Hopper",
        "another subject is untouched"
    );

    // Commands go on; the running projection goes on; a rebuild from the start works.
    let last = ledgers
        .execute(&id, Deposit { cents: 4 })
        .await
        .expect("deposit");
    let last = last.position.expect("appended");
    running.wait_for(last, WAIT).await.expect("goes on");
    assert_eq!(
        running.read(|l| l.cents.get(&key).copied()),
        Some(sum_to(4))
    );
    running.stop().await;
    let rebuilt = Projector::new(store.clone(), Ledgers::default()).spawn();
    rebuilt.wait_for(last, WAIT).await.expect("rebuilt");
    assert_eq!(
        rebuilt.read(|l| l.owners.get(&key).cloned()).as_deref(),
        Some("")
    );
    assert_eq!(
        rebuilt.read(|l| l.cents.get(&key).copied()),
        Some(sum_to(4))
    );
    rebuilt.stop().await;

    // The holder named again: the subject has a new key. The new name reads, and the old
    // one, sealed under the deleted key, still reads as forgotten, not as corrupt.
    let again = Name {
        holder: holder.clone(),
        owner: "Ada King".into(),
    };
    let last = ledgers.execute(&id, again).await.expect("named again");
    let last = last.position.expect("appended");
    let loaded = ledgers.load(&id).await.expect("loads once named again");
    assert_eq!(loaded.state.owner, "Ada King");
    assert_eq!(loaded.state.cents, sum_to(4));
    let history: Vec<_> = ledgers.history(&id).collect::<Vec<_>>().await;
    let owners: Vec<_> = history
        .iter()
        .filter_map(|e| match e {
            Ok(e) => match &e.event {
                LedgerEvent::Named(named) => Some(Ok(named.owner.clone())),
                _ => None,
            },
            Err(e) => Some(Err(e.to_string())),
        })
        .collect();
    assert_eq!(owners, [Ok(String::new()), Ok("Ada King".to_owned())]);
    let raw: Vec<_> = store
        .read_stream(&stream_of(id), 1)
        .collect::<Vec<_>>()
        .await;
    let raw: Vec<_> = raw
        .into_iter()
        .map(|r| r.expect("every record reads"))
        .collect();
    assert_eq!(raw[0].payload["owner"], Value::Null);
    assert_eq!(raw[raw.len() - 1].payload["owner"], "Ada King");
    let rebuilt = Projector::new(store.clone(), Ledgers::default()).spawn();
    rebuilt.wait_for(last, WAIT).await.expect("rebuilt again");
    assert_eq!(
        rebuilt.read(|l| l.owners.get(&key).cloned()).as_deref(),
        Some("Ada King")
    );
    rebuilt.stop().await;
}

/// An append whose personal fields were sealed, retried with the same events (its outcome
/// lost), gets its original outcome: the store compares the opened values.
pub async fn a_retried_append_of_personal_fields_gets_its_original_outcome<S>(store: S)
where
    S: EventStore + Clone,
{
    let stream = stream_of(Uuid::now_v7());
    let holder = format!("holder-{}", Uuid::now_v7());
    let event = raw(
        "LedgerNamed",
        1,
        json!({
            "holder": holder,
            "owner": { crate::store::personal::SEAL: { "subject": holder, "value": "Ada" } },
        }),
    );
    let first = store
        .append(&stream, ExpectedVersion::NoStream, vec![event.clone()])
        .await
        .expect("append");
    let again = store
        .append(&stream, ExpectedVersion::NoStream, vec![event.clone()])
        .await
        .expect("a retry gets the original outcome");
    assert_eq!(first, again);
    let read = store
        .read_stream(&stream, 1)
        .next()
        .await
        .expect("a record")
        .expect("reads");
    assert_eq!(read.payload["owner"], json!("Ada"));
    // The same id with another value is not that append.
    let mut other = event;
    other.payload["owner"][crate::store::personal::SEAL]["value"] = json!("Grace");
    assert!(matches!(
        store
            .append(&stream, ExpectedVersion::NoStream, vec![other])
            .await,
        Err(crate::StoreError::DuplicateEventId { .. })
    ));
}
