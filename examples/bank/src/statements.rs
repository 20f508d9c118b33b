//! Account statements: a read model folded from the accounts' events (balance, owner and
//! every movement per account), read right after a command with `wait_for`, in memory.

use std::collections::BTreeMap;

use es_core::prelude::*;

use crate::domain::account::{AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn};

/// One movement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The account stream's version.
    pub version: u64,
    /// `opened`, `deposit`, `withdrawal`, `closed`.
    pub what: &'static str,
    /// Cents in (positive) or out (negative).
    pub amount: i64,
    /// The balance after it.
    pub balance: i64,
}

/// One account's statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statement {
    /// The owner's name.
    pub owner: String,
    /// Cents.
    pub balance: i64,
    /// Whether the account was closed.
    pub closed: bool,
    /// Every movement, in order.
    pub lines: Vec<Line>,
}

/// Every account's statement, by account id.
#[derive(Projection, Default, Clone, Debug)]
#[projection(name = "statements")]
pub struct Statements {
    /// By account id (the stream id).
    pub accounts: BTreeMap<String, Statement>,
}

impl Statements {
    /// The sum of every balance (money is conserved by transfers).
    #[must_use]
    pub fn total(&self) -> i64 {
        self.accounts.values().map(|s| s.balance).sum()
    }

    fn line(&mut self, stream: &StreamId, version: u64, what: &'static str, amount: i64) {
        let statement = self.accounts.entry(stream.id().to_owned()).or_default();
        statement.balance += amount;
        let balance = statement.balance;
        statement.lines.push(Line {
            version,
            what,
            amount,
            balance,
        });
    }
}

fn cents(amount: u64) -> i64 {
    i64::try_from(amount).unwrap_or(i64::MAX)
}

#[projection_impl]
impl Statements {
    #[on]
    fn opened(&mut self, e: &Envelope<AccountOpened>) {
        self.line(&e.stream, e.version, "opened", 0);
        if let Some(s) = self.accounts.get_mut(e.stream.id()) {
            s.owner.clone_from(&e.event.owner);
        }
    }

    #[on]
    fn deposited(&mut self, e: &Envelope<MoneyDeposited>) {
        self.line(&e.stream, e.version, "deposit", cents(e.event.amount));
    }

    #[on]
    fn withdrawn(&mut self, e: &Envelope<MoneyWithdrawn>) {
        self.line(&e.stream, e.version, "withdrawal", -cents(e.event.amount));
    }

    #[on]
    fn closed(&mut self, e: &Envelope<AccountClosed>) {
        self.line(&e.stream, e.version, "closed", 0);
        if let Some(s) = self.accounts.get_mut(e.stream.id()) {
            s.closed = true;
        }
    }
}
