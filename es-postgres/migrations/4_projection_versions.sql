-- The versions of each read model kept in tables: each version's tables live in a schema of
-- their own, and readers query views (in the read model's own schema) of the active one.
CREATE TABLE projection_versions (
    name        text NOT NULL,
    version     integer NOT NULL,
    active      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projection_versions_pkey PRIMARY KEY (name, version)
);
