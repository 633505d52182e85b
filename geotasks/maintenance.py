"""Periodic clean-up of what geotasks keeps in Postgres, declared as any periodic actor is.

A scheduler (``geotasks scheduler``, or ``geotasks worker --scheduler``) only sends messages; the
actors below run on the ``maintenance`` queue, served by a worker instance of its own
(``dramatiq geotasks.worker -Q maintenance``), so that a backlog of long geoprocessing on the
``geo`` queue never delays them. Any number of schedulers may run:
:class:`~geotasks.middleware.periodic.PeriodicDeduplication` runs each tick once.

Each actor deletes in short batches, logs what it removed and returns the counts (stored as its
result). None retries: the next tick is the retry. Schedules (cron specs, read in UTC) and
retentions come from the ``GEOTASKS_*`` settings.

Temporary files are not cleaned here: they live on each worker host, so each host cleans its own
(:mod:`geotasks.tmpfiles`), whereas a queued job runs on one random host.
"""

from __future__ import annotations

import dataclasses
import logging

from dramatiq.middleware import CurrentMessage

from .broker import database_for
from .declaration import actor
from .postgres.maintenance import (
    delete_expired,
    delete_old_dead_letters,
    delete_stale_delivery_counts,
)
from .postgres.periodic import TickStore
from .settings import get_settings

logger = logging.getLogger(__name__)

#: The queue of every periodic actor; a public name, served by its own worker instance.
MAINTENANCE_QUEUE = "maintenance"
#: How long a periodic tick's de-duplication record is kept, in seconds. A second scheduler's
#: copy arrives within seconds, and any copy later than its actor's ``skip_late_s`` is skipped;
#: a day leaves a readable history of which ticks ran.
TICK_RETENTION_S = 86_400

_settings = get_settings()


def _message_id() -> str:
    message = CurrentMessage.get_current_message()
    return "-" if message is None else message.message_id


@actor(
    queue_name=MAINTENANCE_QUEUE,
    max_retries=0,
    public=False,
    cron=_settings.delete_expired_results_schedule,
)
def delete_expired_results() -> dict[str, int]:
    """Delete results past their TTL; expire their jobs; delete tombstones past retention.

    Returns:
      dict: ``results``, ``jobs_expired`` and ``tombstones_deleted`` counts.
    """
    settings = get_settings()
    counts = delete_expired(database_for(settings), retention_s=settings.job_retention_s)
    removed = dataclasses.asdict(counts)
    logger.info("delete_expired_results (message %s) removed %s", _message_id(), removed)
    return removed


@actor(
    queue_name=MAINTENANCE_QUEUE,
    max_retries=0,
    public=False,
    cron=_settings.delete_old_broker_rows_schedule,
)
def delete_old_broker_rows() -> dict[str, int]:
    """Delete dead letters and stale poison-guard counts older than their retention.

    Returns:
      dict: ``dead_letters`` and ``delivery_counts`` deleted.
    """
    settings = get_settings()
    database = database_for(settings)
    retention_s = settings.dead_letter_retention_s
    removed = {
        "dead_letters": delete_old_dead_letters(database, older_than_s=retention_s),
        "delivery_counts": delete_stale_delivery_counts(database, older_than_s=retention_s),
    }
    logger.info("delete_old_broker_rows (message %s) removed %s", _message_id(), removed)
    return removed


@actor(
    queue_name=MAINTENANCE_QUEUE,
    max_retries=0,
    public=False,
    cron=_settings.delete_old_periodic_ticks_schedule,
)
def delete_old_periodic_ticks() -> dict[str, int]:
    """Delete de-duplication records of periodic ticks older than :data:`TICK_RETENTION_S`.

    Returns:
      dict: ``periodic_ticks`` deleted.
    """
    deleted = TickStore(database_for(get_settings())).delete_older_than(TICK_RETENTION_S)
    removed = {"periodic_ticks": deleted}
    logger.info("delete_old_periodic_ticks (message %s) removed %s", _message_id(), removed)
    return removed
