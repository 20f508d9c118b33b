//! What travels with an event: the stream it belongs to ([`StreamId`]), who and what caused
//! it ([`Metadata`]), and where the store put it ([`Envelope`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::position::Position;

/// A stream: a category (the aggregate's stored name) and an id.
///
/// It shows as `"{category}-{id}"`, but stores keep the two apart (ids may contain `-`).
///
/// ```
/// use es_core::StreamId;
/// let s = StreamId::new("account", "42");
/// assert_eq!(s.to_string(), "account-42");
/// assert_eq!(s.category(), "account");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct StreamId {
    // Shared, not owned: a stream id is cloned into every record, cache entry and envelope
    // that names it, and a clone is then a count, not a copy.
    category: Arc<str>,
    id: Arc<str>,
}

impl StreamId {
    /// A stream of `category` with the given id.
    pub fn new(category: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            category: Arc::from(category.into()),
            id: Arc::from(id.into()),
        }
    }

    /// A stream of a category already shared (a repository's), without copying it.
    pub(crate) fn in_category(category: &Arc<str>, id: &str) -> Self {
        Self {
            category: Arc::clone(category),
            id: Arc::from(id),
        }
    }

    /// The category: the aggregate's stored name.
    #[must_use]
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The id within the category.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.category, self.id)
    }
}

/// Who and what caused an event. Stored with every event as JSON.
///
/// ```
/// use es_core::Metadata;
/// let m = Metadata::default().actor("teller-7").with("channel", "branch");
/// assert_eq!(m.actor.as_deref(), Some("teller-7"));
/// assert_eq!(m.extra["channel"], "branch");
/// ```
#[derive(Clone, Default, PartialEq, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The id shared by everything one request or process caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the message (command or event) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Who asked: a user, a service, a process manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Free key-values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Metadata {
    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Adds a free key-value.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Whether nothing is set: equal to `Metadata::default()`.
    ///
    /// ```
    /// use es_core::Metadata;
    /// let id = uuid::Uuid::now_v7();
    /// assert!(Metadata::default().is_empty());
    /// assert!(!Metadata::default().correlation_id(id).is_empty());
    /// assert!(!Metadata::default().causation_id(id).is_empty());
    /// assert!(!Metadata::default().actor("teller-7").is_empty());
    /// assert!(!Metadata::default().with("channel", "branch").is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        // Every field named: a new one does not compile until it is counted here.
        let Self {
            correlation_id,
            causation_id,
            actor,
            extra,
        } = self;
        correlation_id.is_none() && causation_id.is_none() && actor.is_none() && extra.is_empty()
    }
}

/// A typed event with everything the store knows about it.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct Envelope<E> {
    /// The event's unique id (UUID v7).
    pub event_id: Uuid,
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its version in the stream (the first event is 1).
    pub version: u64,
    /// Its place in the global log.
    pub position: Position,
    /// When the store recorded it (microsecond precision).
    pub recorded_at: DateTime<Utc>,
    /// Who and what caused it.
    pub metadata: Metadata,
    /// The event.
    pub event: E,
}
