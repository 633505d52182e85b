-- Queries of the poison guard (geotasks/middleware/deliveries.py).
-- They run with synchronous_commit off: a count must be visible before the actor runs, and is
-- visible once committed; only a crash of the database server itself could lose it, and then
-- the guard merely counts a few crashes fewer.

-- name: record_delivery
-- `restart`: this process finished the previous delivery but has not cleared its count yet.
-- `solo`: this delivery runs alone in its process (a process with one worker thread).
-- Returns the counts with this delivery included.
SET LOCAL synchronous_commit TO off;
INSERT INTO geotasks.message_deliveries AS d (message_id, attempt, solo_deliveries)
VALUES (%(message_id)s, %(attempt)s, %(solo)s::integer)
ON CONFLICT (message_id, attempt)
DO UPDATE SET
    deliveries = CASE WHEN %(restart)s THEN 1 ELSE d.deliveries + 1 END,
    solo_deliveries = CASE WHEN %(restart)s THEN 0 ELSE d.solo_deliveries END
        + %(solo)s::integer,
    last_delivered_at = now()
RETURNING d.deliveries, d.solo_deliveries;

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
