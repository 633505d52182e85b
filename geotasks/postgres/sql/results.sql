-- Results: a header row per message id, the payload inline or in chunks.

-- name: store
-- Stores (or replaces: a redelivered message may run twice) a result's header, with its payload
-- inline when it fits in one chunk. Rings the doorbell of clients waiting for this message id;
-- Postgres delivers it when the transaction, chunks and all, commits. A replaced result also
-- rings the outcome channel (geotasks/postgres/outcome.py), so a client forgets the result an
-- earlier SUCCESS notification carried (a row an update wrote has a non-zero xmax).
WITH old_chunks AS (
    DELETE FROM geotasks.result_chunk WHERE message_id = %(message_id)s
)
INSERT INTO geotasks.result AS r (
    message_id, kind, media_type, size_bytes, chunk_bytes, data,
    error_type, error_message, error_traceback, expires_at
)
VALUES (
    %(message_id)s, %(kind)s, %(media_type)s, %(size_bytes)s, %(chunk_bytes)s, %(data)s,
    %(error_type)s, %(error_message)s, %(error_traceback)s,
    now() + make_interval(secs => %(ttl_ms)s / 1000.0)
)
ON CONFLICT (message_id) DO UPDATE SET
    kind = excluded.kind,
    media_type = excluded.media_type,
    size_bytes = excluded.size_bytes,
    chunk_bytes = excluded.chunk_bytes,
    data = excluded.data,
    error_type = excluded.error_type,
    error_message = excluded.error_message,
    error_traceback = excluded.error_traceback,
    stored_at = now(),
    expires_at = excluded.expires_at
RETURNING
    pg_notify('geotasks_result', r.message_id),
    CASE WHEN r.xmax = 0 THEN NULL ELSE pg_notify('geotasks_outcome', r.message_id) END;

-- name: copy_chunks
-- Binary COPY sends the chunks' bytes as they are: INSERT would double them into hex text.
COPY geotasks.result_chunk (message_id, seq, data) FROM STDIN WITH (FORMAT binary);

-- name: header
-- Inline payloads come along: for a small result, one round trip is the whole read.
SELECT
    kind, media_type, size_bytes, chunk_bytes, data,
    error_type, error_message, error_traceback, stored_at, expires_at
FROM geotasks.result
WHERE message_id = %(message_id)s AND expires_at > now();

-- name: outcome
-- A job's visible status and its unexpired result's header, inline payload included, read in
-- one statement, so they agree: a client waiting for a small result needs this one round trip
-- once woken. No row when the job id is UNKNOWN (the job row drives, as in sql/job_status.sql's
-- `get`).
SELECT
    geotasks.job_visible_status(j.status, j.expires_at),
    r.kind, r.media_type, r.size_bytes, r.chunk_bytes, r.data,
    r.error_type, r.error_message, r.error_traceback, r.stored_at, r.expires_at
FROM geotasks.job j
LEFT JOIN geotasks.result r ON r.message_id = j.message_id AND r.expires_at > now()
WHERE j.message_id = %(message_id)s;

-- name: copy_chunk
-- One chunk as raw bytes (binary COPY; a SELECT would send it as hex text), or no row when
-- the result expired or was replaced since its header was read.
COPY (
    SELECT c.data
    FROM geotasks.result_chunk c
    JOIN geotasks.result r USING (message_id)
    WHERE c.message_id = %(message_id)s AND c.seq = %(seq)s
        AND r.stored_at = %(stored_at)s AND r.expires_at > now()
) TO STDOUT WITH (FORMAT binary);

-- name: delete_expired
-- Chunks go with their header (ON DELETE CASCADE). SKIP LOCKED lets two sweepers share the work.
DELETE FROM geotasks.result
WHERE message_id IN (
    SELECT message_id FROM geotasks.result
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
);

-- name: store_successes
-- For several jobs at once (group commit: the worker threads of a process that are ready
-- together), no two with the same message id: `store` of an inline result followed by the
-- `transition` of sql/job_status.sql to SUCCESS, spelt out for arrays with one element per
-- job, in one statement. The results and the statuses commit together, durably, so no status
-- says SUCCESS before its result is stored. Rings the doorbell of each message id (once: Postgres
-- folds a transaction's identical notifications), and the outcome channel of each SUCCESS
-- applied, with `outcomes` (the payloads carrying small results; NULL: the id). Returns, per job, its message id, its status
-- afterwards (NULL when another transaction inserted its row while this one waited) and whether
-- SUCCESS was applied.
-- tests/integration/test_group_commit.py keeps this in step with `store` and `transition`.
WITH success AS (
    SELECT *
    FROM unnest(
        %(message_ids)s::text[], %(kinds)s::text[], %(media_types)s::text[],
        %(size_bytes)s::bigint[], %(data)s::bytea[], %(ttl_ms)s::bigint[],
        %(actor_names)s::text[], %(queue_names)s::text[], %(attempts)s::integer[],
        %(sent_at_ms)s::bigint[], %(outcomes)s::text[]
    ) AS t (
        message_id, kind, media_type, size_bytes, data, ttl_ms,
        actor_name, queue_name, attempt, sent_at_ms, outcome
    )
),
old_chunks AS (
    DELETE FROM geotasks.result_chunk c USING success s WHERE c.message_id = s.message_id
),
stored AS (
    INSERT INTO geotasks.result AS r (
        message_id, kind, media_type, size_bytes, chunk_bytes, data,
        error_type, error_message, error_traceback, expires_at
    )
    SELECT
        message_id, kind, media_type, size_bytes, NULL, data, NULL, NULL, NULL,
        now() + make_interval(secs => ttl_ms / 1000.0)
    FROM success
    ON CONFLICT (message_id) DO UPDATE SET
        kind = excluded.kind,
        media_type = excluded.media_type,
        size_bytes = excluded.size_bytes,
        chunk_bytes = excluded.chunk_bytes,
        data = excluded.data,
        error_type = excluded.error_type,
        error_message = excluded.error_message,
        error_traceback = excluded.error_traceback,
        stored_at = now(),
        expires_at = excluded.expires_at
    RETURNING
        pg_notify('geotasks_result', r.message_id),
        CASE WHEN r.xmax = 0 THEN NULL ELSE pg_notify('geotasks_outcome', r.message_id) END
),
applied AS (
    INSERT INTO geotasks.job AS j (
        message_id, actor_name, queue_name, status, attempt, runs,
        pending_at, finished_at, expires_at
    )
    SELECT
        message_id, actor_name, queue_name, 'SUCCESS', attempt, 0,
        to_timestamp(sent_at_ms / 1000.0), now(),
        now() + make_interval(secs => ttl_ms / 1000.0)
    FROM success
    ON CONFLICT (message_id) DO UPDATE SET
        status = excluded.status,
        attempt = excluded.attempt,
        runs = j.runs + excluded.runs,
        updated_at = now(),
        pending_at = coalesce(j.pending_at, excluded.pending_at),
        finished_at = excluded.finished_at,
        next_at = NULL,
        expires_at = excluded.expires_at,
        error_type = NULL,
        error_message = NULL
    WHERE geotasks.job_transition_allowed(j.status, j.attempt, excluded.status, excluded.attempt)
    RETURNING j.message_id, j.status
),
-- The outcome channel (geotasks/postgres/outcome.py) rings for the jobs whose SUCCESS applied,
-- with the payload carrying a small result, else the message id.
outcome AS (
    SELECT pg_notify('geotasks_outcome', coalesce(s.outcome, a.message_id))
    FROM applied a JOIN success s USING (message_id)
)
-- `stored` runs to completion, NOTIFYs included, unreferenced: a data-modifying WITH always does;
-- `outcome` is evaluated because it is referenced.
SELECT s.message_id, coalesce(a.status, j.status), a.status IS NOT NULL
FROM success s
LEFT JOIN applied a USING (message_id)
LEFT JOIN geotasks.job j USING (message_id)
WHERE (SELECT count(*) FROM outcome) >= 0;
