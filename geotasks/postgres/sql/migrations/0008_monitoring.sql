-- The dashboard, /metrics and `geotasks health` (geotasks/postgres/overview.py) read the jobs
-- that finished in the last hour: an index range scan, however long the job table. The column is
-- written once, by the update that also sets the already indexed expires_at.
CREATE INDEX job_finished_at_idx ON geotasks.job (finished_at) WHERE finished_at IS NOT NULL;

-- A scheduler's row in the worker registry carries the schedules it sends, so the dashboard and
-- `geotasks health` know each periodic actor's next slot without importing its code:
-- {"actor": {"cron": "*/5 * * * *", "utc_offset_s": 3600}} (the cron is in the scheduler's
-- local time, at that offset).
ALTER TABLE geotasks.worker ADD COLUMN schedules jsonb NOT NULL DEFAULT '{}';
