//! Stored records as a store could hand them back: the bank's stored names or arbitrary
//! ones, any schema version, payloads from arbitrary bytes (as JSON when they parse, else
//! a JSON string) or shaped like the bank's events with arbitrary values. Each is decoded
//! as the `Repository` decodes it (`EventSet::from_stored`), and a whole stream of them is
//! loaded through a `Repository` on the in-memory store.
//!
//! Never a panic: a record reads as an event (an older version upcast to today's), which
//! encodes back to the same stored name and event at today's version, or it is a typed
//! `DecodeError`; a stream loads, or fails with
//! `Error::Corrupt` naming exactly the first record that does not read.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bank::domain::account::{Account, AccountEvent, AccountId};
use es_core::{
    AggregateRoot, Error, EventSet, EventStore, ExpectedVersion, InMemoryStore, Metadata, NewEvent,
    Position, RecordedEvent, Repository, StreamId,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Name {
    /// One of the bank's stored names (index modulo their number).
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

#[derive(Arbitrary, Debug)]
enum Payload {
    /// Parsed as JSON when valid, else kept as a JSON string.
    Bytes(Vec<u8>),
    /// `{"amount": n}`, the shape of a deposit or withdrawal.
    Amount(Number),
    /// `{"owner": s}`, the shape of an opening.
    Owner(String),
    /// `{"amount": n, "owner": s}` and another field.
    Mixed(Number, String, String),
}

#[derive(Arbitrary, Debug)]
struct Record {
    name: Name,
    schema_version: u16,
    payload: Payload,
}

fn name(n: &Name) -> String {
    match n {
        Name::Known(i) => {
            AccountEvent::NAMES[usize::from(*i) % AccountEvent::NAMES.len()].to_owned()
        }
        Name::Other(s) => s.clone(),
    }
}

fn number(n: &Number) -> Value {
    match *n {
        Number::Unsigned(u) => json!(u),
        Number::Signed(i) => json!(i),
        // NaN and infinities have no JSON form: null.
        Number::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
    }
}

fn payload(p: &Payload) -> Value {
    match p {
        Payload::Bytes(bytes) => serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
        Payload::Amount(n) => json!({ "amount": number(n) }),
        Payload::Owner(owner) => json!({ "owner": owner }),
        Payload::Mixed(n, owner, key) => {
            let mut object = json!({ "amount": number(n), "owner": owner });
            object[key.as_str()] = json!(true);
            object
        }
    }
}

/// One runtime for the whole run: building one per input would dominate the time.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Decodes one record as the Repository does; an event must encode back to itself.
fn decodes(record: &RecordedEvent) -> bool {
    match AccountEvent::from_stored(
        &record.event_type,
        record.schema_version,
        record.payload.clone(),
    ) {
        Ok(event) => {
            assert_eq!(event.name(), record.event_type, "{record:?}");
            // An older version reads as today's type (upcasting), never a newer one.
            assert!(
                event.schema_version() >= record.schema_version,
                "{record:?} read as version {}",
                event.schema_version()
            );
            let encoded = event.to_payload().expect("a decoded event encodes");
            assert!(encoded.is_object(), "{event:?} encodes to {encoded}");
            let again = AccountEvent::from_stored(event.name(), event.schema_version(), encoded)
                .expect("an encoded event decodes");
            assert_eq!(again, event);
            true
        }
        Err(error) => {
            // The message is built from the error's fields: it must not panic either.
            let _ = error.to_string();
            false
        }
    }
}

fuzz_target!(|records: Vec<Record>| {
    let id = AccountId::new();
    let stream = StreamId::new(Account::NAME, id.to_string());
    let events: Vec<NewEvent> = records
        .iter()
        .take(16)
        .map(|r| NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: name(&r.name),
            schema_version: r.schema_version,
            payload: payload(&r.payload),
            metadata: Metadata::default(),
        })
        .collect();

    // Each record alone, as a store returns it.
    let readable: Vec<bool> = events
        .iter()
        .zip(1..)
        .map(|(e, version)| {
            decodes(&RecordedEvent {
                position: Position::new(0, version),
                stream: stream.clone(),
                version,
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                payload: e.payload.clone(),
                metadata: e.metadata.clone(),
                recorded_at: chrono::Utc::now(),
            })
        })
        .collect();

    // The stream through a Repository: it loads exactly when every record reads.
    runtime().block_on(async {
        let store = InMemoryStore::new();
        let count = events.len() as u64;
        if store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .is_err()
        {
            // A record no store would keep (the store says so, typed): nothing to load.
            return;
        }
        let accounts = Repository::<Account, _>::new(store);
        let first_unreadable = readable.iter().position(|ok| !ok).map(|i| i as u64 + 1);
        match (accounts.load(&id).await, first_unreadable) {
            (Ok(loaded), None) => assert_eq!(loaded.version, count),
            (Err(Error::Corrupt(corrupt)), Some(version)) => {
                assert_eq!(corrupt.version, version, "{corrupt}");
                assert_eq!(corrupt.stream, stream);
            }
            (outcome, unreadable) => {
                panic!("load gave {outcome:?}; first unreadable record: {unreadable:?}")
            }
        }
    });
});
