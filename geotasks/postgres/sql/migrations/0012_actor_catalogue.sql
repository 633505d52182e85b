-- geotasks/postgres/catalogue.py: every public actor a worker serves, as clients know it. Workers
-- publish their actors when they start; `geotasks.submit`, the CLI and the HTTP API read them,
-- so a process that cannot import an actor's code can still check arguments and send to it.
CREATE TABLE geotasks.actor_catalogue (
    actor_name text PRIMARY KEY,
    -- The actor as geotasks.registry.ActorSpec.to_json() writes it.
    spec jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    -- host, pid and geotasks version of the worker that last published a different spec.
    published_by text NOT NULL
);
