-- Periodic de-duplication: which message owns each tick of a periodic actor.

-- name: claim_tick
-- The first message processed for a slot inserts the row and owns the tick. A redelivery of the
-- owning message matches the WHERE and gets the row back (deliveries counted); a copy sent by
-- another scheduler (another message id) gets no row. A concurrent insert of the same slot waits
-- for the first to commit, so exactly one message id ever owns a slot.
INSERT INTO geotasks.periodic_tick AS t (actor_name, slot, message_id)
VALUES (%(actor_name)s, %(slot)s, %(message_id)s)
ON CONFLICT (actor_name, slot) DO UPDATE SET deliveries = t.deliveries + 1
WHERE t.message_id = excluded.message_id
RETURNING t.deliveries;

-- name: delete_old_ticks
-- A few rows per actor and hour: a sequential scan is cheaper than keeping an index up to date.
DELETE FROM geotasks.periodic_tick
WHERE slot < now() - make_interval(secs => %(older_than_s)s);
