-- What a job warned its client about while it ran (geotasks.job_warnings.warn): a JSON array
-- of objects with a "message", such as invalid geometries kept as they were.
ALTER TABLE geotasks.job ADD COLUMN warnings jsonb;
