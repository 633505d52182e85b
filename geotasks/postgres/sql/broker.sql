-- Queries of the Postgres broker (geotasks/postgres/broker.py).
-- Times come from the database clock (now()), never from the hosts', so skewed clocks between
-- worker hosts cannot hand out a delayed message early.
--
-- Enqueues commit synchronously: a message sent is a message kept. Claims, acks, rejections and
-- releases do not wait for the WAL flush (synchronous_commit off): only a crash of the database
-- server can lose one, and then the row is back as it was before, so the message is delivered
-- again (a lost ack leaves the row claimed by a live worker that no longer holds it; the worker
-- releases such rows after RELEASE_UNKNOWN_AFTER_S). At least once, as with every broker.

-- name: relax_commit
-- Sent ahead of the prepared statements that do not wait for the WAL flush (a prepared
-- statement is one statement only).
SET LOCAL synchronous_commit TO off;

-- name: enqueue
-- One statement: the row and its doorbell are committed together.
WITH inserted AS (
    INSERT INTO geotasks.broker_messages (message_id, queue_name, priority, body, available_at)
    VALUES (
        %(message_id)s, %(queue_name)s, %(priority)s, %(body)s,
        coalesce(
            to_timestamp(%(eta_ms)s::float8 / 1000),
            now() + %(delay_ms)s * interval '1 millisecond'
        )
    )
    RETURNING queue_name
)
SELECT pg_notify(%(channel)s, queue_name) FROM inserted;

-- name: claim
-- Claims up to `limit` ready messages; when there are none, the one extra row (delivery_id NULL)
-- says in how many seconds the next delayed message of the queue becomes ready.
SET LOCAL synchronous_commit TO off;
WITH claimed AS (
    UPDATE geotasks.broker_messages AS m
    SET consumer_id = %(consumer_id)s, claimed_at = now()
    FROM (
        SELECT delivery_id
        FROM geotasks.broker_messages
        WHERE queue_name = %(queue_name)s AND consumer_id IS NULL AND available_at <= now()
        ORDER BY priority DESC, available_at, delivery_id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS ready
    WHERE m.delivery_id = ready.delivery_id
    RETURNING m.delivery_id, m.priority, m.body, m.redeliveries
)
SELECT delivery_id, priority, body, redeliveries, NULL::float8 AS next_ready_in_s
FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, extract(epoch FROM min(available_at) - now())::float8
FROM geotasks.broker_messages
WHERE queue_name = %(queue_name)s AND consumer_id IS NULL AND available_at > now()
    AND NOT EXISTS (SELECT 1 FROM claimed);

-- name: ack
-- Also clears the poison guard's count (geotasks/middleware/deliveries.py): the message finished
-- its delivery, so no earlier delivery of it counts as a kill any more. One statement (it is
-- prepared, and sent after relax_commit); its row count is the message's.
WITH forgotten AS (
    DELETE FROM geotasks.message_deliveries WHERE message_id = %(message_id)s
)
DELETE FROM geotasks.broker_messages
WHERE delivery_id = %(delivery_id)s AND consumer_id = %(consumer_id)s;

-- name: dead_letter
-- Moves a message held by this consumer to the dead letters, with its error (and clears the
-- poison guard's count, as ack does).
SET LOCAL synchronous_commit TO off;
DELETE FROM geotasks.message_deliveries WHERE message_id = %(message_id)s;
WITH rejected AS (
    DELETE FROM geotasks.broker_messages
    WHERE delivery_id = %(delivery_id)s AND consumer_id = %(consumer_id)s
    RETURNING message_id, queue_name, priority, body, redeliveries, enqueued_at
)
INSERT INTO geotasks.broker_dead_letters
    (message_id, queue_name, actor_name, priority, body, error, redeliveries, enqueued_at)
SELECT message_id, queue_name, %(actor_name)s, priority, body, %(error)s, redeliveries, enqueued_at
FROM rejected;

-- name: release
-- Puts messages this consumer holds but never started back at the head of their queues.
SET LOCAL synchronous_commit TO off;
WITH released AS (
    UPDATE geotasks.broker_messages
    SET consumer_id = NULL, claimed_at = NULL
    WHERE delivery_id = ANY(%(delivery_ids)s) AND consumer_id = %(consumer_id)s
    RETURNING queue_name
)
SELECT pg_notify(%(channel)s, queue_name) FROM (SELECT DISTINCT queue_name FROM released) AS q;

-- name: heartbeat
-- Returns true when the row had to be created: first beat, or the consumer had been declared
-- dead (its heartbeat lapsed) and its messages were redelivered.
INSERT INTO geotasks.broker_consumers AS c (consumer_id, hostname, pid)
VALUES (%(consumer_id)s, %(hostname)s, %(pid)s)
ON CONFLICT (consumer_id) DO UPDATE SET heartbeat_at = now()
RETURNING (c.xmax = 0) AS created;

-- name: forget_stale_consumers
DELETE FROM geotasks.broker_consumers
WHERE heartbeat_at < now() - %(heartbeat_timeout_s)s * interval '1 second'
    OR consumer_id = %(leaving_consumer_id)s;

-- name: redeliver_orphans
-- Messages held by a consumer that is gone go back to their queue, or to the dead letters once
-- they were redelivered more than `max_deliveries` times. Returns how many went each way.
WITH orphaned AS (
    SELECT m.delivery_id, m.redeliveries
    FROM geotasks.broker_messages AS m
    WHERE m.consumer_id IS NOT NULL
        AND NOT EXISTS (
            SELECT 1 FROM geotasks.broker_consumers AS c WHERE c.consumer_id = m.consumer_id
        )
    FOR UPDATE OF m SKIP LOCKED
),
poisoned AS (
    DELETE FROM geotasks.broker_messages AS m
    USING orphaned
    WHERE m.delivery_id = orphaned.delivery_id AND orphaned.redeliveries >= %(max_deliveries)s
    RETURNING m.message_id, m.queue_name, m.priority, m.body, m.redeliveries, m.enqueued_at
),
dead AS (
    INSERT INTO geotasks.broker_dead_letters
        (message_id, queue_name, priority, body, error, redeliveries, enqueued_at)
    SELECT message_id, queue_name, priority, body,
        format('redelivered %%s times: its worker process died or stopped heart-beating '
            'each time', redeliveries + 1),
        redeliveries + 1, enqueued_at
    FROM poisoned
    RETURNING message_id
),
redelivered AS (
    UPDATE geotasks.broker_messages AS m
    SET consumer_id = NULL, claimed_at = NULL, redeliveries = m.redeliveries + 1
    FROM orphaned
    WHERE m.delivery_id = orphaned.delivery_id AND orphaned.redeliveries < %(max_deliveries)s
    RETURNING m.queue_name
),
rung AS (
    SELECT pg_notify(%(channel)s, queue_name)
    FROM (SELECT DISTINCT queue_name FROM redelivered) AS q
)
SELECT (SELECT count(*) FROM redelivered), (SELECT count(*) FROM dead), (SELECT count(*) FROM rung);

-- name: held_since
-- Messages this consumer claimed before the given age: compared with what the process knows
-- it holds, to release claims whose outcome was lost (a connection that broke mid-commit).
SELECT delivery_id FROM geotasks.broker_messages
WHERE consumer_id = %(consumer_id)s AND claimed_at < now() - %(age_s)s * interval '1 second';

-- name: flush
WITH waiting AS (
    DELETE FROM geotasks.broker_messages
    WHERE queue_name = %(queue_name)s AND consumer_id IS NULL
)
DELETE FROM geotasks.broker_dead_letters WHERE queue_name = %(queue_name)s;

-- name: queue_size
SELECT count(*) FROM geotasks.broker_messages WHERE queue_name = %(queue_name)s;

-- name: list_dead_letters
SELECT dead_letter_id, message_id, queue_name, actor_name, body, error, redeliveries,
    enqueued_at, dead_at
FROM geotasks.broker_dead_letters
WHERE %(queue_name)s::text IS NULL OR queue_name = %(queue_name)s
ORDER BY dead_letter_id
LIMIT %(limit)s;

-- name: get_dead_letter
SELECT dead_letter_id, message_id, queue_name, actor_name, body, error, redeliveries,
    enqueued_at, dead_at
FROM geotasks.broker_dead_letters
WHERE dead_letter_id = %(dead_letter_id)s;

-- name: requeue_dead_letter
-- Back to its queue, ready now, with a clean slate for the poison guard; with the body given
-- (the next attempt's), or as it was when it is NULL (a body that does not decode).
WITH revived AS (
    DELETE FROM geotasks.broker_dead_letters
    WHERE dead_letter_id = %(dead_letter_id)s
    RETURNING message_id, queue_name, priority, body
),
inserted AS (
    INSERT INTO geotasks.broker_messages (message_id, queue_name, priority, body)
    SELECT message_id, queue_name, priority, coalesce(%(body)s, body) FROM revived
    RETURNING message_id, queue_name
),
forgotten AS (
    DELETE FROM geotasks.message_deliveries
    WHERE message_id IN (SELECT message_id FROM inserted)
)
SELECT message_id, queue_name, pg_notify(%(channel)s, queue_name) FROM inserted;

-- name: purge_dead_letters
DELETE FROM geotasks.broker_dead_letters
WHERE %(queue_name)s::text IS NULL OR queue_name = %(queue_name)s;

-- name: delete_dead_letters
DELETE FROM geotasks.broker_dead_letters WHERE dead_letter_id = ANY(%(dead_letter_ids)s);
