//! Test support (feature `testing`): [`Fixture`], given / when / then for one aggregate with
//! no store; [`conformance`], the suite every [`EventStore`](crate::EventStore) passes; and
//! [`Instrumented`], a store wrapper that counts and injects conflicts.

pub mod conformance;
pub mod evolution;
mod instrumented;
pub mod projections;

pub use instrumented::Instrumented;

use std::fmt::Debug;

use crate::model::{Aggregate, EventSet};

/// Given past events, when a command, then expect events, an error or a state.
///
/// A failing expectation panics with a readable diff of expected and actual.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::testing::Fixture;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// struct Lit {}
/// #[derive(Command, Serialize, Deserialize, Clone, Debug)]
/// struct Light;
/// #[derive(Debug, PartialEq)]
/// enum LampError { AlreadyLit }
///
/// #[derive(Aggregate, Default, Clone, Debug)]
/// #[aggregate(error = LampError)]
/// struct Lamp { lit: bool }
///
/// #[aggregate_impl]
/// impl Lamp {
///     #[command]
///     fn light(&self, _: Light) -> Result<Lit, LampError> {
///         if self.lit { Err(LampError::AlreadyLit) } else { Ok(Lit {}) }
///     }
///     #[apply]
///     fn lit(&mut self, _: &Lit) { self.lit = true; }
/// }
///
/// Fixture::<Lamp>::given_nothing().when(Light).expect_events([Lit {}.into()]).expect_state(|s| s.lit);
/// Fixture::<Lamp>::given([Lit {}.into()]).when(Light).expect_error(LampError::AlreadyLit);
/// ```
#[must_use = "a fixture checks nothing until `when` and an `expect_*` call"]
pub struct Fixture<A: Aggregate> {
    state: A,
    given: usize,
}

impl<A: Aggregate> Fixture<A> {
    /// Starts from `Default::default()` folded with `events`.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        let mut given = 0;
        for event in events {
            state.apply(&event);
            given += 1;
        }
        Self { state, given }
    }

    /// Starts from events as an older release stored them: (stored name, schema version,
    /// JSON payload), each read through its type's upcasting chain as a load reads it.
    ///
    /// ```
    /// # use es_core::testing::Fixture;
    /// # use es_core::testing::evolution::{Deposit, Ledger};
    /// use serde_json::json;
    ///
    /// // "LedgerDeposited" version 1 held whole units; today's version 3 holds cents.
    /// Fixture::<Ledger>::given_stored([("LedgerDeposited", 1, json!({ "amount": 2 }))])
    ///     .when(Deposit { cents: 5 })
    ///     .expect_state(|l| l.cents == 205);
    /// ```
    ///
    /// # Panics
    ///
    /// When one does not read, naming it and why.
    pub fn given_stored<'a>(
        events: impl IntoIterator<Item = (&'a str, u16, serde_json::Value)>,
    ) -> Self {
        Self::given(events.into_iter().enumerate().map(|(i, (name, version, payload))| {
            A::Event::from_stored(name, version, payload).unwrap_or_else(|e| {
                panic!("given event {} (`{name}`, schema version {version}) does not read: {e}", i + 1)
            })
        }))
    }

    /// Starts from `Default::default()`: an aggregate with no event yet.
    pub fn given_nothing() -> Self {
        Self::given([])
    }

    /// Decides `command` against the state.
    #[must_use = "call an `expect_*` method to check the outcome"]
    pub fn when(self, command: impl Into<A::Command>) -> Then<A> {
        let command = command.into();
        let result = self.state.handle(command.clone());
        Then {
            state: self.state,
            given: self.given,
            command,
            result,
        }
    }
}

/// The outcome of [`Fixture::when`], to check with the `expect_*` methods. Each returns the
/// outcome again, so checks chain.
pub struct Then<A: Aggregate> {
    state: A,
    given: usize,
    command: A::Command,
    result: Result<Vec<A::Event>, A::Error>,
}

/// What a state check returns: `()` (it asserts itself) or `bool` (false fails).
pub trait StateCheck {
    /// Whether the check passed.
    fn passed(self) -> bool;
}

impl StateCheck for () {
    fn passed(self) -> bool {
        true
    }
}

impl StateCheck for bool {
    fn passed(self) -> bool {
        self
    }
}

impl<A: Aggregate> Then<A>
where
    A::Error: Debug,
{
    fn context(&self) -> String {
        format!(
            "{} given {} event(s), when {:?}",
            std::any::type_name::<A>(),
            self.given,
            self.command
        )
    }

    /// The command must succeed with exactly these events, in this order.
    ///
    /// # Panics
    ///
    /// When it failed or decided other events; the message diffs expected and actual.
    #[track_caller]
    pub fn expect_events(self, expected: impl IntoIterator<Item = A::Event>) -> Self {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match &self.result {
            Ok(actual) => pretty_assertions::assert_eq!(
                &expected,
                actual,
                "\n{}: unexpected events (< expected, > actual)",
                self.context()
            ),
            Err(error) => panic!(
                "\n{}: expected events {expected:#?}\nbut the command was rejected: {error:#?}",
                self.context()
            ),
        }
        self
    }

    /// The command must be rejected with exactly this error.
    ///
    /// # Panics
    ///
    /// When it succeeded or failed otherwise; the message diffs expected and actual.
    #[track_caller]
    pub fn expect_error(self, expected: A::Error) -> Self
    where
        A::Error: PartialEq,
    {
        match &self.result {
            Err(actual) => pretty_assertions::assert_eq!(
                &expected,
                actual,
                "\n{}: unexpected error (< expected, > actual)",
                self.context()
            ),
            Ok(events) => panic!(
                "\n{}: expected error {expected:#?}\nbut the command succeeded with {events:#?}",
                self.context()
            ),
        }
        self
    }

    /// The command must be rejected with an error for which `check` holds.
    ///
    /// # Panics
    ///
    /// When it succeeded, or `check` returned false.
    #[track_caller]
    pub fn expect_error_matches(self, check: impl FnOnce(&A::Error) -> bool) -> Self {
        match &self.result {
            Err(actual) => assert!(
                check(actual),
                "\n{}: the error does not match: {actual:#?}",
                self.context()
            ),
            Ok(events) => panic!(
                "\n{}: expected an error, but the command succeeded with {events:#?}",
                self.context()
            ),
        }
        self
    }

    /// The state after the decided events are applied must pass `check`, which either
    /// asserts itself or returns a `bool`.
    ///
    /// # Panics
    ///
    /// When the command was rejected, or `check` fails.
    #[track_caller]
    pub fn expect_state<R: StateCheck>(self, check: impl FnOnce(&A) -> R) -> Self
    where
        A: Debug + Clone,
    {
        let Ok(events) = &self.result else {
            panic!(
                "\n{}: expected a state, but the command was rejected: {:#?}",
                self.context(),
                self.result.as_ref().err()
            );
        };
        let mut after = self.state.clone();
        for event in events {
            after.apply(event);
        }
        assert!(
            check(&after).passed(),
            "\n{}: the state does not match: {after:#?}",
            self.context()
        );
        self
    }
}

/// An [`Envelope`](crate::Envelope) for unit tests of handlers and reactors: `event` at
/// `version` of `stream`, with a fresh event id, the position `0.version`, recorded now,
/// and empty metadata (set `metadata` on the result to test correlation).
///
/// ```
/// use es_core::StreamId;
/// let e = es_core::testing::envelope(StreamId::new("account", "1"), 3, "anything");
/// assert_eq!(e.version, 3);
/// assert_eq!(e.stream.id(), "1");
/// ```
#[must_use]
pub fn envelope<E>(stream: crate::StreamId, version: u64, event: E) -> crate::Envelope<E> {
    crate::Envelope {
        event_id: uuid::Uuid::now_v7(),
        stream,
        version,
        position: crate::Position::new(0, version),
        recorded_at: chrono::Utc::now(),
        metadata: crate::Metadata::default(),
        event,
    }
}
