-- Results: a header row per message id, the payload inline or in chunks.

-- name: store
-- Stores (or replaces: a redelivered message may run twice) a result's header, with its payload
-- inline when it fits in one chunk. Rings the doorbell of clients waiting for this message id;
-- Postgres delivers it when the transaction, chunks and all, commits.
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
RETURNING pg_notify('geotasks_result', r.message_id);

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
