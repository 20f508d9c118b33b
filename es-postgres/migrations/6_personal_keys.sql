-- Erasure by crypto-shredding: one key per data subject. Personal fields of events are stored
-- sealed with it (AES-256-GCM); `forget` deletes the row, and those fields read as null from
-- then on. Keys never leave the store's connections and are never logged.
CREATE TABLE personal_keys (
    subject     text NOT NULL,
    key         bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT personal_keys_pkey PRIMARY KEY (subject),
    CONSTRAINT personal_keys_key_length CHECK (octet_length(key) = 32)
);
