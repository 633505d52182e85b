"""The Postgres broker's consuming side: the messages it hands out, its consumers, and the
heartbeat of a consuming process.

A consumer claims a few ready rows at a time with ``FOR UPDATE SKIP LOCKED`` and, while its
queue is empty, sleeps on the queue's doorbell (``NOTIFY geotasks_queue``, payload the queue's
name) on the process's shared LISTEN connection; a slow poll covers a doorbell lost with a broken
connection. The heartbeat records that the process is alive, and hands back the messages held by
processes that are not.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import DecodeError
from dramatiq.message import Message

from ..errors import DatabaseError, DatabaseUnavailable
from .broker_store import NOTIFY_CHANNEL, ClaimedRow, Enqueue
from .listener import get_listener

if TYPE_CHECKING:
    from .broker import PostgresBroker

logger = logging.getLogger(__name__)

#: Longest an idle consumer goes without looking at its queue, in seconds (doorbells wake it
#: sooner; this only covers a doorbell lost with a broken LISTEN connection).
POLL_INTERVAL_S = 5.0


class PostgresMessage(MessageProxy):
    """A message claimed from the Postgres broker.

    Attributes:
      delivery_id: The row this delivery was claimed as; ack and nack address it.
      redeliveries: How many times the message went back to its queue because the worker
        process holding it died.
      reenqueued: Enqueues of this message id made while it was being processed, written
        together with its ack or rejection.
    """

    def __init__(self, message: Message[Any], *, delivery_id: int, redeliveries: int) -> None:
        super().__init__(message)
        self.delivery_id = delivery_id
        self.redeliveries = redeliveries
        self.reenqueued: list[Enqueue] = []


class PostgresConsumer(Consumer):
    """Claims messages of one queue in batches; waits on the doorbell while the queue is empty.

    Dramatiq calls ``next()`` from its consumer thread and ``ack``/``nack`` from worker threads.
    """

    def __init__(self, broker: PostgresBroker, queue_name: str, prefetch: int, timeout: int):
        consumer_id = broker.consumer_id
        if consumer_id is None:
            raise AssertionError("consumers are created by PostgresBroker.consume()")
        self.broker = broker
        self.consumer_id = consumer_id
        self.queue_name = queue_name
        self.prefetch = max(1, prefetch)
        # Claiming a few at a time keeps round trips per message low while busy.
        self.min_claim = max(1, self.prefetch // 4)
        self.timeout_s = timeout / 1000
        self._cache: deque[ClaimedRow] = deque()
        self._handed_out: set[int] = set()
        self._lock = threading.Lock()
        self._more_waiting = True
        self._next_look = 0.0
        self._doorbells = contextlib.ExitStack()
        self._doorbell = self._doorbells.enter_context(
            get_listener(broker.database).expect(NOTIFY_CHANNEL, queue_name)
        )

    def __next__(self) -> MessageProxy | None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            while self._cache:
                message = self._hand_out(self._cache.popleft())
                if message is not None:
                    return message
            free = self._free_slots()
            if free < self.min_claim and self._doorbell.is_set():
                # Full: remember the ring, and let the next ack wake this thread.
                self._doorbell.clear()
                self._more_waiting = True
                continue
            now = time.monotonic()
            if free >= self.min_claim and (
                self._more_waiting or self._doorbell.is_set() or now >= self._next_look
            ):
                self._doorbell.clear()
                rows, next_ready_in_s = self.broker._claim(self.consumer_id, self.queue_name, free)
                self._cache.extend(rows)
                self._more_waiting = len(rows) == free
                # A claim that returned rows does not say when the next delayed row is due:
                # look again as soon as these are handed out.
                if rows:
                    wait_s = 0.0
                else:
                    wait_s = POLL_INTERVAL_S if next_ready_in_s is None else next_ready_in_s
                self._next_look = now + min(POLL_INTERVAL_S, max(0.0, wait_s))
                if rows:
                    continue
            now = time.monotonic()
            if now >= deadline:
                return None
            wake_at = deadline if free < self.min_claim else min(deadline, self._next_look)
            self._doorbell.wait(max(0.0, wake_at - now))

    def ack(self, message: MessageProxy) -> None:
        self._settle(message)

    def nack(self, message: MessageProxy) -> None:
        self._settle(message)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        ids = [message.delivery_id for message in messages if isinstance(message, PostgresMessage)]
        with self._lock:
            self._handed_out.difference_update(ids)
        logger.debug("Releasing %d unstarted message(s) of queue %r.", len(ids), self.queue_name)
        self.broker._release(self.consumer_id, ids)

    def close(self) -> None:
        cached = [row.delivery_id for row in self._cache]
        self._cache.clear()
        try:
            self.broker._release(self.consumer_id, cached)
        except DatabaseError as exc:
            logger.warning("Could not release prefetched messages of %r: %s", self.queue_name, exc)
        finally:
            self._doorbells.close()

    def _settle(self, message: MessageProxy) -> None:
        if not isinstance(message, PostgresMessage):
            raise TypeError(f"{message!r} was not claimed from a PostgresBroker")
        self.broker._settle(self.consumer_id, message)
        with self._lock:
            was_full = self._free_slots_locked() < self.min_claim
            self._handed_out.discard(message.delivery_id)
            has_room = self._free_slots_locked() >= self.min_claim
        if was_full and has_room:
            self._doorbell.set()

    def _free_slots(self) -> int:
        with self._lock:
            return self._free_slots_locked()

    def _free_slots_locked(self) -> int:
        return self.prefetch - len(self._handed_out) - len(self._cache)

    def _hand_out(self, row: ClaimedRow) -> PostgresMessage | None:
        try:
            message = Message.decode(row.body.encode("utf-8"))
        except DecodeError as exc:
            cause = exc.error if isinstance(exc.error, BaseException) else exc
            self.broker._dead_letter_undecodable(
                self.consumer_id,
                self.queue_name,
                row,
                f"undecodable message body: {type(cause).__name__}: {cause}",
            )
            return None
        if message.queue_name != self.queue_name or "eta" in message.options:
            # The row, not the body, says where the message is and when it is due.
            message = message.copy(queue_name=self.queue_name)
            message.options.pop("eta", None)
        with self._lock:
            self._handed_out.add(row.delivery_id)
        return PostgresMessage(message, delivery_id=row.delivery_id, redeliveries=row.redeliveries)


class DelayQueueConsumer(Consumer):
    """The consumer of a delay queue: always empty, since delayed messages wait in their own
    queue's rows until ``available_at``. It exists so the worker's ``-Q`` handling and delay-queue
    consumers behave as with the other brokers."""

    def __init__(self, timeout: int) -> None:
        self.timeout_s = timeout / 1000
        self._closed = threading.Event()

    def __next__(self) -> MessageProxy | None:
        self._closed.wait(self.timeout_s)
        return None

    def close(self) -> None:
        self._closed.set()


class Heartbeat(threading.Thread):
    """Records that this process is alive; hands back messages of processes that are not."""

    def __init__(self, broker: PostgresBroker, interval_s: float) -> None:
        super().__init__(name="geotasks-broker-heartbeat", daemon=True)
        self.broker = broker
        self.interval_s = interval_s
        self._stopped = threading.Event()

    def run(self) -> None:
        last_beat = time.monotonic()
        while not self._stopped.wait(self.interval_s):
            consumer_id = self.broker.consumer_id
            if consumer_id is None:
                return
            # After a gap (the database was unreachable), the other processes could not beat
            # either: give them an interval to do so before judging who is dead.
            in_touch = time.monotonic() - last_beat < 2 * self.interval_s
            try:
                self.broker._beat(consumer_id, redeliver_orphans=in_touch)
                last_beat = time.monotonic()
                self.broker._release_unknown_claims(consumer_id)
            except DatabaseUnavailable as exc:
                # The pool logs the outage itself, once.
                logger.debug("Broker heartbeat failed, retrying: %s", exc)
            except DatabaseError as exc:
                logger.warning("Broker heartbeat failed, retrying: %s", exc)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=self.broker.database.connect_timeout_s + 1)
