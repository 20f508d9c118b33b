//! What a store offers listeners: checkpoints ([`Checkpoints`]) and, for read models kept in
//! the store itself, a context that commits a batch's writes together with the checkpoint
//! ([`ContextStore`]). Every store supplies the empty context `()` (read models in memory);
//! PostgreSQL also supplies its transaction's connection.

use std::future::Future;

use crate::position::Position;
use crate::store::{EventStore, StoreError};

/// A store that keeps listeners' checkpoints, by name.
pub trait Checkpoints: EventStore {
    /// The position a listener of this name got to (`None`: it never committed one).
    fn load_checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Records the position a listener of this name got to.
    fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The position of the last event a reader can see now (`None`: the log is empty): a
    /// reactor's first run starts after it.
    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Claims, or renews, the right to run the listener keyed `key` for `lease`: `true` when
    /// this store (this process's) holds it now, `false` while another holds it and it has
    /// not run out (this process's runner then waits as a standby). A store shared by
    /// several processes keeps one holder per key; the default, for a store of one process,
    /// always grants it.
    fn claim(
        &self,
        key: &str,
        lease: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (key, lease);
        std::future::ready(Ok(true))
    }

    /// Gives up the right to run the listener keyed `key` (its runner stopped), so a
    /// standby takes over at once. The default does nothing.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = key;
        std::future::ready(Ok(()))
    }

    /// How many events of `types` lie after `after` up to `up_to` (inclusive), for a
    /// rebuild's progress; `None` where the store cannot count cheaply (the default).
    fn count(
        &self,
        after: Option<Position>,
        up_to: Position,
        types: &'static [&'static str],
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        let _ = (after, up_to, types);
        std::future::ready(Ok(None))
    }
}

/// A store that gives handlers a context `C` and commits what they wrote through it together
/// with the listener's checkpoint, so after a crash anywhere no effect is doubled or lost.
///
/// Every [`Checkpoints`] store supplies `C = ()`: handlers that take no context, whose read
/// model lives in memory (so it is not durable: it is folded again from the start on every
/// run, and its checkpoint is not kept).
pub trait ContextStore<C: Send>: Checkpoints {
    /// One unit of work (a transaction) holding the context.
    type Unit: Send;

    /// Whether the context's writes are durable, committed with the checkpoint: the
    /// listener then resumes from its checkpoint.
    const DURABLE: bool;

    /// Starts a unit of work for the listener `name` (on PostgreSQL: a transaction that
    /// holds the listener's lock, so one runner per name across processes advances it).
    fn begin(&self, name: &str) -> impl Future<Output = Result<Self::Unit, StoreError>> + Send;

    /// Starts a unit of work for one partition of the listener `name` (see
    /// [`Projector::partition`](crate::Projector::partition)): `key` names the partition's
    /// lock and checkpoint, while the read model's data stays `name`'s (on PostgreSQL: the
    /// version's schema). By default the same as [`ContextStore::begin`] on `key`.
    fn begin_partition(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<Self::Unit, StoreError>> + Send {
        let _ = name;
        self.begin(key)
    }

    /// The handlers' context inside the unit.
    fn context(unit: &mut Self::Unit) -> &mut C;

    /// The checkpoint of `name` as the unit sees it (on PostgreSQL read under its lock).
    fn checkpoint_in(
        unit: &mut Self::Unit,
        name: &str,
    ) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// Commits the unit's writes with `name`'s checkpoint at `position`.
    fn commit(
        unit: Self::Unit,
        name: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Readies `version` of the read model `name` (on PostgreSQL: a schema of its own,
    /// created with the read model's `ddl` the first time) and returns the version that
    /// serves readers now, if any. A version other than the serving one is rebuilt beside
    /// it, then [`ContextStore::activate`]d.
    fn prepare(
        &self,
        name: &str,
        version: u32,
        ddl: &str,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// Makes `version` of `name` the one readers see (on PostgreSQL: its views swapped in
    /// one transaction).
    fn activate(
        &self,
        name: &str,
        version: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: Checkpoints> ContextStore<()> for S {
    type Unit = ();
    const DURABLE: bool = false;

    async fn begin(&self, _name: &str) -> Result<Self::Unit, StoreError> {
        Ok(())
    }

    fn context(unit: &mut Self::Unit) -> &mut () {
        unit
    }

    async fn checkpoint_in(_unit: &mut (), _name: &str) -> Result<Option<Position>, StoreError> {
        Ok(None)
    }

    async fn commit(_unit: (), _name: &str, _position: Position) -> Result<(), StoreError> {
        Ok(())
    }

    /// In memory every run folds from the start: the version run is the one that serves.
    async fn prepare(
        &self,
        _name: &str,
        version: u32,
        _ddl: &str,
    ) -> Result<Option<u32>, StoreError> {
        Ok(Some(version))
    }

    async fn activate(&self, _name: &str, _version: u32) -> Result<(), StoreError> {
        Ok(())
    }
}
