//! PostgreSQL event store for `es-core`.
//!
//! [`PostgresStore`] implements [`es_core::EventStore`] on sqlx and passes the es-core
//! conformance suite. One `events` table, created by embedded, versioned migrations in a
//! schema of your choice:
//!
//! - **Appends** are one statement (one round trip): the expected version is checked in the
//!   same `INSERT ... SELECT`, the events travel as arrays (`UNNEST`) or, one alone, as
//!   plain values, and a racing writer surfaces as a unique violation on `(category,
//!   stream_id, version)`, which becomes [`es_core::StoreError::Conflict`] with the actual
//!   version. No table lock. An append on its own that expects a version the store has seen
//!   the stream reach (by a load, or by an append of its own that committed) is a plain
//!   `INSERT` at the versions after it, with no look at the stream first: versions only
//!   grow, so the stream is at that version or past it, and the unique index refuses the
//!   rows when it is past. A [`Repository`](es_core::Repository) appends expecting what its
//!   load just read, so its appends take that path, as long as the store remembers the
//!   stream (8,192 streams at most; a load from a snapshot with nothing after it sees no
//!   version, and group commit takes the path for one-event appends only). Never on your
//!   connection ([`PostgresStore::append_in`]) or with inline projections. (The store takes
//!   it that a stream's events are never deleted under it: a schema dropped and made again
//!   needs a new store.)
//!   An append retried after its outcome was lost (same event ids and content) gets its
//!   original outcome ([`es_core::store::replayed_append`]); any other reuse of an id is
//!   `DuplicateEventId`.
//! - **Loads** ([`es_core::EventStore::read_for_load`], what a `Repository` folds) read five
//!   columns (version, time, type, schema version, payload), not the whole record, and hand
//!   a payload without sealed fields over as text, for the fold to decode once.
//! - **The global log** is ordered by (writer's transaction id, sequence value), and readers
//!   take only rows whose transaction is below `pg_snapshot_xmin(pg_current_snapshot())`,
//!   computed in the same statement. Every transaction below that horizon has ended, so no
//!   event can later commit behind a reader: subscribers never skip a late commit and never
//!   see one twice, with no timeout and no gap-skipping guess. A [`Position`] is that pair.
//! - **Subscriptions** wake on a local signal (same process), on `LISTEN` (other
//!   processes; the `NOTIFY` is sent after the append commits, coalesced, never inside it,
//!   and only while another store listens, which its listener's connection shows by a
//!   shared advisory lock: a bare `LISTEN` on the channel of your own hears nothing; one
//!   listener per store, on a connection of its own, whatever the number of
//!   subscriptions), and poll as well, because a notification can be lost on reconnect. A
//!   record that no longer decodes is delivered in its place as an error naming stream,
//!   version and position; what follows it is still delivered.
//! - **Values read back as written.** Floats come back bit for bit (serde_json's
//!   `float_roundtrip`; floats of 1e16 and above are written in full with a decimal point,
//!   since `jsonb` keeps numbers as decimals and would give them back as integers). What
//!   `jsonb` cannot keep (a NUL character, `-0.0`) or serde_json cannot read back (nesting
//!   past 127 levels), and names or ids too long to index, are refused at append as
//!   `Unstorable`, by [`es_core::store::check_storable`], the same check the in-memory store
//!   runs.
//! - Reads are paged by rows (500) and by bytes (8 MiB of payload and metadata as sent; a
//!   load, which reads no metadata, counts its payloads):
//!   memory stays bounded however large the events. `read_all` reads page after page until
//!   a short page; under writers faster than the reader it goes on with them (use
//!   `subscribe` for a feed that never ends on purpose). A subscription reads one page ahead
//!   of its consumer, on a task of its own, so the next page's query runs while this one is
//!   decoded and handled.
//!
//! - **Connections.** Loads, appends on their own and group commit's statements run on
//!   connections the store keeps out of your pool between statements: sqlx tests a
//!   connection with a round trip each time it leaves the pool and again each time it goes
//!   back, which made a command six round trips instead of two. At most
//!   `(max_connections - 1) / 2` sit held and unused (none of a pool of one or two), one
//!   left unused for 100 ms goes back, each goes back after 30 s, and none is held once the
//!   pool is closed. Statements that find none held, the pool at its size and none idle in
//!   it take turns, first come, first served, for the next connection given up; while the
//!   store has all the pool's connections out, one goes back to the pool every 20 ms for
//!   whoever else waits on it (your code, subscriptions, snapshot reads). A held connection
//!   that fails as a connection is replaced and the statement run again (an append, by its
//!   event ids, gets its first outcome if it had landed).
//!
//! - **Listeners** (`es_core::Projector`): checkpoints in a table; a read model kept in
//!   tables takes the transaction as its handlers' context (`&mut PgConnection`), and each
//!   batch's writes commit with its checkpoint under a per-listener advisory lock taken for
//!   the transaction only (behind PgBouncer too). One process runs a listener at a time,
//!   the one holding its lease (`listener_leases`); another process's runner stands by and
//!   takes over when it stops, or when its lease runs out. A listener reads only its event
//!   types (`subscribe_types`, filtered in SQL on an index). Inline projections
//!   ([`PostgresStore::with_inline`]) run inside every append's transaction.
//! - **Set-based validation**: `append_all` appends to several streams in one transaction.
//! - **Group commit** ([`PostgresStore::with_group_commit`], opt-in): appends that arrive
//!   together share one statement, one transaction and one commit, each with its own
//!   expected version; one that does not hold fails alone. A lone writer goes at once. A
//!   batch of one-event appends to streams seen at their expected versions is a plain
//!   `INSERT` too; after a version was taken under one, the next few batches skip a taken
//!   version (`ON CONFLICT DO NOTHING` on the version key) instead of failing on it.
//!
//! The costs, and what to do about them:
//!
//! - A long-open write transaction anywhere on the server holds every subscriber back (it
//!   never loses an event): [`PostgresStore::horizon`] names the backend holding it.
//! - Transaction ids restart lower after a dump and restore (or a logical-replication
//!   upgrade): positions of the new cluster must sort after the old ones. Before restoring
//!   into a new cluster, stop it and raise its transaction-id epoch past the old one:
//!   `pg_resetwal --epoch=<E + 1> <data dir>`, where `E` is the epoch of the highest restored
//!   id (`SELECT max(transaction_id)::text::numeric / 4294967296 FROM events`, rounded down).
//!   New ids then sort after every restored one. (Burning ids one by one is no option: it
//!   would take days and run into wraparound.) Or reset subscribers' checkpoints and
//!   rebuild their read models.
//! - Behind a transaction-pooling proxy (PgBouncer), use
//!   [`PostgresStore::with_transaction_pooling`]: each statement runs in a transaction of
//!   its own (two more round trips), none is prepared by name, and subscribers poll instead
//!   of `LISTEN`. Migrations take a session lock: run [`PostgresStore::migrate`] apart, on a
//!   direct connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use es_postgres::PostgresStore;
//! // Own pool, runs the migrations:
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1/test").await?;
//! // Or your pool and schema, migrating apart:
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1/test").await?;
//! let store = PostgresStore::new(pool).with_schema("bank")?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod append;
mod error;
mod group;
mod held;
mod listeners;
mod personal;
mod pinned;
mod reached;
mod read;
mod schema;
mod snapshots;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use es_core::{
    Appended, EventStore, ExpectedVersion, LoadRecord, NewEvent, Position, RecordedEvent, Snapshot,
    StoreError, StreamAppend, StreamId,
};
use futures::Stream;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

pub use error::PostgresError;
pub use group::GroupCommit;
pub use listeners::ListenerTx;
pub use read::{Holder, Horizon, Lag};
/// The pool type [`PostgresStore::new`] takes (re-exported so callers need not name sqlx).
pub use sqlx::PgPool;

/// The connection type [`PostgresStore::append_in`] takes (`&mut *tx` of a transaction).
pub use sqlx::PgConnection;

use schema::Statements;

/// How a store reads: page sizes and polling. Copies made by `with_*` share the pool, the
/// schema and the wake-ups, and differ only here.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// How many records a read fetches per query.
    batch: i64,
    /// How many bytes of payload and metadata (as stored) a page holds at most: the first
    /// record of a page always comes, so a page exceeds this by at most one record.
    batch_bytes: i64,
    /// How often an idle subscription polls when no wake-up arrives.
    poll: Duration,
    /// Whether subscriptions `LISTEN` for other processes' appends.
    listen: bool,
    /// Behind a transaction-pooling proxy: each statement in a transaction of its own, none
    /// prepared by name, no `LISTEN` and no `NOTIFY` (see `pinned`).
    pooled: bool,
    /// Group commit, when opted in.
    group: Option<GroupCommit>,
}

const DEFAULTS: Settings = Settings {
    batch: 500,
    batch_bytes: 8 * 1024 * 1024,
    poll: Duration::from_millis(500),
    listen: true,
    pooled: false,
    group: None,
};

/// An event store in PostgreSQL. Cheap to clone (it shares the pool).
#[derive(Clone, Debug)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    sql: Statements,
    settings: Settings,
    /// Inline projections, run inside every append's transaction.
    inline: Vec<Arc<dyn listeners::InlineProjection>>,
    /// Shared by the copies `with_batch_size` and friends make: same schema, same wake-ups.
    wake: Arc<wake::Wake>,
    /// Group commit's queue (each copy its own: a copy may differ in its settings).
    group: Option<group::Group>,
    /// A streaming replica the global log is read from (`with_replica`).
    replica: Option<PgPool>,
    /// Connections kept out of the pool for loads and appends, shared by the copies.
    held: Arc<held::Held>,
    /// The versions the store has seen its streams reach, shared by the copies.
    reached: Arc<reached::Reached>,
    /// How many subjects `forget` deleted through this store and its copies.
    forgets: Arc<std::sync::atomic::AtomicU64>,
    /// Who holds listeners' leases through this store and its copies (one process's).
    owner: uuid::Uuid,
}

impl PostgresStore {
    /// Connects with its own pool to `url`, in schema `public`, and runs the migrations.
    ///
    /// # Errors
    ///
    /// When the server is unreachable or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, PostgresError> {
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .connect(url)
            .await
            .map_err(PostgresError::Connect)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on your pool, in schema `public`. Run [`PostgresStore::migrate`] once before
    /// use (apart from a transaction-pooling proxy: migrations take a session lock).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self::build(pool, "public", DEFAULTS)
    }

    fn build(pool: PgPool, schema: &str, settings: Settings) -> Self {
        let sql = Statements::new(schema);
        let held: Arc<held::Held> = Arc::default();
        let wake = Arc::new(wake::Wake::new(pool.clone(), Arc::clone(&held), &sql));
        Self {
            inner: Arc::new(Inner {
                pool,
                sql,
                settings,
                inline: Vec::new(),
                wake,
                group: settings.group.map(group::Group::new),
                replica: None,
                held,
                reached: Arc::default(),
                forgets: Arc::default(),
                owner: uuid::Uuid::now_v7(),
            }),
        }
    }

    /// A copy with other settings, sharing the pool, the schema and the wake-ups.
    fn with(&self, change: impl FnOnce(&mut Settings)) -> Self {
        let i = &self.inner;
        let mut settings = i.settings;
        change(&mut settings);
        Self {
            inner: Arc::new(Inner {
                pool: i.pool.clone(),
                sql: Statements::new(&i.sql.schema),
                settings,
                inline: i.inline.clone(),
                wake: Arc::clone(&i.wake),
                group: settings.group.map(group::Group::new),
                replica: i.replica.clone(),
                held: Arc::clone(&i.held),
                reached: Arc::clone(&i.reached),
                forgets: Arc::clone(&i.forgets),
                owner: i.owner,
            }),
        }
    }

    /// The same store with an inline projection: its handlers run inside every append's
    /// transaction (the store's own, or yours with [`PostgresStore::append_in`]), so its
    /// tables are never behind the log. A handler that fails refuses the whole append with
    /// [`StoreError::InlineProjection`] naming the projection: nothing of it is written. Its
    /// handlers run one append at a time (the projection is behind a lock); a retried append
    /// that already landed does not run them again. Register it before the store is used.
    ///
    /// Unlike a read model run by a [`Projector`](es_core::Projector), an inline projection
    /// gets no schema of its own: its `DDL` is not run and nothing is put on the
    /// `search_path` for it. Create its tables yourself (in your migrations) and write
    /// qualified names in its handlers.
    #[must_use]
    pub fn with_inline<P>(self, projection: P) -> Self
    where
        P: es_core::Projection<Context = PgConnection>,
    {
        let mut copy = self.with(|_| {});
        if let Some(inner) = Arc::get_mut(&mut copy.inner) {
            inner
                .inline
                .push(Arc::new(listeners::Inline(tokio::sync::Mutex::new(
                    projection,
                ))));
        }
        copy
    }

    /// The same store in another schema: `[a-z_][a-z0-9_]*`, at most 48 bytes, not starting
    /// with `pg_` (reserved by PostgreSQL). The name is validated and quoted into every
    /// statement once, here, so reserved words such as `order` or `user` are fine.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidSchema`] for any other name.
    pub fn with_schema(self, schema: &str) -> Result<Self, PostgresError> {
        schema::validate(schema)?;
        let mut store = Self::build(self.inner.pool.clone(), schema, self.inner.settings);
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.inline.clone_from(&self.inner.inline);
            inner.replica.clone_from(&self.inner.replica);
        }
        Ok(store)
    }

    /// How many records one read query fetches at most (default 500; at least 1).
    #[must_use]
    pub fn with_batch_size(self, batch: u32) -> Self {
        self.with(|s| s.batch = i64::from(batch.max(1)))
    }

    /// How many bytes of payload and metadata a read page holds at most, as sent (default
    /// 8 MiB; a load's page, which holds no metadata, counts its payloads): the reader stops
    /// taking a page's rows once they reach it, and reads the rest of the page off the wire
    /// without holding it. A page always holds at least one record, so one record larger
    /// than this is still read. Memory stays bounded by the smaller of this and
    /// [`with_batch_size`] records.
    ///
    /// [`with_batch_size`]: PostgresStore::with_batch_size
    #[must_use]
    pub fn with_batch_bytes(self, bytes: u32) -> Self {
        self.with(|s| s.batch_bytes = i64::from(bytes.max(1)))
    }

    /// How often an idle subscription polls (default 500 ms).
    #[must_use]
    pub fn with_poll_interval(self, poll: Duration) -> Self {
        self.with(|s| s.poll = poll)
    }

    /// Whether subscriptions `LISTEN` for appends of other processes (default true). Turn
    /// it off behind a transaction-pooling proxy; subscriptions then poll.
    #[must_use]
    pub fn with_listen(self, listen: bool) -> Self {
        self.with(|s| s.listen = listen)
    }

    /// Whether the pool connects through a transaction-pooling proxy (PgBouncer with
    /// `pool_mode = transaction`; default false). There a server belongs to a client only
    /// inside a transaction: the store then runs each statement in a transaction of its own
    /// (two more round trips each), keeps no statement prepared by name, and neither
    /// `LISTEN`s nor `NOTIFY`s (subscribers poll). Run [`PostgresStore::migrate`] on a
    /// direct connection: migrations take a session lock.
    #[must_use]
    pub fn with_transaction_pooling(self, pooled: bool) -> Self {
        self.with(|s| {
            s.pooled = pooled;
            s.listen = s.listen && !pooled;
        })
    }

    /// The same store reading the global log from a streaming replica of its server (a hot
    /// standby, e.g. made with `pg_basebackup -R`): `read_all`, `subscribe` and
    /// `subscribe_types`, and so every projection and reactor, read there, so read load
    /// scales out with PostgreSQL's own replication. Appends, a stream's reads (the loads
    /// commands decide on), checkpoints and read-model writes stay on the primary.
    ///
    /// The horizon holds on a standby: PostgreSQL keeps there every transaction the primary
    /// had not finished as running, so a reader never skips a late commit. What it adds is
    /// the replication lag: a subscriber sees an event once the standby has replayed it
    /// (`wait_for` after a command waits that much longer). `NOTIFY` does not reach a
    /// standby: the store listens on the primary, and a wake-up that finds nothing on the
    /// standby yet looks again soon (10 ms, doubling up to the poll interval).
    #[must_use]
    pub fn with_replica(self, replica: PgPool) -> Self {
        let mut copy = self.with(|_| {});
        if let Some(inner) = Arc::get_mut(&mut copy.inner) {
            inner.replica = Some(replica);
        }
        copy
    }

    /// The same store with group commit: appends that arrive together (from any task of this
    /// process) go to PostgreSQL in one statement and one transaction, so many writers share
    /// a commit instead of each waiting for its own. Each append keeps its own expected
    /// version: one that does not hold fails alone with its `Conflict`, and the others land.
    /// No caller hears of success before the commit. A lone writer's append goes at once
    /// (nothing waits for company); under load, the appends that arrive while one batch
    /// commits form the next, bounded by [`GroupCommit::max_batch`].
    ///
    /// Appends with inline projections, inside your transaction ([`PostgresStore::append_in`]),
    /// or across streams (`append_all`) keep their own transaction, as do empty appends and
    /// appends sealing personal fields. When a batch fails as a whole (a writer outside it
    /// took a version first, an event id already stored, a lost connection), it is sent once
    /// more (a batch that did not look at its streams: skipping a taken version), and then
    /// each of its appends still without an outcome runs on its own, with the same outcome
    /// it would have had alone.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use es_postgres::{GroupCommit, PostgresStore};
    /// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/test")
    ///     .await?
    ///     .with_group_commit(GroupCommit::new().max_batch(128));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_group_commit(self, config: GroupCommit) -> Self {
        self.with(|s| s.group = Some(config))
    }

    /// Drops a version of a read model kept in tables (its schema and everything in it),
    /// once another version serves; the serving version is never dropped.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when it serves, or PostgreSQL refuses.
    pub async fn drop_projection_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(), StoreError> {
        listeners::drop_version(&self.inner, name, version).await
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.inner.sql.schema
    }

    /// Creates the schema if needed and runs the embedded migrations in it, on a connection
    /// of its own (the migration lock is session-level), then closes that connection.
    ///
    /// # Errors
    ///
    /// When the server is unreachable or a migration fails.
    pub async fn migrate(&self) -> Result<(), PostgresError> {
        let schema = &self.inner.sql.schema;
        let options: PgConnectOptions = (*self.inner.pool.connect_options()).clone();
        // search_path only on this private connection, for the unqualified names of the
        // migration files; it is closed right after.
        let mut conn = options
            .options([("search_path", schema.as_str())])
            .connect()
            .await
            .map_err(PostgresError::Connect)?;
        let mut migrator = sqlx::migrate!("./migrations");
        // sqlx interpolates this as written: quoted, so reserved words (`order`) work.
        migrator.create_schema(format!("\"{schema}\""));
        // A table of our own, in our schema: an application's own sqlx migrations (in
        // `_sqlx_migrations`) never mix with the store's.
        migrator.dangerous_set_table_name(format!("\"{schema}\".es_migrations"));
        let result = migrator.run(&mut conn).await;
        let _ = conn.close().await;
        result.map_err(PostgresError::Migrate)
    }

    /// Appends inside your transaction, so what else it writes (an inline projection's read
    /// model) commits or rolls back together with the events. The expected version is
    /// checked as in [`EventStore::append`]. Everything runs on your connection, under a
    /// savepoint: a refused append (conflict, duplicate id, unstorable input) writes nothing
    /// and leaves your transaction usable, so you decide whether to commit what else it
    /// wrote; `Any` retries a lost race inside it. A retry of an append that already landed
    /// gets its original outcome here too (write what else you write idempotently, keyed by
    /// event id). After you commit, call [`PostgresStore::notify_committed`] to wake
    /// subscribers at once (they would find the events at their next poll anyway).
    ///
    /// Pass a transaction begun through sqlx (`pool.begin()`, `conn.begin()`): the savepoint
    /// needs sqlx to know it is inside one. On a connection outside a transaction, each
    /// statement commits on its own, as [`EventStore::append`] does. In a `REPEATABLE READ`
    /// transaction whose snapshot predates a racing writer, a conflict's `actual` is the
    /// least version the stream has reached (the snapshot cannot see further).
    ///
    /// ```no_run
    /// # async fn demo(store: es_postgres::PostgresStore, events: Vec<es_core::NewEvent>) -> Result<(), Box<dyn std::error::Error>> {
    /// use es_core::{ExpectedVersion, StreamId};
    /// let mut tx = store.pool().begin().await?;
    /// store.append_in(&mut tx, &StreamId::new("account", "1"), ExpectedVersion::NoStream, events).await?;
    /// sqlx::query("UPDATE balances SET total = total + 1").execute(&mut *tx).await?;
    /// tx.commit().await?;
    /// store.notify_committed();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`EventStore::append`].
    pub async fn append_in(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        append::append(&self.inner, Some(conn), stream, expected, events).await
    }

    /// Wakes this process's subscriptions and notifies other processes: call after
    /// committing a transaction that appended with [`PostgresStore::append_in`].
    pub fn notify_committed(&self) {
        self.inner.wake.appended(!self.inner.settings.pooled);
    }

    /// How far a subscriber at `after` is behind: committed events after it (including
    /// those still behind the horizon) and the age of the oldest of them.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub async fn lag(&self, after: Option<Position>) -> Result<Lag, StoreError> {
        read::lag(&self.inner, after).await
    }

    /// The global log's horizon: the oldest transaction still running on the server (which
    /// every subscriber waits behind), with the backend that holds it.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub async fn horizon(&self) -> Result<Horizon, StoreError> {
        read::horizon(&self.inner).await
    }
}

impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        append::append(&self.inner, None, stream, expected, events).await
    }

    async fn append_all(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, StoreError> {
        append::append_all(&self.inner, parts).await
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<>
    {
        read::read_stream(Arc::clone(&self.inner), stream.clone(), from)
    }

    fn read_for_load(
        &self,
        stream: &StreamId,
        from: u64,
    ) -> impl Stream<Item = Result<LoadRecord, StoreError>> + Send + Unpin + 'static + use<> {
        read::read_for_load(Arc::clone(&self.inner), stream.clone(), from)
    }

    fn read_all(
        &self,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<>
    {
        read::read_all(Arc::clone(&self.inner), after)
    }

    fn subscribe(
        &self,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + Unpin + 'static + use<>
    {
        read::subscribe(Arc::clone(&self.inner), after)
    }

    fn subscribe_types(
        &self,
        after: Option<Position>,
        types: &'static [&'static str],
    ) -> impl Stream<Item = Result<es_core::Delivery, StoreError>> + Send + Unpin + 'static + use<>
    {
        read::subscribe_types(Arc::clone(&self.inner), after, types)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(error::backend)?;
        append::stream_version(&mut conn, &self.inner, stream, true).await
    }

    async fn find_event(
        &self,
        stream: &StreamId,
        event_id: uuid::Uuid,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let mut conn = self.inner.pool.acquire().await.map_err(error::backend)?;
        let found = append::stored_records(&mut conn, &self.inner, &[event_id], true).await?;
        Ok(found.into_values().find(|r| r.stream == *stream))
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        snapshot_version: u32,
    ) -> Result<Option<Snapshot>, StoreError> {
        snapshots::load(&self.inner, stream, snapshot_version).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        snapshots::save(&self.inner, &snapshot).await
    }

    async fn forget(&self, subject: &str) -> Result<(), StoreError> {
        // Counted before as well as after: a cache that reads the count while the key is
        // being deleted keeps nothing it loads meanwhile.
        self.inner
            .forgets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let forgotten = personal::forget(&self.inner, subject).await;
        self.inner
            .forgets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        forgotten
    }

    fn forgets(&self) -> u64 {
        self.inner.forgets.load(std::sync::atomic::Ordering::SeqCst)
    }
}
