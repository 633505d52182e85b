-- Clean-up the periodic maintenance actors run that no store of its own offers. Each deletes
-- one batch; SKIP LOCKED lets two sweepers (a manual run beside a scheduled one) share the work.

-- name: delete_old_dead_letters
DELETE FROM geotasks.broker_dead_letters
WHERE dead_letter_id IN (
    SELECT dead_letter_id FROM geotasks.broker_dead_letters
    WHERE dead_at < now() - make_interval(secs => %(older_than_s)s)
    ORDER BY dead_letter_id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
);

-- name: delete_stale_delivery_counts
-- The poison guard deletes a message's count when the message finishes; a count left behind (the
-- message was lost with a Redis or RabbitMQ server, or dead-lettered after its worker vanished)
-- and untouched for the retention period belongs to a message that will not come back.
DELETE FROM geotasks.message_deliveries
WHERE (message_id, attempt) IN (
    SELECT message_id, attempt FROM geotasks.message_deliveries
    WHERE last_delivered_at < now() - make_interval(secs => %(older_than_s)s)
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
);
