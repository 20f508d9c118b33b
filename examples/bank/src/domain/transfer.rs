//! The `Transfer` aggregate: one money transfer between two accounts, driven by the
//! [`TransferSaga`](crate::saga::TransferSaga) reactor. Each step's outcome is an event of
//! the transfer, a refusal included, so the next step reacts to it and nothing is lost:
//!
//! ```text
//! TransferRequested -> (debit the source)   -> TransferDebited     -> (credit the destination) -> TransferCompleted
//!                                            \-> TransferDebitRefused                          \-> TransferCreditRefused
//!                                                                          -> (refund the source) -> TransferRefunded
//! ```

use std::fmt;
use std::str::FromStr;

use es_core::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::account::AccountId;

/// A transfer's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct TransferId(Uuid);

impl TransferId {
    /// A fresh, time-ordered id.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

/// The nil id: deterministic, never a fresh transfer's id.
impl Default for TransferId {
    fn default() -> Self {
        Self(Uuid::nil())
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TransferId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Why the transfer said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// `RequestTransfer` on a transfer that exists.
    #[error("the transfer was already requested")]
    AlreadyRequested,
    /// A step of a transfer that was never requested.
    #[error("no such transfer")]
    NotRequested,
    /// A step out of order (the saga never sends one; a client might).
    #[error("the transfer is {0}: that step does not apply")]
    WrongStep(&'static str),
    /// From and to are the same account.
    #[error("a transfer needs two different accounts")]
    SameAccount,
    /// A zero amount.
    #[error("the amount must be positive")]
    ZeroAmount,
}

/// Move `amount` cents from one account to another.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RequestTransfer {
    /// The source account.
    pub from: AccountId,
    /// The destination account.
    pub to: AccountId,
    /// Cents.
    pub amount: u64,
}

/// The saga debited the source.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RecordDebit;

/// The source refused the debit.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RecordDebitRefused {
    /// The account's reason.
    pub reason: String,
}

/// The saga credited the destination.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RecordCredit;

/// The destination refused the credit.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RecordCreditRefused {
    /// The account's reason.
    pub reason: String,
}

/// The saga gave the money back to the source.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RecordRefund;

/// A transfer was asked for.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "TransferRequested", version = 1)]
pub struct TransferRequested {
    /// The source account.
    pub from: AccountId,
    /// The destination account.
    pub to: AccountId,
    /// Cents.
    pub amount: u64,
}

/// The source was debited.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "TransferDebited", version = 1)]
pub struct TransferDebited {}

/// The source refused: the transfer failed, nothing moved.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "TransferDebitRefused", version = 1)]
pub struct TransferDebitRefused {
    /// Why.
    pub reason: String,
}

/// The destination was credited: done.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "TransferCompleted", version = 1)]
pub struct TransferCompleted {}

/// The destination refused: the source must be refunded.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "TransferCreditRefused", version = 1)]
pub struct TransferCreditRefused {
    /// Why.
    pub reason: String,
}

/// The source got its money back: the transfer failed.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "TransferRefunded", version = 1)]
pub struct TransferRefunded {}

/// Where a transfer is.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not requested.
    #[default]
    New,
    /// Requested, source not debited yet.
    Requested,
    /// Source debited, destination not credited yet.
    Debited,
    /// Done.
    Completed,
    /// The destination refused; the source awaits its refund.
    CreditRefused,
    /// Failed: nothing moved, or the source was refunded.
    Failed,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Requested => "requested",
            Self::Debited => "debited",
            Self::Completed => "completed",
            Self::CreditRefused => "waiting for its refund",
            Self::Failed => "failed",
        }
    }
}

/// A transfer, folded from its events.
#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(name = "transfer", id = TransferId, error = TransferError)]
pub struct Transfer {
    stage: Stage,
    from: Option<AccountId>,
    to: Option<AccountId>,
    amount: u64,
    reason: Option<String>,
}

impl Transfer {
    /// Where it is.
    #[must_use]
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Source, destination and amount, once requested.
    #[must_use]
    pub fn parties(&self) -> Option<(AccountId, AccountId, u64)> {
        Some((self.from?, self.to?, self.amount))
    }

    /// Why it failed, if it did.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    fn expect(&self, stage: Stage) -> Result<(), TransferError> {
        match self.stage {
            Stage::New => Err(TransferError::NotRequested),
            s if s == stage => Ok(()),
            s => Err(TransferError::WrongStep(s.name())),
        }
    }
}

#[aggregate_impl]
impl Transfer {
    #[command]
    fn request(&self, cmd: RequestTransfer) -> Result<TransferRequested, TransferError> {
        if self.stage != Stage::New {
            return Err(TransferError::AlreadyRequested);
        }
        if cmd.from == cmd.to {
            return Err(TransferError::SameAccount);
        }
        if cmd.amount == 0 {
            return Err(TransferError::ZeroAmount);
        }
        Ok(TransferRequested {
            from: cmd.from,
            to: cmd.to,
            amount: cmd.amount,
        })
    }

    #[command]
    fn debit(&self, _: RecordDebit) -> Result<TransferDebited, TransferError> {
        self.expect(Stage::Requested)?;
        Ok(TransferDebited {})
    }

    #[command]
    fn debit_refused(
        &self,
        cmd: RecordDebitRefused,
    ) -> Result<TransferDebitRefused, TransferError> {
        self.expect(Stage::Requested)?;
        Ok(TransferDebitRefused { reason: cmd.reason })
    }

    #[command]
    fn credit(&self, _: RecordCredit) -> Result<TransferCompleted, TransferError> {
        self.expect(Stage::Debited)?;
        Ok(TransferCompleted {})
    }

    #[command]
    fn credit_refused(
        &self,
        cmd: RecordCreditRefused,
    ) -> Result<TransferCreditRefused, TransferError> {
        self.expect(Stage::Debited)?;
        Ok(TransferCreditRefused { reason: cmd.reason })
    }

    #[command]
    fn refund(&self, _: RecordRefund) -> Result<TransferRefunded, TransferError> {
        self.expect(Stage::CreditRefused)?;
        Ok(TransferRefunded {})
    }

    #[apply]
    fn requested(&mut self, e: &TransferRequested) {
        self.stage = Stage::Requested;
        self.from = Some(e.from);
        self.to = Some(e.to);
        self.amount = e.amount;
    }

    #[apply]
    fn debited(&mut self, _: &TransferDebited) {
        self.stage = Stage::Debited;
    }

    #[apply]
    fn debit_was_refused(&mut self, e: &TransferDebitRefused) {
        self.stage = Stage::Failed;
        self.reason = Some(e.reason.clone());
    }

    #[apply]
    fn completed(&mut self, _: &TransferCompleted) {
        self.stage = Stage::Completed;
    }

    #[apply]
    fn credit_was_refused(&mut self, e: &TransferCreditRefused) {
        self.stage = Stage::CreditRefused;
        self.reason = Some(e.reason.clone());
    }

    #[apply]
    fn refunded(&mut self, _: &TransferRefunded) {
        self.stage = Stage::Failed;
    }
}
