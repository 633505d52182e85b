"""Deleting old broker rows: dead letters past their retention, poison-guard counts left behind.

Results and job statuses have their own clean-up (:func:`geotasks.postgres.results.delete_expired`),
periodic ticks theirs (:meth:`geotasks.postgres.periodic.TickStore.delete_older_than`). These run
from the periodic actors in :mod:`geotasks.maintenance`, in batches of short transactions so a
large backlog never holds locks for long.
"""

from __future__ import annotations

from psycopg2.extensions import cursor as Cursor

from .pool import Database
from .queries import load_queries

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
