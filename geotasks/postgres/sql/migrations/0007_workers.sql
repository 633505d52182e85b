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
    jobs_in_flight integer NOT NULL DEFAULT 0 CHECK (jobs_in_flight >= 0)
);
