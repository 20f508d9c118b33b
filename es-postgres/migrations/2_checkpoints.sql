-- Listeners' checkpoints (read models, reactors): the position each got to, by name. A read
-- model kept in PostgreSQL writes its rows and its checkpoint in one transaction.
CREATE TABLE checkpoints (
    name            text PRIMARY KEY,
    transaction_id  xid8 NOT NULL,
    position        bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
