//! The domain traits the macros implement: [`Event`], [`Command`], [`AggregateRoot`],
//! [`Aggregate`] and the two closed sets an aggregate generates, [`EventSet`] and
//! [`CommandSet`].
//!
//! Users do not implement these by hand: `#[derive(Event)]`, `#[derive(Command)]`,
//! `#[derive(Aggregate)]` and `#[aggregate_impl]` do, and check at compile time what the
//! trait bounds cannot say (an event applied twice, a command whose events have no
//! `#[apply]`, two events with one stored name).

use std::fmt::{Debug, Display};
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::DecodeError;

/// A fact that happened to an aggregate, stored forever under a stable name and version.
///
/// The stored name and version are a contract between services: renaming the Rust type does
/// not change [`Event::NAME`] when `#[event(name = "...")]` is given. Events serialize to a
/// JSON object.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "add `#[derive(Event)]` to `{Self}`"
)]
pub trait Event:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The stored name (default: the Rust type name); records carry it as `event_type`.
    const NAME: &'static str;
    /// The schema version of this shape of the event (default 1).
    const VERSION: u16;
    /// The oldest stored version this type reads: [`Event::VERSION`] itself, or lower
    /// through `#[event(previous = OldType)]` (that type's oldest) or `#[event(upcast =
    /// path)]` (one lower).
    const OLDEST_VERSION: u16 = Self::VERSION;

    /// Reads a payload stored at `schema_version` as this type: at [`Event::VERSION`]
    /// directly, at an older version through the upcasting chain (`#[event(previous = ..)]`
    /// steps, each a `From`, or an `#[event(upcast = ..)]` step on the JSON). Every decode
    /// goes through here: the repository, projections and fixtures.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnsupportedVersion`] for a version the chain does not reach (or newer
    /// than the code), [`DecodeError::Upcast`] when a JSON step fails, and
    /// [`DecodeError::Payload`] when the payload does not deserialize at its version.
    fn from_stored(schema_version: u16, payload: &serde_json::Value) -> Result<Self, DecodeError> {
        if schema_version == Self::VERSION {
            Self::deserialize(payload).map_err(DecodeError::Payload)
        } else {
            Err(DecodeError::UnsupportedVersion {
                stored: schema_version,
                current: Self::VERSION,
            })
        }
    }
}

/// A request to change an aggregate: the user's intent, decided by one `#[command]` method.
///
/// `Clone` because a retry after a conflict decides the same command again; serde because a
/// command can arrive as JSON (`{"type": "Deposit", "amount": 10}` for the command enum).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "add `#[derive(Command)]` to `{Self}`"
)]
pub trait Command: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The command's type name, also its tag in the generated command enum.
    const NAME: &'static str;
}

/// What `#[derive(Aggregate)]` knows: the stored name, the id type and the domain error.
///
/// The state before the first event is `Default::default()`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "add `#[derive(Aggregate)]` and `#[aggregate(error = YourError)]` to `{Self}`"
)]
pub trait AggregateRoot: Default + Send + Sync + 'static {
    /// The aggregate's stored name, also the stream category (`[a-z0-9_]+`).
    const NAME: &'static str;
    /// The aggregate's id; a stream shows as `"{NAME}-{id}"`.
    type Id: Display + FromStr + Clone + Send + Sync + 'static;
    /// The domain error a command returns when it says no (`Debug`, so
    /// [`Error`](crate::Error) always is).
    type Error: Debug + Send + Sync + 'static;
    /// `#[aggregate(snapshot(every = N, version = V))]`: when the repository takes
    /// snapshots of this aggregate, and their shape's version (`None`: it never does).
    const SNAPSHOT: Option<SnapshotPolicy> = None;

    /// The state as a snapshot's JSON (`None` for an aggregate without snapshots).
    ///
    /// # Errors
    ///
    /// The state's `Serialize` failed.
    fn to_snapshot(&self) -> Option<Result<serde_json::Value, serde_json::Error>> {
        None
    }

    /// The state read back from a snapshot's JSON (`None` for an aggregate without
    /// snapshots).
    ///
    /// # Errors
    ///
    /// The JSON does not deserialize as the state.
    fn from_snapshot(state: serde_json::Value) -> Option<Result<Self, serde_json::Error>> {
        let _ = state;
        None
    }
}

/// When the repository snapshots an aggregate: after a command once at least `every`
/// events were folded since the snapshot its load started from (or the stream's start),
/// stored under `version`, the version of the state's shape (a new shape takes a new
/// version, and the old snapshots are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotPolicy {
    /// Events folded between snapshots (at least 1).
    pub every: u64,
    /// The version of the state's shape.
    pub version: u32,
}

impl SnapshotPolicy {
    /// A snapshot every `every` events, of shape `version`.
    #[must_use]
    pub const fn new(every: u64, version: u32) -> Self {
        Self { every, version }
    }
}

/// What `#[aggregate_impl]` generates: the fold (`apply`) and the decision (`handle`).
pub trait Aggregate: AggregateRoot {
    /// The generated event enum (`AccountEvent`), one variant per applied event type.
    type Event: EventSet;
    /// The generated command enum (`AccountCommand`), one variant per command type.
    type Command: CommandSet;

    /// Folds one event into the state. Infallible: an event is a fact.
    fn apply(&mut self, event: &Self::Event);

    /// Decides a command against the current state: the events to append, or the domain
    /// error. Pure and synchronous; writes nothing.
    ///
    /// # Errors
    ///
    /// The domain error of the `#[command]` method, converted with `Into`.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// The closed set of event types one aggregate applies, and their stored form.
///
/// The store keeps each event as (stored name, schema version, JSON payload); this trait
/// converts both ways, so a store only stores and reads.
pub trait EventSet: Clone + Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The stored names of every variant: the event types to subscribe to.
    const NAMES: &'static [&'static str];

    /// The stored name of this event.
    fn name(&self) -> &'static str;

    /// The schema version of this event.
    fn schema_version(&self) -> u16;

    /// The JSON payload (an object) of this event.
    ///
    /// # Errors
    ///
    /// When the event's `Serialize` implementation fails.
    fn to_payload(&self) -> Result<serde_json::Value, serde_json::Error>;

    /// Reads a stored event back.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] when the name is not one of [`EventSet::NAMES`], the version is not
    /// the current one, or the payload does not deserialize.
    fn from_stored(
        name: &str,
        schema_version: u16,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError>;
}

/// The closed set of command types one aggregate handles (the generated command enum).
pub trait CommandSet: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The type name of the command inside.
    fn name(&self) -> &'static str;
}
