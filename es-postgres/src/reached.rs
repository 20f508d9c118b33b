//! The versions this store has seen its streams reach, so that an append expecting one of
//! them can skip the check that the stream got there.
//!
//! An append that expects version `n` must land on a stream at exactly `n`: not past it
//! (another writer got in first) and not short of it (the caller named a version the stream
//! never had). The unique index on (stream, version) refuses the first for free as the row
//! goes in; the second takes a look at the stream first. But versions only grow (events are
//! never deleted), so once this store has read or written version `n` of a stream, the
//! stream is at `n` or past it for good, and the look can go. A [`Repository`] appends
//! expecting the version its load just read: its appends never need the look.
//!
//! [`Repository`]: es_core::Repository

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use es_core::StreamId;

/// How many streams are remembered at most: one slot each, chosen by a hash of the stream,
/// so memory is fixed (a few hundred kilobytes) and a stream that loses its slot to another
/// is only looked at once more.
const SLOTS: usize = 8_192;

/// A stream and the highest version seen of it, or nothing.
type Slot = Mutex<Option<(StreamId, u64)>>;

/// A fixed table of (stream, the highest version seen), one per slot.
pub(crate) struct Reached {
    hasher: RandomState,
    slots: Box<[Slot]>,
}

impl Default for Reached {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl std::fmt::Debug for Reached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reached").finish_non_exhaustive()
    }
}

impl Reached {
    fn slot(&self, stream: &StreamId) -> &Slot {
        // The modulo of a 64-bit hash by a small count fits in usize.
        let index = usize::try_from(self.hasher.hash_one(stream) % SLOTS as u64).unwrap_or(0);
        &self.slots[index]
    }

    /// `stream` has reached `version` (it has an event there, committed).
    pub(crate) fn saw(&self, stream: &StreamId, version: u64) {
        if version == 0 {
            return;
        }
        let mut slot = self
            .slot(stream)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &mut *slot {
            Some((kept, seen)) if kept == stream => *seen = (*seen).max(version),
            other => *other = Some((stream.clone(), version)),
        }
    }

    /// Whether `stream` is known to have reached `version` (always, for 0).
    pub(crate) fn has_reached(&self, stream: &StreamId, version: u64) -> bool {
        version == 0
            || self
                .slot(stream)
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|(kept, seen)| kept == stream && *seen >= version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_has_reached_what_was_seen_of_it_and_no_more() {
        let reached = Reached::default();
        let a = StreamId::new("account", "a");
        let b = StreamId::new("account", "b");
        assert!(
            reached.has_reached(&a, 0),
            "every stream is at 0 or past it"
        );
        assert!(!reached.has_reached(&a, 1));
        reached.saw(&a, 5);
        assert!(reached.has_reached(&a, 1));
        assert!(reached.has_reached(&a, 5));
        assert!(!reached.has_reached(&a, 6), "never past what was seen");
        assert!(!reached.has_reached(&b, 1), "nor of another stream");
        reached.saw(&a, 3);
        assert!(reached.has_reached(&a, 5), "versions only grow");
        reached.saw(&a, 9);
        assert!(reached.has_reached(&a, 9));
    }

    #[test]
    fn streams_that_share_a_slot_forget_each_other_but_never_mix() {
        let reached = Reached::default();
        let streams: Vec<StreamId> = (0..4 * SLOTS)
            .map(|i| StreamId::new("account", i.to_string()))
            .collect();
        for (version, stream) in (1..).zip(&streams) {
            reached.saw(stream, version);
        }
        let mut kept = 0;
        for (version, stream) in (1..).zip(&streams) {
            assert!(!reached.has_reached(stream, version + 1));
            kept += usize::from(reached.has_reached(stream, version));
        }
        assert!(kept <= SLOTS, "at most one stream per slot: {kept}");
        assert!(kept > 0);
    }
}
