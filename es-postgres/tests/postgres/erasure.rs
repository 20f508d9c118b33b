//! Erasure on PostgreSQL, checked with raw SQL: a personal field is never in the events
//! table in the clear; after `forget` its key row and the snapshots of its streams are gone,
//! and the aggregate still loads (the name as its `Default`).

use es_core::testing::evolution::{Deposit, Ledger, Name};
use es_core::{EventStore, Repository};
use sqlx::Row;
use uuid::Uuid;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_field_is_never_stored_in_the_clear_and_forget_deletes_its_key() {
    let store = support::store().await;
    let schema = store.schema().to_owned();
    let ledgers = Repository::<Ledger, _>::new(store.clone());
    let id = Uuid::now_v7();
    let holder = format!("holder-{}", Uuid::now_v7());
    let name = Name {
        holder: holder.clone(),
        owner: "Ada Lovelace".into(),
    };
    ledgers.execute(&id, name).await.expect("named");
    for cents in 1..=2 {
        ledgers
            .execute(&id, Deposit { cents })
            .await
            .expect("deposit");
    }
    let count = |sql: String| {
        let store = store.clone();
        let holder = holder.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(holder)
                .fetch_one(store.pool())
                .await
                .expect("count")
                .get::<i64, _>(0)
        }
    };
    let plaintext = format!(
        "SELECT count(*) FROM \"{schema}\".events WHERE payload::text LIKE '%Ada Lovelace%' AND $1 <> ''"
    );
    assert_eq!(count(plaintext.clone()).await, 0, "never in the clear");
    let sealed = format!(
        "SELECT count(*) FROM \"{schema}\".events WHERE payload->'owner'->'$es_sealed'->>'subject' = $1"
    );
    assert_eq!(count(sealed.clone()).await, 1, "sealed under the holder");
    let keys = format!("SELECT count(*) FROM \"{schema}\".personal_keys WHERE subject = $1");
    assert_eq!(count(keys.clone()).await, 1);
    let snapshot_rows = |id: Uuid| {
        let store = store.clone();
        let schema = schema.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{schema}\".snapshots WHERE stream_id = $1"
            )))
            .bind(id.to_string())
            .fetch_one(store.pool())
            .await
            .expect("count")
            .get::<i64, _>(0)
        }
    };
    assert_eq!(
        snapshot_rows(id).await,
        1,
        "the third command took a snapshot"
    );
    assert_eq!(
        ledgers.load(&id).await.expect("load").state.owner,
        "Ada Lovelace"
    );

    store.forget(&holder).await.expect("forget");

    assert_eq!(count(keys).await, 0, "the key is gone");
    assert_eq!(
        snapshot_rows(id).await,
        0,
        "the snapshot holding the name is gone"
    );
    assert_eq!(count(sealed).await, 1, "the event stays, sealed");
    assert_eq!(count(plaintext).await, 0);
    let loaded = ledgers.load(&id).await.expect("still loads");
    assert_eq!(loaded.state.owner, "");
    assert_eq!(loaded.state.cents, 3);
    ledgers
        .execute(&id, Deposit { cents: 3 })
        .await
        .expect("commands go on");
}
