"""The poison guard: a message that keeps killing its worker process is dead-lettered.

Dramatiq stops a whole worker when one of its processes dies, systemd restarts it, and the
message that aborted the process (a segfault in GDAL, the OOM killer) is delivered again: without
a guard the service crash-loops forever. :class:`DeliveryLimit` commits a count per message id
and attempt in Postgres *before* the actor runs and deletes it once the message is acked or
rejected, so what remains counts the deliveries that never finished: the processes it killed.
Past the limit, the message is rejected (dead-lettered by the broker) instead of run. It works
with every broker: RabbitMQ classic queues, for one, keep no delivery count.

The attempt is Dramatiq's ``retries`` option, so a retry (a new attempt of the same message id)
starts from zero, and a throttled message re-enqueued under the same attempt is not counted
against it, since it finished its delivery.

Only recording is on the way of every message. Finished deliveries are cleared in batches, a
fraction of a second later, one statement for many (and on the Postgres broker, in the database
the guard uses, by the broker's own ack statement). A worker killed in that fraction of a second
leaves the counts of deliveries that did finish: a throttled message among them counts one
delivery too many. That is the price of one round trip per message instead of two.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage
from psycopg2.extensions import cursor as Cursor

from ..errors import DatabaseError, GeotasksError
from ..postgres.broker import PostgresBroker
from ..postgres.pool import Database
from ..postgres.queries import load_queries

logger = logging.getLogger(__name__)

#: How long counts of finished deliveries wait to be cleared in a batch, in seconds.
CLEAR_INTERVAL_S = 0.2


class DeliveryLimitExceeded(GeotasksError, SkipMessage):
    """Raised when a message killed its worker process ``max_deliveries`` times."""


class DeliveryLimit(Middleware):
    """Middleware that rejects a message once it has killed its worker ``max_deliveries`` times.

    Put it first in the middleware list, so the count is committed before any other middleware
    or the actor touches the message.

    Parameters:
      database: Where the counts are kept (``geotasks.message_deliveries``).
      max_deliveries: Unfinished deliveries a message may have; the next one is rejected. Can
        be set per actor and per message with the ``max_deliveries`` option.
    """

    def __init__(self, database: Database, *, max_deliveries: int = 5) -> None:
        self.database = database
        self.max_deliveries = max_deliveries
        self._queries = load_queries("deliveries")
        self._started = threading.local()
        # (message id, attempt) of finished deliveries whose counts are still to be cleared.
        self._finished: set[tuple[str, int]] = set()
        self._finished_lock = threading.Lock()
        self._clearer: threading.Thread | None = None

    @property
    def actor_options(self) -> set[str]:
        return {"max_deliveries"}

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        key = _delivery_key(message)
        with self._finished_lock:
            restart = (key["message_id"], key["attempt"]) in self._finished
            self._finished.discard((key["message_id"], key["attempt"]))
        deliveries = self._record({**key, "restart": restart})
        self._started.key = key
        limit = self._limit(broker, message)
        killed = deliveries - 1
        if killed < limit:
            return
        logger.error(
            "Rejecting message %s (%s): it killed its worker %d times.",
            message.message_id,
            message.actor_name,
            killed,
        )
        message.fail()
        raise DeliveryLimitExceeded(
            f"message {message.message_id} ({message.actor_name}) killed its worker {killed} "
            f"times (limit {limit}, GEOTASKS_MAX_DELIVERIES): rejected instead of run again"
        )

    def after_ack(self, broker: Broker, message: MessageProxy) -> None:
        self._forget(broker, message)

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:
        self._forget(broker, message)

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._clear_finished()

    def _limit(self, broker: Broker, message: MessageProxy) -> int:
        limit = message.options.get("max_deliveries")
        if limit is None:
            try:
                limit = broker.get_actor(message.actor_name).options.get("max_deliveries")
            except ActorNotFound:
                limit = None
        return int(self.max_deliveries if limit is None else limit)

    def _record(self, key: dict[str, Any]) -> int:
        def work(cur: Cursor) -> int:
            cur.execute(self._queries["record_delivery"], key)
            row = cur.fetchone()
            return int(row[0]) if row else 1

        return self.database.transaction(work, single_statement=True)

    def _forget(self, broker: Broker, message: MessageProxy) -> None:
        # Only the thread that started the delivery finishes it; an ack from elsewhere (a
        # message for an unknown actor, rejected before it started) has nothing to forget.
        key: dict[str, Any] | None = getattr(self._started, "key", None)
        if key is None or key["message_id"] != message.message_id:
            return
        self._started.key = None
        if isinstance(broker, PostgresBroker) and broker.database.url == self.database.url:
            return  # Its ack or nack cleared the count, in the same statement.
        with self._finished_lock:
            self._finished.add((key["message_id"], key["attempt"]))
            if self._clearer is None:
                self._clearer = threading.Thread(
                    target=self._clear_periodically, name="geotasks-delivery-clearer", daemon=True
                )
                self._clearer.start()

    def _clear_periodically(self) -> None:
        while True:
            time.sleep(CLEAR_INTERVAL_S)
            with self._finished_lock:
                if not self._finished:
                    self._clearer = None
                    return
            self._clear_finished()

    def _clear_finished(self) -> None:
        with self._finished_lock:
            finished, self._finished = self._finished, set()
        if not finished:
            return
        params = {
            "message_ids": [message_id for message_id, _ in finished],
            "attempts": [attempt for _, attempt in finished],
        }
        try:
            self.database.transaction(
                lambda cur: cur.execute(self._queries["forget_deliveries"], params),
                single_statement=True,
            )
        except DatabaseError as exc:
            # Left behind, a count only makes the guard stricter for that one attempt.
            logger.warning("Could not clear %d delivery counts: %s", len(finished), exc)


def _delivery_key(message: MessageProxy) -> dict[str, Any]:
    return {"message_id": message.message_id, "attempt": int(message.options.get("retries", 0))}
