-- Periodic ticks: which message owns each slot of a periodic actor.

-- name: lock_actor_ticks
-- Claims of one actor's slots run one at a time (a transaction-scoped lock), so that two
-- slots processed at once cannot both pass the no-overlap check.
SELECT pg_advisory_xact_lock(hashtext('geotasks.periodic_tick:' || %(actor_name)s));

-- name: tick_owner
SELECT message_id FROM geotasks.periodic_tick
WHERE actor_name = %(actor_name)s AND slot = %(slot)s;

-- name: count_redelivery
-- The owning message is back (its worker died): it runs again, and the deliveries say so.
UPDATE geotasks.periodic_tick SET deliveries = deliveries + 1
WHERE actor_name = %(actor_name)s AND slot = %(slot)s
RETURNING deliveries;

-- name: latest_other_tick
-- The actor's latest claimed slot other than this one, and its job's status (NULL once the job
-- row is gone): one probe of the primary key, backwards.
SELECT t.slot, t.message_id, j.status
FROM geotasks.periodic_tick AS t
LEFT JOIN geotasks.job AS j ON j.message_id = t.message_id
WHERE t.actor_name = %(actor_name)s AND t.slot <> %(slot)s
ORDER BY t.slot DESC
LIMIT 1;

-- name: insert_tick
INSERT INTO geotasks.periodic_tick (actor_name, slot, message_id)
VALUES (%(actor_name)s, %(slot)s, %(message_id)s);

-- name: delete_old_ticks
-- Hourly, over at most a day and a bit of ticks: a sequential scan is cheaper than keeping
-- another index up to date at every tick.
DELETE FROM geotasks.periodic_tick
WHERE slot < now() - make_interval(secs => %(older_than_s)s);
