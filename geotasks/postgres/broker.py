"""A Dramatiq broker on PostgreSQL through psycopg2: the broker that needs only the database.

Messages are rows of ``geotasks.broker_messages``, one per *delivery*: Dramatiq re-enqueues the
same message id before it acks the original (retries, throttling), so rows are keyed by a
``delivery_id`` and ack/nack address the row the consumer claimed.

- Enqueue is one short transaction that also rings a doorbell (``NOTIFY geotasks_queue`` with the
  queue name as payload) on this process's shared LISTEN connection, so an idle consumer wakes
  within milliseconds; a slow poll covers anything a doorbell could miss.
- Consumers claim a batch of ready rows with ``FOR UPDATE SKIP LOCKED``: any number of worker
  processes and hosts never hold the same message at once.
- Delays live in the database (``available_at``), never in worker memory: a message is not handed
  out before it is due, and Dramatiq's delay queues (``<queue>.DQ``) stay empty.
- Every consuming process heart-beats; the messages held by a process whose heartbeat lapsed go
  back to their queue, or to the dead letters once redelivered more than ``max_deliveries`` times.
- A rejected message (nack), a body that does not decode and a message for an unknown actor are
  kept in ``geotasks.broker_dead_letters`` with their error, for ``geotasks dead-letters``.
- Ack and nack also clear the poison guard's delivery count of the message in the same statement
  (:mod:`geotasks.middleware.deliveries`), saving the guard a round trip per message.

This module is the Dramatiq side (the broker's interface, and what its process holds); the
statements are in :mod:`.broker_store`, the consumers and the heartbeat in :mod:`.broker_consumer`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.errors import QueueJoinTimeout
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from psycopg2.extensions import cursor as Cursor

from ..errors import DatabaseError, MessageEncodingError
from .broker_consumer import (
    POLL_INTERVAL_S,
    DelayQueueConsumer,
    Heartbeat,
    PostgresConsumer,
    PostgresMessage,
)
from .broker_store import NOTIFY_CHANNEL, BrokerStore, ClaimedRow, Enqueue
from .pool import Database

__all__ = [
    "DEFAULT_HEARTBEAT_TIMEOUT_S",
    "DEFAULT_MAX_DELIVERIES",
    "HEARTBEATS_PER_TIMEOUT",
    "NOTIFY_CHANNEL",
    "POLL_INTERVAL_S",
    "EnqueueCompanion",
    "PostgresBroker",
    "PostgresMessage",
    "describe_failure",
]

logger = logging.getLogger(__name__)

#: Sends a new message's enqueue statement with one of its own (see
#: :meth:`PostgresBroker.send_with_enqueue`): ``(cursor, message, delay_ms, enqueue) -> sent``.
EnqueueCompanion = Callable[[Cursor, Message[Any], int | None, bytes], bool]

#: Heartbeats sent per heartbeat timeout: a beat or two may fail without the process being
#: declared dead.
HEARTBEATS_PER_TIMEOUT = 4
#: Rows claimed longer ago than this, in seconds, that the process does not know it holds (their
#: claim's reply was lost with its connection) are put back in their queue.
RELEASE_UNKNOWN_AFTER_S = 30.0
#: Default seconds without a heartbeat after which a consumer process counts as dead.
DEFAULT_HEARTBEAT_TIMEOUT_S = 60
#: Default redeliveries after which a message held by dead processes is dead-lettered.
DEFAULT_MAX_DELIVERIES = 5


class PostgresBroker(Broker):
    """A Dramatiq broker that keeps its queues in PostgreSQL.

    Run ``geotasks db init`` on the database first. Priorities work as with the other brokers:
    the actor option ``priority`` orders the messages a worker has prefetched (lower first), and
    the message option ``broker_priority`` orders a queue in the database (higher first, like
    RabbitMQ's, with no maximum to configure).

    Parameters:
      database: The connection pool holding the queues.
      middleware: As for :class:`dramatiq.Broker`; Dramatiq's defaults when ``None``.
      heartbeat_timeout_s: Seconds without a heartbeat after which a consuming process counts
        as dead and the messages it held are redelivered.
      max_deliveries: A message held by a dead process this many times is dead-lettered on the
        next redelivery instead of being handed out again.
    """

    def __init__(
        self,
        *,
        database: Database,
        middleware: list[Middleware] | None = None,
        heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        super().__init__(middleware=middleware)
        self.database = database
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_deliveries = max_deliveries
        self.queues: set[str] = set()
        self.store = BrokerStore(
            database, heartbeat_timeout_s=heartbeat_timeout_s, max_deliveries=max_deliveries
        )
        self._lock = threading.Lock()
        self._consumer_id: uuid.UUID | None = None
        self._consumer_pid = 0
        self._heartbeat: Heartbeat | None = None
        # Deliveries this process holds, claimed but not yet acked, rejected or released.
        self._held: set[int] = set()
        self._processing = threading.local()
        self._enqueue_companion: EnqueueCompanion | None = None

    def send_with_enqueue(self, companion: EnqueueCompanion | None) -> None:
        """Have ``companion`` send each new message's enqueue statement with a statement of its
        own, in one round trip and one transaction (``None``: enqueue alone again).

        A message re-enqueued while this process works on it goes with its ack instead, alone.

        Parameters:
          companion: Called with an autocommit cursor on this broker's database, the message
            (as the ``after_enqueue`` hooks then see it), its delay in ms, and the bound enqueue
            statement; returns whether it sent the statement (if not, the broker does). The
            job-status middleware records PENDING this way.
        """
        self._enqueue_companion = companion

    @property
    def consumer_id(self) -> uuid.UUID | None:
        """The id under which this process claims messages; ``None`` until it consumes."""
        return self._consumer_id if self._consumer_pid == os.getpid() else None

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        """Create a consumer for a queue.

        Parameters:
          queue_name: The queue to consume.
          prefetch: How many messages the consumer may hold at once, including the ones being
            processed.
          timeout: Milliseconds ``next()`` waits for a message before it returns ``None``.

        Returns:
          Consumer: that claims messages from Postgres (for a delay queue: one that never
          yields anything, since delayed messages wait in their own queue's rows).

        Raises:
          BrokerUnavailable: when the database cannot be reached.
        """
        if queue_name != q_name(queue_name):
            return DelayQueueConsumer(timeout)
        self._register()
        return PostgresConsumer(self, queue_name, prefetch, timeout)

    def declare_queue(self, queue_name: str) -> None:
        """Declare a queue (and its delay queue); idempotent.

        Parameters:
          queue_name: The queue's name; a delay queue's name declares its canonical queue.
        """
        canonical_name = q_name(queue_name)
        if canonical_name in self.queues:
            return
        self.emit_before("declare_queue", canonical_name)
        self.queues.add(canonical_name)
        self.emit_after("declare_queue", canonical_name)
        delayed_name = dq_name(canonical_name)
        self.delay_queues.add(delayed_name)
        self.emit_after("declare_delay_queue", delayed_name)

    def get_declared_queues(self) -> set[str]:
        """Return the names of every queue declared so far."""
        return self.queues.copy()

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        """Enqueue a message, delayed by ``delay`` ms or until its ``eta`` option.

        A message re-enqueued while this process works on the same message id (Dramatiq's
        retries, a throttle) is written in the transaction that acks or rejects the delivery
        being processed: the two happen together or not at all.

        Parameters:
          message: The message to enqueue.
          delay: The minimum number of milliseconds before the message is handed out.

        Returns:
          Message: the message as Dramatiq's other brokers return it (a delayed one names the
          delay queue and carries its ``eta``).

        Raises:
          BrokerUnavailable: when the database cannot be reached.
          MessageEncodingError: when the message encoder does not produce UTF-8 text.
        """
        queue_name = q_name(message.queue_name)
        eta_ms = message.options.get("eta") if delay is None else None
        stored = message.copy(queue_name=queue_name)
        stored.options.pop("eta", None)
        if delay is not None:
            message = message.copy(
                queue_name=dq_name(queue_name), options={"eta": current_millis() + delay}
            )
        enqueue = Enqueue(
            message_id=message.message_id,
            queue_name=queue_name,
            priority=int(message.options.get("broker_priority") or 0),
            body=_encode(stored),
            eta_ms=eta_ms if isinstance(eta_ms, int | float) else None,
            delay_ms=delay or 0,
        )
        logger.debug("Enqueueing message %s on queue %r.", message.message_id, queue_name)
        self.emit_before("enqueue", message, delay)
        processing: PostgresMessage | None = getattr(self._processing, "message", None)
        if processing is not None and processing.message_id == message.message_id:
            processing.reenqueued.append(enqueue)
        else:
            companion = self._enqueue_companion
            self.store.enqueue(
                enqueue,
                None
                if companion is None
                else lambda cur, statement: companion(cur, message, delay, statement),
            )
        self.emit_after("enqueue", message, delay)
        return message

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """Run the middleware's ``before_<signal>`` hooks.

        Before ``process_message`` it also notes, for this worker thread, which delivery is
        being processed, so that :meth:`enqueue` can pair a re-enqueue with its ack.
        """
        if signal == "process_message":
            message = args[0]
            self._processing.message = message if isinstance(message, PostgresMessage) else None
        super().emit_before(signal, *args, **kwargs)

    def flush(self, queue_name: str) -> None:
        """Drop every waiting message of a queue (delayed ones too) and its dead letters.

        Messages being processed are left to their workers, as RabbitMQ does.
        """
        self.store.flush(q_name(queue_name))

    def flush_all(self) -> None:
        """Drop every waiting message and dead letter of every declared queue."""
        for queue_name in self.get_declared_queues():
            self.flush(queue_name)

    def join(self, queue_name: str, *, interval: int = 100, timeout: int | None = None) -> None:
        """Wait until a queue has no message left, waiting, delayed or being processed.

        Meant for tests.

        Parameters:
          queue_name: The queue to wait on.
          interval: Milliseconds between looks at the queue.
          timeout: The longest to wait, in milliseconds; forever when ``None``.

        Raises:
          QueueJoinTimeout: when the timeout elapses first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while self.queue_size(queue_name):
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]
            time.sleep(interval / 1000)

    def queue_size(self, queue_name: str) -> int:
        """Return how many messages a queue has: waiting, delayed or being processed."""
        return self.store.queue_size(q_name(queue_name))

    def close(self) -> None:
        """Stop heart-beating and hand back what this process still holds.

        Messages still claimed here (an actor that outlived the worker's shutdown timeout) go
        back to their queue as a redelivery.
        """
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.stop()
        consumer_id = self.consumer_id
        if consumer_id is None:
            return
        self._consumer_id = None
        try:
            self.store.leave(consumer_id)
        except DatabaseError as exc:
            logger.warning(
                "Could not hand back the messages of consumer %s on close; they are "
                "redelivered once its heartbeat times out: %s",
                consumer_id,
                exc,
            )

    def _register(self) -> uuid.UUID:
        with self._lock:
            if self._consumer_id is not None and self._consumer_pid == os.getpid():
                return self._consumer_id
            consumer_id = uuid.uuid4()
            self._beat(consumer_id)
            self._consumer_id, self._consumer_pid = consumer_id, os.getpid()
            self._held = set()
            self._heartbeat = Heartbeat(self, self.heartbeat_timeout_s / HEARTBEATS_PER_TIMEOUT)
            self._heartbeat.start()
            logger.debug("Consuming as %s (pid %d).", consumer_id, os.getpid())
            return consumer_id

    def _beat(self, consumer_id: uuid.UUID, *, redeliver_orphans: bool = True) -> None:
        created = self.store.beat(consumer_id, redeliver_orphans=redeliver_orphans)
        if created and self._consumer_id == consumer_id:
            logger.warning(
                "This worker process (consumer %s) missed its heartbeats for more than %s s: "
                "the messages it held were redelivered to other workers.",
                consumer_id,
                self.heartbeat_timeout_s,
            )

    def _release_unknown_claims(self, consumer_id: uuid.UUID) -> None:
        claimed = self.store.held_since(consumer_id, RELEASE_UNKNOWN_AFTER_S)
        with self._lock:
            unknown = [delivery_id for delivery_id in claimed if delivery_id not in self._held]
        if unknown:
            logger.warning(
                "Releasing %d message(s) claimed by this process whose claim it never received.",
                len(unknown),
            )
            self._release(consumer_id, unknown)

    def _claim(
        self, consumer_id: uuid.UUID, queue_name: str, limit: int
    ) -> tuple[list[ClaimedRow], float | None]:
        claimed, next_ready_in_s = self.store.claim(consumer_id, queue_name, limit)
        with self._lock:
            self._held.update(row.delivery_id for row in claimed)
        return claimed, next_ready_in_s

    def _settle(self, consumer_id: uuid.UUID, message: PostgresMessage) -> None:
        """Ack (or, when it failed, dead-letter) a delivery, with the re-enqueues it made."""
        settled = self.store.settle(
            consumer_id,
            message.delivery_id,
            message.message_id,
            failure=(message.actor_name, describe_failure(message)) if message.failed else None,
            reenqueued=list(message.reenqueued),
        )
        message.reenqueued.clear()
        if getattr(self._processing, "message", None) is message:
            self._processing.message = None
        with self._lock:
            self._held.discard(message.delivery_id)
        if not settled:
            logger.warning(
                "Message %s (delivery %d) was no longer held by this worker process (its "
                "heartbeat had lapsed, so it was redelivered): its %s was dropped.",
                message.message_id,
                message.delivery_id,
                "rejection" if message.failed else "ack",
            )

    def _dead_letter_undecodable(
        self, consumer_id: uuid.UUID, queue_name: str, row: ClaimedRow, error: str
    ) -> None:
        logger.error(
            "Dead-lettered delivery %d on queue %r: its body is not a message: %s",
            row.delivery_id,
            queue_name,
            error,
        )
        try:
            self.store.dead_letter_undecodable(consumer_id, row.delivery_id, error)
        finally:
            with self._lock:
                self._held.discard(row.delivery_id)

    def _release(self, consumer_id: uuid.UUID, delivery_ids: Iterable[int]) -> None:
        ids = list(delivery_ids)
        if not ids:
            return
        try:
            self.store.release(consumer_id, ids)
        finally:
            # Released, or lost track of: either way the periodic check puts them back.
            with self._lock:
                self._held.difference_update(ids)


def describe_failure(message: MessageProxy) -> str:
    """Return the error a rejected message is dead-lettered with: its traceback when known."""
    exception = message._exception
    if exception is not None:
        return "".join(traceback.format_exception(exception)).strip()
    recorded = message.options.get("traceback")
    if recorded:
        return str(recorded).strip()
    return "rejected by the worker without an exception"


def _encode(message: Message[Any]) -> str:
    data = message.encode()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageEncodingError(
            f"message {message.message_id} does not encode to UTF-8 text: the Postgres broker "
            "stores messages as text, so use a JSON encoder (Dramatiq's default)"
        ) from exc
