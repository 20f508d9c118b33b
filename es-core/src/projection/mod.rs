//! The read side: event listeners that fold read models ([`Projection`]) or react with new
//! commands (reactors), run by one [`Projector`] on any store.
//!
//! A listener reads the global log from a position, hands each record of an event type it
//! handles to its handler, and moves its position past every record (its own types or not).
//! A handler that fails stops the listener at that record: the failure is logged with
//! `tracing`, shown in [`ProjectionStatus`], and retried with capped exponential backoff
//! until it succeeds or [`ProjectionHandle::skip`] steps over it (recorded in the status).
//!
//! `#[derive(Projection)]` with `#[projection_impl]`, or `#[derive(Reactor)]` with
//! `#[reactor_impl]`, implement [`Projection`] from the `#[on]` handlers; the trait is also
//! what a hand-written listener implements.

mod handle;
pub(crate) mod inline;
mod runner;
mod store;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

pub use handle::{ProjectionHandle, ProjectionState, ProjectionStatus, SkipError, WaitError};
pub use inline::InlineHandle;
pub use runner::{Partition, Projector};
pub use store::{Checkpoints, ContextStore};

use crate::codec::CorruptEvent;
use crate::store::RecordedEvent;

/// What a listener is: a read model, folded from the log (history first), or a reactor,
/// which acts on what happens from now on (by default its first run starts at the end of
/// the log, and a new version never replays history).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A read model: catches up from the start.
    ReadModel,
    /// A reactor (process manager, saga): first run at the end of the log.
    Reactor,
}

/// The future a handler returns: boxed, so one trait serves synchronous and asynchronous
/// handlers alike (a synchronous one is ready at once).
pub type HandleFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// An event listener: a read model or a reactor. The macros implement it; so can you.
pub trait Projection: Send + Sync + 'static {
    /// The listener's name: the key of its checkpoint and of its status.
    const NAME: &'static str;
    /// Its version: a read model whose version is new is rebuilt from the start.
    const VERSION: u32;
    /// A read model or a reactor.
    const KIND: Kind;
    /// The stored names of the event types it handles: it reads only these, and its
    /// position still moves past the rest.
    const EVENT_TYPES: &'static [&'static str];
    /// What handlers take besides the event: `()` for none; on PostgreSQL the connection of
    /// the transaction that also stores the checkpoint.
    type Context: Send;
    /// The read model's tables (SQL), created in the version's own schema the first time the
    /// version runs (on PostgreSQL, where handlers then write unqualified table names and
    /// readers query the views of the serving version). Empty by default.
    const DDL: &'static str = "";

    /// Hands one record to the handler of its type (a record of another type is `Ok`).
    /// Decodes through the event's upcasters; a record that does not decode is an error,
    /// as a failing handler is.
    fn handle<'a>(
        &'a mut self,
        record: &'a RecordedEvent,
        cx: &'a mut Self::Context,
    ) -> HandleFuture<'a>;
}

/// A listener that keeps a read model in memory, which its handle can [`read`]:
/// `#[derive(Projection)]` implements it (a reactor keeps none). A hand-written read model
/// implements it too; a reactor (`KIND = Kind::Reactor`) must not.
///
/// [`read`]: ProjectionHandle::read
#[diagnostic::on_unimplemented(
    message = "`{Self}` keeps no read model in memory: only a read model's handle can `read`",
    note = "a reactor's handle has no `read`; a read model derives `Projection`"
)]
pub trait ReadModel {}

/// The checkpoint key of a read model's version: `{name}_v{version}` (each version of a read
/// model keeps its own checkpoint; on PostgreSQL it also names the version's schema).
#[must_use]
pub fn version_key(name: &str, version: u32) -> String {
    format!("{name}_v{version}")
}

/// Why a handler did not take a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The record does not decode as the handler's event type.
    #[error(transparent)]
    Decode(#[from] CorruptEvent),
    /// The handler returned an error (shown with its `Debug`).
    #[error("handler failed: {0}")]
    Handler(String),
    /// The store failed (writing the read model, or the checkpoint).
    #[error("store failed: {0}")]
    Store(String),
}

impl HandlerError {
    /// A handler's own error, kept as its `Debug` text (handler errors need only `Debug`).
    pub fn handler(error: &impl Debug) -> Self {
        Self::Handler(format!("{error:?}"))
    }
}
