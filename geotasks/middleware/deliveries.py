"""The poison guard: a message that keeps killing its worker process is dead-lettered.

Dramatiq stops a whole worker when one of its processes dies, systemd restarts it, and the
message that aborted the process (a segfault in GDAL, the OOM killer) is delivered again: without
a guard the service crash-loops forever. :class:`DeliveryLimit` commits a count per message id
and attempt in Postgres *before* the actor runs and deletes it once the message is acked or
rejected, so what remains counts the deliveries that never finished: the processes that died
while the message ran. It works with every broker: RabbitMQ classic queues, for one, keep no
delivery count.

A process that dies takes every message it was running with it, so an unfinished delivery only
makes a message a *suspect*. Suspects run alone: a suspect starts only once no other message
runs in its process, and while it runs no other message of that process starts (a per-process
gate, readers/writer style, that a waiting suspect closes to newcomers so it is never starved).
The guard also counts the deliveries during which a message ran alone, and only those are
proof: past ``max_deliveries`` of them, the message is rejected (dead-lettered by the broker)
instead of run. An innocent job that was running beside a poison message dies with it once, then
runs alone and finishes; only the poison reaches the limit. In a process with one worker thread
every delivery runs alone, and the gate costs nothing.

A suspect waits at most ``suspect_wait_s`` for the messages running beside it to finish; past
that it runs beside them, its delivery not counted as alone, so that a job that runs for long or
waits on another job's result cannot stall the process. A crash loop still ends: a message whose
unfinished deliveries exceed twice the limit is rejected too. A graceful shutdown (SIGTERM from
systemd, or from Dramatiq stopping the sibling processes of one that died) is no crash: the
deliveries it interrupts are taken off the counts.

The attempt is Dramatiq's ``retries`` option, so a retry (a new attempt of the same message id)
starts from zero, and a throttled message re-enqueued under the same attempt is not counted
against it, since it finished its delivery.

Only recording is on the way of every message (a suspect pays a second round trip once it has its
process to itself), and the counts of deliveries that start at the same time in one process share a
statement (:mod:`geotasks.postgres.group_commit`). Finished deliveries are cleared in batches, a
fraction of a second later, one statement for many (and on the Postgres broker, in the database the
guard uses, by the broker's own ack statement). A worker killed in that fraction of a second leaves
the counts of deliveries that did finish: a throttled message among them counts one delivery too
many. That is the price of one round trip per message instead of two.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage

from ..errors import DatabaseError, GeotasksError
from ..postgres.broker import PostgresBroker
from ..postgres.deliveries import Delivery, DeliveryStore
from ..postgres.pool import Database
from .job_status import JobStatus

logger = logging.getLogger(__name__)

#: How long counts of finished deliveries wait to be cleared in a batch, in seconds.
CLEAR_INTERVAL_S = 0.2
#: Default longest a suspect waits for its process to itself, in seconds.
SUSPECT_WAIT_S = 60.0
#: Unfinished deliveries, alone or not, that reject a message: this many times the limit.
ANY_DELIVERIES_FACTOR = 2


def most_deaths_before_rejection(max_deliveries: int) -> int:
    """Return the most worker deaths a message can run through before the guard rejects it.

    A broker's own limit on redeliveries after a worker died (the Postgres broker's) must allow
    more, or it would dead-letter the innocent jobs that died beside a poison message first.

    Parameters:
      max_deliveries: The guard's limit.

    Returns:
      int: deaths in all, whether the message ran alone or not.
    """
    return ANY_DELIVERIES_FACTOR * max_deliveries + 1


class DeliveryLimitExceeded(GeotasksError, SkipMessage):
    """Raised when a message killed its worker process ``max_deliveries`` times."""


@dataclass
class _Delivery:
    """The delivery a worker thread is running, as far as the guard is concerned."""

    message_id: str
    attempt: int
    #: How it holds the gate: ``"shared"``, ``"alone"`` or ``None``.
    holds: str | None = None
    #: Whether it is counted as running alone.
    solo: bool = False

    @property
    def counted(self) -> Delivery:
        """The delivery as the store counts it."""
        return Delivery(self.message_id, self.attempt)


class _Gate:
    """Readers/writer gate of one process: ordinary messages share it, a suspect takes it alone.

    A suspect waiting for it closes it to newcomers (writer preference), so the messages
    running drain and the suspect gets in; it gives up after its timeout, which bounds how long
    newcomers wait for a suspect that has not started. A suspect that holds it is bounded by
    its own time limit.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing = 0
        self._alone = False
        self._waiting_alone = 0

    def share(self, *, before_suspects: bool = False) -> None:
        """Wait until no suspect runs (nor, unless ``before_suspects``, waits), then share."""
        with self._changed:
            self._changed.wait_for(
                lambda: not self._alone and (before_suspects or not self._waiting_alone)
            )
            self._sharing += 1

    def take_alone(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until nothing else runs, then hold the gate alone."""
        with self._changed:
            self._waiting_alone += 1
            try:
                alone = self._changed.wait_for(
                    lambda: not self._alone and not self._sharing, timeout_s
                )
                self._alone = alone
                return alone
            finally:
                self._waiting_alone -= 1
                self._changed.notify_all()

    def release(self, holds: str) -> None:
        with self._changed:
            if holds == "alone":
                self._alone = False
            else:
                self._sharing -= 1
            self._changed.notify_all()


class DeliveryLimit(Middleware):
    """Middleware that rejects a message once it has killed its worker ``max_deliveries`` times.

    Put it first in the middleware list, so the count is committed before any other middleware
    or the actor touches the message. A message whose earlier delivery never finished (a
    *suspect*) runs alone in its process; only the deliveries during which it ran alone count
    towards the limit (see the module's documentation).

    Parameters:
      database: Where the counts are kept (``geotasks.message_deliveries``, through
        :class:`~geotasks.postgres.deliveries.DeliveryStore`).
      max_deliveries: Unfinished deliveries, run alone, a message may have; the next one is
        rejected. Can be set per actor and per message with the ``max_deliveries`` option.
      suspect_wait_s: Longest a suspect waits for the other messages of its process to finish
        before it runs beside them.
      job_status: The job-status middleware, on the same database: the count then records its
        STARTED too, in the same statement, when nothing between the two may hold the message
        back and no earlier delivery died.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_deliveries: int = 5,
        suspect_wait_s: float = SUSPECT_WAIT_S,
        job_status: JobStatus | None = None,
    ) -> None:
        self.database = database
        self.store = DeliveryStore(database)
        self.job_status = job_status
        self.max_deliveries = max_deliveries
        self.suspect_wait_s = suspect_wait_s
        self._gate = _Gate()
        self._local = threading.local()
        # Worker threads of the Dramatiq workers running in this process.
        self._worker_threads = 0
        # Deliveries running, by thread id, to take off the counts on a graceful shutdown.
        self._running: dict[int, _Delivery] = {}
        self._running_lock = threading.Lock()
        # Finished deliveries whose counts are still to be cleared.
        self._finished: set[Delivery] = set()
        self._finished_lock = threading.Lock()
        self._clearer: threading.Thread | None = None

    @property
    def actor_options(self) -> set[str]:
        return {"max_deliveries"}

    def before_worker_boot(self, broker: Broker, worker: Any) -> None:
        # Before, not after: a worker's threads take messages before the after-boot hooks have
        # all run (they run in reverse order, some writing to Postgres), and a delivery counted
        # while the count of threads still read 0 would not count as running alone.
        with self._running_lock:
            self._worker_threads += int(worker.worker_threads)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        """Count the delivery, and hold the gate as the counts say.

        Raises:
          DeliveryLimitExceeded: when the message killed its worker too often.
        """
        self._leave_gate()  # Only if a delivery of this thread was never finished.
        delivery = _Delivery(message.message_id, int(message.options.get("retries", 0)))
        with self._running_lock:
            alone = self._worker_threads == 1
        if not alone:
            self._gate.share()
            delivery.holds = "shared"
        self._local.delivery = delivery
        with self._finished_lock:
            restart = delivery.counted in self._finished
            self._finished.discard(delivery.counted)
        deliveries, solo_deliveries = self._record(broker, message, delivery, alone, restart)
        delivery.solo = alone
        with self._running_lock:
            self._running[threading.get_ident()] = delivery
        killed = deliveries - 1
        killed_alone = solo_deliveries - int(alone)
        limit = self._limit(broker, message)
        if killed_alone >= limit or killed >= most_deaths_before_rejection(limit):
            self._reject(message, killed, killed_alone, limit)
        if killed and not alone:
            self._run_alone(message, delivery, killed)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._leave_gate()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._leave_gate()

    def after_ack(self, broker: Broker, message: MessageProxy) -> None:
        self._forget(broker, message)

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:
        self._forget(broker, message)

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        with self._running_lock:
            self._worker_threads -= int(worker.worker_threads)

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._forget_interrupted()
        self._clear_finished()

    def _limit(self, broker: Broker, message: MessageProxy) -> int:
        limit = message.options.get("max_deliveries")
        if limit is None:
            try:
                limit = broker.get_actor(message.actor_name).options.get("max_deliveries")
            except ActorNotFound:
                limit = None
        return int(self.max_deliveries if limit is None else limit)

    def _reject(self, message: MessageProxy, killed: int, killed_alone: int, limit: int) -> None:
        logger.error(
            "Rejecting message %s (%s): it killed its worker %d times (%d running alone).",
            message.message_id,
            message.actor_name,
            killed,
            killed_alone,
        )
        message.fail()
        raise DeliveryLimitExceeded(
            f"message {message.message_id} ({message.actor_name}) killed its worker {killed} "
            f"times, {killed_alone} of them running alone (limit {limit}, "
            "GEOTASKS_MAX_DELIVERIES): rejected instead of run again"
        )

    def _run_alone(self, message: MessageProxy, delivery: _Delivery, killed: int) -> None:
        logger.warning(
            "Message %s (%s) was running when its worker died (%d times): it runs alone.",
            message.message_id,
            message.actor_name,
            killed,
        )
        self._gate.release("shared")
        delivery.holds = None
        if self._gate.take_alone(self.suspect_wait_s):
            delivery.holds = "alone"
            self.store.record_solo(delivery.counted)
            delivery.solo = True
            return
        logger.warning(
            "Message %s (%s) waited %.0f s for its process to itself: it runs beside others.",
            message.message_id,
            message.actor_name,
            self.suspect_wait_s,
        )
        self._gate.share(before_suspects=True)
        delivery.holds = "shared"

    def _leave_gate(self) -> None:
        delivery: _Delivery | None = getattr(self._local, "delivery", None)
        if delivery is None:
            return
        self._local.delivery = None
        with self._running_lock:
            self._running.pop(threading.get_ident(), None)
        if delivery.holds is not None:
            self._gate.release(delivery.holds)
            delivery.holds = None
        # Kept for _forget: the ack or nack of this delivery comes after the message left.
        self._local.finished = delivery

    def _record(
        self,
        broker: Broker,
        message: MessageProxy,
        delivery: _Delivery,
        alone: bool,
        restart: bool,
    ) -> tuple[int, int]:
        job_status = self.job_status
        start = job_status.starts_with_count(broker, message, self) if job_status else None
        count = self.store.record(delivery.counted, solo=alone, restart=restart, start=start)
        if job_status is not None and count.started is not None:
            job_status.started_early(message, count.started)
        return count.deliveries, count.solo_deliveries

    def _forget(self, broker: Broker, message: MessageProxy) -> None:
        # Only the thread that ran the delivery finishes it; an ack from elsewhere (a message
        # for an unknown actor, rejected before it started) has nothing to forget.
        delivery: _Delivery | None = getattr(self._local, "finished", None)
        if delivery is None or delivery.message_id != message.message_id:
            return
        self._local.finished = None
        if isinstance(broker, PostgresBroker) and broker.database.url == self.database.url:
            return  # Its ack or nack cleared the count, in the same statement.
        with self._finished_lock:
            self._finished.add(delivery.counted)
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
        try:
            self.store.forget(list(finished))
        except DatabaseError as exc:
            # Left behind, a count only makes the guard stricter for that one attempt.
            logger.warning("Could not clear %d delivery counts: %s", len(finished), exc)

    def _forget_interrupted(self) -> None:
        with self._running_lock:
            interrupted, self._running = list(self._running.values()), {}
        if not interrupted:
            return
        try:
            self.store.forget_interrupted(
                [(delivery.counted, delivery.solo) for delivery in interrupted]
            )
        except DatabaseError as exc:
            logger.warning("Could not uncount %d interrupted deliveries: %s", len(interrupted), exc)
