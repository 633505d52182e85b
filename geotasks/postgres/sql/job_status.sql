-- Job status: one row per message id, moved along the state machine by guarded upserts.

-- name: relax_commit
-- Prefixed to the writes of states a later one supersedes (PENDING, THROTTLED, RETRYING,
-- STARTED) and to progress: their commit does not wait for the WAL flush, which is most of the
-- cost of a status write. Should Postgres itself crash within the WAL writer's delay, such a
-- write may be lost; the next transition recreates the row. Finished states are durable.
SET LOCAL synchronous_commit TO off;

-- name: transition
-- Applies a hook's state only if geotasks.job_transition_allowed says so, in one statement, so
-- hooks that arrive out of order (a late PENDING from the sender) cannot move a job backwards.
-- Returns the job's status after the statement and whether this transition was applied.
-- A job that finishes rings clients blocked in job.wait()/job.get(): on the outcome channel
-- (geotasks/postgres/outcome.py) with %(outcome)s, a SUCCESS's payload carrying its small result,
-- or with the message id alone; and on the first channel, which clients of older versions
-- listen on, with the message id. The result, if any, was stored just before (it rang the first
-- channel too).
WITH applied AS (
    INSERT INTO geotasks.job AS j (
        message_id, actor_name, queue_name, status, attempt, runs,
        pending_at, throttled_at, retrying_at, started_at, finished_at,
        next_at, expires_at, error_type, error_message, error_traceback, arguments
    )
    VALUES (
        %(message_id)s, %(actor_name)s, %(queue_name)s, %(status)s, %(attempt)s,
        CASE WHEN %(status)s = 'STARTED' THEN 1 ELSE 0 END,
        -- When the sender sent it, also when its own PENDING write arrives late or never.
        coalesce(
            to_timestamp(%(sent_at_ms)s / 1000.0),
            CASE WHEN %(status)s = 'PENDING' THEN now() END
        ),
        CASE WHEN %(status)s = 'THROTTLED' THEN now() END,
        CASE WHEN %(status)s = 'RETRYING' THEN now() END,
        CASE WHEN %(status)s = 'STARTED' THEN now() END,
        CASE WHEN geotasks.job_phase(%(status)s) = 3 THEN now() END,
        to_timestamp(%(next_at_ms)s / 1000.0),
        CASE WHEN geotasks.job_phase(%(status)s) = 3
            THEN now() + make_interval(secs => %(ttl_ms)s / 1000.0) END,
        %(error_type)s,
        %(error_message)s,
        %(error_traceback)s,
        %(arguments)s::jsonb
    )
    ON CONFLICT (message_id) DO UPDATE SET
        status = excluded.status,
        attempt = excluded.attempt,
        runs = j.runs + excluded.runs,
        updated_at = now(),
        pending_at = coalesce(j.pending_at, excluded.pending_at),
        throttled_at = coalesce(excluded.throttled_at, j.throttled_at),
        retrying_at = coalesce(excluded.retrying_at, j.retrying_at),
        started_at = coalesce(excluded.started_at, j.started_at),
        finished_at = excluded.finished_at,
        next_at = excluded.next_at,
        expires_at = excluded.expires_at,
        -- FAILURE and RETRYING carry the attempt's error; a retry waiting for a rate-limit
        -- slot still shows it; any other state has none.
        error_type = CASE WHEN excluded.status = 'THROTTLED' THEN j.error_type
            ELSE excluded.error_type END,
        error_message = CASE WHEN excluded.status = 'THROTTLED' THEN j.error_message
            ELSE excluded.error_message END,
        error_traceback = CASE WHEN excluded.status = 'THROTTLED' THEN j.error_traceback
            ELSE excluded.error_traceback END,
        -- A new attempt starts from no progress; a finished job keeps its last report.
        progress_done = CASE WHEN excluded.status = 'STARTED' THEN NULL ELSE j.progress_done END,
        progress_total = CASE WHEN excluded.status = 'STARTED' THEN NULL ELSE j.progress_total END,
        progress_at = CASE WHEN excluded.status = 'STARTED' THEN NULL ELSE j.progress_at END,
        -- Only the sender knows them: a worker's hook that created the row first has none.
        arguments = coalesce(j.arguments, excluded.arguments)
    WHERE geotasks.job_transition_allowed(j.status, j.attempt, excluded.status, excluded.attempt)
    RETURNING j.status
),
doorbell AS (
    SELECT
        pg_notify('geotasks_result', %(message_id)s),
        pg_notify('geotasks_outcome', coalesce(%(outcome)s::text, %(message_id)s))
    FROM applied
    WHERE geotasks.job_phase(applied.status) = 3
)
-- Referencing `doorbell` is what makes Postgres evaluate it.
SELECT status, true FROM applied WHERE (SELECT count(*) FROM doorbell) >= 0
UNION ALL
SELECT status, false FROM geotasks.job
WHERE message_id = %(message_id)s AND NOT EXISTS (SELECT FROM applied);

-- name: status
SELECT status, false FROM geotasks.job WHERE message_id = %(message_id)s;

-- name: cancel
WITH cancelled AS (
    UPDATE geotasks.job SET
        status = 'CANCELLED',
        updated_at = now(),
        finished_at = now(),
        next_at = NULL,
        expires_at = now() + make_interval(secs => %(ttl_ms)s / 1000.0)
    WHERE message_id = %(message_id)s
        AND geotasks.job_transition_allowed(status, attempt, 'CANCELLED', attempt)
    RETURNING message_id
)
SELECT pg_notify('geotasks_result', message_id), pg_notify('geotasks_outcome', message_id)
FROM cancelled;

-- name: requeue
-- A dead letter re-queued (geotasks/postgres/dead_letters.py) is a new attempt: the only way
-- out of FAILURE. The attempt that failed moves to `history`, its failure result is deleted so
-- readers wait for the new outcome, and the job is PENDING again as `attempt`. A job that
-- expired, or whose record is gone, is PENDING again too; one in any other state is left to
-- the worker's hooks.
WITH requeued AS (
    INSERT INTO geotasks.job AS j (
        message_id, actor_name, queue_name, status, attempt, pending_at
    )
    VALUES (%(message_id)s, %(actor_name)s, %(queue_name)s, 'PENDING', %(attempt)s, now())
    ON CONFLICT (message_id) DO UPDATE SET
        status = 'PENDING',
        attempt = excluded.attempt,
        updated_at = now(),
        pending_at = now(),
        finished_at = NULL,
        next_at = NULL,
        expires_at = NULL,
        history = j.history || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt,
            'status', j.status,
            'error_type', j.error_type,
            'error_message', j.error_message,
            'error_traceback', j.error_traceback,
            'finished_at', j.finished_at,
            'requeued_at', now()
        )),
        error_type = NULL,
        error_message = NULL,
        error_traceback = NULL,
        warnings = NULL,
        progress_done = NULL,
        progress_total = NULL,
        progress_at = NULL
    WHERE j.status IN ('FAILURE', 'EXPIRED')
    RETURNING j.message_id
),
forgotten_result AS (
    DELETE FROM geotasks.result r USING requeued q
    WHERE r.message_id = q.message_id AND r.kind = 'failure'
)
SELECT message_id FROM requeued;

-- name: progress
UPDATE geotasks.job SET
    progress_done = %(done)s,
    progress_total = %(total)s,
    progress_at = now()
WHERE message_id = %(message_id)s AND status = 'STARTED' AND attempt = %(attempt)s;

-- name: warnings
-- Replaces the list: each attempt records its own warnings.
UPDATE geotasks.job SET warnings = %(warnings)s::jsonb
WHERE message_id = %(message_id)s AND status = 'STARTED' AND attempt = %(attempt)s;

-- name: get
-- The result's header comes along, so one round trip answers "is it done, and what is there".
SELECT
    j.message_id, j.actor_name, j.queue_name,
    geotasks.job_visible_status(j.status, j.expires_at),
    j.attempt, j.runs, j.created_at, j.updated_at,
    j.pending_at, j.throttled_at, j.retrying_at,
    j.started_at, j.finished_at,
    CASE WHEN j.status = 'EXPIRED' THEN j.expired_at
        WHEN geotasks.job_visible_status(j.status, j.expires_at) = 'EXPIRED' THEN j.expires_at
    END,
    j.next_at, j.expires_at, j.progress_done, j.progress_total, j.progress_at,
    j.error_type, j.error_message, j.error_traceback, j.history,
    r.kind, r.media_type, r.size_bytes, j.warnings
FROM geotasks.job j
LEFT JOIN geotasks.result r ON r.message_id = j.message_id AND r.expires_at > now()
WHERE j.message_id = %(message_id)s;

-- name: recent
SELECT
    j.message_id, j.actor_name, j.queue_name,
    geotasks.job_visible_status(j.status, j.expires_at),
    j.attempt, j.runs, j.created_at, j.updated_at,
    j.pending_at, j.throttled_at, j.retrying_at,
    j.started_at, j.finished_at,
    CASE WHEN j.status = 'EXPIRED' THEN j.expired_at
        WHEN geotasks.job_visible_status(j.status, j.expires_at) = 'EXPIRED' THEN j.expires_at
    END,
    j.next_at, j.expires_at, j.progress_done, j.progress_total, j.progress_at,
    -- Lists leave tracebacks out: up to 64 kB each.
    j.error_type, j.error_message, NULL, j.history,
    r.kind, r.media_type, r.size_bytes, j.warnings
FROM geotasks.job j
LEFT JOIN geotasks.result r ON r.message_id = j.message_id AND r.expires_at > now()
WHERE (%(statuses)s::text[] IS NULL
        OR geotasks.job_visible_status(j.status, j.expires_at) = ANY (%(statuses)s::text[]))
    AND (%(actor_name)s::text IS NULL OR j.actor_name = %(actor_name)s)
    AND (%(before)s::timestamptz IS NULL OR j.created_at < %(before)s)
ORDER BY j.created_at DESC, j.message_id DESC
LIMIT %(limit)s;

-- name: tombstone
-- Finished jobs past their time to live keep only what says they existed and how they ended.
UPDATE geotasks.job SET
    status = 'EXPIRED',
    expired_at = expires_at,
    updated_at = now(),
    progress_done = NULL,
    progress_total = NULL,
    progress_at = NULL,
    error_message = NULL,
    error_traceback = NULL,
    warnings = NULL,
    arguments = NULL
WHERE message_id IN (
    SELECT message_id FROM geotasks.job
    WHERE expires_at <= now() AND status IN ('SUCCESS', 'FAILURE', 'SKIPPED', 'CANCELLED')
    ORDER BY expires_at
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
);

-- name: purge
DELETE FROM geotasks.job
WHERE message_id IN (
    SELECT message_id FROM geotasks.job
    WHERE status = 'EXPIRED'
        AND expires_at <= now() - make_interval(secs => %(retention_s)s)
    ORDER BY expires_at
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
);

-- name: page_older
-- One page of the job list (the HTTP API's /jobs), newest first, from a keyset position:
-- jobs older than (before_created, before_id), or from the newest when that is NULL. The same
-- filters as page_newer; the caller asks for one row more than a page to know if there is more.
SELECT
    j.message_id, j.actor_name, j.queue_name,
    geotasks.job_visible_status(j.status, j.expires_at),
    j.attempt, j.runs, j.created_at, j.updated_at,
    j.pending_at, j.throttled_at, j.retrying_at,
    j.started_at, j.finished_at,
    CASE WHEN j.status = 'EXPIRED' THEN j.expired_at
        WHEN geotasks.job_visible_status(j.status, j.expires_at) = 'EXPIRED' THEN j.expires_at
    END,
    j.next_at, j.expires_at, j.progress_done, j.progress_total, j.progress_at,
    -- Lists leave tracebacks out: up to 64 kB each.
    j.error_type, j.error_message, NULL, j.history,
    r.kind, r.media_type, r.size_bytes, j.warnings
FROM geotasks.job j
LEFT JOIN geotasks.result r ON r.message_id = j.message_id AND r.expires_at > now()
WHERE (%(statuses)s::text[] IS NULL
        OR geotasks.job_visible_status(j.status, j.expires_at) = ANY (%(statuses)s::text[]))
    AND (%(actor_names)s::text[] IS NULL OR j.actor_name = ANY (%(actor_names)s::text[]))
    AND (%(created_from)s::timestamptz IS NULL OR j.created_at >= %(created_from)s)
    AND (%(created_to)s::timestamptz IS NULL OR j.created_at <= %(created_to)s)
    AND (%(min_duration_s)s::float8 IS NULL OR (j.started_at IS NOT NULL
        AND coalesce(j.finished_at, now()) - j.started_at
            >= make_interval(secs => %(min_duration_s)s)))
    AND (%(max_duration_s)s::float8 IS NULL OR (j.started_at IS NOT NULL
        AND coalesce(j.finished_at, now()) - j.started_at
            <= make_interval(secs => %(max_duration_s)s)))
    AND (%(key_created)s::timestamptz IS NULL
        OR (j.created_at, j.message_id) < (%(key_created)s, %(key_id)s::text))
ORDER BY j.created_at DESC, j.message_id DESC
LIMIT %(limit)s;

-- name: page_newer
-- Like page_older, towards newer jobs: those after (key_created, key_id), oldest first (the
-- caller reverses them), for a "previous page" link.
SELECT
    j.message_id, j.actor_name, j.queue_name,
    geotasks.job_visible_status(j.status, j.expires_at),
    j.attempt, j.runs, j.created_at, j.updated_at,
    j.pending_at, j.throttled_at, j.retrying_at,
    j.started_at, j.finished_at,
    CASE WHEN j.status = 'EXPIRED' THEN j.expired_at
        WHEN geotasks.job_visible_status(j.status, j.expires_at) = 'EXPIRED' THEN j.expires_at
    END,
    j.next_at, j.expires_at, j.progress_done, j.progress_total, j.progress_at,
    -- Lists leave tracebacks out: up to 64 kB each.
    j.error_type, j.error_message, NULL, j.history,
    r.kind, r.media_type, r.size_bytes, j.warnings
FROM geotasks.job j
LEFT JOIN geotasks.result r ON r.message_id = j.message_id AND r.expires_at > now()
WHERE (%(statuses)s::text[] IS NULL
        OR geotasks.job_visible_status(j.status, j.expires_at) = ANY (%(statuses)s::text[]))
    AND (%(actor_names)s::text[] IS NULL OR j.actor_name = ANY (%(actor_names)s::text[]))
    AND (%(created_from)s::timestamptz IS NULL OR j.created_at >= %(created_from)s)
    AND (%(created_to)s::timestamptz IS NULL OR j.created_at <= %(created_to)s)
    AND (%(min_duration_s)s::float8 IS NULL OR (j.started_at IS NOT NULL
        AND coalesce(j.finished_at, now()) - j.started_at
            >= make_interval(secs => %(min_duration_s)s)))
    AND (%(max_duration_s)s::float8 IS NULL OR (j.started_at IS NOT NULL
        AND coalesce(j.finished_at, now()) - j.started_at
            <= make_interval(secs => %(max_duration_s)s)))
    AND (j.created_at, j.message_id) > (%(key_created)s, %(key_id)s::text)
ORDER BY j.created_at ASC, j.message_id ASC
LIMIT %(limit)s;

-- name: dismiss
-- Deletes a finished job and its result (DELETE /jobs/{id}); a job still waiting or running
-- is left alone. Returns the id when something was deleted. Rings the outcome channel, so a
-- client that remembers the job's SUCCESS notification forgets it.
WITH dismissed AS (
    DELETE FROM geotasks.job
    WHERE message_id = %(message_id)s AND geotasks.job_phase(status) = 3
    RETURNING message_id
),
removed_result AS (
    DELETE FROM geotasks.result r USING dismissed d WHERE r.message_id = d.message_id
)
SELECT message_id, pg_notify('geotasks_outcome', message_id) FROM dismissed;
