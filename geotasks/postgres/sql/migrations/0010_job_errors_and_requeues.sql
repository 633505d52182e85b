-- Job status (geotasks/postgres/job_status.py): the last attempt's traceback, readable while the
-- job is RETRYING as for a FAILURE; the errors of attempts that ended before a dead letter was
-- re-queued (`history`, oldest first); and a job waiting for its retry can be cancelled.
ALTER TABLE geotasks.job ADD COLUMN error_traceback text;
ALTER TABLE geotasks.job ADD COLUMN history jsonb NOT NULL DEFAULT '[]';

CREATE OR REPLACE FUNCTION geotasks.job_transition_allowed(
    current_status text, current_attempt integer, new_status text, new_attempt integer
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN current_status IS NULL THEN new_status NOT IN ('CANCELLED', 'EXPIRED')
        WHEN current_status IN ('SUCCESS', 'FAILURE', 'SKIPPED', 'CANCELLED', 'EXPIRED') THEN false
        WHEN new_status = 'CANCELLED' THEN current_status IN ('PENDING', 'THROTTLED', 'RETRYING')
        WHEN new_status = 'EXPIRED' THEN false
        WHEN new_status IN ('STARTED', 'THROTTLED')
            AND new_attempt = current_attempt
            AND geotasks.job_phase(new_status) = geotasks.job_phase(current_status) THEN true
        ELSE (new_attempt, geotasks.job_phase(new_status))
            > (current_attempt, geotasks.job_phase(current_status))
    END
$$;
