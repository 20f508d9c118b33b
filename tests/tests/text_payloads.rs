//! The repository writes each payload as JSON text straight from the event (no
//! `serde_json::Value` on the way) where that reads back as the value `to_payload` gives;
//! the in-memory store keeps the text as written, other stores read it into a value. Every
//! kind of event: the text reads back as that value, and a store that keeps the text
//! stores, loads and refuses alike with one that reads it (a store wrapper).

use std::collections::BTreeMap;

use es_core::prelude::*;
use es_core::testing::Instrumented;
use es_core::{EventStore, RecordedEvent, StreamId};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Sampled")]
struct Sampled {
    // Declared out of alphabetical order: the text keeps this order, values sort keys.
    zeta: f64,
    alpha: Option<String>,
    small: Option<f32>,
    count: u64,
    delta: i64,
    text: String,
    nested: Vec<BTreeMap<String, Vec<Option<i32>>>>,
    free: serde_json::Value,
    #[serde(rename = "$es_seal", default, skip_serializing_if = "Option::is_none")]
    marker: Option<u8>,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Emptied")]
struct Emptied {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Record {
    event: Option<Sampled>,
}

#[derive(Debug)]
struct Never;

#[derive(Aggregate, Default)]
#[aggregate(name = "sample", error = Never)]
struct Samples {
    seen: Vec<Sampled>,
    emptied: u32,
}

#[aggregate_impl]
impl Samples {
    #[command]
    fn record(&self, cmd: Record) -> Result<(Option<Sampled>, Option<Emptied>), Never> {
        Ok(match cmd.event {
            Some(e) => (Some(e), None),
            None => (None, Some(Emptied {})),
        })
    }

    #[apply]
    fn sampled(&mut self, e: &Sampled) {
        self.seen.push(e.clone());
    }

    #[apply]
    fn emptied(&mut self, _: &Emptied) {
        self.emptied += 1;
    }
}

fn sample() -> Sampled {
    Sampled {
        zeta: 1.5,
        alpha: Some("a".into()),
        small: None,
        count: u64::MAX,
        delta: i64::MIN,
        text: "quote \" backslash \\ tab \t é 😀 \u{1f}".into(),
        nested: vec![BTreeMap::from([(
            "k".into(),
            vec![Some(1), None, Some(-3)],
        )])],
        free: serde_json::json!({ "b": [1, 2.5, "x", null, true], "a": {} }),
        marker: None,
    }
}

/// What each variant exercises: the plain case, and each thing the text path hands to the
/// value path.
fn variants() -> Vec<(&'static str, Option<Sampled>)> {
    let mut big = sample();
    big.zeta = 1e300;
    big.free = serde_json::json!(1e16);
    let mut negative_zero = sample();
    negative_zero.zeta = -0.0;
    let mut nul = sample();
    nul.text = "a\u{0}b".into();
    let mut marked = sample();
    marked.marker = Some(1);
    let mut single = sample();
    single.small = Some(0.1);
    let mut not_a_number = sample();
    not_a_number.zeta = f64::NAN;
    let mut deep = sample();
    let mut value = serde_json::json!([]);
    for _ in 0..130 {
        value = serde_json::json!([value]);
    }
    deep.free = value;
    vec![
        ("plain", Some(sample())),
        ("large floats", Some(big)),
        ("an f32", Some(single)),
        ("a negative zero", Some(negative_zero)),
        ("a NUL", Some(nul)),
        ("a field named like the seal marker", Some(marked)),
        ("NaN", Some(not_a_number)),
        ("nesting past the limit", Some(deep)),
        ("an empty event", None),
    ]
}

/// Per variant: the records stored and whether they load back (a NaN, stored as `null`,
/// does not read back as an `f64` on either path), or the command's error.
type Outcome = Result<(Vec<RecordedEvent>, Option<u64>), String>;

async fn run<S: EventStore>(store: S) -> Vec<(String, Outcome)> {
    let repo = Repository::<Samples, _>::new(store.clone());
    let mut out = Vec::new();
    for (what, event) in variants() {
        let id = uuid::Uuid::now_v7();
        let done = repo.execute(&id, Record { event }).await;
        let result = match done {
            Ok(_) => {
                let stream = StreamId::new("sample", id.to_string());
                let records: Vec<RecordedEvent> = store
                    .read_stream(&stream, 1)
                    .try_collect()
                    .await
                    .expect("read");
                let loaded = repo.load(&id).await.ok().map(|l| l.version);
                Ok((records, loaded))
            }
            Err(e) => Err(format!("{e:?}")),
        };
        out.push((what.to_owned(), result));
    }
    out
}

/// `text` with every UUID in it replaced by `<id>`.
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() >= 36
            && rest.is_char_boundary(36)
            && uuid::Uuid::parse_str(&rest[..36]).is_ok()
        {
            out.push_str("<id>");
            rest = &rest[36..];
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[tokio::test]
async fn payloads_written_as_text_read_back_as_payloads_written_as_values() {
    let text = run(InMemoryStore::new()).await;
    let values = run(Instrumented::new(InMemoryStore::new())).await;
    // Which variants the text path writes (the rest go as values), and that each reads
    // back as the value the value path starts from.
    let written: Vec<&str> = variants()
        .into_iter()
        .filter(|(_, e)| {
            let event = match e {
                Some(e) => SamplesEvent::from(e.clone()),
                None => SamplesEvent::from(Emptied {}),
            };
            let Some(text) = event.to_payload_text() else {
                return false;
            };
            let read: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            let value = event.to_payload().expect("a value");
            assert_eq!(read, value);
            assert_eq!(read.to_string(), value.to_string(), "as text too");
            true
        })
        .map(|(w, _)| w)
        .collect();
    assert_eq!(written, ["plain", "large floats", "NaN", "an empty event"]);
    for ((what, got), (_, want)) in text.iter().zip(&values) {
        match (got, want) {
            (Ok((got, got_loaded)), Ok((want, want_loaded))) => {
                assert_eq!(got_loaded, want_loaded, "{what}: loads back alike");
                assert_eq!(got.len(), want.len(), "{what}");
                for (g, w) in got.iter().zip(want) {
                    // As text too: a value compares -0.0 equal to 0.0.
                    assert_eq!(
                        (
                            &g.event_type,
                            g.schema_version,
                            &g.payload,
                            &g.metadata,
                            g.version
                        ),
                        (
                            &w.event_type,
                            w.schema_version,
                            &w.payload,
                            &w.metadata,
                            w.version
                        ),
                        "{what}"
                    );
                    assert_eq!(g.payload.to_string(), w.payload.to_string(), "{what}");
                }
            }
            // The same refusal, but for the ids (each run has its own).
            (Err(got), Err(want)) => assert_eq!(without_ids(got), without_ids(want), "{what}"),
            _ => panic!("{what}: text {got:?}, values {want:?}"),
        }
    }
    // The refusals are the value path's own.
    let refused: Vec<&str> = values
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(w, _)| w.as_str())
        .collect();
    assert_eq!(refused, ["a NUL", "nesting past the limit"]);
    let unloadable: Vec<&str> = values
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|(_, loaded)| loaded.is_none()))
        .map(|(w, _)| w.as_str())
        .collect();
    assert_eq!(unloadable, ["NaN"]);
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Keyed")]
struct Keyed {
    counts: BTreeMap<Option<String>, u32>,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Key {
    counts: BTreeMap<Option<String>, u32>,
}

#[derive(Aggregate, Default)]
#[aggregate(name = "keyed", error = Never)]
struct Keys {
    last: BTreeMap<Option<String>, u32>,
}

#[aggregate_impl]
impl Keys {
    #[command]
    fn key(&self, cmd: Key) -> Result<Keyed, Never> {
        Ok(Keyed { counts: cmd.counts })
    }

    #[apply]
    fn keyed(&mut self, e: &Keyed) {
        self.last.clone_from(&e.counts);
    }
}

/// serde_json's writer takes an `Option` map key (`Some(k)` as `k`) that `to_value`
/// refuses. Such an event goes as text, whatever the store: a store that keeps the text and
/// one that reads it into a value take it alike, and it loads back.
#[tokio::test]
async fn an_option_map_key_is_taken_alike_by_every_store() {
    let counts = BTreeMap::from([(Some("a".to_owned()), 1)]);
    let event = KeysEvent::from(Keyed {
        counts: counts.clone(),
    });
    assert!(event.to_payload().is_err(), "to_value refuses the key");
    assert_eq!(
        event.to_payload_text().as_deref(),
        Some(r#"{"counts":{"a":1}}"#)
    );
    async fn keyed<S: EventStore>(store: S, counts: &BTreeMap<Option<String>, u32>) {
        let repo = Repository::<Keys, _>::new(store);
        let id = uuid::Uuid::now_v7();
        repo.execute(
            &id,
            Key {
                counts: counts.clone(),
            },
        )
        .await
        .expect("taken");
        assert_eq!(&repo.load(&id).await.expect("loads").state.last, counts);
    }
    keyed(InMemoryStore::new(), &counts).await;
    keyed(Instrumented::new(InMemoryStore::new()), &counts).await;
}
