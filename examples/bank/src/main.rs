//! The banking platform demo: a scripted scenario on the in-memory store, or on PostgreSQL
//! when `DATABASE_URL` is set (schema `bank`).
//!
//! ```text
//! cargo run -p bank
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p bank
//! ```
//!
//! It prints each command, the events it appended with their versions and positions, the
//! rejections with their reasons, two writers racing on one account and how the conflict
//! resolves, sixteen registrations of one e-mail address, then money transfers driven by a
//! saga with statements read right after, and exits 0.

use std::process::ExitCode;

use std::time::Duration;

use bank::scenario::{self, BoxError, Summary};
use bank::statements_pg::PgStatements;
use bank::transfers;
use es_core::{InMemoryStore, Projector};
use es_postgres::PostgresStore;

/// The PostgreSQL schema the demo writes to.
const SCHEMA: &str = "bank";

async fn run() -> Result<Summary, BoxError> {
    let mut out = std::io::stdout().lock();
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let pool = sqlx_pool(&url).await?;
            let store = PostgresStore::new(pool).with_schema(SCHEMA)?;
            store.migrate().await?;
            println!("Bank demo on PostgreSQL (schema `{SCHEMA}`)\n");
            // Statements in tables too, written with their checkpoint in one transaction.
            let tables = PgStatements::new(SCHEMA);
            tables.create_tables(store.pool()).await?;
            let pg_statements = Projector::new(store.clone(), PgStatements::new(SCHEMA)).spawn();
            let summary = scenario::run(store.clone(), &mut out).await?;
            let report = transfers::run(store.clone(), &mut out).await?;
            let streams: Vec<_> = report
                .accounts
                .iter()
                .map(|id| es_core::StreamId::new("account", id.to_string()))
                .collect();
            let head = transfers::last_position(&store, &streams).await?;
            pg_statements
                .wait_for(head, Duration::from_secs(30))
                .await?;
            pg_statements.stop().await;
            for (account, expected) in report.accounts.iter().zip(report.balances) {
                let (balance, lines) = tables
                    .balance(store.pool(), &account.to_string())
                    .await?
                    .ok_or("an account missing from the tables")?;
                if balance != expected {
                    return Err(format!(
                        "the tables say {balance} for {account}, the fold {expected}"
                    )
                    .into());
                }
                println!(
                    "  in PostgreSQL: {SCHEMA}.statement_accounts has {account} at {balance} cents ({lines} lines)"
                );
            }
            Ok(summary)
        }
        _ => {
            println!("Bank demo on the in-memory store (set DATABASE_URL for PostgreSQL)\n");
            let store = InMemoryStore::new();
            let summary = scenario::run(store.clone(), &mut out).await?;
            transfers::run(store, &mut out).await?;
            Ok(summary)
        }
    }
}

async fn sqlx_pool(url: &str) -> Result<es_postgres::PgPool, BoxError> {
    Ok(es_postgres::PgPool::connect(url).await?)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(summary) => {
            println!(
                "\nDone: {} commands accepted, {} rejected, {} conflict(s) resolved; Ada's stream has {} events.",
                summary.accepted, summary.rejected, summary.conflicts, summary.stream_events
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nThe scenario failed: {e}");
            ExitCode::FAILURE
        }
    }
}
