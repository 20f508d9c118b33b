//! Commands caused by events (reactors, process managers): `execute_caused_by` links the
//! command's events to their cause (causation and correlation ids) and makes the command
//! idempotent. The same cause sending the same command (equal as JSON) to the same stream
//! again, as after a crash and a redelivery, gets the first outcome and appends nothing.
//!
//! How: the events' ids derive from (cause, stream, command, index), so a redelivery finds
//! the first outcome with one lookup by event id (never a scan of the stream, and whatever a
//! load starts from), and a redelivery racing the first call loses on the store's unique
//! event ids. A first call that appended nothing (a rejection, a command that emits nothing)
//! leaves no id behind: a redelivery decides again.

use futures::TryStreamExt;
use uuid::Uuid;

use super::{Error, Executed, Ids, Repository, decode};
use crate::codec::EncodeError;
use crate::envelope::{Envelope, Metadata, StreamId};
use crate::model::{Aggregate, CommandSet};
use crate::store::{EventStore, StoreError};

/// What identifies one caused command: the cause's event id, the target stream and the
/// command as canonical JSON (serde_json sorts object keys).
pub(super) struct Key {
    cause: Uuid,
    name: String,
}

impl Key {
    fn new(cause: Uuid, stream: &StreamId, command: &str) -> Self {
        Self {
            cause,
            name: format!("{}\n{}\n{command}\n", stream.category(), stream.id()),
        }
    }

    /// The id of the command's `index`-th event: a UUID v5 of the key (stable across
    /// builds and processes) laid out as a v7, with the cause's timestamp, so ids keep
    /// sorting by time.
    pub(super) fn event_id(&self, index: usize) -> Uuid {
        let name = format!("{}{index}", self.name);
        let mut bytes = *Uuid::new_v5(&self.cause, name.as_bytes()).as_bytes();
        bytes[..6].copy_from_slice(&self.cause.as_bytes()[..6]);
        bytes[6] = (bytes[6] & 0x0f) | 0x70;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes)
    }
}

impl<A, S> Repository<A, S>
where
    A: Aggregate,
    S: EventStore,
{
    /// Executes `command` as caused by the event `cause`: its events carry causation id =
    /// the cause's event id and the cause's correlation id (the cause's event id when it has
    /// none). Idempotent: the same cause sending the same command (equal as JSON) to the same
    /// stream again returns the first outcome and appends nothing, on every store and
    /// across restarts. A first call that appended nothing records nothing, so a
    /// redelivery decides again.
    ///
    /// # Errors
    ///
    /// As [`Repository::execute`]; [`EncodeError::Command`] when the command does not
    /// serialize.
    pub async fn execute_caused_by<E: Sync>(
        &self,
        cause: &Envelope<E>,
        id: &A::Id,
        command: impl Into<A::Command>,
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        self.execute_caused_by_with(cause, id, command, Metadata::default())
            .await
    }

    /// [`Repository::execute_caused_by`] with the caller's metadata (actor, key-values);
    /// its causation and correlation ids are set from the cause.
    ///
    /// # Errors
    ///
    /// As [`Repository::execute_caused_by`].
    pub async fn execute_caused_by_with<E: Sync>(
        &self,
        cause: &Envelope<E>,
        id: &A::Id,
        command: impl Into<A::Command>,
        metadata: Metadata,
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        let command: A::Command = command.into();
        let json = serde_json::to_value(&command)
            .map(|v| v.to_string())
            .map_err(|source| EncodeError::Command {
                command: command.name(),
                source,
            })?;
        let stream = self.stream_id(id);
        let key = Key::new(cause.event_id, &stream, &json);
        if let Some(first) = self.first_outcome(&stream, &key).await? {
            return Ok(first);
        }
        let mut metadata = metadata;
        metadata.causation_id = Some(cause.event_id);
        metadata.correlation_id = Some(cause.metadata.correlation_id.unwrap_or(cause.event_id));
        match self
            .run(id, command, metadata, None, Ids::Caused(&key), &[])
            .await
        {
            // A redelivery that raced the first call: its ids are taken.
            Err(Error::Store(StoreError::DuplicateEventId { event_id }))
                if event_id == key.event_id(0) =>
            {
                self.first_outcome(&stream, &key)
                    .await?
                    .ok_or(Error::Store(StoreError::DuplicateEventId { event_id }))
            }
            outcome => outcome,
        }
    }

    /// The outcome of the first call with this key, if it appended: its events, read back.
    async fn first_outcome(
        &self,
        stream: &StreamId,
        key: &Key,
    ) -> Result<Option<Executed<A::Event>>, Error<A::Error>> {
        let Some(first) = self.store.find_event(stream, key.event_id(0)).await? else {
            return Ok(None);
        };
        // Its events are consecutive in the stream, from the first one on.
        let mut records = std::pin::pin!(self.store.read_stream(stream, first.version));
        let mut events = Vec::new();
        while let Some(record) = records.try_next().await? {
            if record.event_id != key.event_id(events.len()) {
                break;
            }
            events.push(decode::<A::Event>(record)?);
        }
        let last = events.last().map(|e| (e.version, e.position));
        Ok(last.map(|(version, position)| Executed {
            events,
            version,
            position: Some(position),
        }))
    }
}
