-- Which process runs each listener (a read model, a reactor, a partition of one): the owner
-- (a store) holding an unexpired lease runs its batches and renews it; a runner of another
-- owner waits as a standby, and takes over once the lease is released (its runner stopped)
-- or has run out (its process died).
CREATE TABLE listener_leases (
    name    text PRIMARY KEY,
    owner   uuid NOT NULL,
    until   timestamptz NOT NULL
);
