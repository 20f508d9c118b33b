//! The transfer part of the demo: statements folded live, and the transfer saga moving money
//! between accounts (a success, a refused credit refunded, a refused debit), then restarted
//! from an older checkpoint to show that a redelivery moves nothing twice. Generic over the
//! store, so it runs on both.

use std::io::Write;
use std::time::Duration;

use es_core::prelude::*;
use es_core::projection::Checkpoints;

use crate::domain::account::{Account, AccountId, CloseAccount, Deposit, OpenAccount, Withdraw};
use crate::domain::transfer::{RequestTransfer, Stage, Transfer, TransferId};
use crate::saga::TransferSaga;
use crate::scenario::BoxError;
use crate::statements::Statements;

/// How long the demo waits for the saga and the statements.
const WAIT: Duration = Duration::from_secs(30);

/// What the transfer demo saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// Transfers completed.
    pub completed: usize,
    /// Transfers whose credit was refused and whose source was refunded.
    pub refunded: usize,
    /// Transfers whose debit was refused.
    pub debit_refused: usize,
    /// The three accounts (Alice, Bob, Carol).
    pub accounts: [AccountId; 3],
    /// Their balances at the end, in cents.
    pub balances: [i64; 3],
    /// The sum of the accounts' balances before and after the transfers (money conserved).
    pub totals: (i64, i64),
    /// Events in the three accounts after the saga was restarted from an older checkpoint,
    /// and before: equal when the redelivery moved nothing.
    pub redelivery: (u64, u64),
}

async fn stage<S: EventStore>(
    transfers: &Repository<Transfer, S>,
    id: &TransferId,
) -> Result<Stage, BoxError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stage = transfers.load(id).await?.state.stage();
        if matches!(stage, Stage::Completed | Stage::Failed) {
            return Ok(stage);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("transfer {id} is still {stage:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the transfer demo on `store`, printing to `out`.
///
/// # Errors
///
/// Any store failure, or an outcome the demo does not expect (it checks that money is
/// conserved and that a redelivery moves nothing).
#[allow(clippy::too_many_lines)] // a script, read top to bottom
pub async fn run<S: Checkpoints>(
    store: S,
    out: &mut impl Write,
) -> Result<TransferReport, BoxError> {
    let accounts = Repository::<Account, _>::new(store.clone());
    let transfers = Repository::<Transfer, _>::new(store.clone());
    let statements = Projector::new(store.clone(), Statements::default()).spawn();
    let saga = Projector::new(store.clone(), TransferSaga::new(&store)).spawn();
    saga.started().await;

    let (alice, bob, carol) = (AccountId::new(), AccountId::new(), AccountId::new());
    for (id, owner) in [(&alice, "Alice"), (&bob, "Bob"), (&carol, "Carol")] {
        accounts
            .execute(
                id,
                OpenAccount {
                    owner: owner.into(),
                },
            )
            .await?;
    }
    accounts
        .execute(&alice, Deposit { amount: cents(100) })
        .await?;
    accounts
        .execute(&carol, Deposit { amount: cents(5) })
        .await?;
    accounts
        .execute(&carol, Withdraw { amount: cents(5) })
        .await?;
    accounts.execute(&carol, CloseAccount).await?;
    let ids = [alice, bob, carol];
    let balance_of =
        |s: &Statements, id: &AccountId| s.accounts.get(&id.to_string()).map_or(0, |a| a.balance);
    let before = last_position(&store, &ids.map(|id| accounts.stream_id(&id))).await?;
    statements.wait_for(before, WAIT).await?;
    let total_before: i64 = statements.read(|s| ids.iter().map(|id| balance_of(s, id)).sum());
    let saga_from = saga.status().position;

    writeln!(
        out,
        "\n8. Transfers: a saga moves money, each step an event, every refusal handled"
    )?;
    let requests = [
        ("Alice -> Bob 30.00", alice, bob, cents(30)),
        (
            "Alice -> Carol 20.00 (Carol's account is closed)",
            alice,
            carol,
            cents(20),
        ),
        (
            "Bob -> Alice 1000.00 (Bob has 30.00 at most)",
            bob,
            alice,
            cents(1000),
        ),
    ];
    let mut report = TransferReport::default();
    let mut transfer_streams = Vec::new();
    for (what, from, to, amount) in requests {
        let id = TransferId::new();
        transfer_streams.push(transfers.stream_id(&id));
        transfers
            .execute(&id, RequestTransfer { from, to, amount })
            .await?;
        let done = stage(&transfers, &id).await?;
        let transfer = transfers.load(&id).await?;
        let history: Vec<String> = {
            use futures::TryStreamExt;
            store
                .read_stream(&transfers.stream_id(&id), 1)
                .map_ok(|r| r.event_type)
                .try_collect()
                .await?
        };
        match (done, transfer.state.reason()) {
            (Stage::Completed, _) => report.completed += 1,
            (_, Some(reason)) if history.iter().any(|t| t == "TransferRefunded") => {
                report.refunded += 1;
                let _ = reason;
            }
            _ => report.debit_refused += 1,
        }
        writeln!(out, "  {what}: {}", history.join(" -> "))?;
        if let Some(reason) = transfer.state.reason() {
            writeln!(out, "    because: {reason}")?;
        }
    }

    // What the statements must have folded: the accounts' last events; what the saga must
    // have handled: the transfers' last events.
    let head = last_position(&store, &ids.map(|id| accounts.stream_id(&id))).await?;
    let saga_head = last_position(&store, &transfer_streams).await?;
    statements.wait_for(head, WAIT).await?;
    let (balances, total_after) = statements.read(|s| {
        let b = [
            balance_of(s, &alice),
            balance_of(s, &bob),
            balance_of(s, &carol),
        ];
        (b, b.iter().sum())
    });
    report.balances = balances;
    report.accounts = ids;
    report.totals = (total_before, total_after);
    writeln!(
        out,
        "  statements (read right after, with wait_for): Alice {}, Bob {}, Carol {}; total {} before and {} after",
        money(balances[0]),
        money(balances[1]),
        money(balances[2]),
        money(total_before),
        money(total_after)
    )?;
    let lines = statements.read(|s| {
        s.accounts
            .get(&alice.to_string())
            .map(|a| a.lines.clone())
            .unwrap_or_default()
    });
    for line in lines {
        writeln!(
            out,
            "    Alice v{:<2} {:<10} {:>9}  balance {}",
            line.version,
            line.what,
            money(line.amount),
            money(line.balance)
        )?;
    }

    // A crash between steps: the saga restarts from a checkpoint older than every transfer,
    // so it is handed every step again. Its commands are idempotent: nothing moves twice.
    let events = |accounts: &Repository<Account, S>| {
        let accounts = accounts.clone();
        async move {
            let mut n = 0;
            for id in &ids {
                n += accounts.load(id).await?.version;
            }
            Ok::<u64, BoxError>(n)
        }
    };
    let events_before = events(&accounts).await?;
    saga.stop().await;
    if let Some(from) = saga_from {
        store.save_checkpoint("transfer_saga", from).await?;
    }
    let again = Projector::new(store.clone(), TransferSaga::new(&store)).spawn();
    again.wait_for(saga_head, WAIT).await?;
    again.stop().await;
    let events_after = events(&accounts).await?;
    report.redelivery = (events_after, events_before);
    writeln!(
        out,
        "  the saga restarted from an older checkpoint and was handed every step again: account events {events_before} before, {events_after} after (no double debit)"
    )?;
    statements.stop().await;
    if total_before != total_after || events_before != events_after {
        return Err(format!("money or events changed: {report:?}").into());
    }
    Ok(report)
}

const fn cents(units: u64) -> u64 {
    units * 100
}

/// The latest position among the last events of `streams` (as stored, whatever horizon a
/// reader of the global log waits behind).
///
/// # Errors
///
/// A store failure, or no event in any of them.
pub async fn last_position<S: EventStore>(
    store: &S,
    streams: &[StreamId],
) -> Result<Position, BoxError> {
    use futures::TryStreamExt;
    let mut last = None;
    for stream in streams {
        let version = store.stream_version(stream).await?;
        let records: Vec<_> = store.read_stream(stream, version).try_collect().await?;
        last = last.max(records.last().map(|r| r.position));
    }
    last.ok_or_else(|| "no event in these streams".into())
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}
