//! Turning typed events into stored records and back. The store sees only (stored name,
//! schema version, JSON payload); a record that no longer reads is a typed error that names
//! its stream, version and type, never a panic.

use crate::envelope::StreamId;

/// Why one stored event could not be read as the aggregate's event type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stored name is none of the aggregate's event types.
    #[error("unknown event type (expected one of: {})", expected.join(", "))]
    UnknownType {
        /// The stored names this aggregate knows.
        expected: &'static [&'static str],
    },
    /// The stored schema version is newer than the code, or older than its upcasting chain
    /// reaches.
    #[error(
        "schema version {stored} cannot be read; the code reads version {current} (and older ones only through `previous` or `upcast` steps)"
    )]
    UnsupportedVersion {
        /// The version in the store.
        stored: u16,
        /// The version of the Rust type.
        current: u16,
    },
    /// A JSON upcasting step (`#[event(upcast = path)]`) failed.
    #[error("upcasting from schema version {from} to {to} failed: {source}")]
    Upcast {
        /// The version the step reads.
        from: u16,
        /// The version it writes.
        to: u16,
        /// The step's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The payload does not deserialize into the Rust type.
    #[error("payload does not deserialize: {0}")]
    Payload(#[source] serde_json::Error),
}

/// A stored event that could not be read: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read event {stream} version {version} of type `{event_type}` (schema version {schema_version}): {source}"
)]
pub struct CorruptEvent {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its version in the stream.
    pub version: u64,
    /// Its stored name ([`Event::NAME`](crate::Event::NAME)).
    pub event_type: String,
    /// Its stored schema version.
    pub schema_version: u16,
    /// What went wrong.
    #[source]
    pub source: DecodeError,
}

/// An event that could not be turned into a stored record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Its `Serialize` implementation failed.
    #[error("event `{event_type}` does not serialize: {source}")]
    Serialize {
        /// The stored name ([`Event::NAME`](crate::Event::NAME)).
        event_type: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A command (of `execute_caused_by`, which keys its idempotency on the command's JSON)
    /// did not serialize.
    #[error("command `{command}` does not serialize: {source}")]
    Command {
        /// The command's type name.
        command: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A personal field's subject is missing, null or empty: there is no key to seal it
    /// under.
    #[error(
        "event `{event_type}`: personal field `{field}` has no subject (`{subject}` is missing, null or empty)"
    )]
    Personal {
        /// The stored name.
        event_type: &'static str,
        /// The personal field.
        field: &'static str,
        /// The field that should name its subject.
        subject: &'static str,
    },
    /// It serialized to something other than a JSON object.
    #[error("event `{event_type}` serializes to a JSON {found}, not an object")]
    NotAnObject {
        /// The stored name ([`Event::NAME`](crate::Event::NAME)).
        event_type: &'static str,
        /// What it serialized to ("string", "array", ...).
        found: &'static str,
    },
}

pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}
