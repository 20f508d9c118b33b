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
//! - Nobody waits on the pool for long while connections go round between the others: once
//!   a statement has waited [`STARVING`] for the pool, connections coming back go to the
//!   pool (whose queue is first come, first served) instead of being held. (Tested: without
//!   this, with more writers than connections, some waited out the others' whole run,
//!   seconds. Giving connections back as soon as anyone waits cost a third of the
//!   throughput: with as many writers as connections somebody nearly always waits a little.
//!   Handing them over here instead meant racing the pool's `acquire`, and dropping that
//!   while it tests a connection closes the connection.)

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use es_core::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgDatabaseError, PgSeverity};
use sqlx::{PgConnection, PgPool, Postgres};

/// How long a connection stays held before it goes back to the pool.
const HELD_FOR: Duration = Duration::from_secs(30);

/// How long a held connection may sit unused before it goes back to the pool.
const UNUSED_FOR: Duration = Duration::from_millis(100);

/// How long a statement may wait for the pool before connections coming back go to the
/// pool rather than being held.
const STARVING: Duration = Duration::from_millis(10);

#[derive(Default)]
pub(crate) struct Held {
    idle: Mutex<Vec<Kept>>,
    /// When each statement waiting for the pool began to wait, by a number of its own.
    waiting: Mutex<Waiting>,
    /// Told when a connection is held while none was: the watcher then gives back those
    /// left unused.
    kept: Arc<tokio::sync::Notify>,
    /// Gives back connections left unused, and all of them when the pool closes
    /// (restarted when its runtime is gone, as the wake-up tasks are).
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("idle", &self.lock().len())
            .finish()
    }
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
        if !self.done
            || self.pool.is_closed()
            || self.since.elapsed() >= HELD_FOR
            || self.held.starving()
        {
            // Back to the pool: its tests and limits apply, and it serves whoever has waited
            // for it longest (dropping spawns that on the runtime, as sqlx does; a lease only
            // lives inside one).
            return;
        }
        // Less than half the pool, so the rest always serves others.
        let max = (self.pool.options().get_max_connections().saturating_sub(1) / 2) as usize;
        let mut idle = self.held.lock();
        if idle.len() < max {
            let first = idle.is_empty();
            idle.push(Kept {
                conn,
                since: self.since,
                unused: Instant::now(),
            });
            drop(idle);
            if first {
                self.held.kept.notify_one();
            }
        }
    }
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A held connection, or one from the pool.
    pub(crate) async fn lease<'a>(
        self: &'a Arc<Self>,
        pool: &'a PgPool,
    ) -> Result<Lease<'a>, sqlx::Error> {
        if !pool.is_closed() {
            self.watch(pool);
            let kept = self.lock().pop();
            if let Some(Kept { conn, since, .. }) = kept {
                return Ok(Lease {
                    held: self,
                    pool,
                    conn: Some(conn),
                    since,
                    tested: false,
                    done: false,
                });
            }
        } else {
            self.release();
        }
        self.fresh(pool).await
    }

    /// Whether a statement has waited for the pool for [`STARVING`] or more.
    fn starving(&self) -> bool {
        let waiting = self.waiting();
        waiting
            .since
            .first()
            .is_some_and(|(_, since)| since.elapsed() >= STARVING)
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection from the pool (tested by it).
    pub(crate) async fn fresh<'a>(&'a self, pool: &'a PgPool) -> Result<Lease<'a>, sqlx::Error> {
        let conn = {
            let _waits = Waits::new(self);
            pool.acquire().await?
        };
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
        let mut idle = self.lock();
        let (unused, used): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut *idle)
            .into_iter()
            .partition(|k| k.unused.elapsed() >= UNUSED_FOR);
        *idle = used;
        let left = idle.len();
        drop(idle);
        give_back(unused);
        left
    }

    /// Gives every held connection back to the pool.
    pub(crate) fn release(&self) {
        let idle = std::mem::take(&mut *self.lock());
        give_back(idle);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.lock());
        give_back(idle);
    }
}

/// The statements waiting for the pool: since when, by arrival (the first has waited
/// longest).
#[derive(Default)]
struct Waiting {
    since: Vec<(u64, Instant)>,
    next: u64,
}

/// A statement waiting for the pool, counted while it lives (also when its future is
/// dropped).
struct Waits<'a> {
    held: &'a Held,
    number: u64,
}

impl<'a> Waits<'a> {
    fn new(held: &'a Held) -> Self {
        let mut waiting = held.waiting();
        let number = waiting.next;
        waiting.next += 1;
        waiting.since.push((number, Instant::now()));
        Self { held, number }
    }
}

impl Drop for Waits<'_> {
    fn drop(&mut self) {
        let mut waiting = self.held.waiting();
        if let Some(at) = waiting.since.iter().position(|(n, _)| *n == self.number) {
            waiting.since.remove(at);
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
