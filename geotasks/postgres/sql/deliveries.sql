-- Queries of the poison guard (geotasks/middleware/deliveries.py).
-- Both run with synchronous_commit off: the count must be visible before the actor runs, and is
-- visible once committed; only a crash of the database server itself could lose it, and then
-- the guard merely counts a few crashes fewer.

-- name: record_delivery
SET LOCAL synchronous_commit TO off;
INSERT INTO geotasks.message_deliveries AS d (message_id, attempt)
VALUES (%(message_id)s, %(attempt)s)
ON CONFLICT (message_id, attempt)
DO UPDATE SET deliveries = d.deliveries + 1, last_delivered_at = now()
RETURNING d.deliveries;

-- name: forget_delivery
SET LOCAL synchronous_commit TO off;
DELETE FROM geotasks.message_deliveries
WHERE message_id = %(message_id)s AND attempt = %(attempt)s;
