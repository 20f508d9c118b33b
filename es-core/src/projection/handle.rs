//! [`ProjectionHandle`]: what `Projector::spawn` returns. It reads an in-memory read model,
//! waits for the listener to reach a position (read your writes), shows its status, skips a
//! record that keeps failing, and stops it. Clones share the runner; it stops when the last
//! handle is dropped.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::{Projection, ReadModel};
use crate::position::Position;

/// Where a listener is.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub enum ProjectionState {
    /// Catching up or live.
    Running,
    /// Stopped by [`ProjectionHandle::stop`] (or every handle was dropped).
    Stopped,
    /// A new version being built beside the one that serves.
    Rebuilding {
        /// Events folded so far.
        done: u64,
        /// Events to fold to catch up.
        total: u64,
    },
    /// A handler failed at `position`; retried with backoff until it succeeds or is skipped.
    Failed {
        /// The record that failed.
        position: Position,
        /// The failure (a handler error's `Debug`).
        error: String,
    },
}

/// A listener's status.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// The listener's name.
    pub name: &'static str,
    /// The position it has processed up to (`None`: nothing yet).
    pub position: Option<Position>,
    /// How many events of its types it is behind the log (`None` where the store cannot
    /// count cheaply, and for a partition). Counted when it starts, about once a second
    /// while it catches up, and with the position of a batch that takes it to the end of
    /// what the log showed (so after `wait_for` it reads `Some(0)` unless more came).
    pub behind: Option<u64>,
    /// Records handed to its handlers so far in this run.
    pub handled: u64,
    /// Records per second over the last second or so.
    pub rate: f64,
    /// Positions stepped over with [`ProjectionHandle::skip`].
    pub skipped: Vec<Position>,
    /// Whether the runner has found where to start (its checkpoint; for a reactor's first
    /// run, the end of the log) and follows the log: see [`ProjectionHandle::started`].
    pub started: bool,
    /// Running, stopped, rebuilding or failed.
    pub state: ProjectionState,
}

impl ProjectionStatus {
    pub(super) fn new(name: &'static str) -> Self {
        Self {
            name,
            position: None,
            behind: None,
            handled: 0,
            rate: 0.0,
            skipped: Vec::new(),
            started: false,
            state: ProjectionState::Running,
        }
    }
}

/// [`ProjectionHandle::wait_for`] ran out of time, or the listener stopped.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
#[error(
    "projection `{name}` did not reach position {target}{}: it is at {}{}",
    if *stopped { " (it is stopped)" } else { " in time" },
    reached.map_or_else(|| "the start".to_owned(), |p| format!("position {p}")),
    failure.as_ref().map_or_else(String::new, |f| format!(", failing: {f}"))
)]
#[non_exhaustive]
pub struct WaitError {
    /// The listener's name.
    pub name: &'static str,
    /// The position waited for.
    pub target: Position,
    /// The position it had reached.
    pub reached: Option<Position>,
    /// Whether it was stopped (a stopped listener fails at once).
    pub stopped: bool,
    /// Its failure, if it was failing.
    pub failure: Option<String>,
}

/// [`ProjectionHandle::skip`] was refused.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SkipError {
    /// The listener is not failing at that position (it may have recovered meanwhile).
    #[error("projection `{name}` is not failing at position {position}: {state:?}")]
    NotFailingThere {
        /// The listener's name.
        name: &'static str,
        /// The position asked for.
        position: Position,
        /// Its state.
        state: ProjectionState,
    },
    /// The listener has stopped.
    #[error("projection `{name}` is stopped")]
    Stopped {
        /// The listener's name.
        name: &'static str,
    },
}

/// What a handle asks of the runner.
pub(super) enum Control {
    Stop(oneshot::Sender<()>),
    Skip(Position, oneshot::Sender<Result<(), SkipError>>),
}

/// A running listener. Clones share it; the runner stops when the last one is dropped.
pub struct ProjectionHandle<P> {
    pub(super) name: &'static str,
    /// The read model, for [`ProjectionHandle::read`] (kept by the runner only when its data
    /// lives in memory).
    pub(super) state: Option<Arc<RwLock<P>>>,
    pub(super) status: watch::Receiver<ProjectionStatus>,
    pub(super) control: mpsc::UnboundedSender<Control>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            state: self.state.clone(),
            status: self.status.clone(),
            control: self.control.clone(),
        }
    }
}

impl<P> std::fmt::Debug for ProjectionHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionHandle")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// The listener's status now.
    #[must_use]
    pub fn status(&self) -> ProjectionStatus {
        self.status.borrow().clone()
    }

    /// Waits until the listener has processed `position` (read your writes: pass the
    /// position an `execute` returned).
    ///
    /// # Errors
    ///
    /// [`WaitError`] when `timeout` passes first (a failing listener is waited for, since a
    /// retry may succeed), or at once when the listener is stopped.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), WaitError> {
        let mut status = self.status.clone();
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                {
                    let now = status.borrow_and_update();
                    if now.position.is_some_and(|p| p >= position) {
                        return Ok(());
                    }
                    if now.state == ProjectionState::Stopped {
                        return Err(());
                    }
                }
                if status.changed().await.is_err() {
                    // The runner is gone: as stopped.
                    return Err(());
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) | Err(_) => {
                let now = status.borrow();
                Err(WaitError {
                    name: self.name,
                    target: position,
                    reached: now.position,
                    stopped: matches!(now.state, ProjectionState::Stopped) || outcome.is_ok(),
                    failure: match &now.state {
                        ProjectionState::Failed { error, .. } => Some(error.clone()),
                        _ => None,
                    },
                })
            }
        }
    }

    /// Waits until the runner has found where to start and follows the log. A reactor's
    /// first run starts at the end of the log as the runner finds it, so await this before
    /// appending what a new reactor must see. Returns at once when it stopped first.
    pub async fn started(&self) {
        let mut status = self.status.clone();
        loop {
            {
                let now = status.borrow_and_update();
                if now.started || now.state == ProjectionState::Stopped {
                    return;
                }
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    }

    /// Steps over the record at `position`, which must be the one the listener is failing
    /// at; the skip is recorded in [`ProjectionStatus::skipped`].
    ///
    /// # Errors
    ///
    /// [`SkipError`] when the listener is not failing at exactly that position, or stopped.
    pub async fn skip(&self, position: Position) -> Result<(), SkipError> {
        let (reply, answer) = oneshot::channel();
        let stopped = SkipError::Stopped { name: self.name };
        if self.control.send(Control::Skip(position, reply)).is_err() {
            return Err(stopped);
        }
        answer.await.unwrap_or(Err(stopped))
    }

    /// Stops the listener and waits until it has (what it committed stays committed).
    pub async fn stop(&self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Stop(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

impl<P: Projection<Context = ()> + ReadModel> ProjectionHandle<P> {
    /// Reads the in-memory read model.
    pub fn read<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        // A read model without context always keeps its model here (see `Projector::spawn`).
        let state = self
            .state
            .as_ref()
            .expect("a projection without context keeps its read model in memory");
        f(&state.read().unwrap_or_else(PoisonError::into_inner))
    }
}
