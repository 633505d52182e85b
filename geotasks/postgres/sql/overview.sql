-- What the dashboard, /metrics and `geotasks health` read (geotasks/postgres/overview.py).
-- Every query is bounded by an index or by a small table: none scans the job table.

-- name: broker_queues
-- The Postgres broker's queues. broker_messages holds only messages not yet acked (a backlog,
-- not history), so one pass over it is the cheapest way to count all four numbers.
SELECT
    queue_name,
    count(*) FILTER (WHERE consumer_id IS NULL AND available_at <= now()) AS ready,
    count(*) FILTER (WHERE consumer_id IS NULL AND available_at > now()) AS delayed,
    count(*) FILTER (WHERE consumer_id IS NOT NULL) AS in_flight,
    extract(epoch FROM now() - min(available_at)
        FILTER (WHERE consumer_id IS NULL AND available_at <= now()))::float8 AS oldest_age_s
FROM geotasks.broker_messages
GROUP BY queue_name
ORDER BY queue_name;

-- name: dead_letters
-- An index-only scan of broker_dead_letters_queue_idx.
SELECT queue_name, count(*) FROM geotasks.broker_dead_letters GROUP BY queue_name;

-- name: finished_per_minute
-- Jobs finished per minute and actor over the last `window_s` seconds, failures apart
-- (job_finished_at_idx).
SELECT
    actor_name,
    date_trunc('minute', finished_at) AS minute,
    count(*) AS finished,
    count(*) FILTER (WHERE status = 'FAILURE') AS failed
FROM geotasks.job
WHERE finished_at >= now() - make_interval(secs => %(window_s)s)
GROUP BY actor_name, minute
ORDER BY actor_name, minute;

-- name: finished_by_status
-- Jobs finished per actor and final status over the last `window_s` seconds, with the p50 and
-- p95 of their run times (job_finished_at_idx).
SELECT
    actor_name,
    status,
    count(*) AS jobs,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - started_at) AS p50,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY finished_at - started_at) AS p95
FROM geotasks.job
WHERE finished_at >= now() - make_interval(secs => %(window_s)s)
GROUP BY actor_name, status
ORDER BY actor_name, status;

-- name: run_time_buckets
-- Run times of the jobs that ran and finished in the last `window_s` seconds, per actor: how
-- many fall in each bucket of `bounds_s` (bucket i: bounds_s[i] <= run time < bounds_s[i+1];
-- 0 below the first bound), and their sum (job_finished_at_idx).
SELECT
    actor_name,
    width_bucket(extract(epoch FROM finished_at - started_at)::float8, %(bounds_s)s::float8[])
        AS bucket,
    count(*) AS jobs,
    sum(extract(epoch FROM finished_at - started_at))::float8 AS run_s_sum
FROM geotasks.job
WHERE finished_at >= now() - make_interval(secs => %(window_s)s) AND started_at IS NOT NULL
GROUP BY actor_name, bucket
ORDER BY actor_name, bucket;

-- name: recent_failures
-- The latest failures of the window, newest first (job_finished_at_idx, read backwards).
SELECT message_id, actor_name, finished_at, error_type, error_message
FROM geotasks.job
WHERE finished_at >= now() - make_interval(secs => %(window_s)s) AND status = 'FAILURE'
ORDER BY finished_at DESC
LIMIT %(limit)s;

-- name: rate_limits
-- Postgres rate-limit logs: the start slots handed out within the last period or still ahead.
-- A log's expires_at is its last slot plus the period (geotasks/postgres/sql/rate_limits.sql).
SELECT
    key,
    (SELECT count(*) FROM unnest(slots_ms) AS slot_ms
     WHERE slot_ms > extract(epoch FROM now()) * 1000 - period.period_ms) AS in_use,
    period.period_ms / 1000.0 AS period_s
FROM geotasks.rate_limit_slots,
    LATERAL (
        SELECT extract(epoch FROM expires_at) * 1000 - slots_ms[cardinality(slots_ms)] AS period_ms
    ) AS period
WHERE expires_at > now()
ORDER BY key;

-- name: concurrency_leases
SELECT key, count(*) FROM geotasks.concurrency_leases
WHERE expires_at > now()
GROUP BY key
ORDER BY key;

-- name: latest_ticks
-- The latest tick of each periodic actor, its job's status and how late it started (claimed
-- just before the actor ran): one index probe per actor
-- (periodic_tick's primary key), found by a recursive skip over the distinct actors.
WITH RECURSIVE actors AS (
    (SELECT actor_name FROM geotasks.periodic_tick ORDER BY actor_name LIMIT 1)
    UNION ALL
    SELECT (SELECT t.actor_name FROM geotasks.periodic_tick AS t
            WHERE t.actor_name > actors.actor_name ORDER BY t.actor_name LIMIT 1)
    FROM actors WHERE actors.actor_name IS NOT NULL
)
SELECT a.actor_name, tick.slot, tick.message_id, job.status,
    extract(epoch FROM tick.claimed_at - tick.slot)::float8 AS start_lateness_s
FROM actors AS a
CROSS JOIN LATERAL (
    SELECT slot, message_id, claimed_at FROM geotasks.periodic_tick AS t
    WHERE t.actor_name = a.actor_name ORDER BY slot DESC LIMIT 1
) AS tick
LEFT JOIN geotasks.job AS job ON job.message_id = tick.message_id
WHERE a.actor_name IS NOT NULL
ORDER BY a.actor_name;

-- name: clock
SELECT now();
