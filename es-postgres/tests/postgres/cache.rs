//! The repository's aggregate cache on PostgreSQL with two processes writing (two stores on
//! one schema, each with its own pool): the cached writer never loses the other's update,
//! and a command on a kept aggregate reads nothing.

use bank::domain::account::{Account, AccountId, Deposit, OpenAccount, Withdraw};
use es_core::Repository;
use es_core::testing::Instrumented;
use es_postgres::PostgresStore;

use crate::support;

/// A store on `store`'s schema with a pool of its own (`connections`), as another process
/// would have: it shares nothing in memory with `store`, its count of forgets included.
async fn another_process(store: &PostgresStore, connections: u32) -> PostgresStore {
    PostgresStore::new(support::pool(connections).await)
        .with_schema(store.schema())
        .expect("schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_writer_and_another_process_lose_no_update() {
    let store = support::store().await;
    let other = another_process(&store, 4).await;
    let counted = Instrumented::new(store.clone());
    let cached = Repository::<Account, _>::new(counted.clone())
        .with_cache(8)
        .with_retry(20);
    let elsewhere = Repository::<Account, _>::new(other).with_retry(20);
    let id = AccountId::new();
    let open = OpenAccount {
        owner: "ada".into(),
    };
    cached.execute(&id, open).await.expect("opens");
    let reads = counted.stream_reads();
    for _ in 0..5 {
        cached
            .execute(&id, Deposit { amount: 1 })
            .await
            .expect("deposit");
    }
    assert_eq!(counted.stream_reads(), reads, "kept: no load");

    // Both write at once: every update lands.
    let a = {
        let cached = cached.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                cached
                    .execute(&id, Deposit { amount: 1 })
                    .await
                    .expect("cached deposit");
            }
        })
    };
    let b = tokio::spawn(async move {
        for _ in 0..20 {
            elsewhere
                .execute(&id, Deposit { amount: 10 })
                .await
                .expect("deposit elsewhere");
        }
    });
    a.await.expect("a");
    b.await.expect("b");
    let loaded = cached.load(&id).await.expect("load");
    assert_eq!(loaded.state.balance(), 5 + 20 + 200);
    assert_eq!(loaded.version, 1 + 5 + 40);
    // The kept state is right too: a withdrawal of everything goes through.
    cached
        .execute(&id, Withdraw { amount: 225 })
        .await
        .expect("withdraw all");
}

/// A command expecting no stream is decided without a load; on a stream that has events it
/// is the conflict, with the stream's version, alone or in a group commit's batch (the
/// appends beside it land), and it makes no key for a subject that has none (a forgotten
/// one: its older sealed fields still read as forgotten, not as corrupt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_expecting_no_stream_needs_no_load_and_conflicts_on_an_existing_stream() {
    use bank::domain::account::holder_of;
    use es_core::{Error, EventStore, ExpectedVersion};
    use es_postgres::GroupCommit;

    let store = support::store().await;
    for grouped in [false, true] {
        let on = if grouped {
            store.clone().with_group_commit(GroupCommit::new())
        } else {
            store.clone()
        };
        let counted = Instrumented::new(on);
        let accounts = Repository::<Account, _>::new(counted.clone());
        let open = |owner: &str| OpenAccount {
            owner: owner.into(),
        };
        let id = AccountId::new();
        let reads = counted.stream_reads();
        accounts
            .execute_expecting(&id, open("ada"), ExpectedVersion::NoStream)
            .await
            .expect("opens");
        assert_eq!(counted.stream_reads(), reads, "no load");
        accounts
            .execute(&id, Deposit { amount: 3 })
            .await
            .expect("deposits");

        // Again, beside other writers' creates, which land.
        let others: Vec<_> = (0..8)
            .map(|_| {
                let accounts = accounts.clone();
                tokio::spawn(async move {
                    accounts
                        .execute_expecting(&AccountId::new(), open("bo"), ExpectedVersion::NoStream)
                        .await
                })
            })
            .collect();
        let again = accounts
            .execute_expecting(&id, open("ada"), ExpectedVersion::NoStream)
            .await;
        match again {
            Err(Error::Conflict {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (ExpectedVersion::NoStream, 2)),
            other => panic!("expected the conflict, got {other:?} (grouped: {grouped})"),
        }
        for other in others {
            assert_eq!(other.await.expect("task").expect("lands").version, 1);
        }

        // The holder forgotten, a create on the existing account makes no new key: the
        // opening still reads, its name forgotten.
        store.forget(&holder_of("ada")).await.expect("forget");
        let refused = accounts
            .execute_expecting(&id, open("ada"), ExpectedVersion::NoStream)
            .await;
        assert!(
            matches!(refused, Err(Error::Conflict { actual: 2, .. })),
            "{refused:?}"
        );
        let keys: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{}\".personal_keys WHERE subject = $1",
            store.schema()
        )))
        .bind(holder_of("ada"))
        .fetch_one(store.pool())
        .await
        .expect("keys");
        assert_eq!(keys, 0, "no key made for a refused append");
        let loaded = accounts.load(&id).await.expect("still loads");
        assert_eq!((loaded.version, loaded.state.balance()), (2, 3));
    }
}

/// A member whose confirmation restates the name it holds: personal data copied from the
/// state into a new event.
mod member {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "MemberJoined")]
    pub(super) struct Joined {
        pub(super) person: String,
        #[personal(subject = person)]
        pub(super) name: String,
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "MemberConfirmed")]
    pub(super) struct Confirmed {
        pub(super) person: String,
        #[personal(subject = person)]
        pub(super) name: String,
    }

    #[derive(Command, Serialize, Deserialize, Clone, Debug)]
    pub(super) struct Join {
        pub(super) person: String,
        pub(super) name: String,
    }

    #[derive(Command, Serialize, Deserialize, Clone, Debug)]
    pub(super) struct Confirm;

    #[derive(Debug, thiserror::Error)]
    #[error("not a member")]
    pub(super) struct NotAMember;

    #[derive(Aggregate, Default, Clone, Debug)]
    #[aggregate(name = "member", error = NotAMember)]
    pub(super) struct Member {
        pub(super) person: String,
        pub(super) name: String,
    }

    #[aggregate_impl]
    impl Member {
        #[command]
        fn join(&self, cmd: Join) -> Result<Joined, NotAMember> {
            Ok(Joined {
                person: cmd.person,
                name: cmd.name,
            })
        }

        #[command]
        fn confirm(&self, _: Confirm) -> Result<Confirmed, NotAMember> {
            if self.person.is_empty() {
                return Err(NotAMember);
            }
            Ok(Confirmed {
                person: self.person.clone(),
                name: self.name.clone(),
            })
        }

        #[apply]
        fn joined(&mut self, e: &Joined) {
            self.person.clone_from(&e.person);
            self.name.clone_from(&e.name);
        }

        #[apply]
        fn confirmed(&mut self, e: &Confirmed) {
            self.name.clone_from(&e.name);
        }
    }
}

/// A subject forgotten by another process (a store of its own, whose forget this one does
/// not count) while this process keeps a state holding the subject's name: a command that
/// would write that name again is decided on the store's state, so the name stays
/// forgotten (appended from the kept state, it would have been sealed under a new key and
/// read again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_state_never_writes_back_what_another_process_forgot() {
    use es_core::EventStore;
    use member::{Confirm, Join, Member};

    let store = support::store().await;
    let other = another_process(&store, 2).await;
    let counted = Instrumented::new(store.clone());
    let members = Repository::<Member, _>::new(counted.clone()).with_cache(8);
    let id = uuid::Uuid::now_v7();
    let person = format!("person-{id}");
    members
        .execute(
            &id,
            Join {
                person: person.clone(),
                name: "Ada".into(),
            },
        )
        .await
        .expect("joins");
    let reads = counted.stream_reads();

    other.forget(&person).await.expect("forgotten elsewhere");
    let confirmed = members.execute(&id, Confirm).await.expect("confirms");
    assert_eq!(
        counted.stream_reads(),
        reads + 1,
        "decided again on the store's state"
    );
    assert_eq!(confirmed.events.len(), 1);
    let stored = store
        .find_event(&members.stream_id(&id), confirmed.events[0].event_id)
        .await
        .expect("find")
        .expect("stored");
    // Restated from the store's state: the name as forgotten, not Ada's.
    assert_eq!(stored.payload["name"], "", "{stored:?}");
    let loaded = members.load(&id).await.expect("load");
    assert_eq!(loaded.state.name, "", "the name stays forgotten");
}
