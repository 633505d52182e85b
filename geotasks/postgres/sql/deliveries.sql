-- Queries of the poison guard (geotasks/middleware/deliveries.py).
-- Both run with synchronous_commit off: the count must be visible before the actor runs, and is
-- visible once committed; only a crash of the database server itself could lose it, and then
-- the guard merely counts a few crashes fewer.

-- name: record_delivery
-- `restart`: this process finished the previous delivery but has not cleared its count yet.
SET LOCAL synchronous_commit TO off;
INSERT INTO geotasks.message_deliveries AS d (message_id, attempt)
VALUES (%(message_id)s, %(attempt)s)
ON CONFLICT (message_id, attempt)
DO UPDATE SET
    deliveries = CASE WHEN %(restart)s THEN 1 ELSE d.deliveries + 1 END,
    last_delivered_at = now()
RETURNING d.deliveries;

-- name: forget_deliveries
-- Clears the counts of deliveries that finished, in one statement for many.
SET LOCAL synchronous_commit TO off;
DELETE FROM geotasks.message_deliveries AS d
USING unnest(%(message_ids)s::text[], %(attempts)s::int[]) AS finished(message_id, attempt)
WHERE d.message_id = finished.message_id AND d.attempt = finished.attempt;
