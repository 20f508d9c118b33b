//! The scripted demo: commands, the events they append (with versions and positions),
//! rejections with their reasons, two writers racing on one account, and concurrent
//! deposits resolved by retry. Generic over the store, so it runs on any backend.

use std::io::Write;
use std::sync::Arc;

use es_core::Error;
use es_core::prelude::*;
use futures::TryStreamExt;

use crate::domain::account::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, CloseAccount, Deposit,
    MAX_AMOUNT, OpenAccount, Withdraw,
};
use crate::domain::customer::{Customer, CustomerId, RegisterCustomer, email_claim};

/// What the scenario did, for callers (and tests) that check it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Commands that appended events.
    pub accepted: usize,
    /// Commands the domain rejected.
    pub rejected: usize,
    /// Appends refused because another writer came first.
    pub conflicts: usize,
    /// Ada's final balance, in cents.
    pub final_balance: u64,
    /// Events in Ada's stream at the end.
    pub stream_events: u64,
}

/// Any failure the scenario does not expect.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whole currency units in cents.
const fn cents(units: u64) -> u64 {
    units * 100
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn describe(event: &AccountEvent) -> String {
    match event {
        AccountEvent::AccountOpened(e) => format!("AccountOpened {{ owner: {:?} }}", e.owner),
        AccountEvent::MoneyDeposited(e) => format!("MoneyDeposited {{ {} }}", money(e.amount)),
        AccountEvent::MoneyWithdrawn(e) => format!("MoneyWithdrawn {{ {} }}", money(e.amount)),
        AccountEvent::AccountClosed(_) => "AccountClosed".to_owned(),
    }
}

struct Script<'o, S, W> {
    accounts: Repository<Account, S>,
    out: &'o mut W,
    summary: Summary,
}

impl<S: EventStore, W: Write> Script<'_, S, W> {
    /// Executes one command and prints what happened; rejections are expected here.
    async fn step(
        &mut self,
        id: &AccountId,
        command: impl Into<AccountCommand>,
    ) -> Result<(), BoxError> {
        let command = command.into();
        writeln!(self.out, "  > {}", serde_json::to_string(&command)?)?;
        match self.accounts.execute(id, command).await {
            Ok(done) => {
                self.summary.accepted += 1;
                for e in &done.events {
                    writeln!(
                        self.out,
                        "    < {} v{} {} (position {})",
                        e.stream,
                        e.version,
                        describe(&e.event),
                        e.position
                    )?;
                }
                Ok(())
            }
            Err(Error::Rejected(reason)) => {
                self.summary.rejected += 1;
                writeln!(self.out, "    x rejected: {reason}")?;
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// Runs the scenario on `store`, printing each step to `out`.
///
/// # Errors
///
/// Any store failure, or an outcome the scenario does not expect (it checks its own
/// invariants: money is conserved, the loser of a race gets the conflict).
pub async fn run<S: EventStore>(store: S, out: &mut impl Write) -> Result<Summary, BoxError> {
    let mut script = Script {
        accounts: Repository::<Account, _>::new(store.clone()),
        out,
        summary: Summary::default(),
    };
    let ada = AccountId::new();

    writeln!(script.out, "1. Ada opens an account and moves money")?;
    script
        .step(
            &ada,
            OpenAccount {
                owner: "Ada Lovelace".into(),
            },
        )
        .await?;
    script.step(&ada, Deposit { amount: cents(100) }).await?;
    script.step(&ada, Withdraw { amount: cents(30) }).await?;

    writeln!(script.out, "\n2. The domain says no (nothing is written)")?;
    script
        .step(
            &ada,
            Withdraw {
                amount: cents(1000),
            },
        )
        .await?;
    script.step(&ada, Deposit { amount: 0 }).await?;
    script
        .step(
            &ada,
            Deposit {
                amount: MAX_AMOUNT + 1,
            },
        )
        .await?;
    script
        .step(
            &ada,
            OpenAccount {
                owner: "Ada again".into(),
            },
        )
        .await?;
    let ghost = AccountId::new();
    script.step(&ghost, Deposit { amount: cents(5) }).await?;
    let raw = r#"{"type": "Deposit", "amount": "lots"}"#;
    match serde_json::from_str::<AccountCommand>(raw) {
        Ok(cmd) => return Err(format!("malformed command was accepted: {cmd:?}").into()),
        Err(e) => writeln!(script.out, "  > {raw}\n    x malformed command: {e}")?,
    }

    writeln!(script.out, "\n3. Two writers race on one account")?;
    // Both load and decide, then meet at the gate before appending: both expect the version
    // they loaded, and the store lets exactly one of them write.
    let racing = Repository::<Account, _>::new(crate::race::Gated::new(store.clone(), 2));
    let seen = script.accounts.load(&ada).await?;
    writeln!(
        script.out,
        "  both writers load {} at version {}, balance {}, and decide before either appends",
        script.accounts.stream_id(&ada),
        seen.version,
        money(seen.state.balance())
    )?;
    let (a, b) = tokio::join!(
        racing.execute(&ada, Withdraw { amount: cents(50) }),
        racing.execute(&ada, Withdraw { amount: cents(40) }),
    );
    let (winner, loser, loser_command) = match (a, b) {
        (Ok(w), Err(l)) => (w, l, Withdraw { amount: cents(40) }),
        (Err(l), Ok(w)) => (w, l, Withdraw { amount: cents(50) }),
        (a, b) => return Err(format!("expected exactly one winner, got {a:?} and {b:?}").into()),
    };
    script.summary.accepted += 1;
    writeln!(
        script.out,
        "  writer 1 appended {} as v{}",
        describe(&winner.events[0].event),
        winner.version
    )?;
    match loser {
        Error::Conflict {
            stream,
            expected,
            actual,
        } => {
            script.summary.conflicts += 1;
            writeln!(
                script.out,
                "  writer 2 got a conflict on {stream}: expected {expected}, found version {actual}"
            )?;
        }
        other => return Err(format!("the loser should get a conflict, got {other:?}").into()),
    }
    writeln!(
        script.out,
        "  writer 2 reloads and decides again against the new balance (the version check just prevented an overdraft):"
    )?;
    script.step(&ada, loser_command).await?;

    writeln!(
        script.out,
        "\n4. Eight tellers deposit 10.00 at once (repository with retry)"
    )?;
    let before = script.accounts.load(&ada).await?.state.balance();
    let tellers = Arc::new(Repository::<Account, _>::new(store.clone()).with_retry(20));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let tellers = Arc::clone(&tellers);
            tokio::spawn(async move { tellers.execute(&ada, Deposit { amount: cents(10) }).await })
        })
        .collect();
    for handle in handles {
        handle.await??;
        script.summary.accepted += 1;
    }
    let after = script.accounts.load(&ada).await?;
    writeln!(
        script.out,
        "  balance {} -> {} at version {} (8 deposits, none lost)",
        money(before),
        money(after.state.balance()),
        after.version
    )?;
    if after.state.balance() != before + 8 * cents(10) {
        return Err("a concurrent deposit was lost".into());
    }

    writeln!(
        script.out,
        "\n5. Closing: only an empty account closes, and then it is frozen"
    )?;
    script.step(&ada, CloseAccount).await?;
    let balance = script.accounts.load(&ada).await?.state.balance();
    script.step(&ada, Withdraw { amount: balance }).await?;
    script.step(&ada, CloseAccount).await?;
    script.step(&ada, Deposit { amount: cents(1) }).await?;

    let stream = script.accounts.stream_id(&ada);
    writeln!(
        script.out,
        "\n6. Ada's stream as stored: category `{}`, id `{}`",
        stream.category(),
        stream.id()
    )?;
    let records: Vec<_> = store.read_stream(&stream, 1).try_collect().await?;
    for r in &records {
        writeln!(
            script.out,
            "  v{:<2} {:<15} {}",
            r.version, r.event_type, r.payload
        )?;
    }
    let last = script.accounts.load(&ada).await?;
    script.summary.final_balance = last.state.balance();
    script.summary.stream_events = last.version;
    let frozen = matches!(
        script.accounts.execute(&ada, Deposit { amount: 1 }).await,
        Err(Error::Rejected(AccountError::Closed))
    );
    if last.state.is_open() || !frozen {
        return Err("a closed account accepted a command".into());
    }

    writeln!(
        script.out,
        "\n7. Sixteen customers register one e-mail address at once (set-based validation)"
    )?;
    // An address of its own per run: on PostgreSQL the demo's schema keeps earlier claims.
    let email = format!(" Grace.{}@Example.com", uuid::Uuid::now_v7().simple());
    let race = register_concurrently(store.clone(), &email, 16).await?;
    writeln!(
        script.out,
        "  {} registered; {} got `already claimed` and wrote nothing (customer streams written: {})",
        race.registered, race.claimed, race.written
    )?;
    if race.registered != 1 || race.written != 1 {
        return Err(format!("one registration must win: {race:?}").into());
    }
    Ok(script.summary)
}

/// What [`register_concurrently`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegistrationRace {
    /// Registrations that succeeded.
    pub registered: usize,
    /// Registrations refused with `Error::Claimed`.
    pub claimed: usize,
    /// Customer streams holding any event afterwards.
    pub written: usize,
}

/// `n` customers register `email` at once, each claiming it
/// ([`Repository::execute_claiming`]).
///
/// # Errors
///
/// An outcome other than success or `Error::Claimed`, or a store failure.
pub async fn register_concurrently<S: EventStore>(
    store: S,
    email: &str,
    n: usize,
) -> Result<RegistrationRace, BoxError> {
    let customers = Repository::<Customer, _>::new(store.clone());
    let claim = email_claim(email)?;
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (customers, claim, start) = (customers.clone(), claim.clone(), Arc::clone(&start));
            let command = RegisterCustomer {
                name: format!("customer {i}"),
                email: email.to_owned(),
            };
            tokio::spawn(async move {
                let id = CustomerId::new();
                start.wait().await;
                (id, customers.execute_claiming(&id, command, [claim]).await)
            })
        })
        .collect();
    let mut race = RegistrationRace::default();
    for task in tasks {
        let (id, outcome) = task.await?;
        match outcome {
            Ok(_) => race.registered += 1,
            Err(Error::Claimed { .. }) => race.claimed += 1,
            Err(other) => return Err(format!("registration failed: {other}").into()),
        }
        if store.stream_version(&customers.stream_id(&id)).await? > 0 {
            race.written += 1;
        }
    }
    Ok(race)
}
