//! The schema the store lives in, and every SQL statement it runs, built once at start-up
//! with the schema name validated and quoted (never `search_path`, which is session state
//! and does not survive a transaction-pooling proxy).

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::PostgresError;

/// The longest schema name accepted; leaves room for the notification channel's prefix
/// within PostgreSQL's 63-byte identifiers.
const MAX_SCHEMA_LEN: usize = 48;

/// Checks a schema name: `[a-z_][a-z0-9_]*`, at most 48 bytes, not starting with `pg_`
/// (PostgreSQL reserves that prefix for its own schemas). Lower case only, so the quoted and
/// unquoted forms name the same schema. Reserved words (`order`, `user`) are fine: the name
/// is quoted wherever it is used.
pub(crate) fn validate(schema: &str) -> Result<(), PostgresError> {
    let mut bytes = schema.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && schema.len() <= MAX_SCHEMA_LEN && !schema.starts_with("pg_") {
        Ok(())
    } else {
        Err(PostgresError::InvalidSchema(schema.to_owned()))
    }
}

// `transaction_xid`, not `transaction_id`: an output column named like the table's column
// would win in ORDER BY, and the log would be ordered as text ("1000" < "999").
const COLUMNS: &str = "position, transaction_id::text AS transaction_xid, category, stream_id, \
     version, event_type, schema_version, payload, metadata, event_id, recorded_at";

/// The output names of [`COLUMNS`], for a query that selects them from a subquery.
const COLUMN_NAMES: &str = "page.position, page.transaction_xid, page.category, page.stream_id, \
     page.version, page.event_type, page.schema_version, page.payload, page.metadata, page.event_id, \
     page.recorded_at";

/// The first key of the listeners' advisory locks ("es" and 1), so they do not collide with
/// an application's own single-key locks.
const LOCK_SPACE: i32 = 0x6573_0001;

/// The first key of the shared advisory lock a store holds on its `LISTEN` connection
/// ("es" and 2): a store sends `NOTIFY` only while another session holds it.
const PRESENCE_SPACE: i32 = 0x6573_0002;

/// Every statement, with the schema quoted in.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) schema: String,
    pub(crate) channel: String,
    pub(crate) present: SqlStr,
    pub(crate) notify: SqlStr,
    pub(crate) append: SqlStr,
    pub(crate) append_one: SqlStr,
    pub(crate) append_group: SqlStr,
    pub(crate) append_group_exact: SqlStr,
    pub(crate) append_group_exact_or_skip: SqlStr,
    pub(crate) append_exact: SqlStr,
    pub(crate) append_exact_one: SqlStr,
    pub(crate) stream_version: SqlStr,
    pub(crate) read_stream: SqlStr,
    pub(crate) load_stream: SqlStr,
    pub(crate) read_all: SqlStr,
    pub(crate) read_types: SqlStr,
    pub(crate) stored_events: SqlStr,
    pub(crate) lag: SqlStr,
    pub(crate) head: SqlStr,
    pub(crate) load_checkpoint: SqlStr,
    pub(crate) save_checkpoint: SqlStr,
    pub(crate) lock_listener: SqlStr,
    pub(crate) lease_claim: SqlStr,
    pub(crate) lease_release: SqlStr,
    pub(crate) begin_listener: SqlStr,
    pub(crate) version_known: SqlStr,
    pub(crate) version_add: SqlStr,
    pub(crate) version_serving: SqlStr,
    pub(crate) version_activate: SqlStr,
    pub(crate) version_active: SqlStr,
    pub(crate) version_delete: SqlStr,
    pub(crate) checkpoint_delete: SqlStr,
    pub(crate) snapshot_load: SqlStr,
    pub(crate) snapshot_save: SqlStr,
    pub(crate) keys_read: SqlStr,
    pub(crate) keys_add: SqlStr,
    pub(crate) keys_forget: SqlStr,
    pub(crate) snapshots_of_subject_delete: SqlStr,
}

impl Statements {
    pub(crate) fn new(schema: &str) -> Self {
        let events = format!("\"{schema}\".events");
        let checkpoints = format!("\"{schema}\".checkpoints");
        let leases = format!("\"{schema}\".listener_leases");
        let versions = format!("\"{schema}\".projection_versions");
        let snapshots = format!("\"{schema}\".snapshots");
        let keys = format!("\"{schema}\".personal_keys");
        // An append's statement around the rows it inserts: the stream's current version
        // and whether appending keeps its order, then the rows, then what came of it.
        let head = format!(
            "WITH last AS (SELECT version, transaction_id FROM {events} \
                           WHERE category = $1 AND stream_id = $2 ORDER BY version DESC LIMIT 1), \
             current AS (SELECT coalesce((SELECT version FROM last), 0) AS version, \
                                coalesce((SELECT transaction_id <= pg_current_xact_id_if_assigned() FROM last), true) \
                                    AS in_order), \
             inserted AS ( \
               INSERT INTO {events} \
                   (category, stream_id, version, event_type, schema_version, payload, metadata, event_id)"
        );
        let exact_group = format!(
            "INSERT INTO {events} \
                 (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
             SELECT new.category, new.stream_id, new.version, new.event_type, new.schema_version, \
                    new.payload::jsonb, new.metadata::jsonb, new.event_id \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int4[], $6::text[], \
                         $7::text[], $8::uuid[]) \
                 AS new(category, stream_id, version, event_type, schema_version, payload, metadata, event_id)"
        );
        let exact_returning = "RETURNING event_id, position, transaction_id::text AS transaction_xid, version, recorded_at";
        let tail = "RETURNING position, transaction_id, version, recorded_at) \
             SELECT i.position, i.transaction_id::text AS transaction_xid, i.version, i.recorded_at, \
                    c.version AS current_version, c.in_order \
             FROM current c LEFT JOIN inserted i ON true";
        let channel = format!("es_events_{schema}");
        // The presence lock's second key: the channel's hash, kept positive so that it
        // reads back from `pg_locks` as the same `oid`.
        let presence = format!("{PRESENCE_SPACE}, hashtext('{channel}') & 2147483647");
        Self {
            schema: schema.to_owned(),
            // Taken by the `LISTEN` connection (a session lock, held until it disconnects),
            // which also learns its backend's id.
            present: sql(format!(
                "SELECT pg_advisory_lock_shared({presence}), pg_backend_pid()"
            )),
            // A `NOTIFY` only where another session listens: one that holds the presence
            // lock, other than this store's own listener ($1: its backend id, or 0), whose
            // subscriptions this store wakes itself. Without a `NOTIFY` the statement is
            // read-only: no transaction id, no commit to flush.
            notify: sql(format!(
                "SELECT pg_notify('{channel}', '') FROM pg_locks \
                 WHERE locktype = 'advisory' AND classid = {PRESENCE_SPACE}::oid \
                   AND objid = (hashtext('{channel}') & 2147483647)::oid AND objsubid = 2 \
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND granted AND pid <> $1 AND pid <> pg_backend_pid() \
                 LIMIT 1"
            )),
            channel,
            // One round trip: the expected version is checked against the stream's current
            // version in the same statement ($3 NULL: any version), and the events go in as
            // arrays (bind parameters stay at 8 whatever the batch size). A racing writer
            // surfaces as a unique violation on (category, stream_id, version). The stream's
            // version as this statement saw it comes back too (`current_version`, one row with
            // NULL elsewhere when nothing was inserted), so a conflict reports the version it
            // was decided against, not one read later.
            //
            // In a transaction of several statements (`append_in`, `append_all`), the
            // transaction id may be older than that of the stream's last event (another
            // writer committed after this transaction took its id): an event appended now
            // would sort before that one in the global log, out of the stream's order. The
            // statement refuses that (`in_order` false, nothing inserted). A transaction
            // that has no id yet gets one above every committed one, and its own earlier
            // events (same id) come before: always in order.
            append: sql(format!(
                "{head} \
                   SELECT $1, $2, current.version + new.ord, new.event_type, new.schema_version, \
                          new.payload::jsonb, new.metadata::jsonb, new.event_id \
                   FROM current, \
                        UNNEST($4::text[], $5::int4[], $6::text[], $7::text[], $8::uuid[]) \
                            WITH ORDINALITY AS new(event_type, schema_version, payload, metadata, event_id, ord) \
                   WHERE ($3::int8 IS NULL OR current.version = $3::int8) AND current.in_order \
                   ORDER BY new.ord \
                 {tail}"
            )),
            // The same for one event ($4-$8 one value each, not arrays): no arrays to send
            // and take apart, no ordering. Most commands append one event.
            append_one: sql(format!(
                "{head} \
                   SELECT $1, $2, current.version + 1, $4::text, $5::int4, $6::text::jsonb, \
                          $7::text::jsonb, $8::uuid \
                   FROM current \
                   WHERE ($3::int8 IS NULL OR current.version = $3::int8) AND current.in_order \
                 {tail}"
            )),
            // An append on its own (autocommit) to a stream known to be at its expected
            // version ($3) or past it (`reached.rs`): the rows go in at the versions after
            // it, and the unique index on (stream, version) refuses them when the stream is
            // past it. No look at the stream first, and no order to check (a transaction of
            // one statement takes its id as it writes).
            append_exact: sql(format!(
                "INSERT INTO {events} \
                     (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
                 SELECT $1, $2, $3 + new.ord, new.event_type, new.schema_version, \
                        new.payload::jsonb, new.metadata::jsonb, new.event_id \
                 FROM UNNEST($4::text[], $5::int4[], $6::text[], $7::text[], $8::uuid[]) \
                     WITH ORDINALITY AS new(event_type, schema_version, payload, metadata, event_id, ord) \
                 ORDER BY new.ord \
                 RETURNING position, transaction_id::text AS transaction_xid, version, recorded_at"
            )),
            append_exact_one: sql(format!(
                "INSERT INTO {events} \
                     (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
                 VALUES ($1, $2, $3 + 1, $4, $5, $6::text::jsonb, $7::text::jsonb, $8) \
                 RETURNING position, transaction_id::text AS transaction_xid, version, recorded_at"
            )),
            // Group commit: several appends in one statement. Per append ($1-$4): its index
            // in the batch, its stream (one append per stream per batch) and its expected
            // version (NULL: any), with the stream's current version, read once (a CTE used
            // twice is computed once). Per event ($5-$11): its append's index, its place in
            // that append, and its columns. Each append's events go in only where its own
            // expected version holds; one row per inserted event comes back, and one with
            // NULL columns for an append that was refused, with the version it saw.
            append_group: sql(format!(
                "WITH req AS ( \
                   SELECT r.a, r.category, r.stream_id, r.expected, \
                          coalesce((SELECT e.version FROM {events} e \
                                    WHERE e.category = r.category AND e.stream_id = r.stream_id \
                                    ORDER BY e.version DESC LIMIT 1), 0) AS current \
                   FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::int8[]) AS r(a, category, stream_id, expected)), \
                 inserted AS ( \
                   INSERT INTO {events} \
                       (category, stream_id, version, event_type, schema_version, payload, metadata, event_id) \
                   SELECT req.category, req.stream_id, req.current + new.place, new.event_type, \
                          new.schema_version, new.payload::jsonb, new.metadata::jsonb, new.event_id \
                   FROM UNNEST($5::int4[], $6::int8[], $7::text[], $8::int4[], $9::text[], $10::text[], $11::uuid[]) \
                            WITH ORDINALITY AS new(a, place, event_type, schema_version, payload, metadata, event_id, ord) \
                   JOIN req ON req.a = new.a \
                   WHERE req.expected IS NULL OR req.current = req.expected \
                   ORDER BY new.ord \
                   RETURNING position, transaction_id, category, stream_id, version, recorded_at) \
                 SELECT req.a, req.current, i.position, i.transaction_id::text AS transaction_xid, \
                        i.version, i.recorded_at \
                 FROM req LEFT JOIN inserted i ON i.category = req.category AND i.stream_id = req.stream_id"
            )),
            // Group commit of one-event appends to streams known to be at their expected
            // versions or past them (`reached.rs`), each row at the version after its
            // append's, with no look at the streams first. A version taken fails the whole
            // statement (the batch is then sent as `append_group_exact_or_skip`).
            append_group_exact: sql(format!("{exact_group} {exact_returning}")),
            // The same, but a row whose version is taken is skipped, not an error: that
            // append alone is refused (its caller runs it on its own to learn the conflict)
            // and the rest land. Dearer (each row is inserted speculatively), so it is sent
            // only where versions were taken lately.
            append_group_exact_or_skip: sql(format!(
                "{exact_group} ON CONFLICT ON CONSTRAINT events_stream_version_key DO NOTHING \
                 {exact_returning}"
            )),
            stream_version: sql(format!(
                "SELECT coalesce(max(version), 0) FROM {events} WHERE category = $1 AND stream_id = $2"
            )),
            // Pages are bounded by rows here and by bytes as the reader takes the rows (it
            // stops taking them past the byte bound): no window over the page on the server.
            read_stream: sql(format!(
                "SELECT {COLUMNS} FROM {events} \
                 WHERE category = $1 AND stream_id = $2 AND version >= $3 \
                 ORDER BY version LIMIT $4"
            )),
            // What a load folds, and no more: no position, stream, metadata or event id to
            // send, convert and read (`read::load_col` names the columns).
            load_stream: sql(format!(
                "SELECT version, recorded_at, event_type, schema_version, payload FROM {events} \
                 WHERE category = $1 AND stream_id = $2 AND version >= $3 \
                 ORDER BY version LIMIT $4"
            )),
            // Only transactions below the snapshot's xmin: they have all ended, so nothing can
            // still commit below this horizon and a reader never skips a late commit.
            read_all: sql(format!(
                "SELECT {COLUMNS} FROM {events} \
                 WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY transaction_id, position LIMIT $3"
            )),
            // The records of some types after a position, and the last position a reader
            // can see (`head`, NULL columns elsewhere when no record matches): a page short
            // of the limit covered the log up to `head`, so the reader moves there. One
            // snapshot for both, so nothing can land between them.
            read_types: sql(format!(
                "WITH horizon AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin), \
                 head AS ( \
                   SELECT e.transaction_id::text AS head_xid, e.position AS head_position \
                   FROM {events} e, horizon \
                   WHERE (e.transaction_id, e.position) > ($1::text::xid8, $2) AND e.transaction_id < horizon.xmin \
                   ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1), \
                 page AS ( \
                   SELECT {COLUMNS}, transaction_id AS xid_order FROM {events}, horizon \
                   WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                     AND transaction_id < horizon.xmin AND event_type = ANY($4) \
                   ORDER BY transaction_id, position LIMIT $3) \
                 SELECT {COLUMN_NAMES}, head.head_xid, head.head_position \
                 FROM head LEFT JOIN page ON true \
                 ORDER BY page.xid_order, page.position"
            )),
            lag: sql(format!(
                "SELECT count(*) AS events, extract(epoch FROM now() - min(recorded_at))::float8 AS seconds \
                 FROM {events} WHERE (transaction_id, position) > ($1::text::xid8, $2)"
            )),
            // The last event a reader can see: every row not yet visible belongs to a
            // transaction at or above the horizon, so it sorts after this one.
            head: sql(format!(
                "SELECT transaction_id::text AS transaction_xid, position FROM {events} \
                 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY transaction_id DESC, position DESC LIMIT 1"
            )),
            load_checkpoint: sql(format!(
                "SELECT transaction_id::text AS transaction_xid, position FROM {checkpoints} WHERE name = $1"
            )),
            save_checkpoint: sql(format!(
                "INSERT INTO {checkpoints} (name, transaction_id, position) VALUES ($1, $2::text::xid8, $3) \
                 ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
                     position = EXCLUDED.position, updated_at = now()"
            )),
            // One active runner per listener across processes: a lock held until the
            // transaction ends (never a session lock, so it works behind a transaction-
            // pooling proxy). The schema is part of the key: stores in other schemas of the
            // database do not wait on each other.
            lock_listener: sql(format!(
                "SELECT pg_advisory_xact_lock({LOCK_SPACE}, hashtext('{schema}.' || $1))"
            )),
            // A listener's lease ($1 its key, $2 the owner, $3 seconds): taken when free or
            // run out, renewed by its holder; no row back while another holds it. One
            // statement: the row's lock orders two claims.
            lease_claim: sql(format!(
                "INSERT INTO {leases} AS l (name, owner, until) \
                 VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) \
                 ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until \
                 WHERE l.owner = EXCLUDED.owner OR l.until < clock_timestamp() \
                 RETURNING owner"
            )),
            lease_release: sql(format!(
                "DELETE FROM {leases} WHERE name = $1 AND owner = $2"
            )),
            // The same lock, and the search path of the version's schema for the rest of the
            // transaction (`SET LOCAL`), in one round trip.
            begin_listener: sql(format!(
                "SELECT pg_advisory_xact_lock({LOCK_SPACE}, hashtext('{schema}.' || $1)), \
                        set_config('search_path', $2, true)"
            )),
            // A read model's versions ($1 its name, $2 a version).
            version_known: sql(format!(
                "SELECT version FROM {versions} WHERE name = $1 AND version = $2"
            )),
            version_add: sql(format!(
                "INSERT INTO {versions} (name, version) VALUES ($1, $2)"
            )),
            version_serving: sql(format!(
                "SELECT version FROM {versions} WHERE name = $1 AND active"
            )),
            version_activate: sql(format!(
                "UPDATE {versions} SET active = (version = $2) WHERE name = $1"
            )),
            version_active: sql(format!(
                "SELECT active FROM {versions} WHERE name = $1 AND version = $2"
            )),
            version_delete: sql(format!(
                "DELETE FROM {versions} WHERE name = $1 AND version = $2"
            )),
            // A listener's checkpoint and its partitions' (`{name}#{index}/{count}`).
            checkpoint_delete: sql(format!(
                "DELETE FROM {checkpoints} WHERE name = $1 OR starts_with(name, $1 || '#')"
            )),
            keys_read: sql(format!(
                "SELECT subject, key, created_at FROM {keys} WHERE subject = ANY($1)"
            )),
            keys_add: sql(format!(
                "INSERT INTO {keys} (subject, key) SELECT * FROM unnest($1::text[], $2::bytea[]) \
                 ON CONFLICT (subject) DO NOTHING"
            )),
            keys_forget: sql(format!("DELETE FROM {keys} WHERE subject = $1")),
            // Every stream holding a field sealed under the subject: a scan of the log (a
            // forget is rare; no index is kept for it).
            snapshots_of_subject_delete: sql(format!(
                "DELETE FROM {snapshots} s WHERE EXISTS ( \
                   SELECT 1 FROM {events} e \
                   WHERE e.category = s.category AND e.stream_id = s.stream_id \
                     AND jsonb_path_exists(e.payload, '$.*.\"$es_sealed\" ? (@.subject == $s)', \
                                           jsonb_build_object('s', $1::text)))"
            )),
            snapshot_load: sql(format!(
                "SELECT version, state FROM {snapshots} \
                 WHERE category = $1 AND stream_id = $2 AND snapshot_version = $3"
            )),
            // The newest wins: an older snapshot (a slower writer) never replaces it.
            snapshot_save: sql(format!(
                "INSERT INTO {snapshots} (category, stream_id, snapshot_version, version, state) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (category, stream_id, snapshot_version) DO UPDATE \
                 SET version = EXCLUDED.version, state = EXCLUDED.state, taken_at = now() \
                 WHERE {snapshots}.version < EXCLUDED.version"
            )),
            stored_events: sql(format!(
                "SELECT {COLUMNS} FROM {events} WHERE event_id = ANY($1)"
            )),
        }
    }
}

/// Statements are built from constant text and the validated, quoted schema name: safe.
fn sql(text: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(text)).into_sql_str()
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn schema_names_are_plain_lower_case_identifiers() {
        for ok in [
            "public",
            "es",
            "_x",
            "bank_events_2",
            &"a".repeat(48),
            "order",
            "user",
            "pg",
        ] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Public",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "é",
            &"a".repeat(49),
            "x;drop",
            "pg_events",
            "pg_catalog",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
