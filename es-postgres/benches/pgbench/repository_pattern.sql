-- The SQL a default `Repository` sends for one one-event command on PostgreSQL, replayed by
-- pgbench: the load (`load_stream`), then the append as one autocommit statement
-- (`append_exact_one`). 10 commands per aggregate, as in the side-by-side harness. The event
-- id is made by the server here (pgbench has no UUIDs); the store sends its own.
--
-- Run against a database the store migrated (schema `public`), beside the peer's pattern
-- (../shared/bench/peer/pgbench/peer_pattern.sql on the peer's schema):
--   pgbench -n -M prepared -c 16 -j 2 -T 8 -D v=0 -f es-postgres/benches/pgbench/repository_pattern.sql DB
\set v :v + 1
\set agg (:v - 1) / 10
\set seq (:v - 1) % 10
SELECT version, recorded_at, event_type, schema_version, payload FROM events
  WHERE category = 'account' AND stream_id = 'c' || :client_id || '-a' || :agg AND version >= 1
  ORDER BY version LIMIT 256;
INSERT INTO events (category, stream_id, version, event_type, schema_version, payload, metadata, event_id)
  VALUES ('account', 'c' || :client_id || '-a' || :agg, :seq + 1, 'CustomerDepositedMoney', 1,
          '{"amount":10.0,"balance":20.0}'::text::jsonb, '{}'::text::jsonb, gen_random_uuid())
  RETURNING position, transaction_id::text AS transaction_xid, version, recorded_at;
