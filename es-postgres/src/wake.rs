//! Waking subscribers: after an append commits (never inside it: a `NOTIFY` in the append's
//! transaction would serialize every commit on the notification queue's lock), and when
//! another process appends.
//!
//! - An append bumps a local counter: subscriptions of this process wake at once, and one
//!   background task sends `NOTIFY`, at most one per 5 ms, coalescing every append that
//!   landed meanwhile (a `NOTIFY` is a statement, a transaction id and a commit of its own),
//!   on a connection the store holds, and only when another session listens: one holding
//!   the presence lock below. Else the statement finds nobody and writes nothing, and the
//!   task looks again only after 100 ms (covering the appends meanwhile): a store that
//!   starts listening hears of appends at most that much later, and statements are not
//!   spent every 5 ms while nobody listens.
//! - One background task per store `LISTEN`s, on a connection of its own (never one of the
//!   pool's), and bumps a second counter for every notification. It runs while at least one
//!   subscription is open, and reconnects after a lost connection (waking everyone, since a
//!   notification may have been lost). Its connection holds a shared advisory lock, the
//!   presence lock, taken before `LISTEN` and held until it disconnects: an append that
//!   committed before the lock was seen was committed before `LISTEN`, and the wake-up
//!   after `LISTEN` makes every subscription read it.
//! - Either task is started again when it is gone (the runtime it ran on shut down, as
//!   happens to a store shared by tests that each run their own runtime).
//!
//! Subscriptions poll as well: a wake-up is a hint, never the only way to see an event.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Row, SqlStr};

use crate::held::{Held, held};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The shortest time between two `NOTIFY`s of one store: other processes hear of an append
/// at most this much later (their own appends wake their subscribers at once).
const NOTIFY_EVERY: Duration = Duration::from_millis(5);

/// How long the notifier waits, after it found no other store listening, before it looks
/// again: a store that starts listening hears of appends at most this much later.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// How long the listener waits before reconnecting after a failure.
const RECONNECT: Duration = Duration::from_secs(1);

pub(crate) struct Wake {
    appends: watch::Sender<u64>,
    notifications: watch::Sender<u64>,
    /// The notifier task, restarted when it is gone (its runtime shut down).
    notifier: Mutex<Option<JoinHandle<()>>>,
    /// Whether the listener task runs; changed only under this lock, together with the
    /// receiver count it depends on.
    listening: Arc<Mutex<bool>>,
    /// The listener task, restarted when it is gone (its runtime shut down).
    listener: Mutex<Option<JoinHandle<()>>>,
    pool: PgPool,
    channel: String,
    /// Connections the store holds: the notifier's statements run on one.
    held: Arc<Held>,
    /// The presence lock, taken by the listener (`Statements::present`).
    present: SqlStr,
    /// The `NOTIFY` sent only where another session listens (`Statements::notify`).
    notify: SqlStr,
    /// The backend id of this store's listener connection (0: none): its presence does not
    /// count, since this store wakes its own subscriptions.
    own_listener: Arc<AtomicI32>,
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|n| *n = n.wrapping_add(1));
}

impl Wake {
    pub(crate) fn new(pool: PgPool, held: Arc<Held>, sql: &crate::schema::Statements) -> Self {
        Self {
            appends: watch::Sender::new(0),
            notifications: watch::Sender::new(0),
            notifier: Mutex::new(None),
            listener: Mutex::new(None),
            listening: Arc::new(Mutex::new(false)),
            pool,
            channel: sql.channel.clone(),
            held,
            present: sql.present.clone(),
            notify: sql.notify.clone(),
            own_listener: Arc::new(AtomicI32::new(0)),
        }
    }

    /// Changes after every committed append of this process.
    pub(crate) fn local(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
    }

    /// Changes after every notification from the database (never, when `listen` is off).
    pub(crate) fn remote(&self, listen: bool) -> watch::Receiver<u64> {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let receiver = self.notifications.subscribe();
        if listen {
            let mut task = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
            if !*listening || task.as_ref().is_none_or(JoinHandle::is_finished) {
                *task = self.start_listener();
                *listening = task.is_some();
            }
        }
        receiver
    }

    /// Call after an append committed; `notify`: tell other processes too (not behind a
    /// transaction-pooling proxy, where they poll).
    pub(crate) fn appended(&self, notify: bool) {
        // The notifier subscribes first, so it sees this very append.
        if notify {
            let mut task = self.notifier.lock().unwrap_or_else(PoisonError::into_inner);
            if task.as_ref().is_none_or(JoinHandle::is_finished) {
                *task = self.start_notifier();
            }
        }
        bump(&self.appends);
    }

    fn start_notifier(&self) -> Option<JoinHandle<()>> {
        // Without a runtime (an append cannot run without one), other processes poll.
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let mut appends = self.appends.subscribe();
        let pool = self.pool.clone();
        let held = Arc::clone(&self.held);
        let notify = self.notify.clone();
        let own_listener = Arc::clone(&self.own_listener);
        // Ends when the store (which owns the sender) is dropped.
        Some(runtime.spawn(async move {
            while appends.changed().await.is_ok() {
                appends.borrow_and_update();
                // On a fresh connection once more when the held one turns out to be dead.
                let sent = async {
                    held!(held, &pool, |conn| {
                        sqlx::query(notify.clone())
                            .bind(own_listener.load(Ordering::Acquire))
                            .execute(conn)
                            .await
                            .map_err(crate::error::backend)
                    })
                };
                let quiet = match sent.await {
                    Ok(done) => done.rows_affected() == 0,
                    Err(e) => {
                        tracing::debug!(error = %e, "NOTIFY failed; other processes will poll");
                        false
                    }
                };
                // Appends meanwhile share the next NOTIFY: at most one per interval, not a
                // statement (and a transaction id, and a commit) per append. Nobody else
                // listening: look again after a longer while, not a statement every interval
                // (a store that starts listening catches up as it starts, and polls).
                let pause = if quiet { LOOK_AGAIN } else { NOTIFY_EVERY };
                tokio::time::sleep(pause).await;
            }
        }))
    }

    /// Starts the listener task; `None` when there is no runtime to run it on.
    fn start_listener(&self) -> Option<JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        // A pool of one, apart from the store's: the listener keeps its connection.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let listener = Listener {
            pool: own,
            channel: self.channel.clone(),
            present: self.present.clone(),
            own: Arc::clone(&self.own_listener),
        };
        let notifications = self.notifications.clone();
        let listening = Arc::clone(&self.listening);
        Some(runtime.spawn(listen(listener, notifications, listening)))
    }
}

/// Whether the listener should stop: no subscription is left. Decided under the lock that
/// `Wake::remote` takes, so a subscription arriving now either is counted or restarts it.
fn no_one_left(notifications: &watch::Sender<u64>, listening: &Mutex<bool>) -> bool {
    let mut running = listening.lock().unwrap_or_else(PoisonError::into_inner);
    // Our own clone of the sender holds no receiver: count the subscriptions only.
    if notifications.receiver_count() == 0 {
        *running = false;
        true
    } else {
        false
    }
}

/// What the listener task connects with.
struct Listener {
    /// A pool of one, apart from the store's.
    pool: PgPool,
    channel: String,
    present: SqlStr,
    /// Where it tells its backend id.
    own: Arc<AtomicI32>,
}

async fn listen(
    Listener {
        pool,
        channel,
        present,
        own,
    }: Listener,
    notifications: watch::Sender<u64>,
    listening: Arc<Mutex<bool>>,
) {
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection is made again here, with the presence lock, not by sqlx.
            listener.eager_reconnect(false);
            // Present before listening (see the module's docs).
            let row = sqlx::query(present.clone())
                .fetch_one(&mut listener)
                .await?;
            own.store(row.try_get(1)?, Ordering::Release);
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            result = connected => match result {
                Ok(listener) => listener,
                Err(e) => {
                    own.store(0, Ordering::Release);
                    tracing::debug!(error = %e, "LISTEN failed; subscriptions poll meanwhile");
                    tokio::time::sleep(RECONNECT).await;
                    if no_one_left(&notifications, &listening) {
                        return;
                    }
                    continue;
                }
            },
            () = notifications.closed() => {
                own.store(0, Ordering::Release);
                if no_one_left(&notifications, &listening) {
                    return;
                }
                continue;
            }
        };
        // A notification may have been missed while (re)connecting.
        bump(&notifications);
        loop {
            tokio::select! {
                // `try_recv`, not `recv` (which reconnects on its own): a new session must
                // take the presence lock again, so a lost connection starts over here.
                received = listener.try_recv() => {
                    bump(&notifications);
                    match received {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => {
                            tokio::time::sleep(RECONNECT).await;
                            break;
                        }
                    }
                }
                () = notifications.closed() => {
                    if no_one_left(&notifications, &listening) {
                        own.store(0, Ordering::Release);
                        return;
                    }
                }
            }
        }
        own.store(0, Ordering::Release);
    }
}
