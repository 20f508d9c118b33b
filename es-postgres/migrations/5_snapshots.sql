-- Aggregate snapshots: the newest per (stream, snapshot version). An optimisation that may be
-- dropped at any time (a load then replays the stream). The state is JSON text, kept as
-- written (no `jsonb` normalisation of numbers: it reads back exactly).
CREATE TABLE snapshots (
    category          text NOT NULL,
    stream_id         text NOT NULL,
    snapshot_version  integer NOT NULL,
    version           bigint NOT NULL,
    state             text NOT NULL,
    taken_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (category, stream_id, snapshot_version)
);
