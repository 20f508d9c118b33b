//! The read side through its macros, on the in-memory store: a read model folded from the
//! log (`#[derive(Projection)]`, `#[projection_impl]`, `#[on]`) read right after a command
//! with `wait_for`, and a reactor (`#[derive(Reactor)]`, `#[reactor_impl]`) that answers an
//! event with an idempotent command.

use std::collections::HashMap;
use std::time::Duration;

use bank::domain::account::{
    Account, AccountError, AccountId, AccountOpened, Deposit, MoneyDeposited, MoneyWithdrawn,
    OpenAccount, Withdraw,
};
use es_core::prelude::*;
use es_core::{Error, ProjectionState};

const WAIT: Duration = Duration::from_secs(10);

/// Balances and owners per account, in memory.
#[derive(Projection, Default, Clone, Debug)]
#[projection(name = "balances")]
struct Balances {
    by_account: HashMap<String, i64>,
    owners: HashMap<String, String>,
    /// How many withdrawals it refused to fold (none, unless asked to fail).
    fail_on: Option<u64>,
}

#[projection_impl]
impl Balances {
    #[on]
    fn opened(&mut self, e: &Envelope<AccountOpened>) {
        self.owners
            .insert(e.stream.id().to_owned(), e.event.owner.clone());
    }

    #[on]
    fn deposited(&mut self, e: &Envelope<MoneyDeposited>) {
        *self.by_account.entry(e.stream.id().to_owned()).or_default() +=
            i64::try_from(e.event.amount).unwrap_or(i64::MAX);
    }

    #[on]
    fn withdrawn(&mut self, e: &Envelope<MoneyWithdrawn>) -> Result<(), String> {
        // Decide, then mutate: a refusal leaves the model as it was.
        if self.fail_on == Some(e.event.amount) {
            return Err(format!("refusing a withdrawal of {}", e.event.amount));
        }
        *self.by_account.entry(e.stream.id().to_owned()).or_default() -=
            i64::try_from(e.event.amount).unwrap_or(i64::MAX);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_is_read_right_after_a_command() {
    let store = InMemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let balances = Projector::new(store.clone(), Balances::default()).spawn();
    assert_eq!(balances.status().name, "balances");
    let id = AccountId::new();
    accounts
        .execute(
            &id,
            OpenAccount {
                owner: "Ada".into(),
            },
        )
        .await
        .expect("open");
    accounts
        .execute(&id, Deposit { amount: 500 })
        .await
        .expect("deposit");
    let done = accounts
        .execute(&id, Withdraw { amount: 200 })
        .await
        .expect("withdraw");
    balances
        .wait_for(done.position.expect("appended"), WAIT)
        .await
        .expect("read your writes");
    let key = id.to_string();
    assert_eq!(
        balances.read(|b| b.by_account.get(&key).copied()),
        Some(300)
    );
    assert_eq!(
        balances.read(|b| b.owners.get(&key).cloned()).as_deref(),
        Some("Ada")
    );
    balances.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_shows_in_the_status_and_skip_moves_past_it() {
    let store = InMemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let balances = Projector::new(
        store.clone(),
        Balances {
            fail_on: Some(7),
            ..Balances::default()
        },
    )
    .spawn();
    let id = AccountId::new();
    accounts
        .execute(
            &id,
            OpenAccount {
                owner: "Ada".into(),
            },
        )
        .await
        .expect("open");
    accounts
        .execute(&id, Deposit { amount: 50 })
        .await
        .expect("deposit");
    let bad = accounts
        .execute(&id, Withdraw { amount: 7 })
        .await
        .expect("withdraw");
    let bad = bad.position.expect("appended");
    let err = balances
        .wait_for(bad, Duration::from_millis(300))
        .await
        .expect_err("the handler refuses it");
    assert!(err.to_string().contains("balances"), "{err}");
    assert!(
        matches!(balances.status().state, ProjectionState::Failed { position, ref error }
            if position == bad && error.contains("refusing a withdrawal of 7")),
        "{:?}",
        balances.status()
    );
    balances.skip(bad).await.expect("skip it");
    balances.wait_for(bad, WAIT).await.expect("past it");
    assert_eq!(
        balances.read(|b| b.by_account[&id.to_string()]),
        50,
        "nothing of it folded"
    );
    assert_eq!(balances.status().skipped, vec![bad]);
    balances.stop().await;
}

/// Every new account gets a welcome bonus: a reactor answering `AccountOpened` with an
/// idempotent, caused deposit.
#[derive(Reactor)]
#[reactor(name = "welcome_bonus")]
struct WelcomeBonus {
    accounts: Repository<Account, InMemoryStore>,
}

#[reactor_impl]
impl WelcomeBonus {
    #[on]
    async fn opened(&self, e: &Envelope<AccountOpened>) -> Result<(), Error<AccountError>> {
        let Ok(id) = e.stream.id().parse::<AccountId>() else {
            return Ok(());
        };
        self.accounts
            .execute_caused_by(e, &id, Deposit { amount: 100 })
            .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_answers_new_events_with_caused_commands() {
    let store = InMemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    // Before the reactor's first run: history it never replays.
    let old = AccountId::new();
    accounts
        .execute(
            &old,
            OpenAccount {
                owner: "Old".into(),
            },
        )
        .await
        .expect("open");
    let reactor = Projector::new(
        store.clone(),
        WelcomeBonus {
            accounts: accounts.clone(),
        },
    )
    .spawn();
    // Its first run starts at the end of the log as it finds it.
    reactor.started().await;
    let id = AccountId::new();
    let opened = accounts
        .execute(
            &id,
            OpenAccount {
                owner: "Ada".into(),
            },
        )
        .await
        .expect("open");
    reactor
        .wait_for(opened.position.expect("appended"), WAIT)
        .await
        .expect("the reactor handled it");
    let loaded = accounts.load(&id).await.expect("load");
    assert_eq!(loaded.state.balance(), 100, "the bonus");
    assert_eq!(loaded.version, 2);
    assert_eq!(
        accounts.load(&old).await.expect("load").state.balance(),
        0,
        "no history replayed on the first run"
    );
    // Redelivered (the reactor restarted from an older checkpoint): still one bonus.
    reactor.stop().await;
    let again = Projector::new(
        store.clone(),
        WelcomeBonus {
            accounts: accounts.clone(),
        },
    )
    .spawn();
    let marker = accounts
        .execute(&id, Deposit { amount: 1 })
        .await
        .expect("deposit");
    again
        .wait_for(marker.position.expect("appended"), WAIT)
        .await
        .expect("resumed");
    assert_eq!(accounts.load(&id).await.expect("load").state.balance(), 101);
    // The handler is an ordinary method too.
    let direct = WelcomeBonus {
        accounts: accounts.clone(),
    };
    let cause = es_core::testing::envelope(
        accounts.stream_id(&id),
        1,
        AccountOpened {
            owner: "Ada".into(),
            holder: bank::domain::account::holder_of("Ada"),
        },
    );
    direct.opened(&cause).await.expect("callable");
    again.stop().await;
}

/// An inline projection is folded inside every append, under the store's lock: never behind
/// the log, and a failing handler refuses the whole append (nothing written, the model
/// unchanged).
#[tokio::test]
async fn an_inline_projection_and_its_append_commit_or_refuse_together() {
    let store = InMemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let early = AccountId::new();
    accounts
        .execute(
            &early,
            OpenAccount {
                owner: "Early".into(),
            },
        )
        .await
        .expect("open");
    accounts
        .execute(&early, Deposit { amount: 40 })
        .await
        .expect("deposit");
    let balances = store
        .inline(Balances {
            fail_on: Some(13),
            ..Balances::default()
        })
        .expect("folds what is stored");
    assert_eq!(
        balances.read(|b| b.by_account[&early.to_string()]),
        40,
        "history folded"
    );
    let id = AccountId::new();
    accounts
        .execute(
            &id,
            OpenAccount {
                owner: "Ada".into(),
            },
        )
        .await
        .expect("open");
    accounts
        .execute(&id, Deposit { amount: 50 })
        .await
        .expect("deposit");
    assert_eq!(
        balances.read(|b| b.by_account[&id.to_string()]),
        50,
        "no wait needed"
    );
    let before = store.len();
    let err = accounts
        .execute(&id, Withdraw { amount: 13 })
        .await
        .expect_err("the inline projection refuses it");
    assert!(
        matches!(&err, Error::Store(es_core::StoreError::InlineProjection { projection: "balances", error, .. })
            if error.contains("refusing a withdrawal of 13")),
        "{err:?}"
    );
    assert_eq!(store.len(), before, "nothing of the append was written");
    assert_eq!(accounts.load(&id).await.expect("load").state.balance(), 50);
    assert_eq!(
        balances.read(|b| b.by_account[&id.to_string()]),
        50,
        "the model unchanged"
    );
    accounts
        .execute(&id, Withdraw { amount: 20 })
        .await
        .expect("withdraw");
    assert_eq!(balances.read(|b| b.by_account[&id.to_string()]), 30);
}

/// Two partitions of a read model over one log: each folds the accounts that hash to it,
/// none folds an account twice, and together they hold what one runner holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_partitions_together_fold_what_one_runner_folds() {
    let store = InMemoryStore::new();
    let accounts = Repository::<Account, _>::new(store.clone());
    let whole = Projector::new(store.clone(), Balances::default()).spawn();
    let parts: Vec<_> = (0..2)
        .map(|i| {
            Projector::new(store.clone(), Balances::default())
                .partition(i, 2)
                .spawn()
        })
        .collect();
    let mut last = None;
    for n in 0..40_u64 {
        let id = AccountId::new();
        accounts
            .execute(
                &id,
                OpenAccount {
                    owner: format!("owner {n}"),
                },
            )
            .await
            .expect("open");
        let done = accounts
            .execute(&id, Deposit { amount: n + 1 })
            .await
            .expect("deposit");
        last = done.position;
    }
    let last = last.expect("appended");
    whole.wait_for(last, WAIT).await.expect("one runner");
    let mut merged = HashMap::new();
    for (i, part) in parts.iter().enumerate() {
        part.wait_for(last, WAIT).await.expect("a partition");
        let held = part.read(|b| b.by_account.clone());
        assert!(!held.is_empty(), "partition {i} holds some accounts");
        for (account, balance) in held {
            let stream = StreamId::new("account", account.clone());
            assert_eq!(
                es_core::projection::Partition::of(&stream, 2),
                u32::try_from(i).expect("small"),
                "{account} folded by the partition it hashes to"
            );
            assert!(
                merged.insert(account, balance).is_none(),
                "an account in both partitions"
            );
        }
    }
    assert_eq!(merged, whole.read(|b| b.by_account.clone()));
}

#[test]
#[should_panic(expected = "partition 2 of 2")]
fn a_partition_index_past_the_count_is_refused() {
    let _ = Projector::new(InMemoryStore::new(), Balances::default()).partition(2, 2);
}

/// Deposits counted slowly (a millisecond each), to be seen catching up.
#[derive(Projection, Default, Clone, Debug)]
#[projection(name = "slow_deposits")]
struct SlowDeposits {
    seen: u64,
}

#[projection_impl]
impl SlowDeposits {
    #[on]
    fn deposited(&mut self, _: &MoneyDeposited) {
        std::thread::sleep(Duration::from_millis(1));
        self.seen += 1;
    }
}

/// An account opened with `deposits` deposits of 1: its repository, its id and the last
/// deposit's position.
async fn opened_with_deposits(
    store: &InMemoryStore,
    deposits: usize,
) -> (Repository<Account, InMemoryStore>, AccountId, Position) {
    let accounts = Repository::<Account, _>::new(store.clone());
    let id = AccountId::new();
    let mut last = accounts
        .execute(
            &id,
            OpenAccount {
                owner: "ada".into(),
            },
        )
        .await
        .expect("opens")
        .position;
    for _ in 0..deposits {
        last = accounts
            .execute(&id, Deposit { amount: 1 })
            .await
            .expect("deposits")
            .position;
    }
    (accounts, id, last.expect("a position"))
}

/// The status says how many events of its types a read model is behind: counted when it
/// starts (the 3,000 deposits, not the opening it does not read), less while it catches up
/// (about once a second: it takes 3 s), and 0 with the position `wait_for` waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_how_far_behind_the_log_a_read_model_is() {
    let store = InMemoryStore::new();
    let (accounts, id, last) = opened_with_deposits(&store, 3_000).await;
    let slow = Projector::new(store.clone(), SlowDeposits::default()).spawn();
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while slow.status().handled < 3_000 {
        assert!(std::time::Instant::now() < deadline, "caught up: {seen:?}");
        if let Some(behind) = slow.status().behind
            && seen.last() != Some(&behind)
        {
            seen.push(behind);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The first count is the 3,000 deposits; a starved poll may see a later one first.
    // Never the opening, which it does not read.
    assert!(
        seen.first().is_some_and(|&b| b > 0) && seen.iter().all(|&b| b <= 3_000),
        "counted at the start: {seen:?}"
    );
    assert!(
        seen.iter().any(|&b| b > 0 && b < 3_000),
        "counted again while catching up: {seen:?}"
    );
    slow.wait_for(last, WAIT).await.expect("caught up");
    assert_eq!(slow.status().behind, Some(0));
    assert_eq!(slow.read(|s| s.seen), 3_000);

    // Kept up with, one event at a time.
    let more = accounts
        .execute(&id, Deposit { amount: 1 })
        .await
        .expect("deposits")
        .position
        .expect("a position");
    slow.wait_for(more, WAIT).await.expect("kept up");
    assert_eq!(slow.status().behind, Some(0));
    slow.stop().await;
}

/// Caught up by a last batch that is full (the opening and 999 deposits: two batches of
/// 500), the status still reads 0 behind once `wait_for` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_reads_zero_after_a_full_last_batch() {
    let store = InMemoryStore::new();
    let (_, _, last) = opened_with_deposits(&store, 999).await;
    let slow = Projector::new(store.clone(), SlowDeposits::default()).spawn();
    slow.wait_for(last, WAIT).await.expect("caught up");
    assert_eq!(slow.status().behind, Some(0));
    assert_eq!(slow.read(|s| s.seen), 999);
    slow.stop().await;
}
