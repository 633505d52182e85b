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
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg2.errors
from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.errors import DecodeError, QueueJoinTimeout
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from psycopg2.extensions import cursor as Cursor

from ..errors import BrokerUnavailable, DatabaseError, DatabaseUnavailable, MessageEncodingError
from .listener import get_listener
from .pool import Database, PreparedStatement, bind_prepared, execute_prepared
from .queries import load_queries

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Sends a new message's enqueue statement with one of its own (see
#: :meth:`PostgresBroker.send_with_enqueue`): ``(cursor, message, delay_ms, enqueue) -> sent``.
EnqueueCompanion = Callable[[Cursor, Message[Any], int | None, bytes], bool]

#: The doorbell: ``NOTIFY`` channel whose payload is the name of a queue that got messages.
NOTIFY_CHANNEL = "geotasks_queue"
#: Longest an idle consumer goes without looking at its queue, in seconds (doorbells wake it
#: sooner; this only covers a doorbell lost with a broken LISTEN connection).
POLL_INTERVAL_S = 5.0
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
        self._queries = load_queries("broker")
        # On the path of every message: prepared once per connection.
        self._enqueue = PreparedStatement("geotasks_broker_enqueue", self._queries["enqueue"])
        self._ack = PreparedStatement("geotasks_broker_ack", self._queries["ack"])
        self._relax_commit = self._queries["relax_commit"] + "\n"
        self._lock = threading.Lock()
        self._consumer_id: uuid.UUID | None = None
        self._consumer_pid = 0
        self._heartbeat: _Heartbeat | None = None
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
            return _DelayQueueConsumer(timeout)
        self._register()
        return _PostgresConsumer(self, queue_name, prefetch, timeout)

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
        params = {
            "message_id": message.message_id,
            "queue_name": queue_name,
            "priority": int(message.options.get("broker_priority") or 0),
            "body": _encode(stored),
            "eta_ms": eta_ms if isinstance(eta_ms, int | float) else None,
            "delay_ms": delay or 0,
            "channel": NOTIFY_CHANNEL,
        }
        logger.debug("Enqueueing message %s on queue %r.", message.message_id, queue_name)
        self.emit_before("enqueue", message, delay)
        processing: PostgresMessage | None = getattr(self._processing, "message", None)
        if processing is not None and processing.message_id == message.message_id:
            processing.reenqueued.append(params)
        else:
            companion = self._enqueue_companion

            def send(cur: Cursor) -> None:
                if companion is None or not companion(
                    cur, message, delay, bind_prepared(cur, self._enqueue, params)
                ):
                    execute_prepared(cur, self._enqueue, params)

            self._run(send, single_statement=True)
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
        self._run(
            lambda cur: cur.execute(self._queries["flush"], {"queue_name": q_name(queue_name)}),
            single_statement=True,
        )

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

        def count(cur: Cursor) -> int:
            cur.execute(self._queries["queue_size"], {"queue_name": q_name(queue_name)})
            row = cur.fetchone()
            return int(row[0]) if row else 0

        return self._run(count, single_statement=True)

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
            self._run(lambda cur: self._redeliver_orphans(cur, leaving=consumer_id))
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
            self._heartbeat = _Heartbeat(self, self.heartbeat_timeout_s / HEARTBEATS_PER_TIMEOUT)
            self._heartbeat.start()
            logger.debug("Consuming as %s (pid %d).", consumer_id, os.getpid())
            return consumer_id

    def _beat(self, consumer_id: uuid.UUID, *, redeliver_orphans: bool = True) -> None:
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

        created = self._run(work)
        if created and self._consumer_id == consumer_id:
            logger.warning(
                "This worker process (consumer %s) missed its heartbeats for more than %s s: "
                "the messages it held were redelivered to other workers.",
                consumer_id,
                self.heartbeat_timeout_s,
            )

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

    def _release_unknown_claims(self, consumer_id: uuid.UUID) -> None:
        def held_since(cur: Cursor) -> list[int]:
            cur.execute(
                self._queries["held_since"],
                {"consumer_id": str(consumer_id), "age_s": RELEASE_UNKNOWN_AFTER_S},
            )
            return [int(row[0]) for row in cur.fetchall()]

        claimed = self._run(held_since, single_statement=True)
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
    ) -> tuple[list[_ClaimedRow], float | None]:
        params = {"consumer_id": str(consumer_id), "queue_name": queue_name, "limit": limit}

        def work(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(self._queries["claim"], params)
            return cur.fetchall()

        claimed: list[_ClaimedRow] = []
        next_ready_in_s: float | None = None
        for delivery_id, priority, body, redeliveries, ready_in_s in self._run(
            work, single_statement=True
        ):
            if delivery_id is None:
                next_ready_in_s = ready_in_s
            else:
                claimed.append(_ClaimedRow(delivery_id, priority, body, redeliveries))
        claimed.sort(key=lambda row: (-row.priority, row.delivery_id))
        with self._lock:
            self._held.update(row.delivery_id for row in claimed)
        return claimed, next_ready_in_s

    def _settle(self, consumer_id: uuid.UUID, message: PostgresMessage) -> None:
        """Ack (or, when it failed, dead-letter) a delivery, with the re-enqueues it made."""
        params: dict[str, Any] = {
            "delivery_id": message.delivery_id,
            "consumer_id": str(consumer_id),
            "message_id": message.message_id,
        }
        failed = message.failed
        if failed:
            params.update(actor_name=message.actor_name, error=describe_failure(message))
        reenqueued = list(message.reenqueued)

        def work(cur: Cursor) -> bool:
            if failed:
                cur.execute(self._queries["dead_letter"], params)
            else:
                execute_prepared(cur, self._ack, params, prefix=self._relax_commit)
            if cur.rowcount != 1:
                return False
            for enqueue_params in reenqueued:
                cur.execute(self._queries["enqueue"], enqueue_params)
            return True

        settled = self._run(work, single_statement=not reenqueued)
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
        self, consumer_id: uuid.UUID, queue_name: str, row: _ClaimedRow, error: str
    ) -> None:
        logger.error(
            "Dead-lettered delivery %d on queue %r: its body is not a message: %s",
            row.delivery_id,
            queue_name,
            error,
        )
        params = {
            "delivery_id": row.delivery_id,
            "consumer_id": str(consumer_id),
            "message_id": None,
            "actor_name": None,
            "error": error,
        }
        try:
            self._run(
                lambda cur: cur.execute(self._queries["dead_letter"], params),
                single_statement=True,
            )
        finally:
            with self._lock:
                self._held.discard(row.delivery_id)

    def _release(self, consumer_id: uuid.UUID, delivery_ids: Iterable[int]) -> None:
        ids = list(delivery_ids)
        if not ids:
            return
        params = {"delivery_ids": ids, "consumer_id": str(consumer_id), "channel": NOTIFY_CHANNEL}
        try:
            self._run(
                lambda cur: cur.execute(self._queries["release"], params), single_statement=True
            )
        finally:
            # Released, or lost track of: either way the periodic check puts them back.
            with self._lock:
                self._held.difference_update(ids)

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
        self.reenqueued: list[dict[str, Any]] = []


@dataclass(frozen=True, slots=True)
class _ClaimedRow:
    delivery_id: int
    priority: int
    body: str
    redeliveries: int


class _PostgresConsumer(Consumer):
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
        self._cache: deque[_ClaimedRow] = deque()
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

    def _hand_out(self, row: _ClaimedRow) -> PostgresMessage | None:
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


class _DelayQueueConsumer(Consumer):
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


class _Heartbeat(threading.Thread):
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
