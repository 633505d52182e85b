"""The Postgres broker's gateway to the database: every statement of ``sql/broker.sql`` that the
broker and its consumers run (the dead-letter commands have theirs in
:mod:`geotasks.postgres.dead_letters`).

:class:`~geotasks.postgres.broker.PostgresBroker` decides what to send and when, and keeps
track of what its process holds; this module only speaks to Postgres. Its errors name the
broker: an unreachable database is :class:`~geotasks.errors.BrokerUnavailable`, missing tables
say to run ``geotasks db init``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg2.errors
from psycopg2.extensions import cursor as Cursor

from ..errors import BrokerUnavailable, DatabaseError, DatabaseUnavailable
from .pool import Database
from .prepared import PreparedStatement, bind_prepared, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The doorbell: ``NOTIFY`` channel whose payload is the name of a queue that got messages.
NOTIFY_CHANNEL = "geotasks_queue"


@dataclass(frozen=True, slots=True)
class Enqueue:
    """A message to put on its queue: the parameters of ``broker.sql: enqueue``.

    Attributes:
      queue_name: The canonical queue (never a ``.DQ``).
      priority: The message option ``broker_priority`` (higher first).
      body: The encoded message, as UTF-8 text.
      eta_ms: When the message is due, in ms since the epoch, when it says so itself.
      delay_ms: Or how long from now.
    """

    message_id: str
    queue_name: str
    priority: int
    body: str
    eta_ms: float | None
    delay_ms: int

    @property
    def params(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "queue_name": self.queue_name,
            "priority": self.priority,
            "body": self.body,
            "eta_ms": self.eta_ms,
            "delay_ms": self.delay_ms,
            "channel": NOTIFY_CHANNEL,
        }


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A delivery claimed by a consumer, as the ``claim`` query returns it."""

    delivery_id: int
    priority: int
    body: str
    redeliveries: int


class BrokerStore:
    """Runs the Postgres broker's statements through a connection pool.

    Parameters:
      database: The connection pool holding the queues.
      heartbeat_timeout_s: Seconds without a heartbeat after which a consuming process counts
        as dead and the messages it held are redelivered.
      max_deliveries: A message held by a dead process this many times is dead-lettered on the
        next redelivery instead of being handed out again.
    """

    def __init__(
        self, database: Database, *, heartbeat_timeout_s: float, max_deliveries: int
    ) -> None:
        self.database = database
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_deliveries = max_deliveries
        self._queries = load_queries("broker")
        # On the path of every message: prepared once per connection.
        self._enqueue = PreparedStatement("geotasks_broker_enqueue", self._queries["enqueue"])
        self._ack = PreparedStatement("geotasks_broker_ack", self._queries["ack"])
        self._relax_commit = self._queries["relax_commit"] + "\n"

    def enqueue(self, message: Enqueue, companion: Callable[[Cursor, bytes], bool] | None) -> None:
        """Put a message on its queue and ring the queue's doorbell; one statement.

        Parameters:
          message: What to enqueue.
          companion: Sends the bound enqueue statement with one of its own, in one round trip
            and one transaction; returns whether it did (if not, the enqueue goes alone).
        """
        params = message.params

        def send(cur: Cursor) -> None:
            if companion is None or not companion(cur, bind_prepared(cur, self._enqueue, params)):
                execute_prepared(cur, self._enqueue, params)

        self._run(send, single_statement=True)

    def settle(
        self,
        consumer_id: uuid.UUID,
        delivery_id: int,
        message_id: str,
        *,
        failure: tuple[str, str] | None,
        reenqueued: Sequence[Enqueue],
    ) -> bool:
        """Ack a delivery, or dead-letter it with ``failure`` (actor name, error); with the
        re-enqueues of its message id made while it ran, in one transaction. The poison guard's
        counts of the message go in the same statement.

        Returns:
          bool: ``False`` when this consumer no longer held the delivery (it was redelivered):
          nothing was written.
        """
        params: dict[str, Any] = {
            "delivery_id": delivery_id,
            "consumer_id": str(consumer_id),
            "message_id": message_id,
        }
        if failure is not None:
            params.update(actor_name=failure[0], error=failure[1])

        def work(cur: Cursor) -> bool:
            if failure is not None:
                cur.execute(self._queries["dead_letter"], params)
            else:
                execute_prepared(cur, self._ack, params, prefix=self._relax_commit)
            if cur.rowcount != 1:
                return False
            for enqueue in reenqueued:
                cur.execute(self._queries["enqueue"], enqueue.params)
            return True

        return self._run(work, single_statement=not reenqueued)

    def dead_letter_undecodable(self, consumer_id: uuid.UUID, delivery_id: int, error: str) -> None:
        """Dead-letter a delivery whose body is not a message."""
        params = {
            "delivery_id": delivery_id,
            "consumer_id": str(consumer_id),
            "message_id": None,
            "actor_name": None,
            "error": error,
        }
        self._run(
            lambda cur: cur.execute(self._queries["dead_letter"], params), single_statement=True
        )

    def claim(
        self, consumer_id: uuid.UUID, queue_name: str, limit: int
    ) -> tuple[list[ClaimedRow], float | None]:
        """Claim up to ``limit`` ready deliveries of a queue.

        Returns:
          The rows, highest priority first, and, when none was ready, in how many seconds the
          next delayed one is due (``None``: no delayed one).
        """
        params = {"consumer_id": str(consumer_id), "queue_name": queue_name, "limit": limit}

        def work(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(self._queries["claim"], params)
            return cur.fetchall()

        claimed: list[ClaimedRow] = []
        next_ready_in_s: float | None = None
        for delivery_id, priority, body, redeliveries, ready_in_s in self._run(
            work, single_statement=True
        ):
            if delivery_id is None:
                next_ready_in_s = ready_in_s
            else:
                claimed.append(ClaimedRow(delivery_id, priority, body, redeliveries))
        claimed.sort(key=lambda row: (-row.priority, row.delivery_id))
        return claimed, next_ready_in_s

    def release(self, consumer_id: uuid.UUID, delivery_ids: list[int]) -> None:
        """Put deliveries this consumer claimed but never started back in their queues."""
        params = {
            "delivery_ids": delivery_ids,
            "consumer_id": str(consumer_id),
            "channel": NOTIFY_CHANNEL,
        }
        self._run(lambda cur: cur.execute(self._queries["release"], params), single_statement=True)

    def held_since(self, consumer_id: uuid.UUID, age_s: float) -> list[int]:
        """Return the deliveries this consumer claimed more than ``age_s`` seconds ago."""

        def work(cur: Cursor) -> list[int]:
            cur.execute(
                self._queries["held_since"], {"consumer_id": str(consumer_id), "age_s": age_s}
            )
            return [int(row[0]) for row in cur.fetchall()]

        return self._run(work, single_statement=True)

    def beat(self, consumer_id: uuid.UUID, *, redeliver_orphans: bool) -> bool:
        """Record that this consumer is alive; then, unless told not to, hand back the messages
        of consumers that are not.

        Returns:
          bool: whether the consumer's row was created (new, or declared dead meanwhile).
        """
        params = {
            "consumer_id": str(consumer_id),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }

        def work(cur: Cursor) -> bool:
            cur.execute(self._queries["heartbeat"], params)
            row = cur.fetchone()
            created = bool(row and row[0])
            if redeliver_orphans:
                self._redeliver_orphans(cur, leaving=None)
            return created

        return self._run(work)

    def leave(self, consumer_id: uuid.UUID) -> None:
        """Forget a consumer that stops, and hand back what it still holds as redeliveries."""
        self._run(lambda cur: self._redeliver_orphans(cur, leaving=consumer_id))

    def _redeliver_orphans(self, cur: Cursor, *, leaving: uuid.UUID | None) -> None:
        cur.execute(
            self._queries["forget_stale_consumers"],
            {
                "heartbeat_timeout_s": self.heartbeat_timeout_s,
                "leaving_consumer_id": None if leaving is None else str(leaving),
            },
        )
        cur.execute(
            self._queries["redeliver_orphans"],
            {"max_deliveries": self.max_deliveries, "channel": NOTIFY_CHANNEL},
        )
        row = cur.fetchone()
        redelivered, dead = (int(row[0]), int(row[1])) if row else (0, 0)
        if redelivered:
            logger.warning(
                "Redelivered %d message(s) whose worker process died, stopped heart-beating or "
                "shut down before finishing them.",
                redelivered,
            )
        if dead:
            logger.error(
                "Dead-lettered %d message(s) redelivered more than %d times: each time, the "
                "worker process holding them died.",
                dead,
                self.max_deliveries,
            )

    def flush(self, queue_name: str) -> None:
        """Drop every waiting message of a queue (delayed ones too) and its dead letters."""
        self._run(
            lambda cur: cur.execute(self._queries["flush"], {"queue_name": queue_name}),
            single_statement=True,
        )

    def queue_size(self, queue_name: str) -> int:
        """Return how many messages a queue has: waiting, delayed or being processed."""

        def count(cur: Cursor) -> int:
            cur.execute(self._queries["queue_size"], {"queue_name": queue_name})
            row = cur.fetchone()
            return int(row[0]) if row else 0

        return self._run(count, single_statement=True)

    def _run(self, work: Callable[[Cursor], T], *, single_statement: bool = False) -> T:
        try:
            return self.database.transaction(work, single_statement=single_statement)
        except DatabaseUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from exc
        except DatabaseError as exc:
            if isinstance(exc.__cause__, psycopg2.errors.UndefinedTable):
                raise DatabaseError(
                    f"the geotasks broker tables are missing ({exc}): run `geotasks db init`"
                ) from exc
            raise
