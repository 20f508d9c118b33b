//! What every store can keep. Each store checks an append with [`check_storable`] before it
//! writes anything, so a record that one store would refuse (or keep, then fail to read back)
//! is refused by all of them the same way, as [`StoreError::Unstorable`]: a demo that runs on
//! the in-memory store runs on PostgreSQL too.

use super::{NewEvent, StoreError};
use crate::envelope::{Metadata, StreamId};

/// The deepest JSON a payload or a metadata document may nest, counting the top-level object
/// as 1: serde_json reads back at most this many levels, so anything deeper could be written
/// and never read again. In metadata, a free key-value sits two levels down (the metadata
/// object, then its `extra` map).
pub const MAX_JSON_DEPTH: usize = 127;

/// The longest category and stored event name, in bytes (both are short identifiers; the
/// bound keeps every index entry well within PostgreSQL's).
pub const MAX_NAME_BYTES: usize = 255;

/// The longest stream id, in bytes (with the category, it must fit one index entry).
pub const MAX_STREAM_ID_BYTES: usize = 1024;

/// Whether any store could hold an event of `stream`: no NUL character, category and id
/// within their byte limits. A read of a stream that is not storable is empty (version 0)
/// without asking the backend.
#[must_use]
pub fn is_storable_stream(stream: &StreamId) -> bool {
    stream_problem(stream).is_none()
}

fn stream_problem(stream: &StreamId) -> Option<String> {
    let (category, id) = (stream.category(), stream.id());
    if category.contains('\0') || id.contains('\0') {
        Some("the stream's category or id holds a NUL character (\\u0000)".to_owned())
    } else if category.len() > MAX_NAME_BYTES {
        Some(format!(
            "the category is {} bytes long; at most {MAX_NAME_BYTES}",
            category.len()
        ))
    } else if id.len() > MAX_STREAM_ID_BYTES {
        Some(format!(
            "the stream id is {} bytes long; at most {MAX_STREAM_ID_BYTES}",
            id.len()
        ))
    } else {
        None
    }
}

/// For store implementers: refuses, before anything is written, what no store can keep and
/// read back exactly as given: a NUL character (PostgreSQL's `text` and `jsonb` cannot hold
/// `\u0000`) in the stream, the stored name, a payload or metadata; JSON nesting deeper than
/// [`MAX_JSON_DEPTH`]; a negative zero (`jsonb` keeps numbers as decimals, which have no
/// `-0`; the [`Repository`](crate::Repository) writes `0.0` for it, which compares equal);
/// a category, stored name or stream id past its byte limit.
///
/// # Errors
///
/// [`StoreError::Unstorable`] naming the stream, the event and the reason.
pub fn check_storable(stream: &StreamId, events: &[NewEvent]) -> Result<(), StoreError> {
    check_parts(
        stream,
        events.iter().map(|e| {
            (
                e.event_type.as_str(),
                e.event_id,
                json_problem(&e.payload, 1),
                &e.metadata,
            )
        }),
    )
}

/// [`check_storable`] for events whose payloads are text written by the
/// [`Repository`](crate::Repository), which writes as text only what has no payload problem.
pub(crate) fn check_storable_text(
    stream: &StreamId,
    events: &[super::TextEvent],
) -> Result<(), StoreError> {
    check_parts(
        stream,
        events
            .iter()
            .map(|e| (e.event_type, e.event_id, None, &e.metadata)),
    )
}

/// The checks of [`check_storable`], over each event's stored name, id, payload problem
/// (found already) and metadata.
fn check_parts<'a>(
    stream: &StreamId,
    events: impl Iterator<Item = (&'a str, uuid::Uuid, Option<&'static str>, &'a Metadata)>,
) -> Result<(), StoreError> {
    let unstorable = |reason: String| StoreError::Unstorable {
        stream: stream.clone(),
        reason,
    };
    if let Some(problem) = stream_problem(stream) {
        return Err(unstorable(problem));
    }
    for (event_type, event_id, payload_problem, metadata) in events {
        let problem = if event_type.contains('\0') {
            Some(("stored name", "holds a NUL character (\\u0000)"))
        } else if event_type.len() > MAX_NAME_BYTES {
            Some(("stored name", "is longer than 255 bytes"))
        } else if let Some(p) = payload_problem {
            Some(("payload", p))
        } else {
            metadata_problem(metadata).map(|p| ("metadata", p))
        };
        if let Some((part, problem)) = problem {
            let shown: String = event_type.replace('\0', "\\0").chars().take(64).collect();
            return Err(unstorable(format!(
                "the {part} of event `{shown}` ({event_id}) {problem}"
            )));
        }
    }
    Ok(())
}

/// Why this metadata, stored as a JSON object, cannot be kept exactly: what
/// [`json_problem`] finds in its serialized form, found without serializing it (the ids are
/// UUIDs; the actor is a string; a free key-value sits at depth 3).
fn metadata_problem(metadata: &Metadata) -> Option<&'static str> {
    // Every field named, so a new one cannot be left unchecked.
    let Metadata {
        correlation_id: _,
        causation_id: _,
        actor,
        extra,
    } = metadata;
    if actor.as_deref().is_some_and(|a| a.contains('\0')) {
        return Some(NUL);
    }
    extra.iter().find_map(|(key, value)| {
        if key.contains('\0') {
            Some(NUL)
        } else {
            json_problem(value, 3)
        }
    })
}

const NUL: &str = "holds a NUL character (\\u0000), which PostgreSQL cannot store";

/// Why this JSON (at nesting `depth`, the top level being 1) cannot be kept exactly.
fn json_problem(value: &serde_json::Value, depth: usize) -> Option<&'static str> {
    use serde_json::Value;
    let container = matches!(value, Value::Array(_) | Value::Object(_));
    if container && depth > MAX_JSON_DEPTH {
        return Some("nests deeper than 127 levels, which serde_json cannot read back");
    }
    match value {
        Value::String(s) if s.contains('\0') => Some(NUL),
        Value::Number(n) if n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) => {
            Some("holds a negative zero (-0.0), which JSONB cannot keep: write 0.0")
        }
        Value::Array(items) => items.iter().find_map(|v| json_problem(v, depth + 1)),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(NUL)
            } else {
                json_problem(v, depth + 1)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> serde_json::Value {
        let mut value = json!([]);
        for _ in 1..depth {
            value = json!([value]);
        }
        value
    }

    #[test]
    fn the_depth_limit_is_what_serde_json_reads_back() {
        let at_limit = nested(MAX_JSON_DEPTH).to_string();
        assert!(serde_json::from_str::<serde_json::Value>(&at_limit).is_ok());
        let past = nested(MAX_JSON_DEPTH + 1).to_string();
        assert!(serde_json::from_str::<serde_json::Value>(&past).is_err());
        assert_eq!(json_problem(&nested(MAX_JSON_DEPTH), 1), None);
        assert!(json_problem(&nested(MAX_JSON_DEPTH + 1), 1).is_some());
    }

    #[test]
    fn metadata_is_checked_as_its_serialized_form_would_be() {
        let cases = [
            Metadata::default(),
            Metadata::default().actor("teller\0"),
            Metadata::default()
                .actor("teller")
                .with("channel", "branch"),
            Metadata::default().with("k\0", 1),
            Metadata::default().with("zero", json!(-0.0)),
            Metadata::default().with("deep", nested(MAX_JSON_DEPTH - 2)),
            Metadata::default().with("deeper", nested(MAX_JSON_DEPTH - 1)),
        ];
        for metadata in cases {
            let serialized = serde_json::to_value(&metadata).unwrap();
            assert_eq!(
                metadata_problem(&metadata),
                json_problem(&serialized, 1),
                "{metadata:?}"
            );
        }
        assert!(
            metadata_problem(&Metadata::default().with("deeper", nested(MAX_JSON_DEPTH - 1)))
                .is_some()
        );
    }

    #[test]
    fn integer_zero_and_positive_zero_are_fine() {
        assert_eq!(json_problem(&json!({ "a": 0, "b": 0.0, "c": -1 }), 1), None);
        assert!(json_problem(&json!({ "a": -0.0 }), 1).is_some());
    }
}
