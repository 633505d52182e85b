-- The actor catalogue: what workers serve, for clients that cannot import the actors.

-- name: publish_actor
-- The same spec again (every worker process of every host publishes at start) changes nothing;
-- a different one (a new release, a rolling upgrade) replaces it: the last worker to start wins.
INSERT INTO geotasks.actor_catalogue AS c (actor_name, spec, published_by)
VALUES (%(actor_name)s, %(spec)s, %(published_by)s)
ON CONFLICT (actor_name) DO UPDATE
SET spec = excluded.spec, published_at = now(), published_by = excluded.published_by
WHERE c.spec IS DISTINCT FROM excluded.spec
RETURNING (xmax = 0) AS inserted;

-- name: list_actors
SELECT spec, published_at, published_by FROM geotasks.actor_catalogue ORDER BY actor_name;
