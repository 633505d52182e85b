-- The whole current schema of geotasks, applied as-is to a fresh database by `geotasks db init`.
-- Every change also gets an append-only file in migrations/; a test proves that applying all
-- migrations in order produces exactly this schema.

CREATE SCHEMA geotasks;

CREATE TABLE geotasks.schema_version (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Periodic de-duplication (geotasks/middleware/periodic.py). One row per tick of a periodic actor
-- that a worker started: every running periodiq scheduler sends its own message for a tick, and
-- the first one processed for `(actor_name, slot)` owns it. `slot` is the cron slot in UTC.
CREATE TABLE geotasks.periodic_tick (
    actor_name text NOT NULL,
    slot timestamptz NOT NULL,
    message_id text NOT NULL,
    -- Times the owning message was processed: more than 1 after a redelivery.
    deliveries integer NOT NULL DEFAULT 1 CHECK (deliveries >= 1),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_name, slot)
);
