//! Rebuilding a read model kept in tables: a new version is built from the start in a schema
//! of its own while the serving version keeps answering through its views; once caught up it
//! takes over in one transaction, equal to the live one; the old version is dropped on
//! request. `ES_REBUILD_EVENTS` sets the log's size (default 100,000).

use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::{ExpectedVersion, NewEvent, ProjectionState};
use es_postgres::{PgConnection, PostgresStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::support;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "MoneyDeposited")]
struct Deposited {
    amount: i64,
}

const DDL: &str =
    "CREATE TABLE totals (account text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)";

async fn upsert(tx: &mut PgConnection, e: &Envelope<Deposited>) -> Result<(), sqlx::Error> {
    // Unqualified: the runner puts this version's schema first on the search path.
    sqlx::query(
        "INSERT INTO totals VALUES ($1, $2, 1) ON CONFLICT (account) \
         DO UPDATE SET total = totals.total + EXCLUDED.total, events = totals.events + 1",
    )
    .bind(e.stream.id())
    .bind(e.event.amount)
    .execute(tx)
    .await
    .map(drop)
}

#[derive(Projection)]
#[projection(
    name = "totals",
    version = 1,
    ddl = "CREATE TABLE totals (account text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)"
)]
struct TotalsV1;

#[projection_impl]
impl TotalsV1 {
    #[on]
    async fn deposited(
        &mut self,
        e: &Envelope<Deposited>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        upsert(tx, e).await
    }
}

#[derive(Projection)]
#[projection(
    name = "totals",
    version = 2,
    ddl = "CREATE TABLE totals (account text PRIMARY KEY, total bigint NOT NULL, events bigint NOT NULL)"
)]
struct TotalsV2;

#[projection_impl]
impl TotalsV2 {
    #[on]
    async fn deposited(
        &mut self,
        e: &Envelope<Deposited>,
        tx: &mut PgConnection,
    ) -> Result<(), sqlx::Error> {
        upsert(tx, e).await
    }
}

async fn sums(store: &PostgresStore, schema: &str) -> (i64, i64, i64) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(sum(total), 0)::int8, coalesce(sum(events), 0)::int8 FROM \"{schema}\".totals"
    )))
    .fetch_one(store.pool())
    .await
    .expect("sums")
}

fn deposit(amount: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MoneyDeposited".into(),
        schema_version: 1,
        payload: serde_json::json!({ "amount": amount }),
        metadata: Metadata::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_rebuilt_beside_the_serving_one_then_takes_over() {
    assert_eq!(DDL, <TotalsV1 as Projection>::DDL);
    let events: i64 = std::env::var("ES_REBUILD_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let store = support::store_with(8).await;
    let views = format!("{}__totals", store.schema());
    let v1 = Projector::new(store.clone(), TotalsV1).spawn();
    let mut last = None;
    let (mut sum, mut n) = (0i64, 0i64);
    while n < events {
        let batch: Vec<NewEvent> = (0..500.min(events - n))
            .map(|i| deposit((n + i) % 97 + 1))
            .collect();
        sum += batch
            .iter()
            .map(|e| e.payload["amount"].as_i64().unwrap_or(0))
            .sum::<i64>();
        n += i64::try_from(batch.len()).expect("small");
        let stream = StreamId::new("account", format!("{}", n % 100));
        last = store
            .append(&stream, ExpectedVersion::Any, batch)
            .await
            .expect("append")
            .positions
            .last()
            .copied();
    }
    let last = last.expect("appended");
    v1.wait_for(last, Duration::from_secs(600))
        .await
        .expect("v1 live");
    let served = sums(&store, &views).await;
    assert_eq!(
        (served.1, served.2),
        (sum, events),
        "v1 serves the fold of the log"
    );

    // Version 2 rebuilds beside it; readers keep getting version 1, complete, meanwhile.
    let started = Instant::now();
    let v2 = Projector::new(store.clone(), TotalsV2).spawn();
    let mut seen_rebuilding = 0;
    while started.elapsed() < Duration::from_secs(600) {
        match v2.status().state {
            ProjectionState::Rebuilding { done, total } => {
                assert!(total >= done.min(total));
                assert_eq!(
                    sums(&store, &views).await,
                    served,
                    "the old version answers during the rebuild"
                );
                seen_rebuilding += 1;
            }
            ProjectionState::Running if v2.status().position >= Some(last) => break,
            ProjectionState::Failed { error, .. } => panic!("the rebuild failed: {error}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebuild_seconds = started.elapsed().as_secs_f64();
    assert!(
        seen_rebuilding > 0,
        "the status said Rebuilding while it caught up"
    );
    v2.wait_for(last, Duration::from_secs(60))
        .await
        .expect("v2 caught up");
    let v1_rows = sums(&store, &format!("{}__totals_v1", store.schema())).await;
    let v2_rows = sums(&store, &format!("{}__totals_v2", store.schema())).await;
    assert_eq!(v2_rows, v1_rows, "the rebuild equals the live read model");

    // The views now show version 2: with version 1 stopped, a new event reaches readers.
    v1.stop().await;
    let more = store
        .append(
            &StreamId::new("account", "extra"),
            ExpectedVersion::Any,
            vec![deposit(1000)],
        )
        .await
        .expect("append");
    v2.wait_for(more.positions[0], Duration::from_secs(60))
        .await
        .expect("v2 live");
    assert_eq!(
        sums(&store, &views).await.1,
        sum + 1000,
        "readers see version 2"
    );
    v2.stop().await;

    store
        .drop_projection_version("totals", 2)
        .await
        .expect_err("the serving version stays");
    store
        .drop_projection_version("totals", 1)
        .await
        .expect("drop the old version");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(format!("{}__totals_v1", store.schema()))
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(left, 0, "the old version's schema is gone");
    support::report(&format!(
        "rebuilt {events} events beside the serving version in {rebuild_seconds:.2} s"
    ));
}
