//! The command enum as JSON: internally tagged by each command's name, the type name or
//! `#[command(name = "...")]` (a contract, like an event's stored name); unit and braced
//! commands; clear errors for an unknown, missing or malformed tag.

// The aggregate is built by the framework (`Default`) and its methods called by the
// generated impl only: rustc's dead-code pass sees neither in a test crate.
#![allow(dead_code)]

use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Deposited {
    amount: u64,
}

/// Renamed in Rust, its JSON tag kept.
#[derive(Command, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[command(name = "OpenAccount")]
struct OpenAccountV2;

#[derive(Command, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Deposit {
    amount: u64,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[command(name = "account.close")]
struct Close {}

#[derive(Debug, PartialEq)]
struct Refused;

#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(error = Refused)]
struct Account {
    balance: u64,
}

#[aggregate_impl]
impl Account {
    #[command]
    fn open(&self, _: OpenAccountV2) -> Result<Opened, Refused> {
        Ok(Opened {})
    }

    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, Refused> {
        Ok(Deposited { amount: cmd.amount })
    }

    #[command]
    fn close(&self, _: Close) -> Result<(), Refused> {
        Ok(())
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {}

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[test]
fn commands_are_tagged_by_their_name() {
    assert_eq!(<OpenAccountV2 as Command>::NAME, "OpenAccount");
    assert_eq!(<Deposit as Command>::NAME, "Deposit");
    for (command, expected) in [
        (
            AccountCommand::from(OpenAccountV2),
            json!({ "type": "OpenAccount" }),
        ),
        (
            AccountCommand::from(Deposit { amount: 7 }),
            json!({ "type": "Deposit", "amount": 7 }),
        ),
        (
            AccountCommand::from(Close {}),
            json!({ "type": "account.close" }),
        ),
    ] {
        let written = serde_json::to_value(&command).expect("serializes");
        assert_eq!(written, expected);
        let read: AccountCommand = serde_json::from_value(written).expect("reads back");
        assert_eq!(format!("{read:?}"), format!("{command:?}"));
        assert_eq!(read.name(), command.name());
    }
    let read: AccountCommand =
        serde_json::from_str(r#"{"amount": 3, "type": "Deposit"}"#).expect("tag anywhere");
    assert!(matches!(
        read,
        AccountCommand::Deposit(Deposit { amount: 3 })
    ));
}

#[test]
fn a_bad_tag_is_a_clear_error() {
    let error = |text: &str| {
        serde_json::from_str::<AccountCommand>(text)
            .expect_err(text)
            .to_string()
    };
    let unknown = error(r#"{"type": "OpenAccountV2"}"#);
    assert!(
        unknown.contains("unknown variant `OpenAccountV2`")
            && unknown.contains("`OpenAccount`")
            && unknown.contains("`account.close`"),
        "{unknown}"
    );
    assert!(error(r#"{"amount": 3}"#).contains("missing field `type`"));
    assert!(error(r#"{"type": 3}"#).contains("a string"));
    assert!(error(r#"[1, 2]"#).contains("an object with a `type`"));
    let fields = error(r#"{"type": "Deposit", "amount": "three"}"#);
    assert!(fields.contains("invalid type"), "{fields}");
}
