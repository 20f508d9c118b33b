//! The PostgreSQL part of the demo: statements kept in tables, read through the views of the
//! serving version, then the other version rebuilt beside it with a progress bar, taking over
//! once caught up, and the old one dropped. Each run swaps the two versions.

use std::io::Write;
use std::time::Duration;

use es_core::{Projection, ProjectionState, Projector, StreamId};
use es_postgres::{PgConnection, PostgresStore};

use crate::scenario::BoxError;
use crate::statements_pg::{self, PgStatements, PgStatementsV2};
use crate::transfers::{self, TransferReport};

const WAIT: Duration = Duration::from_secs(120);

/// Shows the statements in tables and rebuilds them into the other version.
///
/// # Errors
///
/// A store failure, or tables that disagree with the fold.
pub async fn run(
    store: &PostgresStore,
    out: &mut impl Write,
    report: &TransferReport,
) -> Result<(), BoxError> {
    match statements_pg::serving(store.pool(), store.schema()).await? {
        Some(2) => swap(store, out, report, PgStatementsV2, PgStatements).await,
        _ => swap(store, out, report, PgStatements, PgStatementsV2).await,
    }
}

async fn swap<Live, Next>(
    store: &PostgresStore,
    out: &mut impl Write,
    report: &TransferReport,
    live: Live,
    next: Next,
) -> Result<(), BoxError>
where
    Live: Projection<Context = PgConnection>,
    Next: Projection<Context = PgConnection>,
{
    let streams: Vec<StreamId> = report
        .accounts
        .iter()
        .map(|id| StreamId::new("account", id.to_string()))
        .collect();
    let head = transfers::last_position(store, &streams).await?;
    let schema = store.schema();
    writeln!(
        out,
        "\n9. Statements in PostgreSQL tables, read through the serving version's views"
    )?;
    let serving = Projector::new(store.clone(), live).spawn();
    serving.wait_for(head, WAIT).await?;
    check(store, out, report, Live::VERSION).await?;

    writeln!(
        out,
        "  version {} is rebuilt from the log beside version {} (which keeps answering):",
        Next::VERSION,
        Live::VERSION
    )?;
    let rebuilding = Projector::new(store.clone(), next).spawn();
    let mut shown = 0;
    loop {
        let status = rebuilding.status();
        match status.state {
            ProjectionState::Rebuilding { done, total } if total > 0 => {
                let filled = usize::try_from(done.saturating_mul(30) / total)
                    .unwrap_or(30)
                    .min(30);
                if filled > shown || (shown == 0 && done > 0) {
                    write!(
                        out,
                        "\r  [{}{}] {done}/{total} events",
                        "#".repeat(filled),
                        ".".repeat(30 - filled)
                    )?;
                    out.flush()?;
                    shown = filled;
                }
            }
            ProjectionState::Failed { error, .. } => {
                return Err(format!("the rebuild failed: {error}").into());
            }
            ProjectionState::Running if status.position >= Some(head) => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rebuilding.wait_for(head, WAIT).await?;
    writeln!(
        out,
        "\r  [{}] caught up: version {} serves now",
        "#".repeat(30),
        Next::VERSION
    )?;
    check(store, out, report, Next::VERSION).await?;
    serving.stop().await;
    rebuilding.stop().await;
    store
        .drop_projection_version(statements_pg::NAME, Live::VERSION)
        .await?;
    writeln!(
        out,
        "  version {} dropped (its schema {schema}__{}_v{})",
        Live::VERSION,
        statements_pg::NAME,
        Live::VERSION
    )?;
    Ok(())
}

/// The serving version's views agree with the fold of the transfer demo.
async fn check(
    store: &PostgresStore,
    out: &mut impl Write,
    report: &TransferReport,
    version: u32,
) -> Result<(), BoxError> {
    let mut shown = Vec::new();
    for (account, expected) in report.accounts.iter().zip(report.balances) {
        let (balance, lines) =
            statements_pg::balance(store.pool(), store.schema(), &account.to_string())
                .await?
                .ok_or("an account missing from the tables")?;
        if balance != expected {
            return Err(format!(
                "version {version} says {balance} for {account}, the fold {expected}"
            )
            .into());
        }
        shown.push(format!("{balance} ({lines} lines)"));
    }
    writeln!(
        out,
        "  version {version}: Alice, Bob, Carol at {} cents",
        shown.join(", ")
    )?;
    Ok(())
}
