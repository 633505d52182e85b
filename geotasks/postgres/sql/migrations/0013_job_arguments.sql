-- A job's arguments as its first message carried them, {"args": [...], "kwargs": {...}}
-- (geotasks/middleware/job_status.py): readable, and sendable again (the Django admin's retry),
-- after the broker has let go of the message. NULL when they were too large to keep there
-- (JOB_ARGUMENTS_MAX_BYTES) or not plain JSON; a tombstone drops them.
ALTER TABLE geotasks.job ADD COLUMN arguments jsonb;
