-- The whole current schema of geotasks, applied as-is to a fresh database by `geotasks db init`.
-- Every change also gets an append-only file in migrations/; a test proves that applying all
-- migrations in order produces exactly this schema.

CREATE SCHEMA geotasks;

CREATE TABLE geotasks.schema_version (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
