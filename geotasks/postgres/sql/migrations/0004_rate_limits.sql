-- Rate limits (geotasks.postgres.rate_limits). Keys with a time to live, like Redis keys: the
-- counters, barriers and events of Dramatiq's rate limiters.
CREATE TABLE geotasks.rate_limit_keys (
    key text PRIMARY KEY,
    value bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_keys_expires_at ON geotasks.rate_limit_keys (expires_at);

-- The most recent start slots handed out under each rate limit, epoch milliseconds ascending.
CREATE TABLE geotasks.rate_limit_slots (
    key text PRIMARY KEY,
    slots_ms bigint[] NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_slots_expires_at ON geotasks.rate_limit_slots (expires_at);

-- Concurrency slots taken by running messages; a lease not renewed by its expiry is free again.
CREATE TABLE geotasks.concurrency_leases (
    key text NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (key, holder)
);
CREATE INDEX concurrency_leases_expires_at ON geotasks.concurrency_leases (expires_at);
