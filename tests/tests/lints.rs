//! The expansion is lint-clean: this file derives everything under the strictest lints a
//! user might set (after thiserror's `tests/test_lints.rs`). Clippy runs it in CI.
#![deny(unused_qualifications, clippy::pedantic, missing_docs, unused)]

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

/// An event.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "Opened", version = 2)]
pub struct Opened {
    /// Who.
    pub owner: String,
}

/// Another event.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Closed {}

/// A command.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Open {
    /// Who.
    pub owner: String,
}

/// A unit command.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Close;

/// The error.
#[derive(Debug, PartialEq, Eq)]
pub enum LintError {
    /// No.
    No,
}

/// The aggregate.
#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(name = "lint_account", error = LintError)]
pub struct LintAccount {
    open: bool,
}

#[aggregate_impl]
impl LintAccount {
    #[command]
    fn open(&self, cmd: Open) -> Result<(Opened, Option<Closed>), LintError> {
        if self.open {
            return Err(LintError::No);
        }
        Ok((Opened { owner: cmd.owner }, None))
    }

    #[command]
    fn close(&self, _: Close) -> Result<Vec<Closed>, LintError> {
        if self.open {
            Ok(vec![Closed {}])
        } else {
            Err(LintError::No)
        }
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }

    #[apply]
    fn closed(&mut self, _: &Closed) {
        self.open = false;
    }
}

#[test]
fn expansion_is_lint_clean_and_works() {
    let account = LintAccount::default();
    let events = account
        .handle(
            Open {
                owner: "ada".into(),
            }
            .into(),
        )
        .expect("opens");
    assert_eq!(
        events,
        vec![LintAccountEvent::Opened(Opened {
            owner: "ada".into()
        })]
    );
    assert_eq!(LintAccountEvent::NAMES, &["Opened", "Closed"]);
    assert_eq!(events[0].schema_version(), 2);
}

/// A read model.
#[derive(Projection, Default, Clone, Debug)]
#[projection(name = "lint_counts", version = 2)]
pub struct LintCounts {
    /// Opened accounts.
    pub opened: u64,
}

#[projection_impl]
impl LintCounts {
    #[on]
    fn opened(&mut self, _: &Opened) {
        self.opened += 1;
    }

    #[on]
    fn closed(&mut self, e: &Envelope<Closed>) -> Result<(), LintError> {
        if e.version == 0 {
            return Err(LintError::No);
        }
        self.opened = self.opened.saturating_sub(1);
        Ok(())
    }
}

/// A reactor.
#[derive(Reactor)]
pub struct LintReactor {
    /// What it saw.
    pub seen: std::sync::atomic::AtomicU64,
}

#[reactor_impl]
impl LintReactor {
    #[on]
    fn opened(&self, _: &Envelope<Opened>) {
        self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn listener_expansion_is_lint_clean() {
    assert_eq!(<LintCounts as Projection>::NAME, "lint_counts");
    assert_eq!(<LintCounts as Projection>::VERSION, 2);
    assert_eq!(
        <LintCounts as Projection>::EVENT_TYPES,
        &["Opened", "Closed"]
    );
    assert_eq!(<LintReactor as Projection>::NAME, "lint_reactor");
    assert_eq!(
        <LintReactor as Projection>::KIND,
        es_core::projection::Kind::Reactor
    );
}
