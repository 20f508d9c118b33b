-- The event log. Runs with search_path set to the store's schema (see `PostgresStore::migrate`).
--
-- position:       from a sequence; unique, but values commit out of order.
-- transaction_id: the writer's transaction id. The global log is ordered by
--                 (transaction_id, position), and readers only take rows whose transaction is
--                 below pg_snapshot_xmin(pg_current_snapshot()): every such transaction has
--                 ended, so no row can appear below that horizon later.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    category        text NOT NULL,
    stream_id       text NOT NULL,
    version         bigint NOT NULL CHECK (version >= 1),
    event_type      text NOT NULL,
    schema_version  integer NOT NULL CHECK (schema_version BETWEEN 0 AND 65535),
    payload         jsonb NOT NULL,
    metadata        jsonb NOT NULL,
    event_id        uuid NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (position),
    -- A clash here is the one and only optimistic-concurrency conflict; it also serves
    -- stream reads (category, stream_id, version >= $n ORDER BY version).
    CONSTRAINT events_stream_version_key UNIQUE (category, stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

-- The global log's order.
CREATE INDEX events_global_order ON events (transaction_id, position);
