//! The in-memory store keeps each event decoded by the first load that read it: later loads
//! fold it without decoding it again, and a stream read by two aggregates with different
//! event types reads right for both.

use std::sync::atomic::{AtomicUsize, Ordering};

use es_core::prelude::*;
use serde::{Deserialize, Deserializer, Serialize};

/// How many `Counted` payloads were deserialized.
static DECODED: AtomicUsize = AtomicUsize::new(0);

fn counted<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    DECODED.fetch_add(1, Ordering::SeqCst);
    u32::deserialize(d)
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Counted")]
struct Counted {
    #[serde(deserialize_with = "counted")]
    by: u32,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Count {
    by: u32,
}

#[derive(Debug)]
struct Never;

#[derive(Aggregate, Default)]
#[aggregate(name = "tally", error = Never)]
struct Tally {
    total: u32,
    seen: u32,
}

#[aggregate_impl]
impl Tally {
    #[command]
    fn count(&self, cmd: Count) -> Result<Counted, Never> {
        Ok(Counted { by: cmd.by })
    }

    #[apply]
    fn counted(&mut self, e: &Counted) {
        self.total += e.by;
        self.seen += 1;
    }
}

/// The same stored events, read as another type: `Counted` with a wider field.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Counted")]
struct CountedWide {
    by: u64,
}

#[derive(Aggregate, Default)]
#[aggregate(name = "tally", error = Never)]
struct WideTally {
    total: u64,
}

#[aggregate_impl]
impl WideTally {
    #[apply]
    fn counted(&mut self, e: &CountedWide) {
        self.total += e.by;
    }
}

#[tokio::test]
async fn a_load_decodes_each_event_once_and_two_event_types_read_one_stream() {
    let store = InMemoryStore::new();
    let tallies = Repository::<Tally, _>::new(store.clone());
    let wide = Repository::<WideTally, _>::new(store.clone());
    let id = uuid::Uuid::now_v7();
    for by in 1..=3 {
        tallies.execute(&id, Count { by }).await.expect("count");
    }
    // Each command loaded the events before it; every one was decoded once.
    assert_eq!(DECODED.load(Ordering::SeqCst), 2, "events 1 and 2");
    let loaded = tallies.load(&id).await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.total, loaded.state.seen),
        (3, 6, 3)
    );
    assert_eq!(DECODED.load(Ordering::SeqCst), 3, "only event 3 was new");
    for _ in 0..3 {
        assert_eq!(tallies.load(&id).await.expect("load").state.total, 6);
    }
    assert_eq!(
        DECODED.load(Ordering::SeqCst),
        3,
        "later loads decode nothing"
    );

    // Another aggregate over the same stream reads its own type, not the one kept.
    let read = wide.load(&id).await.expect("wide load");
    assert_eq!((read.version, read.state.total), (3, 6));
    let loaded = tallies.load(&id).await.expect("load again");
    assert_eq!((loaded.state.total, loaded.state.seen), (6, 3));
    // Up to a version, from what is kept.
    let at = tallies.load_at(&id, 2).await.expect("load at 2");
    assert_eq!((at.version, at.state.total), (2, 3));
    assert_eq!(DECODED.load(Ordering::SeqCst), 3);
}

/// The in-memory store decodes kept events from their JSON text (`from_stored_text`, no
/// `serde_json::Value` in between): the same event, or the same error, as the store-neutral
/// `from_stored`, for every kind of stored event: current, personal (forgotten too), an older
/// version read through its chain, an unknown type, a wrong shape.
#[test]
fn decoding_from_text_gives_what_decoding_from_a_value_gives() {
    use bank::domain::account::AccountEvent;
    use es_core::EventSet;

    let cases: &[(&str, u16, &str)] = &[
        ("MoneyDeposited", 1, r#"{"amount":250}"#),
        ("MoneyWithdrawn", 1, r#"{"amount":0}"#),
        ("AccountClosed", 1, r#"{}"#),
        ("AccountOpened", 2, r#"{"owner":"ada","holder":"holder-1"}"#),
        // Forgotten: the personal field reads as its type's default.
        ("AccountOpened", 2, r#"{"owner":null,"holder":"holder-1"}"#),
        // Version 1, through the `previous` chain.
        ("AccountOpened", 1, r#"{"owner":"ada"}"#),
        ("AccountOpened", 7, r#"{"owner":"ada"}"#),
        ("NoSuchEvent", 1, r#"{"amount":1}"#),
        ("MoneyDeposited", 1, r#"{"amount":"many"}"#),
        ("MoneyDeposited", 1, r#"{"amount":-1}"#),
        ("MoneyDeposited", 1, r#"{}"#),
        ("MoneyDeposited", 1, r#"{"amount":1,"extra":true}"#),
    ];
    let mut errors = 0;
    for &(name, version, text) in cases {
        let value: serde_json::Value = serde_json::from_str(text).expect("test JSON");
        let from_value = AccountEvent::from_stored(name, version, value);
        let from_text = AccountEvent::from_stored_text(name, version, text);
        match (&from_value, &from_text) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{name} v{version} {text}"),
            (Err(a), Err(b)) => {
                errors += 1;
                assert_eq!(a.to_string(), b.to_string(), "{name} v{version} {text}");
            }
            _ => panic!("{name} v{version} {text}: {from_value:?} against {from_text:?}"),
        }
    }
    assert_eq!(
        errors, 5,
        "the unsupported version, the unknown type, three wrong shapes"
    );
    // Text that is no JSON at all is a payload error.
    assert!(matches!(
        AccountEvent::from_stored_text("MoneyDeposited", 1, "{\"amount\":"),
        Err(es_core::DecodeError::Payload(_))
    ));
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Stepped")]
struct Stepped {
    n: u64,
}

#[derive(Aggregate, Default)]
#[aggregate(name = "walk", error = Never)]
struct Walk {
    steps: u64,
    sum: u64,
}

#[aggregate_impl]
impl Walk {
    #[apply]
    fn stepped(&mut self, e: &Stepped) {
        self.steps += 1;
        self.sum += e.n;
    }
}

/// A stream longer than one of the store's fold batches (4,096 events) loads whole, the
/// first time (decoding) and again (from what is kept), and up to a version past a batch.
#[tokio::test]
async fn a_stream_longer_than_a_fold_batch_loads_whole() {
    use es_core::{EventStore, NewEvent};
    let store = InMemoryStore::new();
    let walks = Repository::<Walk, _>::new(store.clone());
    let id = uuid::Uuid::now_v7();
    let stream = walks.stream_id(&id);
    let n: u64 = 10_000;
    let events: Vec<NewEvent> = (1..=n)
        .map(|i| NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "Stepped".into(),
            schema_version: 1,
            payload: serde_json::json!({ "n": i }),
            metadata: Metadata::default(),
        })
        .collect();
    store
        .append(&stream, ExpectedVersion::NoStream, events)
        .await
        .expect("append");
    for _ in 0..2 {
        let loaded = walks.load(&id).await.expect("load");
        assert_eq!(loaded.version, n);
        assert_eq!((loaded.state.steps, loaded.state.sum), (n, n * (n + 1) / 2));
    }
    let at = walks.load_at(&id, 5_000).await.expect("load at");
    assert_eq!((at.version, at.state.steps), (5_000, 5_000));
    assert_eq!(at.state.sum, 5_000 * 5_001 / 2);
}
