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
"""

from __future__ import annotations

import logging
import threading
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

    @property
    def actor_options(self) -> set[str]:
        return {"max_deliveries"}

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        key = _delivery_key(message)
        deliveries = self._record(key)
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
        if isinstance(broker, PostgresBroker):
            return  # Its ack or nack cleared the count, in the same statement.
        try:
            self.database.transaction(
                lambda cur: cur.execute(self._queries["forget_delivery"], key),
                single_statement=True,
            )
        except DatabaseError as exc:
            # Left behind, the count only makes the guard stricter for this one attempt.
            logger.warning(
                "Could not clear the delivery count of message %s: %s", message.message_id, exc
            )


def _delivery_key(message: MessageProxy) -> dict[str, Any]:
    return {"message_id": message.message_id, "attempt": int(message.options.get("retries", 0))}
