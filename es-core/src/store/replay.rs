//! Idempotent appends: recognising an append that already landed, so a retry after a lost
//! outcome gets that outcome instead of failing on its own event ids.

use super::{Appended, ExpectedVersion, NewEvent, RecordedEvent};
use crate::envelope::StreamId;

/// For store implementers: whether `events` were already appended to `stream` exactly as
/// asked (same ids, same content, same order, at consecutive versions that `expected`
/// allows), as when an append is retried after its outcome was lost with the connection.
/// Such a retry succeeds with the original outcome instead of failing on its own event ids.
///
/// `stored` holds the stored record of each event, in the order of `events` (`None` when an
/// id is not stored), opened as a read gives it (personal fields in the clear): a retried
/// payload's sealing requests compare by their values.
#[must_use]
pub fn replayed_append(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    stored: &[Option<&RecordedEvent>],
) -> Option<Appended> {
    if events.is_empty() || events.len() != stored.len() {
        return None;
    }
    let first = stored.first().copied().flatten()?;
    for (i, (event, record)) in events.iter().zip(stored).enumerate() {
        let record = (*record)?;
        let same = record.stream == *stream
            && record.event_id == event.event_id
            && record.event_type == event.event_type
            && record.schema_version == event.schema_version
            && record.payload == *super::personal::plain(&event.payload)
            && record.metadata == event.metadata
            && Some(record.version) == first.version.checked_add(u64::try_from(i).ok()?);
        if !same {
            return None;
        }
    }
    let before = first.version.checked_sub(1)?;
    if !matches!(expected, ExpectedVersion::Any) && !expected.matches(before) {
        return None;
    }
    Some(Appended {
        version: stored.last().copied().flatten()?.version,
        positions: stored.iter().flatten().map(|r| r.position).collect(),
        recorded_at: first.recorded_at,
    })
}
