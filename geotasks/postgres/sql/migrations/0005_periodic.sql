-- geotasks/middleware/periodic.py: one row per tick of a periodic actor that a worker started.
-- Every running periodiq scheduler sends its own message for a tick, and the first one processed
-- for `(actor_name, slot)` owns it. `slot` is the cron slot in UTC.
CREATE TABLE geotasks.periodic_tick (
    actor_name text NOT NULL,
    slot timestamptz NOT NULL,
    message_id text NOT NULL,
    -- Times the owning message was processed: more than 1 after a redelivery.
    deliveries integer NOT NULL DEFAULT 1 CHECK (deliveries >= 1),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_name, slot)
);
