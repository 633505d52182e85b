-- A job's arguments: recorded with the job (migration 0013), or the broker's copy of its message.

-- name: job_arguments
SELECT actor_name, arguments::text FROM geotasks.job
WHERE message_id = %(message_id)s AND arguments IS NOT NULL;

-- name: message_body
-- The Postgres broker's latest copy, while the message waits in its queue or as a dead letter
-- (a dead letter re-queued is a message again).
SELECT body FROM (
    SELECT body, enqueued_at AS kept_at FROM geotasks.broker_messages
    WHERE message_id = %(message_id)s
    UNION ALL
    SELECT body, dead_at FROM geotasks.broker_dead_letters
    WHERE message_id = %(message_id)s
) AS copies
ORDER BY kept_at DESC
LIMIT 1;
