//! The `Account` aggregate: open, deposit, withdraw, close. Amounts are in cents.

use std::fmt;
use std::str::FromStr;

use es_core::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The largest amount one deposit or withdrawal may move, in cents: 100 billion cents, 1
/// billion in currency units.
pub const MAX_AMOUNT: u64 = 100_000_000_000;

/// An account's id: a UUID v7, shown as the stream id `account-<uuid>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AccountId(Uuid);

impl AccountId {
    /// A fresh, time-ordered id (each call a new one).
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

/// The nil id (all zeros), as for `Uuid`: deterministic, never a fresh account's id. Use
/// [`AccountId::new`] for that.
impl Default for AccountId {
    fn default() -> Self {
        Self(Uuid::nil())
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AccountId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Why the account said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Every command but `OpenAccount` needs an open account.
    #[error("the account is not open")]
    NotOpen,
    /// `OpenAccount` on an account that exists.
    #[error("the account is already open")]
    AlreadyOpen,
    /// A closed account rejects everything.
    #[error("the account is closed")]
    Closed,
    /// The owner's name is empty.
    #[error("the owner's name is empty")]
    EmptyOwner,
    /// A zero amount moves nothing and is almost always a client bug.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// More than [`MAX_AMOUNT`] in one operation.
    #[error("amount of {amount} cents exceeds the limit of {max} cents per operation")]
    AmountTooLarge {
        /// The amount asked for.
        amount: u64,
        /// The limit.
        max: u64,
    },
    /// The balance does not cover the withdrawal.
    #[error("insufficient funds: balance {balance} cents, requested {requested} cents")]
    InsufficientFunds {
        /// The balance now.
        balance: u64,
        /// The amount asked for.
        requested: u64,
    },
    /// The deposit would overflow the balance.
    #[error("the balance would overflow")]
    BalanceOverflow,
    /// An account closes only when empty.
    #[error("cannot close with a balance of {balance} cents: withdraw it first")]
    NonZeroBalance {
        /// The balance now.
        balance: u64,
    },
}

/// Version 1 of an account's opening, as stored until the owner's name became personal data:
/// the name in the clear. Read as today's [`AccountOpened`] (with no holder).
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "AccountOpened", version = 1)]
pub struct AccountOpenedV1 {
    /// The owner's name.
    pub owner: String,
}

/// The account was opened. The owner's name is personal data of the account's holder: it is
/// stored encrypted under the holder's key, and `store.forget(&holder)` erases it (it then
/// reads as `""`).
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "AccountOpened", version = 2, previous = AccountOpenedV1)]
pub struct AccountOpened {
    /// The owner's name.
    #[personal(subject = holder)]
    pub owner: String,
    /// The data subject: [`holder_of`] the owner (empty for a version 1 event).
    pub holder: String,
}

impl From<AccountOpenedV1> for AccountOpened {
    fn from(v1: AccountOpenedV1) -> Self {
        Self {
            owner: v1.owner,
            holder: String::new(),
        }
    }
}

/// The data subject of an owner's name: a stable pseudonymous id (`holder-<UUID v5 of the
/// name>`), so the account's events name the holder without naming the person.
#[must_use]
pub fn holder_of(owner: &str) -> String {
    const HOLDERS: Uuid = Uuid::from_u128(0x6261_6e6b_2d68_6f6c_6465_7273_0000_0001);
    format!("holder-{}", Uuid::new_v5(&HOLDERS, owner.as_bytes()))
}

/// Money came in.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited", version = 1)]
pub struct MoneyDeposited {
    /// Cents.
    pub amount: u64,
}

/// Money went out.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "MoneyWithdrawn", version = 1)]
pub struct MoneyWithdrawn {
    /// Cents.
    pub amount: u64,
}

/// The account was closed; it accepts nothing more.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "AccountClosed", version = 1)]
pub struct AccountClosed {}

/// Open an account for `owner`.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct OpenAccount {
    /// The owner's name.
    pub owner: String,
}

/// Put `amount` cents in.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Deposit {
    /// Cents, 1 to [`MAX_AMOUNT`].
    pub amount: u64,
}

/// Take `amount` cents out.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct Withdraw {
    /// Cents, 1 to [`MAX_AMOUNT`], at most the balance.
    pub amount: u64,
}

/// Close the account (it must be empty).
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct CloseAccount;

/// The account's state, folded from its events.
#[derive(Aggregate, Default, Clone, Debug, PartialEq)]
#[aggregate(name = "account", id = AccountId, error = AccountError)]
pub struct Account {
    status: Status,
    owner: String,
    balance: u64,
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    #[default]
    New,
    Open,
    Closed,
}

impl Account {
    /// The balance in cents.
    #[must_use]
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// The owner's name (empty before the account is opened).
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether the account is open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    fn ensure_open(&self) -> Result<(), AccountError> {
        match self.status {
            Status::Open => Ok(()),
            Status::New => Err(AccountError::NotOpen),
            Status::Closed => Err(AccountError::Closed),
        }
    }
}

fn valid_amount(amount: u64) -> Result<u64, AccountError> {
    match amount {
        0 => Err(AccountError::ZeroAmount),
        a if a > MAX_AMOUNT => Err(AccountError::AmountTooLarge {
            amount: a,
            max: MAX_AMOUNT,
        }),
        a => Ok(a),
    }
}

#[aggregate_impl]
impl Account {
    #[command]
    fn open(&self, cmd: OpenAccount) -> Result<AccountOpened, AccountError> {
        match self.status {
            Status::New => {}
            Status::Open => return Err(AccountError::AlreadyOpen),
            Status::Closed => return Err(AccountError::Closed),
        }
        let owner = cmd.owner.trim();
        if owner.is_empty() {
            return Err(AccountError::EmptyOwner);
        }
        Ok(AccountOpened {
            owner: owner.to_owned(),
            holder: holder_of(owner),
        })
    }

    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<MoneyDeposited, AccountError> {
        self.ensure_open()?;
        let amount = valid_amount(cmd.amount)?;
        self.balance
            .checked_add(amount)
            .ok_or(AccountError::BalanceOverflow)?;
        Ok(MoneyDeposited { amount })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<MoneyWithdrawn, AccountError> {
        self.ensure_open()?;
        let amount = valid_amount(cmd.amount)?;
        if amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(MoneyWithdrawn { amount })
    }

    #[command]
    fn close(&self, _: CloseAccount) -> Result<AccountClosed, AccountError> {
        self.ensure_open()?;
        if self.balance != 0 {
            return Err(AccountError::NonZeroBalance {
                balance: self.balance,
            });
        }
        Ok(AccountClosed {})
    }

    #[apply]
    fn opened(&mut self, event: &AccountOpened) {
        self.status = Status::Open;
        self.owner.clone_from(&event.owner);
    }

    #[apply]
    fn deposited(&mut self, event: &MoneyDeposited) {
        // Decided against this state: the sum fits (checked in `deposit`).
        self.balance = self.balance.saturating_add(event.amount);
    }

    #[apply]
    fn withdrawn(&mut self, event: &MoneyWithdrawn) {
        self.balance = self.balance.saturating_sub(event.amount);
    }

    #[apply]
    fn closed(&mut self, _: &AccountClosed) {
        self.status = Status::Closed;
    }
}

#[cfg(test)]
mod tests {
    use es_core::testing::Fixture;

    use super::*;

    fn opened() -> AccountEvent {
        AccountOpened {
            owner: "ada".into(),
            holder: holder_of("ada"),
        }
        .into()
    }

    #[test]
    fn a_version_1_opening_reads_as_today_with_no_holder() {
        Fixture::<Account>::given_stored([(
            "AccountOpened",
            1,
            serde_json::json!({ "owner": "ada" }),
        )])
        .when(Deposit { amount: 10 })
        .expect_events([MoneyDeposited { amount: 10 }.into()])
        .expect_state(|a| a.owner() == "ada" && a.balance() == 10);
        assert_eq!(holder_of("ada"), holder_of("ada"));
        assert_ne!(holder_of("ada"), holder_of("Ada"));
    }

    #[test]
    fn the_default_id_is_deterministic_and_new_ids_are_fresh() {
        assert_eq!(AccountId::default(), AccountId::default());
        assert_eq!(AccountId::default().to_string(), Uuid::nil().to_string());
        assert_ne!(AccountId::new(), AccountId::new());
    }

    #[test]
    fn opening_trims_the_owner_and_rejects_empty_names() {
        Fixture::<Account>::given_nothing()
            .when(OpenAccount {
                owner: "  ada ".into(),
            })
            .expect_events([opened()])
            .expect_state(|s| s.is_open() && s.owner() == "ada");
        Fixture::<Account>::given_nothing()
            .when(OpenAccount { owner: "  ".into() })
            .expect_error(AccountError::EmptyOwner);
        Fixture::<Account>::given([opened()])
            .when(OpenAccount {
                owner: "bob".into(),
            })
            .expect_error(AccountError::AlreadyOpen);
    }

    #[test]
    fn deposits_need_an_open_account_and_a_sane_amount() {
        Fixture::<Account>::given_nothing()
            .when(Deposit { amount: 10 })
            .expect_error(AccountError::NotOpen);
        Fixture::<Account>::given([opened()])
            .when(Deposit { amount: 0 })
            .expect_error(AccountError::ZeroAmount);
        Fixture::<Account>::given([opened()])
            .when(Deposit {
                amount: MAX_AMOUNT + 1,
            })
            .expect_error(AccountError::AmountTooLarge {
                amount: MAX_AMOUNT + 1,
                max: MAX_AMOUNT,
            });
        Fixture::<Account>::given([opened()])
            .when(Deposit { amount: 10 })
            .expect_events([MoneyDeposited { amount: 10 }.into()])
            .expect_state(|s| s.balance() == 10);
    }

    #[test]
    fn deposits_never_overflow_the_balance() {
        Fixture::<Account>::given([
            opened(),
            MoneyDeposited {
                amount: u64::MAX - 5,
            }
            .into(),
        ])
        .when(Deposit { amount: 6 })
        .expect_error(AccountError::BalanceOverflow);
    }

    #[test]
    fn withdrawals_cannot_exceed_the_balance() {
        Fixture::<Account>::given([opened(), MoneyDeposited { amount: 50 }.into()])
            .when(Withdraw { amount: 51 })
            .expect_error(AccountError::InsufficientFunds {
                balance: 50,
                requested: 51,
            });
        Fixture::<Account>::given([opened(), MoneyDeposited { amount: 50 }.into()])
            .when(Withdraw { amount: 50 })
            .expect_events([MoneyWithdrawn { amount: 50 }.into()])
            .expect_state(|s| s.balance() == 0);
    }

    #[test]
    fn a_closed_account_rejects_everything() {
        let closed = [opened(), AccountClosed {}.into()];
        Fixture::<Account>::given(closed.clone())
            .when(Deposit { amount: 1 })
            .expect_error(AccountError::Closed);
        Fixture::<Account>::given(closed.clone())
            .when(Withdraw { amount: 1 })
            .expect_error(AccountError::Closed);
        Fixture::<Account>::given(closed.clone())
            .when(CloseAccount)
            .expect_error(AccountError::Closed);
        Fixture::<Account>::given(closed)
            .when(OpenAccount {
                owner: "ada".into(),
            })
            .expect_error(AccountError::Closed);
    }

    #[test]
    fn closing_needs_a_zero_balance() {
        Fixture::<Account>::given([opened(), MoneyDeposited { amount: 5 }.into()])
            .when(CloseAccount)
            .expect_error(AccountError::NonZeroBalance { balance: 5 });
        Fixture::<Account>::given([opened()])
            .when(CloseAccount)
            .expect_events([AccountClosed {}.into()])
            .expect_state(|s| !s.is_open());
    }

    #[test]
    fn commands_arrive_as_tagged_json() {
        let cmd: AccountCommand =
            serde_json::from_str(r#"{"type": "Deposit", "amount": 10}"#).expect("valid JSON");
        assert!(matches!(
            cmd,
            AccountCommand::Deposit(Deposit { amount: 10 })
        ));
        let cmd: AccountCommand =
            serde_json::from_str(r#"{"type": "CloseAccount"}"#).expect("unit command");
        assert!(matches!(cmd, AccountCommand::CloseAccount(CloseAccount)));
        assert_eq!(
            serde_json::to_value(AccountCommand::from(Withdraw { amount: 3 })).expect("serializes"),
            serde_json::json!({"type": "Withdraw", "amount": 3})
        );
        assert!(serde_json::from_str::<AccountCommand>(r#"{"type": "Rob", "amount": 1}"#).is_err());
        assert!(
            serde_json::from_str::<AccountCommand>(r#"{"type": "Deposit", "amount": -1}"#).is_err()
        );
    }
}
