-- The worker registry (geotasks/postgres/workers.py). Times come from the database clock, so
-- hosts with skewed clocks agree on who is lost.

-- name: beat
-- Registers the process, or renews it: an upsert, so a row deleted meanwhile (a lost process
-- forgotten, a database restored) comes back at the next beat.
INSERT INTO geotasks.worker AS w
    (worker_id, role, hostname, pid, parent_pid, queues, threads, version, jobs_in_flight,
     schedules)
VALUES (
    %(worker_id)s, %(role)s, %(hostname)s, %(pid)s, %(parent_pid)s, %(queues)s, %(threads)s,
    %(version)s, %(jobs_in_flight)s, %(schedules)s
)
ON CONFLICT (worker_id) DO UPDATE
SET heartbeat_at = now(), jobs_in_flight = excluded.jobs_in_flight, queues = excluded.queues,
    schedules = excluded.schedules;

-- name: forget_lost
-- A handful of rows: no index needed.
DELETE FROM geotasks.worker
WHERE heartbeat_at < now() - make_interval(secs => %(older_than_s)s);

-- name: unregister
DELETE FROM geotasks.worker WHERE worker_id = %(worker_id)s;

-- name: list_workers
-- Every registered process with its state; `processes` counts the processes of its instance.
SELECT
    worker_id, role, hostname, pid, parent_pid, queues, threads, version, started_at,
    heartbeat_at, jobs_in_flight, schedules,
    heartbeat_at < now() - make_interval(secs => %(heartbeat_timeout_s)s) AS lost,
    count(*) OVER (PARTITION BY role, hostname, parent_pid) AS processes
FROM geotasks.worker
ORDER BY role DESC, hostname, parent_pid, pid;
