//! Connections the store keeps out of the pool between the statements of its hot path (a
//! stream's reads, which loads are, and appends on their own).
//!
//! sqlx tests a connection with a round trip each time it leaves the pool (unless the pool
//! was built with `test_before_acquire(false)`) and again each time it goes back (always, on
//! a task spawned for it). A command is two statements (the load, the append): through the
//! pool, six round trips and two spawned tasks; through connections held here, two round
//! trips. On this machine that was most of a command's client CPU.
//!
//! What the pool's tests were for is kept:
//! - A held connection that fails as a connection (I/O, protocol, a fatal error from the
//!   server) is dropped, and the statement runs once more on a connection fresh from the
//!   pool (tested). A repeated append is safe: its event ids make it get its first outcome
//!   if it had landed.
//! - A statement interrupted (its future dropped) leaves its connection in a state nobody
//!   knows: that one goes back to the pool, which tests it.
//! - A connection goes back to the pool after [`HELD_FOR`], so the pool's lifetime limits
//!   and tests still apply to it.
//! - Other work on the pool (yours, subscriptions, checkpoints) always finds connections:
//!   less than half the pool is held (none of a pool of one or two), and a connection
//!   left unused for [`UNUSED_FOR`] goes back, so what is held follows the store's own
//!   concurrency.
//! - None is held once the pool is closed, so `PgPool::close` does not wait on the store.
//! - The store's statements take turns: one that finds none held, none idle in the pool and
//!   the pool at its size waits in a queue here, first come, first served, for the next
//!   connection another statement gives up (or one that turns up idle in the pool, looked
//!   for every [`POLL`]; the pool's own waiters come first there). (Tested: when such a
//!   statement waited on the pool itself, connections went round between the others and
//!   never back to the pool: with more writers than connections, some waited out the
//!   others' whole run, seconds. Giving connections back to the pool for them instead cost
//!   a sixth of the throughput at 16 writers: a test round trip and a task each.)
//! - Whoever else waits on the pool (snapshot reads, inline projections' and claims'
//!   transactions, subscriptions, your code) is served too: while the store has all the
//!   pool's connections out (held or in use), one goes back to the pool every
//!   [`OTHERS_EVERY`], where the pool's queue serves them first. (Every time instead cost a
//!   tenth of the throughput at 16 writers on 16 connections. Tested: without it, somebody
//!   else waited more than 20 s.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use es_core::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgDatabaseError, PgSeverity};
use sqlx::{PgConnection, PgPool, Postgres};

/// How long a connection stays held before it goes back to the pool.
const HELD_FOR: Duration = Duration::from_secs(30);

/// How long a held connection may sit unused before it goes back to the pool.
const UNUSED_FOR: Duration = Duration::from_millis(100);

/// How often a statement waiting its turn looks for a connection idle in the pool.
const POLL: Duration = Duration::from_millis(2);

/// While the store has all the pool's connections out, how often one goes back to the pool
/// for whoever else waits there.
const OTHERS_EVERY: Duration = Duration::from_millis(20);

#[derive(Default)]
pub(crate) struct Held {
    slots: Mutex<Slots>,
    /// Told when a connection is held while none was: the watcher then gives back those
    /// left unused.
    kept: Arc<tokio::sync::Notify>,
    /// Gives back connections left unused, and all of them when the pool closes
    /// (restarted when its runtime is gone, as the wake-up tasks are).
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.lock();
        f.debug_struct("Held")
            .field("idle", &slots.idle.len())
            .field("waiting", &slots.waiting.len())
            .finish()
    }
}

/// The connections held and unused, and the statements waiting their turn.
#[derive(Default)]
struct Slots {
    idle: Vec<Kept>,
    /// How many connections the store has out of the pool: held, in use, or on their way
    /// to a statement waiting its turn.
    out: usize,
    /// When one last went back to the pool for others.
    for_others: Option<Instant>,
    /// By arrival: a connection given up goes to the first still waiting (one that stopped
    /// waiting has dropped its receiver and is passed over).
    waiting: VecDeque<tokio::sync::oneshot::Sender<Kept>>,
}

struct Kept {
    conn: PoolConnection<Postgres>,
    /// When it left the pool.
    since: Instant,
    /// When it was last held again.
    unused: Instant,
}

/// A connection lent for one statement (or a few): held again when [`Lease::finish`] says
/// the statements ended as they should, else given back to the pool.
pub(crate) struct Lease<'a> {
    held: &'a Held,
    pool: &'a PgPool,
    conn: Option<PoolConnection<Postgres>>,
    since: Instant,
    /// Fresh from the pool (tested): a failure on it is not a stale connection's.
    tested: bool,
    done: bool,
}

impl std::ops::Deref for Lease<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_deref()
            .expect("a lease holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_deref_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Lease<'_> {
    /// The statements ended with `result`: unless the connection failed, it is in a known
    /// state (an error from the database included) and can serve again.
    pub(crate) fn finish<T>(&mut self, result: &Result<T, StoreError>) {
        self.done = !result.as_ref().is_err_and(connection_lost);
    }

    /// [`Lease::finish`] for a statement that gave a sqlx error.
    pub(crate) fn finish_sqlx<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.done = !result.as_ref().is_err_and(lost);
    }

    /// Whether `error` on this connection calls for running again on a fresh one: a
    /// held connection (untested) that failed as a connection.
    pub(crate) fn stale(&self, error: &StoreError) -> bool {
        !self.tested && connection_lost(error)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let kept = Kept {
            conn,
            since: self.since,
            unused: Instant::now(),
        };
        if !self.done || self.pool.is_closed() || self.since.elapsed() >= HELD_FOR {
            // Back to the pool: its tests and limits apply (dropping spawns that on the
            // runtime, as sqlx does; a lease only lives inside one).
            let mut slots = self.held.lock();
            slots.out = slots.out.saturating_sub(1);
            drop(slots);
            drop(kept);
            return;
        }
        self.held.give(self.pool, kept);
    }
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A held connection; else one idle in the pool, or a new one while the pool may still
    /// open one; else the next one another statement gives up, in turn.
    pub(crate) async fn lease<'a>(
        self: &'a Arc<Self>,
        pool: &'a PgPool,
    ) -> Result<Lease<'a>, sqlx::Error> {
        if pool.is_closed() {
            self.release();
            return self.fresh(pool).await;
        }
        self.watch(pool);
        if let Some(kept) = self.lock().idle.pop() {
            return Ok(self.lease_of(pool, kept.conn, kept.since));
        }
        if let Some(lease) = self.idle_in_pool(pool) {
            return Ok(lease);
        }
        // While the pool may open one, or when nothing is held (a pool of one or two, where
        // nothing goes round outside the pool's own queue), the pool's way.
        if may_open(pool) || pool.options().get_max_connections() <= 2 {
            return self.fresh(pool).await;
        }
        let mut turn = {
            let mut slots = self.lock();
            if let Some(kept) = slots.idle.pop() {
                return Ok(self.lease_of(pool, kept.conn, kept.since));
            }
            let (send, handed) = tokio::sync::oneshot::channel();
            slots.waiting.push_back(send);
            Turn {
                held: self,
                pool,
                handed,
            }
        };
        let deadline = Instant::now() + pool.options().get_acquire_timeout();
        loop {
            tokio::select! {
                kept = &mut turn.handed => {
                    return match kept {
                        Ok(kept) => Ok(self.lease_of(pool, kept.conn, kept.since)),
                        // Senders are used or kept while the store lives: not reached.
                        Err(_) => self.fresh(pool).await,
                    };
                }
                () = tokio::time::sleep(POLL) => {}
            }
            // Gone back to the pool meanwhile (given back, or another's), or the pool may open
            // one again, or closed (its error): the pool's way. (A connection handed over at
            // the same moment goes to the next in turn: `Turn`'s drop.)
            if let Some(lease) = self.idle_in_pool(pool) {
                return Ok(lease);
            }
            if pool.is_closed() || may_open(pool) {
                return self.fresh(pool).await;
            }
            if Instant::now() >= deadline {
                return Err(sqlx::Error::PoolTimedOut);
            }
        }
    }

    /// A connection idle in the pool, if one is and nobody waits on the pool for it (taken
    /// without the pool's test: a failure on it runs the statement again on a fresh one).
    fn idle_in_pool<'a>(&'a self, pool: &'a PgPool) -> Option<Lease<'a>> {
        let conn = pool.try_acquire()?;
        self.lock().out += 1;
        Some(self.lease_of(pool, conn, Instant::now()))
    }

    /// A connection a statement gave up: to the first statement still waiting its turn;
    /// else held, up to less than half the pool (so the rest always serves others); else
    /// back to the pool, as one is every [`OTHERS_EVERY`] while the store has all the pool's
    /// connections out (so that whoever else waits on the pool gets one).
    fn give(&self, pool: &PgPool, mut kept: Kept) {
        let mut slots = self.lock();
        let all = pool.options().get_max_connections() as usize;
        let for_others = slots.out >= all
            && slots
                .for_others
                .is_none_or(|last| last.elapsed() >= OTHERS_EVERY);
        if for_others {
            slots.for_others = Some(Instant::now());
        } else {
            while let Some(waiting) = slots.waiting.pop_front() {
                match waiting.send(kept) {
                    Ok(()) => return,
                    Err(back) => kept = back,
                }
            }
            let max = all.saturating_sub(1) / 2;
            if slots.idle.len() < max {
                let first = slots.idle.is_empty();
                slots.idle.push(kept);
                drop(slots);
                if first {
                    self.kept.notify_one();
                }
                return;
            }
        }
        slots.out = slots.out.saturating_sub(1);
        drop(slots);
        drop(kept);
    }

    /// The lease of a connection not tested since it left the pool at `since`.
    fn lease_of<'a>(
        &'a self,
        pool: &'a PgPool,
        conn: PoolConnection<Postgres>,
        since: Instant,
    ) -> Lease<'a> {
        Lease {
            held: self,
            pool,
            conn: Some(conn),
            since,
            tested: false,
            done: false,
        }
    }

    /// A connection from the pool (tested by it).
    pub(crate) async fn fresh<'a>(&'a self, pool: &'a PgPool) -> Result<Lease<'a>, sqlx::Error> {
        let conn = pool.acquire().await?;
        self.lock().out += 1;
        Ok(Lease {
            held: self,
            pool,
            conn: Some(conn),
            since: Instant::now(),
            tested: true,
            done: false,
        })
    }

    /// Makes sure a task gives back the held connections left unused, and all of them once
    /// `pool` closes (so that `PgPool::close` does not wait for the store to be dropped).
    fn watch(self: &Arc<Self>, pool: &PgPool) {
        let mut watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        if watcher.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let closed = pool.close_event();
        let held: Weak<Self> = Arc::downgrade(self);
        let kept = Arc::clone(&self.kept);
        *watcher = Some(runtime.spawn(async move {
            tokio::pin!(closed);
            'watch: loop {
                tokio::select! {
                    () = &mut closed => break,
                    () = kept.notified() => {}
                }
                // Something is held: look again every so often until nothing is.
                loop {
                    tokio::select! {
                        () = &mut closed => break 'watch,
                        () = tokio::time::sleep(UNUSED_FOR) => {}
                    }
                    let Some(held) = held.upgrade() else { return };
                    if held.give_back_unused() == 0 {
                        break;
                    }
                }
            }
            if let Some(held) = held.upgrade() {
                held.release();
            }
        }));
    }

    /// Gives back the connections unused for [`UNUSED_FOR`]; returns how many are still
    /// held.
    fn give_back_unused(&self) -> usize {
        let mut slots = self.lock();
        let (unused, used): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut slots.idle)
            .into_iter()
            .partition(|k| k.unused.elapsed() >= UNUSED_FOR);
        slots.idle = used;
        slots.out = slots.out.saturating_sub(unused.len());
        let left = slots.idle.len();
        drop(slots);
        give_back(unused);
        left
    }

    /// Gives every held connection back to the pool.
    pub(crate) fn release(&self) {
        let mut slots = self.lock();
        let idle = std::mem::take(&mut slots.idle);
        slots.out = slots.out.saturating_sub(idle.len());
        drop(slots);
        give_back(idle);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        give_back(idle);
    }
}

/// Whether `pool` may still open a connection: asking it does not wait on others.
fn may_open(pool: &PgPool) -> bool {
    pool.size() < pool.options().get_max_connections()
}

/// A statement waiting its turn. Dropped (its connection came from the pool meanwhile, or
/// its future was dropped), it hands a connection sent to it at that moment to the next.
struct Turn<'a> {
    held: &'a Held,
    pool: &'a PgPool,
    handed: tokio::sync::oneshot::Receiver<Kept>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.handed.close();
        if let Ok(kept) = self.handed.try_recv() {
            self.held.give(self.pool, kept);
        }
    }
}

/// Back to the pool: on a runtime, as sqlx returns them (a task that tests each); without
/// one (a store dropped after its runtime), closed where they are, the pool opening others.
fn give_back(idle: Vec<Kept>) {
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(idle);
    } else {
        for kept in idle {
            drop(kept.conn.detach());
        }
    }
}

/// Whether `error` says the connection itself failed (rather than the statement).
pub(crate) fn connection_lost(error: &StoreError) -> bool {
    match error {
        StoreError::Backend(source) => source.downcast_ref::<sqlx::Error>().is_some_and(lost),
        _ => false,
    }
}

/// Whether a sqlx error is the connection's: I/O, protocol, or a fatal error from the
/// server (which then closes the connection).
fn lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|e| matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => false,
    }
}

/// Runs `$body` (statements on the connection bound to `$c`, giving a
/// `Result<_, StoreError>`) on a held connection (or one from the pool), and once more on
/// one fresh from the pool when the held one turns out to have failed as a connection. Run
/// again, `$body` must come to the same outcome (a read; an append, by its event ids).
/// Returns early (`?`) when no connection can be had.
macro_rules! held {
    ($held:expr, $pool:expr, |$c:ident| $body:expr) => {{
        let mut lease = $held.lease($pool).await.map_err($crate::error::backend)?;
        let mut result = {
            let $c: &mut sqlx::PgConnection = &mut lease;
            $body
        };
        if let Err(e) = &result
            && lease.stale(e)
        {
            tracing::debug!(error = %e, "a held connection failed; running again on a fresh one");
            drop(lease);
            lease = $held.fresh($pool).await.map_err($crate::error::backend)?;
            result = {
                let $c: &mut sqlx::PgConnection = &mut lease;
                $body
            };
        }
        lease.finish(&result);
        result
    }};
}

pub(crate) use held;
