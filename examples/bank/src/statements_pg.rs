//! Account statements in PostgreSQL tables: the same read model as
//! [`Statements`](crate::statements::Statements), written by its handlers in the runner's
//! transaction, which also stores the checkpoint, so after a crash anywhere no line is
//! doubled or lost. Each version lives in a schema of its own (`bank__statements_pg_v1`);
//! readers query the serving version through views (`bank__statements_pg.accounts`,
//! `bank__statements_pg.lines`). Two versions exist so the demo can rebuild one beside the
//! other.

use es_core::prelude::*;
use es_postgres::{PgConnection, PgPool};
use sqlx::AssertSqlSafe;

use crate::domain::account::{AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn};

/// The read model's name: its views live in schema `{store schema}__statements_pg`.
pub const NAME: &str = "statements_pg";

/// Version 1.
#[derive(Projection, Default)]
#[projection(
    name = "statements_pg",
    version = 1,
    ddl = "CREATE TABLE accounts (account text PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL, closed boolean NOT NULL DEFAULT false);
           CREATE TABLE lines (account text NOT NULL, version bigint NOT NULL, what text NOT NULL, amount bigint NOT NULL, PRIMARY KEY (account, version))"
)]
pub struct PgStatements;

/// Version 2: the same tables, rebuilt from the log beside version 1.
#[derive(Projection, Default)]
#[projection(
    name = "statements_pg",
    version = 2,
    ddl = "CREATE TABLE accounts (account text PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL, closed boolean NOT NULL DEFAULT false);
           CREATE TABLE lines (account text NOT NULL, version bigint NOT NULL, what text NOT NULL, amount bigint NOT NULL, PRIMARY KEY (account, version))"
)]
pub struct PgStatementsV2;

/// An account's balance and number of lines, as the serving version's views show them.
///
/// # Errors
///
/// When the query fails.
pub async fn balance(
    pool: &PgPool,
    schema: &str,
    account: &str,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let views = format!("\"{schema}__{NAME}\"");
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT a.balance, (SELECT count(*) FROM {views}.lines l WHERE l.account = a.account) \
         FROM {views}.accounts a WHERE a.account = $1"
    )))
    .bind(account)
    .fetch_optional(pool)
    .await
}

/// The version serving readers now.
///
/// # Errors
///
/// When the query fails.
pub async fn serving(pool: &PgPool, schema: &str) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".projection_versions WHERE name = $1 AND active"
    )))
    .bind(NAME)
    .fetch_optional(pool)
    .await
}

// Unqualified names: the runner puts the version's schema first on the search path.
async fn line(
    tx: &mut PgConnection,
    stream: &StreamId,
    version: u64,
    what: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    let version = i64::try_from(version).unwrap_or(i64::MAX);
    sqlx::query("INSERT INTO lines (account, version, what, amount) VALUES ($1, $2, $3, $4)")
        .bind(stream.id())
        .bind(version)
        .bind(what)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE accounts SET balance = balance + $2 WHERE account = $1")
        .bind(stream.id())
        .bind(amount)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn opened(tx: &mut PgConnection, e: &Envelope<AccountOpened>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO accounts (account, owner, balance) VALUES ($1, $2, 0)")
        .bind(e.stream.id())
        .bind(&e.event.owner)
        .execute(&mut *tx)
        .await?;
    line(tx, &e.stream, e.version, "opened", 0).await
}

async fn closed(tx: &mut PgConnection, e: &Envelope<AccountClosed>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET closed = true WHERE account = $1")
        .bind(e.stream.id())
        .execute(&mut *tx)
        .await?;
    line(tx, &e.stream, e.version, "closed", 0).await
}

fn cents(amount: u64) -> i64 {
    i64::try_from(amount).unwrap_or(i64::MAX)
}

#[projection_impl]
impl PgStatements {
    #[on]
    async fn opened(
        &mut self,
        e: &Envelope<AccountOpened>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        opened(tx, e).await
    }

    #[on]
    async fn deposited(
        &mut self,
        e: &Envelope<MoneyDeposited>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        line(tx, &e.stream, e.version, "deposit", cents(e.event.amount)).await
    }

    #[on]
    async fn withdrawn(
        &mut self,
        e: &Envelope<MoneyWithdrawn>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        line(
            tx,
            &e.stream,
            e.version,
            "withdrawal",
            -cents(e.event.amount),
        )
        .await
    }

    #[on]
    async fn closed(
        &mut self,
        e: &Envelope<AccountClosed>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        closed(tx, e).await
    }
}

#[projection_impl]
impl PgStatementsV2 {
    #[on]
    async fn opened(
        &mut self,
        e: &Envelope<AccountOpened>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        opened(tx, e).await
    }

    #[on]
    async fn deposited(
        &mut self,
        e: &Envelope<MoneyDeposited>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        line(tx, &e.stream, e.version, "deposit", cents(e.event.amount)).await
    }

    #[on]
    async fn withdrawn(
        &mut self,
        e: &Envelope<MoneyWithdrawn>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        line(
            tx,
            &e.stream,
            e.version,
            "withdrawal",
            -cents(e.event.amount),
        )
        .await
    }

    #[on]
    async fn closed(
        &mut self,
        e: &Envelope<AccountClosed>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        closed(tx, e).await
    }
}
