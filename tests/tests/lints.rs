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
