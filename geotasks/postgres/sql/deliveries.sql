-- Queries of the poison guard's store (geotasks/postgres/deliveries.py), for DeliveryLimit.
-- They run with synchronous_commit off: a count must be visible before the actor runs, and is
-- visible once committed; only a crash of the database server itself could lose it, and then
-- the guard merely counts a few crashes fewer.

-- name: relax_commit
-- Sent ahead of record_delivery, a prepared statement (which is one statement only).
SET LOCAL synchronous_commit TO off;

-- name: record_delivery
-- Counts a delivery. `restart`: this process finished the previous delivery but has not cleared
-- its count yet. `solo`: this delivery runs alone in its process (a process with one worker
-- thread).
-- With `start`, it also records the job's STARTED when no earlier delivery of this attempt died
-- (a suspect may still wait for its process to itself: its own hook records STARTED once it
-- starts). The STARTED part is the `transition` of sql/job_status.sql for STARTED, spelt out;
-- tests/integration/test_started_with_the_count.py keeps the two in step.
-- Returns the counts with this delivery included, whether STARTED was attempted here, and the
-- job's status afterwards.
WITH counted AS (
    INSERT INTO geotasks.message_deliveries AS d (message_id, attempt, solo_deliveries)
    VALUES (%(message_id)s, %(attempt)s, %(solo)s::integer)
    ON CONFLICT (message_id, attempt)
    DO UPDATE SET
        deliveries = CASE WHEN %(restart)s THEN 1 ELSE d.deliveries + 1 END,
        solo_deliveries = CASE WHEN %(restart)s THEN 0 ELSE d.solo_deliveries END
            + %(solo)s::integer,
        last_delivered_at = now()
    RETURNING d.deliveries, d.solo_deliveries
),
started AS (
    INSERT INTO geotasks.job AS j (
        message_id, actor_name, queue_name, status, attempt, runs, pending_at, started_at
    )
    SELECT
        %(message_id)s, %(actor_name)s, %(queue_name)s, 'STARTED', %(attempt)s, 1,
        to_timestamp(%(sent_at_ms)s / 1000.0), now()
    FROM counted
    WHERE %(start)s AND counted.deliveries = 1
    ON CONFLICT (message_id) DO UPDATE SET
        status = excluded.status,
        attempt = excluded.attempt,
        runs = j.runs + 1,
        updated_at = now(),
        pending_at = coalesce(j.pending_at, excluded.pending_at),
        started_at = excluded.started_at,
        finished_at = NULL,
        next_at = NULL,
        expires_at = NULL,
        error_type = NULL,
        error_message = NULL,
        progress_done = NULL,
        progress_total = NULL,
        progress_at = NULL
    WHERE geotasks.job_transition_allowed(j.status, j.attempt, excluded.status, excluded.attempt)
    RETURNING j.status
)
SELECT
    c.deliveries,
    c.solo_deliveries,
    %(start)s AND c.deliveries = 1,
    coalesce(
        (SELECT status FROM started),
        (SELECT status FROM geotasks.job WHERE message_id = %(message_id)s)
    )
FROM counted c;

-- name: record_solo
-- A suspect got its process to itself: this delivery, already counted, now runs alone.
SET LOCAL synchronous_commit TO off;
UPDATE geotasks.message_deliveries
SET solo_deliveries = solo_deliveries + 1
WHERE message_id = %(message_id)s AND attempt = %(attempt)s;

-- name: forget_interrupted_deliveries
-- Deliveries still running when their process shut down gracefully (SIGTERM: systemd, or
-- Dramatiq stopping the siblings of a worker process that died) did not kill anything.
SET LOCAL synchronous_commit TO off;
UPDATE geotasks.message_deliveries AS d
SET deliveries = greatest(d.deliveries - 1, 0),
    solo_deliveries = greatest(d.solo_deliveries - interrupted.solo, 0)
FROM unnest(%(message_ids)s::text[], %(attempts)s::integer[], %(solo)s::integer[])
    AS interrupted(message_id, attempt, solo)
WHERE d.message_id = interrupted.message_id AND d.attempt = interrupted.attempt;

-- name: forget_deliveries
-- Clears the counts of deliveries that finished, in one statement for many.
SET LOCAL synchronous_commit TO off;
DELETE FROM geotasks.message_deliveries AS d
USING unnest(%(message_ids)s::text[], %(attempts)s::integer[]) AS finished(message_id, attempt)
WHERE d.message_id = finished.message_id AND d.attempt = finished.attempt;

-- name: record_deliveries
-- record_delivery for several deliveries at once (group commit: the worker threads of a process
-- that are ready together), none of them a `restart`, no two with the same message id: arrays
-- with one element per delivery. Each row of the result is record_delivery's row, after the
-- message id; tests/integration/test_group_commit.py keeps the two in step.
WITH delivery AS (
    SELECT *
    FROM unnest(
        %(message_ids)s::text[], %(attempts)s::integer[], %(solo)s::integer[],
        %(start)s::boolean[], %(actor_names)s::text[], %(queue_names)s::text[],
        %(sent_at_ms)s::bigint[]
    ) AS t (message_id, attempt, solo, start, actor_name, queue_name, sent_at_ms)
),
counted AS (
    INSERT INTO geotasks.message_deliveries AS d (message_id, attempt, solo_deliveries)
    SELECT message_id, attempt, solo FROM delivery
    ON CONFLICT (message_id, attempt)
    DO UPDATE SET
        deliveries = d.deliveries + 1,
        solo_deliveries = d.solo_deliveries + excluded.solo_deliveries,
        last_delivered_at = now()
    RETURNING d.message_id, d.attempt, d.deliveries, d.solo_deliveries
),
started AS (
    INSERT INTO geotasks.job AS j (
        message_id, actor_name, queue_name, status, attempt, runs, pending_at, started_at
    )
    SELECT
        t.message_id, t.actor_name, t.queue_name, 'STARTED', t.attempt, 1,
        to_timestamp(t.sent_at_ms / 1000.0), now()
    FROM delivery t
    JOIN counted c USING (message_id, attempt)
    WHERE t.start AND c.deliveries = 1
    ON CONFLICT (message_id) DO UPDATE SET
        status = excluded.status,
        attempt = excluded.attempt,
        runs = j.runs + 1,
        updated_at = now(),
        pending_at = coalesce(j.pending_at, excluded.pending_at),
        started_at = excluded.started_at,
        finished_at = NULL,
        next_at = NULL,
        expires_at = NULL,
        error_type = NULL,
        error_message = NULL,
        progress_done = NULL,
        progress_total = NULL,
        progress_at = NULL
    WHERE geotasks.job_transition_allowed(j.status, j.attempt, excluded.status, excluded.attempt)
    RETURNING j.message_id, j.status
)
SELECT
    t.message_id,
    c.deliveries,
    c.solo_deliveries,
    t.start AND c.deliveries = 1,
    coalesce(s.status, j.status)
FROM delivery t
JOIN counted c USING (message_id, attempt)
LEFT JOIN started s USING (message_id)
LEFT JOIN geotasks.job j USING (message_id);
