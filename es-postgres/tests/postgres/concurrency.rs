//! Many writers and live subscribers at once, and many depositors on one account.
//!
//! `ES_PG_EVENTS` sets the number of events of the writers test (default 20,000).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bank::domain::account::{Account, AccountId, Deposit, OpenAccount};
use es_core::testing::Instrumented;
use es_core::{
    Error, EventStore, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, Repository,
    StoreError, StreamId,
};
use futures::{Stream, StreamExt};
use uuid::Uuid;

use crate::support;

const WRITERS: usize = 16;
const STREAMS: usize = 48;
const BATCH: usize = 10;

fn total_events() -> usize {
    std::env::var("ES_PG_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Follows the log until it has seen `n` events of `category`, checking as it goes.
pub(crate) async fn follow(
    mut sub: impl Stream<Item = Result<RecordedEvent, StoreError>> + Unpin,
    category: String,
    n: usize,
    stop_after: Option<usize>,
) -> (Vec<RecordedEvent>, Option<Position>) {
    let mut seen = Vec::with_capacity(n);
    let mut last: Option<Position> = None;
    while seen.len() < n {
        let record = tokio::time::timeout(Duration::from_secs(120), sub.next())
            .await
            .expect("the subscriber made progress within 120 s")
            .expect("the subscription goes on")
            .expect("no error");
        assert!(
            last.is_none_or(|p| record.position > p),
            "positions go forward: {} after {last:?} ({} v{})",
            record.position,
            record.stream,
            record.version
        );
        last = Some(record.position);
        if record.stream.category() == category {
            seen.push(record);
            if stop_after == Some(seen.len()) {
                break;
            }
        }
    }
    (seen, last)
}

pub(crate) fn check(seen: &[RecordedEvent], sent: &HashSet<Uuid>, who: &str) {
    let ids: HashSet<Uuid> = seen.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "{who} saw an event twice");
    assert_eq!(&ids, sent, "{who} saw every event");
    let mut next: HashMap<&StreamId, u64> = HashMap::new();
    for r in seen {
        let expected = next.entry(&r.stream).or_insert(1);
        assert_eq!(
            r.version, *expected,
            "{who}: {} out of version order",
            r.stream
        );
        *expected += 1;
    }
}

/// 16 writers append 20,000 events in multi-event appends (half with exact expected
/// versions and retry, half with `Any`) to 48 shared streams while two subscribers follow
/// live and a third stops midway and resumes from its checkpoint. Each sees every event
/// exactly once, and each stream's events in version order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_live_subscribers_agree_on_every_event() {
    let store = support::store_with(WRITERS as u32 + 8).await;
    let total = total_events();
    let category = format!("load{}", Uuid::now_v7().simple());
    let streams: Arc<Vec<StreamId>> = Arc::new(
        (0..STREAMS)
            .map(|i| StreamId::new(category.clone(), i.to_string()))
            .collect(),
    );

    let subscribers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(follow(store.subscribe(None), category.clone(), total, None)))
        .collect();
    let halfway = tokio::spawn(follow(
        store.subscribe(None),
        category.clone(),
        total,
        Some(total / 2),
    ));

    let appends = total / BATCH;
    let next = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, streams, next, conflicts) = (
                store.clone(),
                Arc::clone(&streams),
                Arc::clone(&next),
                Arc::clone(&conflicts),
            );
            tokio::spawn(async move {
                let mut sent = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= appends {
                        return sent;
                    }
                    let stream = &streams[(n * 7 + w) % streams.len()];
                    let events: Vec<NewEvent> = (0..BATCH)
                        .map(|i| NewEvent {
                            event_id: Uuid::now_v7(),
                            event_type: "Loaded".into(),
                            schema_version: 1,
                            payload: serde_json::json!({ "writer": w, "n": n, "i": i }),
                            metadata: Metadata::default(),
                        })
                        .collect();
                    sent.extend(events.iter().map(|e| e.event_id));
                    if w % 2 == 0 {
                        loop {
                            let v = store.stream_version(stream).await.expect("version");
                            match store
                                .append(stream, ExpectedVersion::Exact(v), events.clone())
                                .await
                            {
                                Ok(_) => break,
                                Err(StoreError::Conflict { .. }) => {
                                    conflicts.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => panic!("append failed: {e}"),
                            }
                        }
                    } else {
                        store
                            .append(stream, ExpectedVersion::Any, events)
                            .await
                            .expect("Any never conflicts");
                    }
                }
            })
        })
        .collect();
    let mut sent = HashSet::new();
    for w in writers {
        sent.extend(w.await.expect("writer"));
    }
    assert_eq!(sent.len(), total);

    for (i, s) in subscribers.into_iter().enumerate() {
        let (seen, _) = s.await.expect("subscriber");
        check(&seen, &sent, &format!("subscriber {i}"));
    }
    let (first_half, checkpoint) = halfway.await.expect("halfway subscriber");
    let (second_half, _) = follow(
        store.subscribe(checkpoint),
        category.clone(),
        total - first_half.len(),
        None,
    )
    .await;
    let resumed: Vec<RecordedEvent> = first_half.into_iter().chain(second_half).collect();
    check(&resumed, &sent, "the resumed subscriber");
    support::report(&format!(
        "{total} events by {WRITERS} writers; {} exact-version conflicts retried",
        conflicts.load(Ordering::Relaxed)
    ));
}

/// 32 tasks deposit into one account through the repository with retry: the balance is the
/// sum of the accepted deposits, and the conflicts the retries absorbed are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_depositors_on_one_account_lose_no_money() {
    let store = Instrumented::new(support::store_with(40).await);
    let accounts = Arc::new(Repository::<Account, _>::new(store.clone()).with_retry(64));
    let id = AccountId::new();
    accounts
        .execute(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
        )
        .await
        .expect("open");
    let tasks: Vec<_> = (1..=32u64)
        .map(|amount| {
            let accounts = Arc::clone(&accounts);
            tokio::spawn(async move { (amount, accounts.execute(&id, Deposit { amount }).await) })
        })
        .collect();
    let (mut accepted, mut sum, mut gave_up) = (0u64, 0u64, 0u64);
    for t in tasks {
        match t.await.expect("task") {
            (amount, Ok(_)) => {
                accepted += 1;
                sum += amount;
            }
            (_, Err(Error::Conflict { .. })) => gave_up += 1,
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    let account = accounts.load(&id).await.expect("load");
    assert_eq!(
        account.state.balance(),
        sum,
        "balance equals the accepted deposits"
    );
    assert_eq!(account.version, 1 + accepted);
    assert_eq!(accepted + gave_up, 32);
    let conflicts = store.conflicts();
    support::report(&format!(
        "32 depositors: {accepted} accepted, {gave_up} gave up after 64 retries, {conflicts} conflicts retried"
    ));
}
