//! Event sourcing and CQRS for Rust.
//!
//! Write plain structs and methods, mark them, and the macros generate the event enum, the
//! command enum, the fold and the dispatch; misuse is a compile error that points at your
//! code. State is the fold of an immutable sequence of events; a command is decided by an
//! aggregate against that state; a [`Repository`] loads, decides and appends atomically with
//! an expected version, so concurrent writers never lose an update.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use es_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[event(name = "AccountOpened", version = 1)]
//! pub struct AccountOpened { pub owner: String }
//!
//! #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! pub struct MoneyDeposited { pub amount: u64 }
//!
//! #[derive(Command, Serialize, Deserialize, Clone, Debug)]
//! pub struct OpenAccount { pub owner: String }
//!
//! #[derive(Command, Serialize, Deserialize, Clone, Debug)]
//! pub struct Deposit { pub amount: u64 }
//!
//! #[derive(Debug, PartialEq)]
//! pub enum AccountError { NotOpen, AlreadyOpen }
//!
//! #[derive(Aggregate, Default, Clone, Debug)]
//! #[aggregate(name = "account", error = AccountError)]
//! pub struct Account { open: bool, balance: u64 }
//!
//! #[aggregate_impl]
//! impl Account {
//!     #[command]
//!     fn open(&self, cmd: OpenAccount) -> Result<AccountOpened, AccountError> {
//!         if self.open { return Err(AccountError::AlreadyOpen); }
//!         Ok(AccountOpened { owner: cmd.owner })
//!     }
//!
//!     #[command]
//!     fn deposit(&self, cmd: Deposit) -> Result<MoneyDeposited, AccountError> {
//!         if !self.open { return Err(AccountError::NotOpen); }
//!         Ok(MoneyDeposited { amount: cmd.amount })
//!     }
//!
//!     #[apply]
//!     fn opened(&mut self, _: &AccountOpened) { self.open = true; }
//!
//!     #[apply]
//!     fn deposited(&mut self, e: &MoneyDeposited) { self.balance += e.amount; }
//! }
//!
//! let accounts = Repository::<Account, _>::new(InMemoryStore::new());
//! let id = uuid::Uuid::now_v7();
//! accounts.execute(&id, OpenAccount { owner: "ada".into() }).await.unwrap();
//! let done = accounts.execute(&id, Deposit { amount: 5 }).await.unwrap();
//! assert_eq!(done.version, 2);
//! assert_eq!(done.events[0].event, AccountEvent::MoneyDeposited(MoneyDeposited { amount: 5 }));
//! assert_eq!(accounts.load(&id).await.unwrap().state.balance, 5);
//!
//! // A command arrives as JSON through the generated command enum.
//! let cmd: AccountCommand = serde_json::from_str(r#"{"type": "Deposit", "amount": 10}"#).unwrap();
//! accounts.execute(&id, cmd).await.unwrap();
//! # });
//! ```
//!
//! Vocabulary: an event type's *stored name* is the string it is kept under, a contract
//! between services: [`Event::NAME`] in the typed layer ([`EventSet::name`] for a value of
//! the generated enum), and `event_type` in records ([`NewEvent`], [`RecordedEvent`]) and
//! in the errors that name one ([`CorruptEvent`], [`EncodeError`]), after the column that
//! holds it.
//!
//! Features: `testing` adds `testing::Fixture` (given / when / then for aggregates) and the
//! store conformance suite every store crate runs.

// The macros name `::es_core`; inside this crate too (the testing module uses them).
#[cfg(feature = "testing")]
extern crate self as es_core;

mod codec;
pub mod contracts;
mod envelope;
mod memory;
mod model;
mod payload_text;
mod position;
pub mod projection;
mod repository;
pub mod store;

#[cfg(feature = "testing")]
pub mod testing;

pub use codec::{CorruptEvent, DecodeError, EncodeError};
pub use envelope::{Envelope, Metadata, StreamId};
pub use memory::InMemoryStore;
pub use model::{
    Aggregate, AggregateRoot, Command, CommandSet, Event, EventSet, Personal, SnapshotPolicy,
};
pub use position::{ParsePositionError, Position};
pub use projection::{
    Partition, Projection, ProjectionHandle, ProjectionState, ProjectionStatus, Projector,
    ReadModel, SkipError, WaitError,
};
pub use repository::{Error, Executed, Loaded, Repository};
pub use store::{
    Appended, Decoded, Delivery, EventStore, ExpectedVersion, FoldStep, LoadRecord, NewEvent,
    Payload, RecordedEvent, Snapshot, StoreError, StreamAppend, TextEvent,
};

/// `#[derive(Event)]`: implements [`Event`] (`#[event(name = "...", version = N)]`).
pub use es_derive::Event;

/// `#[derive(Command)]`: implements [`Command`].
pub use es_derive::Command;

/// `#[derive(Aggregate)]`: implements [`AggregateRoot`]
/// (`#[aggregate(name = "...", id = Type, error = Type)]`).
pub use es_derive::Aggregate;

/// `#[aggregate_impl]` on the aggregate's inherent impl: implements [`Aggregate`] from its
/// `#[command]` and `#[apply]` methods and generates the event and command enums.
pub use es_derive::aggregate_impl;

/// `#[command]`: marks a method of an `#[aggregate_impl]` block that decides a command.
pub use es_derive::command;

/// `#[apply]`: marks a method of an `#[aggregate_impl]` block that applies an event.
pub use es_derive::apply;

/// `#[derive(Projection)]`: names a read model (`#[projection(name = "...", version = N)]`,
/// both optional); `#[projection_impl]` implements [`Projection`] from its `#[on]` handlers.
pub use es_derive::Projection;

/// `#[derive(Reactor)]`: names a reactor (`#[reactor(name = "...")]`, optional);
/// `#[reactor_impl]` implements [`Projection`] from its `#[on]` handlers.
pub use es_derive::Reactor;

/// `#[projection_impl]` on a read model's inherent impl: implements [`Projection`] from its
/// `#[on]` handlers (`fn(&mut self, event: &E)`, or `&Envelope<E>`, optionally a last
/// `ctx: &mut C`, the store's context).
pub use es_derive::projection_impl;

/// `#[reactor_impl]` on a reactor's inherent impl: implements [`Projection`] from its `#[on]`
/// handlers (`fn(&self, event: &E)`, usually `async`), which stay callable as methods.
pub use es_derive::reactor_impl;

/// `#[on]`: marks a handler of a `#[projection_impl]` or `#[reactor_impl]` block.
pub use es_derive::on;

/// Everything a domain module needs, and no name of the standard prelude: the traits, the
/// macros, the repository and the stores' shared types, and the read side's handle, status
/// and errors.
///
/// ```
/// use es_core::prelude::*;
///
/// fn failed(status: &ProjectionStatus) -> bool {
///     matches!(status.state, ProjectionState::Failed { .. })
/// }
/// fn reached(outcome: Result<(), WaitError>) -> bool {
///     outcome.is_ok()
/// }
/// fn skipped(outcome: Result<(), SkipError>) -> bool {
///     outcome.is_ok()
/// }
/// fn appended<E>(done: &Executed<E>) -> usize {
///     done.events.len()
/// }
/// let _ = (failed, reached, skipped, appended::<()>);
/// ```
pub mod prelude {
    pub use crate::{
        Aggregate, AggregateRoot, Command, CommandSet, Envelope, Event, EventSet, EventStore,
        Executed, ExpectedVersion, InMemoryStore, Loaded, Metadata, Position, Projection,
        ProjectionHandle, ProjectionState, ProjectionStatus, Projector, Reactor, Repository,
        SkipError, StreamId, WaitError, aggregate_impl, apply, command, on, projection_impl,
        reactor_impl,
    };
}

/// Used by the generated code; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
    pub use uuid::Uuid;

    #[cfg(feature = "testing")]
    pub use tokio;

    use crate::{DecodeError, Event};

    /// `event`'s payload as JSON text, when it reads back as `to_value` would give it (and
    /// the event has no personal field): `EventSet::to_payload_text`.
    pub fn payload_text<T: Event>(event: &T) -> Option<String> {
        crate::payload_text::payload_text(event, !T::PERSONAL.is_empty())
    }

    /// Reads one stored payload as `T`, through its upcasting chain.
    ///
    /// # Errors
    ///
    /// A version the chain does not read, a failing step, or a payload that does not
    /// deserialize.
    pub fn decode<T: Event>(
        schema_version: u16,
        payload: serde_json::Value,
    ) -> Result<T, DecodeError> {
        if schema_version == T::VERSION && T::PERSONAL.is_empty() {
            // Owned: no copy of the strings inside.
            return serde_json::from_value(payload).map_err(DecodeError::Payload);
        }
        T::from_stored(schema_version, &payload)
    }

    /// [`decode`] from the payload's JSON text: straight into `T` at the current version
    /// (no `serde_json::Value` in between), through a `Value` otherwise. On an error the
    /// text is read again through a `Value`, so the error is the one [`decode`] gives.
    ///
    /// # Errors
    ///
    /// As [`decode`], or the text is not JSON.
    pub fn decode_text<T: Event>(schema_version: u16, payload: &str) -> Result<T, DecodeError> {
        if schema_version == T::VERSION
            && T::PERSONAL.is_empty()
            && let Ok(event) = serde_json::from_str(payload)
        {
            return Ok(event);
        }
        let value = serde_json::from_str(payload).map_err(DecodeError::Payload)?;
        decode(schema_version, value)
    }

    /// The current version's payload read as `T` (`#[derive(Event)]`'s `from_stored`).
    ///
    /// # Errors
    ///
    /// The payload does not deserialize.
    pub fn deserialize_current<T: serde::de::DeserializeOwned>(
        payload: &serde_json::Value,
    ) -> Result<T, DecodeError> {
        T::deserialize(payload).map_err(DecodeError::Payload)
    }

    /// One JSON upcasting step (`#[event(upcast = f)]`): `payload`, stored at `from`, in the
    /// shape of version `from + 1`.
    ///
    /// # Errors
    ///
    /// The step's own error, as [`DecodeError::Upcast`].
    pub fn upcast_step<E>(
        step: fn(serde_json::Value) -> Result<serde_json::Value, E>,
        from: u16,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, DecodeError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        step(payload.clone()).map_err(|e| DecodeError::Upcast {
            from,
            to: from.saturating_add(1),
            source: Box::new(e),
        })
    }

    /// A command enum's `Serialize`: `command`'s own JSON object with `"type": tag` added.
    ///
    /// # Errors
    ///
    /// The command does not serialize, or not to an object.
    pub fn serialize_tagged<S, C>(serializer: S, tag: &str, command: &C) -> Result<S::Ok, S::Error>
    where
        S: serde::Serializer,
        C: serde::Serialize,
    {
        use serde::ser::Error as _;
        let mut value = serde_json::to_value(command).map_err(S::Error::custom)?;
        match &mut value {
            serde_json::Value::Object(fields) => {
                fields.insert("type".to_owned(), serde_json::Value::String(tag.to_owned()));
            }
            // A unit struct serializes to null: the tag alone.
            serde_json::Value::Null => {
                value = serde_json::json!({ "type": tag });
            }
            other => {
                return Err(S::Error::custom(format!(
                    "command `{tag}` serializes to a JSON {}, not an object",
                    crate::codec::json_kind(other)
                )));
            }
        }
        serde::Serialize::serialize(&value, serializer)
    }

    /// A command enum's `Deserialize`, first half: the `type` tag and the rest of the object.
    ///
    /// # Errors
    ///
    /// Not an object, or no string `type`.
    pub fn untag<'de, D>(deserializer: D) -> Result<(String, serde_json::Value), D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        use serde::de::Error as _;
        let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(D::Error::invalid_type(
                serde::de::Unexpected::Other(crate::codec::json_kind(&value)),
                &"a command: an object with a `type`",
            ));
        };
        match fields.remove("type") {
            Some(serde_json::Value::String(tag)) => Ok((tag, serde_json::Value::Object(fields))),
            Some(other) => Err(D::Error::invalid_type(
                serde::de::Unexpected::Other(crate::codec::json_kind(&other)),
                &"a command's `type`: a string",
            )),
            None => Err(D::Error::missing_field("type")),
        }
    }

    /// A command enum's `Deserialize`, second half: the fields as command `C` (a unit struct
    /// from an object holding nothing but its tag).
    ///
    /// # Errors
    ///
    /// The fields do not deserialize as `C`.
    pub fn deserialize_tagged<C, E>(fields: serde_json::Value) -> Result<C, E>
    where
        C: serde::de::DeserializeOwned,
        E: serde::de::Error,
    {
        // A unit struct reads from null, not from the `{}` left once the tag is out.
        if fields.as_object().is_some_and(serde_json::Map::is_empty)
            && let Ok(command) = serde_json::from_value(serde_json::Value::Null)
        {
            return Ok(command);
        }
        serde_json::from_value(fields).map_err(E::custom)
    }

    /// Reads a type's JSON Schema when it has one (`#[derive(Event)]` calls
    /// `(&&SchemaProbe::<Self>::new()).schema()`: through [`ViaJsonSchema`] when the type
    /// implements `schemars::JsonSchema`, else [`NoSchema`]).
    pub struct SchemaProbe<T>(std::marker::PhantomData<T>);

    impl<T> SchemaProbe<T> {
        /// A probe for `T`.
        #[must_use]
        pub const fn new() -> Self {
            Self(std::marker::PhantomData)
        }
    }

    impl<T> Default for SchemaProbe<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The schema of a type that implements `schemars::JsonSchema`.
    pub trait ViaJsonSchema {
        /// Its JSON Schema.
        fn schema(&self) -> Option<serde_json::Value>;
    }

    impl<T: schemars::JsonSchema> ViaJsonSchema for &SchemaProbe<T> {
        fn schema(&self) -> Option<serde_json::Value> {
            Some(crate::contracts::schema_of::<T>())
        }
    }

    /// A type without a schema.
    pub trait NoSchema {
        /// None.
        fn schema(&self) -> Option<serde_json::Value>;
    }

    impl<T> NoSchema for SchemaProbe<T> {
        fn schema(&self) -> Option<serde_json::Value> {
            None
        }
    }

    /// What an aggregate with `snapshot(...)` must be: its state goes to JSON and back.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` keeps snapshots (`#[aggregate(snapshot(...))]`), so it must be `Serialize + Deserialize`",
        label = "add `#[derive(Serialize, Deserialize)]` to `{Self}`"
    )]
    pub trait Snapshottable: Sized {
        /// A snapshot's JSON of the state.
        ///
        /// # Errors
        ///
        /// The state's `Serialize` failed.
        fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;

        /// The state read back from its snapshot's JSON.
        ///
        /// # Errors
        ///
        /// The JSON does not deserialize as the state.
        fn from_json(state: serde_json::Value) -> Result<Self, serde_json::Error>;
    }

    #[diagnostic::do_not_recommend]
    impl<T: serde::Serialize + serde::de::DeserializeOwned> Snapshottable for T {
        fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
            serde_json::to_value(self)
        }

        fn from_json(state: serde_json::Value) -> Result<Self, serde_json::Error> {
            serde_json::from_value(state)
        }
    }

    /// What `#[derive(Projection)]` and `#[derive(Reactor)]` give a listener.
    pub trait ListenerMeta {
        /// The checkpoint's key.
        const NAME: &'static str;
        /// The read model's version (1 for reactors).
        const VERSION: u32;
        /// Read model or reactor.
        const KIND: crate::projection::Kind;
        /// The read model's tables (`#[projection(ddl = "...")]`).
        const DDL: &'static str = "";
    }

    /// What an `#[on]` handler returns: `()`, or `Result<(), E>` with `E: Debug`.
    #[diagnostic::on_unimplemented(
        message = "an `#[on]` handler returns `()` or `Result<(), E>` (with `E: Debug`), not `{Self}`",
        label = "return `()` or `Result<(), E>`"
    )]
    pub trait IntoHandled {
        /// The handler's outcome for the runner.
        ///
        /// # Errors
        ///
        /// The handler's error, as its `Debug`.
        fn into_handled(self) -> Result<(), crate::projection::HandlerError>;
    }

    impl IntoHandled for () {
        fn into_handled(self) -> Result<(), crate::projection::HandlerError> {
            Ok(())
        }
    }

    impl<E: std::fmt::Debug> IntoHandled for Result<(), E> {
        fn into_handled(self) -> Result<(), crate::projection::HandlerError> {
            self.map_err(|e| crate::projection::HandlerError::handler(&e))
        }
    }

    /// Reads a record as `T` for an `#[on]` handler (through its upcasting chain), without
    /// copying the payload.
    ///
    /// # Errors
    ///
    /// The record does not read as `T`: a [`CorruptEvent`](crate::CorruptEvent) naming it.
    pub fn decode_record<T: Event>(
        record: &crate::RecordedEvent,
    ) -> Result<T, crate::projection::HandlerError> {
        T::from_stored(record.schema_version, &record.payload).map_err(|source| {
            crate::projection::HandlerError::Decode(crate::CorruptEvent {
                stream: record.stream.clone(),
                version: record.version,
                event_type: record.event_type.clone(),
                schema_version: record.schema_version,
                source,
            })
        })
    }

    /// The envelope of a record holding its decoded event.
    #[must_use]
    pub fn envelope_of<T>(record: &crate::RecordedEvent, event: T) -> crate::Envelope<T> {
        crate::Envelope {
            event_id: record.event_id,
            stream: record.stream.clone(),
            version: record.version,
            position: record.position,
            recorded_at: record.recorded_at,
            metadata: record.metadata.clone(),
            event,
        }
    }

    /// `a == b` in a constant (the macros check stored names at compile time).
    #[must_use]
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}
