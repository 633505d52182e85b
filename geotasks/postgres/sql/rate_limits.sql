-- Rate limits: Dramatiq's RateLimiterBackend (keys with a time to live), start-slot reservations
-- and concurrency leases. A key whose expires_at has passed counts as absent; clock_timestamp()
-- (not now(), the transaction's start) is read after any row lock has been waited for.

-- name: add
INSERT INTO geotasks.rate_limit_keys AS k (key, value, expires_at)
VALUES (%(key)s, %(value)s, clock_timestamp() + %(ttl_ms)s * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE
SET value = excluded.value, expires_at = excluded.expires_at
WHERE k.expires_at <= clock_timestamp()
RETURNING true;

-- name: change
-- Adds delta to the live value (0 when absent or expired) if the result stays within bounds;
-- an absent key is created only when delta itself is within them.
INSERT INTO geotasks.rate_limit_keys AS k (key, value, expires_at)
SELECT %(key)s, %(delta)s, clock_timestamp() + %(ttl_ms)s * interval '1 millisecond'
WHERE %(delta)s BETWEEN %(minimum)s AND %(maximum)s
ON CONFLICT (key) DO UPDATE
SET value = (CASE WHEN k.expires_at > clock_timestamp() THEN k.value ELSE 0 END) + excluded.value,
    expires_at = excluded.expires_at
WHERE (CASE WHEN k.expires_at > clock_timestamp() THEN k.value ELSE 0 END) + excluded.value
      BETWEEN %(minimum)s AND %(maximum)s
RETURNING true;

-- name: change_live
-- The rare case of `change` where delta alone is out of bounds: only a live key can absorb it.
UPDATE geotasks.rate_limit_keys
SET value = value + %(delta)s,
    expires_at = clock_timestamp() + %(ttl_ms)s * interval '1 millisecond'
WHERE key = %(key)s
  AND expires_at > clock_timestamp()
  AND value + %(delta)s BETWEEN %(minimum)s AND %(maximum)s
RETURNING true;

-- name: lock_keys
-- Locks every key of an incr_and_sum, in one order so that two callers cannot deadlock; a
-- missing key gets an already expired row, so that there is a row to lock.
INSERT INTO geotasks.rate_limit_keys AS k (key, value, expires_at)
SELECT key, 0, clock_timestamp() FROM unnest(%(keys)s::text[]) AS key ORDER BY key
ON CONFLICT (key) DO UPDATE SET key = k.key;

-- name: live_values
SELECT key, value FROM geotasks.rate_limit_keys
WHERE key = ANY(%(keys)s) AND expires_at > clock_timestamp();

-- name: set
UPDATE geotasks.rate_limit_keys
SET value = %(value)s, expires_at = clock_timestamp() + %(ttl_ms)s * interval '1 millisecond'
WHERE key = %(key)s;

-- name: set_event
INSERT INTO geotasks.rate_limit_keys AS k (key, value, expires_at)
VALUES (%(key)s, 1, clock_timestamp() + %(ttl_ms)s * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE SET value = 1, expires_at = excluded.expires_at;

-- name: is_live
SELECT EXISTS (
    SELECT FROM geotasks.rate_limit_keys WHERE key = %(key)s AND expires_at > clock_timestamp()
);

-- name: reserve
-- One statement: the upsert locks the key's log and sees its latest version, so concurrent
-- reservers line up and each gets its own slot: the latest of now, the last slot (slots never go
-- backwards), the burst-th last slot plus the spacing of a burst, and the limit-th last slot plus
-- the period. A missing index yields NULL, which greatest() ignores. The log keeps `keep` slots
-- (or more, if an earlier caller needed more).
WITH reserved AS (
    INSERT INTO geotasks.rate_limit_slots AS log (key, slots_ms, expires_at)
    SELECT %(key)s, ARRAY[clock.now_ms],
           to_timestamp((clock.now_ms + %(period_ms)s) / 1000.0)
    FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms) AS clock
    ON CONFLICT (key) DO UPDATE
    SET (slots_ms, expires_at) = (
        SELECT (log.slots_ms || next.slot_ms)[
                   greatest(1, cardinality(log.slots_ms) + 2
                               - greatest(%(keep)s, cardinality(log.slots_ms))):],
               greatest(log.expires_at, to_timestamp((next.slot_ms + %(period_ms)s) / 1000.0))
        FROM (
            SELECT greatest(
                (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                log.slots_ms[cardinality(log.slots_ms)],
                log.slots_ms[cardinality(log.slots_ms) + 1 - %(burst)s] + %(spacing_ms)s,
                log.slots_ms[cardinality(log.slots_ms) + 1 - %(limit)s] + %(period_ms)s
            ) AS slot_ms
        ) AS next
    )
    RETURNING slots_ms[cardinality(slots_ms)] AS start_ms
)
SELECT start_ms, (extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM reserved;

-- name: clock
SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint;

-- name: lock_leases
-- Serialises the lease-takers of one key until commit (the count below must see them all).
SELECT pg_advisory_xact_lock(hashtextextended('geotasks.concurrency_leases:' || %(key)s, 0));

-- name: acquire_lease
INSERT INTO geotasks.concurrency_leases AS lease (key, holder, expires_at)
SELECT %(key)s, %(holder)s, clock_timestamp() + %(ttl_ms)s * interval '1 millisecond'
WHERE (
    SELECT count(*) FROM geotasks.concurrency_leases
    WHERE key = %(key)s AND holder <> %(holder)s AND expires_at > clock_timestamp()
) < %(limit)s
ON CONFLICT (key, holder) DO UPDATE SET expires_at = excluded.expires_at
RETURNING true;

-- name: release_lease
DELETE FROM geotasks.concurrency_leases WHERE key = %(key)s AND holder = %(holder)s;

-- name: renew_leases
UPDATE geotasks.concurrency_leases AS lease
SET expires_at = clock_timestamp() + %(ttl_ms)s * interval '1 millisecond'
FROM unnest(%(keys)s::text[], %(holders)s::text[]) AS renewed (key, holder)
WHERE lease.key = renewed.key AND lease.holder = renewed.holder
  AND lease.expires_at > clock_timestamp()
RETURNING lease.key, lease.holder;

-- name: purge_keys
-- Expired rows go a while after expiring, so that no caller is still about to lock one.
DELETE FROM geotasks.rate_limit_keys WHERE key IN (
    SELECT key FROM geotasks.rate_limit_keys
    WHERE expires_at < clock_timestamp() - interval '1 minute'
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
);

-- name: purge_slots
DELETE FROM geotasks.rate_limit_slots WHERE key IN (
    SELECT key FROM geotasks.rate_limit_slots
    WHERE expires_at < clock_timestamp() - interval '1 minute'
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
);

-- name: purge_leases
DELETE FROM geotasks.concurrency_leases WHERE (key, holder) IN (
    SELECT key, holder FROM geotasks.concurrency_leases
    WHERE expires_at < clock_timestamp() - interval '1 minute'
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
);
