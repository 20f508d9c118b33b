//! Inline projections in memory: read models folded under the store's lock inside every
//! append, so they are never behind the log. A handler that fails refuses the append, and
//! nothing of it is written: each projection folds the append's events into a copy of itself
//! first, and the copies replace the originals only once every projection took them.

use std::sync::{Arc, PoisonError, RwLock};

use futures::FutureExt;

use super::{Projection, ReadModel};
use crate::store::{RecordedEvent, StoreError};

/// What is left to do once every inline projection took an append: swap in the new states.
pub(crate) type Commit<'a> = Box<dyn FnOnce() + 'a>;

/// An inline projection, type-erased for the store.
pub(crate) trait Inline: Send + Sync {
    /// Folds `records` into a copy; the commit makes it the projection's state.
    fn stage<'a>(&'a self, records: &[Arc<RecordedEvent>]) -> Result<Commit<'a>, StoreError>;
}

/// A read model folded inline, shared with its [`InlineHandle`].
pub(crate) struct Folded<P>(pub(crate) Arc<RwLock<P>>);

impl<P: Projection<Context = ()> + Clone> Inline for Folded<P> {
    fn stage<'a>(&'a self, records: &[Arc<RecordedEvent>]) -> Result<Commit<'a>, StoreError> {
        let handles = |r: &RecordedEvent| P::EVENT_TYPES.contains(&r.event_type.as_str());
        if !records.iter().any(|r| handles(r)) {
            return Ok(Box::new(|| ()));
        }
        let mut next = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for record in records.iter().filter(|r| handles(r)) {
            let refused = |error: String| StoreError::InlineProjection {
                projection: P::NAME,
                position: record.position,
                error,
            };
            match next.handle(record, &mut ()).now_or_never() {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(refused(e.to_string())),
                None => {
                    return Err(refused(
                        "an inline projection in memory handles events synchronously".to_owned(),
                    ));
                }
            }
        }
        Ok(Box::new(move || {
            *self.0.write().unwrap_or_else(PoisonError::into_inner) = next;
        }))
    }
}

/// An inline projection's read model, as of the last append.
pub struct InlineHandle<P> {
    state: Arc<RwLock<P>>,
}

impl<P> Clone for InlineHandle<P> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<P> std::fmt::Debug for InlineHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineHandle").finish_non_exhaustive()
    }
}

impl<P: ReadModel> InlineHandle<P> {
    pub(crate) fn new(state: Arc<RwLock<P>>) -> Self {
        Self { state }
    }

    /// Reads the read model: it holds every append that has returned.
    pub fn read<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}
