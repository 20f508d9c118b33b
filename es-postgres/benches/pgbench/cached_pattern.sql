-- The SQL of one one-event command on an aggregate the repository's cache holds
-- (`with_cache`): the append alone. See repository_pattern.sql for how to run it.
\set v :v + 1
\set agg (:v - 1) / 10
\set seq (:v - 1) % 10
INSERT INTO events (category, stream_id, version, event_type, schema_version, payload, metadata, event_id)
  VALUES ('account', 'c' || :client_id || '-a' || :agg, :seq + 1, 'CustomerDepositedMoney', 1,
          '{"amount":10.0,"balance":20.0}'::text::jsonb, '{}'::text::jsonb, gen_random_uuid())
  RETURNING position, transaction_id::text AS transaction_xid, version, recorded_at;
