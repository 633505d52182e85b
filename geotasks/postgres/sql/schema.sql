-- The whole current schema of geotasks, applied as-is to a fresh database by `geotasks db init`.
-- Every change also gets an append-only file in migrations/; a test proves that applying all
-- migrations in order produces exactly this schema.

CREATE SCHEMA geotasks;

CREATE TABLE geotasks.schema_version (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Broker and poison guard (migration 0002) -----------------------------------------------

-- One row per delivery, not per message: Dramatiq re-enqueues the same message id (retries,
-- delays, throttling) before it acks the original, so both rows exist for a moment.
CREATE TABLE geotasks.broker_messages (
    delivery_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    queue_name text NOT NULL,
    -- Dramatiq's `broker_priority` message option: higher is handed out first (as RabbitMQ).
    priority integer NOT NULL DEFAULT 0,
    -- Dramatiq's encoded message, with the canonical queue name and no `eta`.
    body text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    -- Never handed out before this time: delays and retry back-offs live here.
    available_at timestamptz NOT NULL DEFAULT now(),
    -- The worker process holding the message; NULL while it waits in its queue.
    consumer_id uuid,
    claimed_at timestamptz,
    -- Times the message went back to its queue because its worker stopped heart-beating.
    redeliveries integer NOT NULL DEFAULT 0
);

CREATE INDEX broker_messages_ready_idx ON geotasks.broker_messages
    (queue_name, priority DESC, available_at, delivery_id) WHERE consumer_id IS NULL;
CREATE INDEX broker_messages_claimed_idx ON geotasks.broker_messages (consumer_id)
    WHERE consumer_id IS NOT NULL;

-- Worker processes consuming from the Postgres broker, with their last heartbeat.
CREATE TABLE geotasks.broker_consumers (
    consumer_id uuid PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Messages rejected by a worker (failed for good, unknown actor, undecodable body, poison),
-- kept with their error until re-queued or purged (`geotasks dead-letters`).
CREATE TABLE geotasks.broker_dead_letters (
    dead_letter_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    queue_name text NOT NULL,
    actor_name text,
    priority integer NOT NULL DEFAULT 0,
    body text NOT NULL,
    error text NOT NULL,
    redeliveries integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL,
    dead_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX broker_dead_letters_queue_idx ON geotasks.broker_dead_letters
    (queue_name, dead_letter_id);

-- The poison guard: deliveries of one attempt of a message that started but have not finished.
-- Committed before the actor runs, deleted when the message is acked or rejected, so what is
-- left counts the worker processes that died while the message ran; `solo_deliveries` (migration
-- 0006) counts those in which it ran alone in its process, so it alone killed it.
CREATE TABLE geotasks.message_deliveries (
    message_id text NOT NULL,
    attempt integer NOT NULL,
    deliveries integer NOT NULL DEFAULT 1,
    last_delivered_at timestamptz NOT NULL DEFAULT now(),
    solo_deliveries integer NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, attempt)
);

-- Results and job status (migration 0003) ---------------------------------------------------

-- Results (geotasks/postgres/results.py). One row per message id; a payload up to one chunk is
-- kept inline in `data`, a larger one in `result_chunk` rows of `chunk_bytes` each, so no value
-- comes near Postgres' 1 GB limit and readers can seek. Failures keep type, message, traceback.
CREATE TABLE geotasks.result (
    message_id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('value', 'geojson', 'file', 'failure')),
    media_type text NOT NULL,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    chunk_bytes integer CHECK (chunk_bytes > 0),
    data bytea,
    error_type text,
    error_message text,
    error_traceback text,
    stored_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX result_expires_at_idx ON geotasks.result (expires_at);

CREATE TABLE geotasks.result_chunk (
    message_id text NOT NULL REFERENCES geotasks.result (message_id) ON DELETE CASCADE,
    seq integer NOT NULL CHECK (seq >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (message_id, seq)
);

-- GeoJSON chunks are written once and streamed out; compressing them costs more CPU on the
-- worker's critical path than the disk it saves for the results' short life.
ALTER TABLE geotasks.result_chunk ALTER COLUMN data SET STORAGE EXTERNAL;

-- Job status (geotasks/postgres/job_status.py, geotasks/middleware/job_status.py). One row per
-- message id. Each state has its timestamp; `attempt` is Dramatiq's retry count, `runs` how
-- many times the actor was started.
CREATE TABLE geotasks.job (
    message_id text PRIMARY KEY,
    actor_name text NOT NULL,
    queue_name text NOT NULL,
    status text NOT NULL CHECK (
        status IN (
            'PENDING', 'THROTTLED', 'RETRYING', 'STARTED',
            'SUCCESS', 'FAILURE', 'SKIPPED', 'CANCELLED', 'EXPIRED'
        )
    ),
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    runs integer NOT NULL DEFAULT 0 CHECK (runs >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    pending_at timestamptz,
    throttled_at timestamptz,
    retrying_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    expired_at timestamptz,
    next_at timestamptz,
    expires_at timestamptz,
    progress_done bigint,
    progress_total bigint,
    progress_at timestamptz,
    error_type text,
    error_message text,
    -- What the job warned its client about (geotasks.job_warnings.warn): a JSON array.
    warnings jsonb,
    -- The last attempt's traceback (migration 0010): of a FAILURE, or of a job RETRYING.
    error_traceback text,
    -- Attempts that ended before a dead letter was re-queued, oldest first (migration 0010):
    -- [{"attempt", "status", "error_type", "error_message", "error_traceback", "finished_at",
    -- "requeued_at"}].
    history jsonb NOT NULL DEFAULT '[]',
    -- The first message's {"args", "kwargs"} (migration 0013), NULL when too large or not JSON.
    arguments jsonb
);

CREATE INDEX job_created_at_idx ON geotasks.job (created_at);
CREATE INDEX job_expires_at_idx ON geotasks.job (expires_at) WHERE expires_at IS NOT NULL;
-- Migration 0008: the jobs finished in the last hour, for the dashboard and /metrics.
CREATE INDEX job_finished_at_idx ON geotasks.job (finished_at) WHERE finished_at IS NOT NULL;

-- How far a state is along one attempt: waiting (0), waiting for a rate-limit slot (1),
-- running (2), finished (3).
CREATE FUNCTION geotasks.job_phase(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE status
        WHEN 'PENDING' THEN 0
        WHEN 'RETRYING' THEN 0
        WHEN 'THROTTLED' THEN 1
        WHEN 'STARTED' THEN 2
        ELSE 3
    END
$$;

-- The job status state machine; geotasks.postgres.job_status.transition_allowed is the same
-- rule in Python, and a test checks that both agree on every pair of states.
CREATE FUNCTION geotasks.job_transition_allowed(
    current_status text, current_attempt integer, new_status text, new_attempt integer
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN current_status IS NULL THEN new_status NOT IN ('CANCELLED', 'EXPIRED')
        WHEN current_status IN ('SUCCESS', 'FAILURE', 'SKIPPED', 'CANCELLED', 'EXPIRED') THEN false
        WHEN new_status = 'CANCELLED' THEN current_status IN ('PENDING', 'THROTTLED', 'RETRYING')
        WHEN new_status = 'EXPIRED' THEN false
        WHEN new_status IN ('STARTED', 'THROTTLED')
            AND new_attempt = current_attempt
            AND geotasks.job_phase(new_status) = geotasks.job_phase(current_status) THEN true
        ELSE (new_attempt, geotasks.job_phase(new_status))
            > (current_attempt, geotasks.job_phase(current_status))
    END
$$;

-- What a client reads: a finished job past its time to live is EXPIRED even before the sweeper
-- turns it into a tombstone.
CREATE FUNCTION geotasks.job_visible_status(status text, expires_at timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN geotasks.job_phase(status) = 3 AND expires_at <= now() THEN 'EXPIRED'
        ELSE status
    END
$$;

-- Rate limits (migration 0004) --------------------------------------------------------------
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
-- Periodic de-duplication (migration 0005) ---------------------------------------------

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

-- Worker registry (migration 0007) ------------------------------------------------------

-- The worker registry (geotasks/middleware/workers.py), for every broker: one row per worker
-- process or scheduler, renewed while it runs and removed when it stops cleanly. A row whose
-- heartbeat is older than GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S is a lost process.
CREATE TABLE geotasks.worker (
    worker_id uuid PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('worker', 'scheduler')),
    hostname text NOT NULL,
    pid integer NOT NULL,
    -- The `dramatiq` (or systemd) process that started it: the rows sharing a host and parent
    -- are the processes of one worker instance.
    parent_pid integer NOT NULL,
    queues text[] NOT NULL,
    threads integer NOT NULL CHECK (threads >= 0),
    version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    jobs_in_flight integer NOT NULL DEFAULT 0 CHECK (jobs_in_flight >= 0),
    -- Migration 0008: a scheduler's schedules, {"actor": {"cron": …, "utc_offset_s": …}}.
    schedules jsonb NOT NULL DEFAULT '{}'
);

-- Actor catalogue (migration 0012) ----------------------------------------------------

-- geotasks/postgres/catalogue.py: every public actor a worker serves, as clients know it. Workers
-- publish their actors when they start; `geotasks.submit`, the CLI and the HTTP API read them,
-- so a process that cannot import an actor's code can still check arguments and send to it.
CREATE TABLE geotasks.actor_catalogue (
    actor_name text PRIMARY KEY,
    -- The actor as geotasks.registry.ActorSpec.to_json() writes it.
    spec jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    -- host, pid and geotasks version of the worker that last published a different spec.
    published_by text NOT NULL
);
