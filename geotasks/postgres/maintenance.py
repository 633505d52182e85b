"""Deleting old rows: expired results and jobs, dead letters past their retention, poison-guard
counts left behind.

Periodic ticks have their own clean-up
(:meth:`geotasks.postgres.periodic.TickStore.delete_older_than`). These run from the periodic
actors in :mod:`geotasks.maintenance`, in batches of short transactions so a large backlog never
holds locks for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg2.extensions import cursor as Cursor

from .job_status import JobStore
from .pool import Database
from .queries import load_queries
from .result_store import ResultStore

logger = logging.getLogger(__name__)

#: Rows deleted per transaction.
DEFAULT_BATCH_SIZE = 1000


def delete_old_dead_letters(
    database: Database, *, older_than_s: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Delete the Postgres broker's dead letters that died more than ``older_than_s`` ago.

    Returns:
      The number of dead letters deleted.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
    """
    return _delete_in_batches(database, "delete_old_dead_letters", older_than_s, batch_size)


def delete_stale_delivery_counts(
    database: Database, *, older_than_s: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> int:
    """Delete poison-guard counts not touched for ``older_than_s`` seconds.

    Returns:
      The number of counts deleted.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
    """
    return _delete_in_batches(database, "delete_stale_delivery_counts", older_than_s, batch_size)


def _delete_in_batches(
    database: Database, query_name: str, older_than_s: int, batch_size: int
) -> int:
    query = load_queries("maintenance")[query_name]
    params = {"older_than_s": older_than_s, "batch_size": batch_size}

    def delete(cursor: Cursor) -> int:
        cursor.execute(query, params)
        return int(cursor.rowcount)

    total = 0
    while True:
        deleted = database.transaction(delete)
        total += deleted
        if deleted < batch_size:
            return total


@dataclass(frozen=True)
class ExpiredCounts:
    """What :func:`delete_expired` removed.

    Attributes:
      results: Results (with their chunks) deleted.
      jobs_expired: Finished jobs turned into EXPIRED tombstones.
      tombstones_deleted: Tombstones older than the retention period deleted.
    """

    results: int
    jobs_expired: int
    tombstones_deleted: int


def delete_expired(
    database: Database, *, retention_s: int, batch_size: int = DEFAULT_BATCH_SIZE
) -> ExpiredCounts:
    """Delete results past their time to live and expire their jobs; for a periodic actor.

    Works in batches of short transactions, and two sweepers running at once share the work.

    Parameters:
      database: The pool to use.
      retention_s: How long an EXPIRED tombstone is kept before its id reads UNKNOWN.
      batch_size: Rows per transaction.

    Returns:
      ExpiredCounts: how many results, jobs and tombstones were affected.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
    """
    results_store = ResultStore(database)
    jobs = JobStore(database)
    results = jobs_expired = tombstones_deleted = 0
    while True:
        deleted = results_store.delete_expired(batch_size=batch_size)
        tombstoned, purged = jobs.expire(retention_s=retention_s, batch_size=batch_size)
        results += deleted
        jobs_expired += tombstoned
        tombstones_deleted += purged
        if max(deleted, tombstoned, purged) < batch_size:
            break
    if results or jobs_expired or tombstones_deleted:
        logger.info(
            "Expired %d results, %d jobs; deleted %d tombstones",
            results,
            jobs_expired,
            tombstones_deleted,
        )
    return ExpiredCounts(results, jobs_expired, tombstones_deleted)
