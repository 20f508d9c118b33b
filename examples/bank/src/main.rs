//! The banking platform demo: a scripted scenario on the in-memory store, or on PostgreSQL
//! when `DATABASE_URL` is set (schema `bank`).
//!
//! ```text
//! cargo run -p bank
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p bank
//! ```
//!
//! `cargo run -p bank -- contracts <dir>` writes the event contracts (one JSON Schema per
//! stored event name and version) into `<dir>` instead.
//!
//! It prints each command, the events it appended with their versions and positions, the
//! rejections with their reasons, two writers racing on one account and how the conflict
//! resolves, sixteen registrations of one e-mail address, then money transfers driven by a
//! saga with statements read right after, and exits 0.

use std::process::ExitCode;

use bank::scenario::{self, BoxError, Summary};
use bank::{rebuild_demo, transfers};
use es_core::InMemoryStore;
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
            let summary = scenario::run(store.clone(), &mut out).await?;
            let report = transfers::run(store.clone(), &mut out).await?;
            rebuild_demo::run(&store, &mut out, &report).await?;
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

/// `contracts <dir>`: writes the event contracts and lists the files.
fn write_contracts(dir: &str) -> ExitCode {
    match bank::contracts().write(std::path::Path::new(dir)) {
        Ok(files) => {
            for file in &files {
                println!("{}", file.display());
            }
            println!("{} event contracts written to {dir}", files.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write the contracts to {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [command, dir] if command == "contracts" => return write_contracts(dir),
        _ => {
            eprintln!(
                "usage: bank            (the demo)\n       bank contracts <dir>  (write the event contracts)"
            );
            return ExitCode::from(2);
        }
    }
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
