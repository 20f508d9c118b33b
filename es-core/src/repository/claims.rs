//! Set-based validation: a command that must hold a value no other aggregate holds (a unique
//! e-mail address) claims it. The aggregate's events and one `Claimed` event on the claim's
//! own stream (`{category}-{value}`, expected to have no event yet) are appended atomically
//! ([`EventStore::append_all`]), so of any number of concurrent registrations of one value
//! exactly one lands, and the others get [`Error::Claimed`] with nothing of theirs written.
//!
//! A claim is permanent: the claim stream's first event is the claim. Normalize the value
//! before claiming it (lower case, trimmed: whatever "the same" means for it), and keep it
//! short (a stream id holds at most 1 KiB).

use uuid::Uuid;

use super::{Error, Executed, Ids, Repository};
use crate::envelope::{Metadata, StreamId};
use crate::model::Aggregate;
use crate::store::{Appended, EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend};

/// The stored name of the event that claims a value.
pub(super) const CLAIMED: &str = "Claimed";

/// Appends the aggregate's `records` and one claim per stream in `claims`, atomically.
pub(super) async fn append<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    records: Vec<NewEvent>,
    claims: &[StreamId],
    metadata: &Metadata,
) -> Result<Appended, StoreError> {
    let mut parts: Vec<StreamAppend> = claims
        .iter()
        .map(|claim| StreamAppend {
            stream: claim.clone(),
            expected: ExpectedVersion::NoStream,
            events: vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: CLAIMED.to_owned(),
                schema_version: 1,
                payload: serde_json::json!({
                    "category": stream.category(),
                    "id": stream.id(),
                }),
                metadata: metadata.clone(),
            }],
        })
        .collect();
    parts.push(StreamAppend {
        stream: stream.clone(),
        expected,
        events: records,
    });
    let mut outcomes = store.append_all(parts).await?;
    outcomes
        .pop()
        .ok_or_else(|| StoreError::Backend("append_all returned no outcome for a part".into()))
}

impl<A, S> Repository<A, S>
where
    A: Aggregate,
    S: EventStore,
{
    /// Executes `command` and, in the same atomic append, claims each of `claims` for this
    /// aggregate (a unique e-mail address: `StreamId::new("email", normalized)`). A value
    /// already claimed refuses the whole command with [`Error::Claimed`], and nothing is
    /// written; of concurrent claims of one value exactly one wins, on every store. A command
    /// that emits nothing claims nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Claimed`]; as [`Repository::execute`].
    pub async fn execute_claiming(
        &self,
        id: &A::Id,
        command: impl Into<A::Command>,
        claims: impl IntoIterator<Item = StreamId>,
    ) -> Result<Executed<A::Event>, Error<A::Error>> {
        let claims: Vec<StreamId> = claims.into_iter().collect();
        self.run(
            id,
            command.into(),
            Metadata::default(),
            None,
            Ids::Fresh,
            &claims,
        )
        .await
    }
}
