//! Account statements in PostgreSQL tables: the same read model as
//! [`Statements`](crate::statements::Statements), written by its handlers in the runner's
//! transaction, which also stores the checkpoint, so after a crash anywhere no line is
//! doubled or lost. Query it with SQL (`SELECT * FROM bank.statement_lines`).

use es_core::prelude::*;
use es_postgres::{PgConnection, PgPool};
use sqlx::AssertSqlSafe;

use crate::domain::account::{AccountClosed, AccountOpened, MoneyDeposited, MoneyWithdrawn};

/// The read model's tables, in `schema`.
#[derive(Projection)]
#[projection(name = "statements_pg")]
pub struct PgStatements {
    accounts: String,
    lines: String,
}

impl PgStatements {
    /// The read model in `schema` (a validated schema name: the store's).
    #[must_use]
    pub fn new(schema: &str) -> Self {
        Self {
            accounts: format!("\"{schema}\".statement_accounts"),
            lines: format!("\"{schema}\".statement_lines"),
        }
    }

    /// Creates the tables if they are missing (the example's set-up; an application would
    /// keep them in its migrations).
    ///
    /// # Errors
    ///
    /// When PostgreSQL refuses.
    pub async fn create_tables(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        for ddl in [
            format!(
                "CREATE TABLE IF NOT EXISTS {} (account text PRIMARY KEY, owner text NOT NULL, \
                 balance bigint NOT NULL, closed boolean NOT NULL DEFAULT false)",
                self.accounts
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (account text NOT NULL, version bigint NOT NULL, \
                 what text NOT NULL, amount bigint NOT NULL, PRIMARY KEY (account, version))",
                self.lines
            ),
        ] {
            sqlx::query(AssertSqlSafe(ddl)).execute(pool).await?;
        }
        Ok(())
    }

    /// An account's balance and number of lines, as the tables hold them.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub async fn balance(
        &self,
        pool: &PgPool,
        account: &str,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT a.balance, (SELECT count(*) FROM {} l WHERE l.account = a.account) FROM {} a WHERE a.account = $1",
            self.lines, self.accounts
        )))
        .bind(account)
        .fetch_optional(pool)
        .await
    }

    async fn line(
        &self,
        tx: &mut PgConnection,
        stream: &StreamId,
        version: u64,
        what: &str,
        amount: i64,
    ) -> Result<(), sqlx::Error> {
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (account, version, what, amount) VALUES ($1, $2, $3, $4)",
            self.lines
        )))
        .bind(stream.id())
        .bind(version)
        .bind(what)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET balance = balance + $2 WHERE account = $1",
            self.accounts
        )))
        .bind(stream.id())
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
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
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (account, owner, balance) VALUES ($1, $2, 0)",
            self.accounts
        )))
        .bind(e.stream.id())
        .bind(&e.event.owner)
        .execute(&mut *tx)
        .await?;
        self.line(tx, &e.stream, e.version, "opened", 0).await
    }

    #[on]
    async fn deposited(
        &mut self,
        e: &Envelope<MoneyDeposited>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        self.line(tx, &e.stream, e.version, "deposit", cents(e.event.amount))
            .await
    }

    #[on]
    async fn withdrawn(
        &mut self,
        e: &Envelope<MoneyWithdrawn>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        self.line(
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
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {} SET closed = true WHERE account = $1",
            self.accounts
        )))
        .bind(e.stream.id())
        .execute(&mut *tx)
        .await?;
        self.line(tx, &e.stream, e.version, "closed", 0).await
    }
}
