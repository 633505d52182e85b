-- name: lock
-- Serialises `geotasks db init` across processes and hosts for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtext('geotasks.migrate'));

-- name: installed
SELECT to_regclass('geotasks.schema_version') IS NOT NULL;

-- name: applied_versions
SELECT version FROM geotasks.schema_version ORDER BY version;

-- name: record_version
INSERT INTO geotasks.schema_version (version, name) VALUES (%(version)s, %(name)s);

-- name: current_version
SELECT coalesce(max(version), 0) FROM geotasks.schema_version;
