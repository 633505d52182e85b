"""Prometheus metrics of the whole system, computed from Postgres at scrape time.

One scrape sees every worker, queue and actor, whichever process answers it: nothing is
counted in the process serving ``/metrics``. Made with ``prometheus_client`` (the ``metrics``
extra), imported when metrics are first rendered.

The job numbers are over a sliding window, the last hour
(:data:`~geotasks.postgres.overview.WINDOW_S`): the job table forgets finished jobs after their
retention, so a count since the beginning is not something it can give cheaply or monotonically.
``geotasks_jobs_total`` and ``geotasks_job_duration_seconds`` are therefore gauges of the last
hour, to read as they are (not through ``rate()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..postgres.overview import RUN_TIME_BOUNDS_S, SystemState
from ..settings import Settings
from .queues import BrokerUnreachable, QueueInfo, read_queues
from .schedules import schedule_states

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: The metrics, with their help text (also the reference in docs/monitoring.md).
HELP = {
    "geotasks_broker_up": "1 when the broker answered this scrape, else 0 (queue metrics absent).",
    "geotasks_queue_depth": "Messages in a queue by state: ready, delayed, in_flight "
    "(in_flight absent on RabbitMQ).",
    "geotasks_queue_oldest_age_seconds": "Age of the oldest ready message of a queue "
    "(Postgres broker only).",
    "geotasks_dead_letters": "Dead-lettered messages of a queue.",
    "geotasks_workers": "Worker processes in the registry, alive or lost (heartbeat older than "
    "GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S).",
    "geotasks_schedulers": "Scheduler processes in the registry, alive or lost.",
    "geotasks_jobs_total": "Jobs that finished in the last hour, by actor and final status "
    "(a sliding window, not a counter).",
    "geotasks_job_duration_seconds": "Run times of the jobs that ran and finished in the last "
    "hour, by actor (a sliding window).",
    "geotasks_rate_limit_in_use": "Start slots of an actor's rate limit taken within its "
    "current period or reserved ahead (Postgres limiter backend).",
    "geotasks_concurrency_in_use": "Running messages holding a slot of an actor's "
    "concurrency limit.",
    "geotasks_schedule_lateness_seconds": "How long a periodic actor's due slot has not run "
    "(0 when on time).",
}


def metric_families(
    settings: Settings, state: SystemState, queues: list[QueueInfo] | None
) -> Iterator[Metric]:
    """Yield the metric families of ``state`` (``queues`` ``None``: the broker did not answer)."""
    from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

    def gauge(name: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, HELP[name], labels=labels)

    up = gauge("geotasks_broker_up", [])
    up.add_metric([], 0 if queues is None else 1)
    yield up
    if queues is not None:
        depth = gauge("geotasks_queue_depth", ["queue", "state"])
        oldest = gauge("geotasks_queue_oldest_age_seconds", ["queue"])
        dead = gauge("geotasks_dead_letters", ["queue"])
        for q in queues:
            depth.add_metric([q.queue_name, "ready"], q.ready)
            depth.add_metric([q.queue_name, "delayed"], q.delayed)
            if q.in_flight is not None:
                depth.add_metric([q.queue_name, "in_flight"], q.in_flight)
            if q.oldest_age_s is not None:
                oldest.add_metric([q.queue_name], q.oldest_age_s)
            dead.add_metric([q.queue_name], q.dead_letters)
        yield from (depth, oldest, dead)
    for role, name in (("worker", "geotasks_workers"), ("scheduler", "geotasks_schedulers")):
        processes = gauge(name, ["state"])
        for state_name in ("alive", "lost"):
            count = sum(1 for w in state.workers if w.role == role and w.state == state_name)
            processes.add_metric([state_name], count)
        yield processes
    jobs = gauge("geotasks_jobs_total", ["actor", "status"])
    for row in state.by_status:
        jobs.add_metric([row.actor_name, row.status], row.jobs)
    yield jobs
    durations = HistogramMetricFamily(
        "geotasks_job_duration_seconds", HELP["geotasks_job_duration_seconds"], labels=["actor"]
    )
    for run_times in state.run_times:
        cumulative, buckets = 0, []
        for bound, count in zip((*RUN_TIME_BOUNDS_S, float("inf")), run_times.buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        durations.add_metric([run_times.actor_name], buckets, sum_value=run_times.sum_s)
    yield durations
    for name, rows in (
        ("geotasks_rate_limit_in_use", state.rate_limits),
        ("geotasks_concurrency_in_use", state.concurrency),
    ):
        in_use = gauge(name, ["actor"])
        for slots in rows:
            in_use.add_metric([slots.actor_name], slots.in_use)
        yield in_use
    lateness = gauge("geotasks_schedule_lateness_seconds", ["actor"])
    for schedule in schedule_states(state, settings.periodic_skip_delay_s):
        if schedule.cron is not None:
            lateness.add_metric([schedule.actor_name], schedule.lateness_s)
    yield lateness


def render_metrics(settings: Settings, state: SystemState) -> tuple[bytes, str]:
    """Return the text exposition of the system's metrics and its content type.

    Raises:
      ConfigurationError: when ``prometheus_client`` is not installed.
    """
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.registry import Collector
    except ImportError as exc:
        raise ConfigurationError(
            "GEOTASKS_API_METRICS=true needs prometheus_client: pip install 'geotasks[metrics]'"
        ) from exc

    try:
        queues: list[QueueInfo] | None = read_queues(settings, state)
    except BrokerUnreachable:
        queues = None

    class _Scrape(Collector):
        def collect(self) -> Iterator[Metric]:
            return metric_families(settings, state, queues)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape())
    return generate_latest(registry), CONTENT_TYPE_LATEST
