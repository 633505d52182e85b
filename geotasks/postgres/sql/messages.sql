-- The Postgres broker's copy of a message: while it waits in its queue, and as a dead letter.

-- name: message_body
-- The latest copy: a dead letter re-queued is a message again.
SELECT body FROM (
    SELECT body, enqueued_at AS kept_at FROM geotasks.broker_messages
    WHERE message_id = %(message_id)s
    UNION ALL
    SELECT body, dead_at FROM geotasks.broker_dead_letters
    WHERE message_id = %(message_id)s
) AS copies
ORDER BY kept_at DESC
LIMIT 1;
