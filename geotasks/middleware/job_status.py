"""``JobStatus``: records each message's state in Postgres as Dramatiq's hooks fire.

=====================  =========================================================
hook                   state recorded
=====================  =========================================================
after_enqueue          PENDING (first send), RETRYING (Retries re-enqueued it, with
                       the attempt, next run time and the failed attempt's error) or
                       THROTTLED (a rate limiter re-enqueued it, see
                       :func:`mark_throttled`)
before_process_message STARTED; a CANCELLED job is skipped instead
after_process_message  SUCCESS (no exception), unless the results backend recorded it
                       in the transaction that stored the result
after_skip_message     SKIPPED (unless throttled, or failed: after_nack follows), with
                       the reason given by :func:`mark_skipped`
after_nack             FAILURE, with the exception's type and message
=====================  =========================================================

Each hook is one statement (:meth:`~geotasks.postgres.job_status.JobStore.transition`), and the
store refuses any state that would move a job backwards, so hooks racing across processes can
arrive in any order.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import weakref
from typing import Any, Protocol

import orjson
from dramatiq.broker import Broker, MessageProxy
from dramatiq.common import q_name
from dramatiq.errors import ActorNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware, SkipMessage
from psycopg2.extensions import cursor as Cursor

from ..failures import describe_exception
from ..job_model import JobError, JobState
from ..job_warnings import set_recorder
from ..postgres.job_status import JobRun, JobStore
from .running import RunningJob, record_warning, running_job, set_running_job

logger = logging.getLogger(__name__)

#: Message option a rate limiter sets (ms since the epoch: when the message may start) on a
#: message it re-enqueues instead of running; see :func:`mark_throttled`.
THROTTLED_UNTIL_OPTION = "throttled_until_ms"
#: Message option a middleware sets, just before it raises ``SkipMessage``, to say why; see
#: :func:`mark_skipped`.
SKIP_REASON_OPTION = "skip_reason"
#: Largest arguments recorded with a job, as JSON, in bytes: larger ones stay in the broker's
#: copy of the message only (a job's row is read by every status poll).
JOB_ARGUMENTS_MAX_BYTES = 64 * 1024


#: STARTED recorded by the poison guard's statement for this thread's delivery:
#: ``(message id, attempt, status after it)``; read once by ``before_process_message``.
_started_early: contextvars.ContextVar[tuple[str, int, JobState] | None] = contextvars.ContextVar(
    "geotasks_started_early", default=None
)


#: The delivery this thread is processing, from ``before_process_message`` until its
#: ``after_process_message``: Retries re-enqueues a copy of it in between, and the RETRYING
#: recorded for the copy carries the delivery's exception.
_processing: contextvars.ContextVar[MessageProxy | None] = contextvars.ContextVar(
    "geotasks_processing", default=None
)


#: Id of the message whose state the Postgres broker's enqueue statement carried, in this thread.
_recorded_with_enqueue: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "geotasks_recorded_with_enqueue", default=None
)


class HoldsBack(Protocol):
    """The ``holds_back`` method of a middleware that may skip a delivery, or re-enqueue it for
    later, before it starts.

    Between the poison guard and ``JobStatus``, such a middleware says per message whether it
    might: STARTED then waits for its own hook instead of riding on the guard's statement. A
    middleware in between without the method is assumed to hold back every message.
    """

    def __call__(self, broker: Broker, message: MessageProxy) -> bool: ...


def arguments_json(message: Message[Any]) -> str | None:
    """The message's arguments as the job records them, ``{"args": …, "kwargs": …}``.

    Returns:
      str | None: JSON text, or ``None`` when they are larger than
      :data:`JOB_ARGUMENTS_MAX_BYTES`, are not JSON (an actor with an encoder of its own), or
      hold a NUL character (which ``jsonb`` refuses): the enqueue must never fail for them.
    """
    try:
        encoded = orjson.dumps({"args": list(message.args), "kwargs": dict(message.kwargs)})
    except TypeError:
        return None
    if len(encoded) > JOB_ARGUMENTS_MAX_BYTES or b"\\u0000" in encoded:
        return None
    return encoded.decode()


def mark_throttled(message: Message[Any] | MessageProxy, start_at_ms: int) -> None:
    """Mark a message that a rate limiter re-enqueues to start later, before enqueueing it.

    ``JobStatus`` then records THROTTLED (with ``start_at_ms`` as the next run time) instead of
    RETRYING or PENDING when the message is re-enqueued, and does not record SKIPPED when the
    rate limiter raises :class:`~dramatiq.middleware.SkipMessage` for the original delivery.

    Parameters:
      message: The message being processed (the broker copies it, option included, on enqueue).
      start_at_ms: When the message may start, in milliseconds since the epoch.
    """
    message.options[THROTTLED_UNTIL_OPTION] = start_at_ms


def mark_skipped(message: MessageProxy, reason: str) -> None:
    """Say why a message is skipped, just before raising :class:`~dramatiq.middleware.SkipMessage`.

    ``JobStatus`` records the job SKIPPED with ``reason`` as its error message (type
    ``Skipped``), so that ``job.error``, the CLI and the HTTP API tell why it never ran.
    """
    message.options[SKIP_REASON_OPTION] = reason


class JobStatus(Middleware):
    """Middleware that records every message's job status in Postgres.

    Put it outside Dramatiq's default middleware (so Retries' re-enqueue is seen as RETRYING)
    and inside the rate limiter (so a throttled message is never seen as STARTED).

    Parameters:
      store: Where statuses are written.
      result_ttl_ms: How long a finished job stays readable when neither the message nor the
        actor sets ``result_ttl``, in milliseconds (``GEOTASKS_RESULT_TTL_S`` in a deployment).
    """

    def __init__(self, *, store: JobStore, result_ttl_ms: int) -> None:
        self.store = store
        self.result_ttl_ms = result_ttl_ms
        # The attempt each delivery in this process ran as, by ``id()`` of its MessageProxy
        # (which is not hashable), with a weak reference that tells a live proxy from a dead
        # one whose id was reused: Retries counts the next attempt in the message before it
        # decides not to retry, and the FAILURE recorded on nack names the attempt that ran.
        self._ran_as: dict[int, tuple[weakref.ref[MessageProxy], int]] = {}
        self._ran_as_lock = threading.Lock()

    @property
    def actor_options(self) -> set[str]:
        # Shared with Results, so an actor may set it even where Results is not installed.
        return {"result_ttl"}

    def after_enqueue(self, broker: Broker, message: Message[Any], delay: int | None) -> None:
        """Record PENDING, RETRYING or THROTTLED for a message just put on a queue.

        Nothing is left to write when the Postgres broker sent it with its enqueue statement
        (see :meth:`record_with_enqueue`).
        """
        recorded = _recorded_with_enqueue.get()
        _recorded_with_enqueue.set(None)
        if recorded == message.message_id:
            return
        self.store.transition(message.message_id, **self._enqueued_state(message, delay))

    def record_with_enqueue(
        self, cursor: Cursor, message: Message[Any], delay: int | None, enqueue: bytes
    ) -> bool:
        """Send the Postgres broker's enqueue statement, then the message's state, in one round
        trip and one durable commit: the message is never on its queue with no status.

        Give it to :meth:`~geotasks.postgres.broker.PostgresBroker.send_with_enqueue` of a
        broker on this store's database.

        Returns:
          bool: ``True``: both were sent.
        """
        self.store.apply(
            cursor,
            message.message_id,
            **self._enqueued_state(message, delay),
            preceded_by=enqueue,
            durable=True,
        )
        _recorded_with_enqueue.set(message.message_id)
        return True

    @staticmethod
    def _enqueued_state(message: Message[Any], delay: int | None) -> dict[str, Any]:
        """The transition of a message just enqueued: its state, attempt, and when it is due
        (``next_at_ms``, ms since the epoch)."""
        attempt = message.options.get("retries", 0)
        throttled_until_ms = message.options.get(THROTTLED_UNTIL_OPTION)
        if throttled_until_ms is not None:
            status, next_at_ms = JobState.THROTTLED, throttled_until_ms
        else:
            status = JobState.RETRYING if attempt > 0 else JobState.PENDING
            next_at_ms = message.options.get("eta") if delay else None
        return {
            "actor_name": message.actor_name,
            "queue_name": q_name(message.queue_name),
            "status": status,
            "attempt": attempt,
            "sent_at_ms": message.message_timestamp,
            "next_at_ms": next_at_ms,
            "error": _retried_error(message) if status is JobState.RETRYING else None,
            "arguments": arguments_json(message) if status is JobState.PENDING else None,
        }

    def starts_with_count(
        self, broker: Broker, message: MessageProxy, guard: Middleware
    ) -> JobRun | None:
        """The attempt whose STARTED the poison guard records with its count, or ``None``.

        ``None`` when a middleware between the guard and this one may still hold the message
        back: STARTED then waits for :meth:`before_process_message`. Otherwise the guard
        records STARTED with its count (unless the delivery is a suspect, which may have to wait
        for its process) and reports what became of it with :meth:`started_early`.

        Parameters:
          guard: The poison guard, which comes before this middleware.
        """
        if not self._may_start_early(broker, message, guard):
            return None
        return JobRun(
            message.message_id,
            actor_name=message.actor_name,
            queue_name=q_name(message.queue_name),
            attempt=message.options.get("retries", 0),
            sent_at_ms=message.message_timestamp,
        )

    def started_early(self, message: MessageProxy, status: JobState) -> None:
        """Note the job's status after the poison guard recorded STARTED (see
        :meth:`starts_with_count`); ``before_process_message`` then writes nothing."""
        _started_early.set((message.message_id, message.options.get("retries", 0), status))

    def _may_start_early(self, broker: Broker, message: MessageProxy, guard: Middleware) -> bool:
        middleware = broker.middleware
        try:
            guard_at, self_at = middleware.index(guard), middleware.index(self)
        except ValueError:
            return False
        if guard_at > self_at:
            return False
        for other in middleware[guard_at + 1 : self_at]:
            holds_back: HoldsBack | None = getattr(other, "holds_back", None)
            if holds_back is None or holds_back(broker, message):
                return False
        return True

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        """Record STARTED, or skip the message when its job was cancelled.

        The poison guard may have recorded STARTED already, in its own statement (see
        :meth:`starts_with_count`).

        Raises:
          SkipMessage: when the job is CANCELLED.
        """
        # The mark belonged to the delivery that was throttled; if this one fails, Retries
        # re-enqueues it and that must read RETRYING.
        message.options.pop(THROTTLED_UNTIL_OPTION, None)
        _processing.set(message)
        attempt = message.options.get("retries", 0)
        with self._ran_as_lock:
            self._ran_as[id(message)] = (weakref.ref(message), attempt)
        early = _started_early.get()
        _started_early.set(None)
        if early is not None and early[:2] == (message.message_id, attempt):
            status = early[2]
        else:
            status = self.store.transition(
                message.message_id,
                actor_name=message.actor_name,
                queue_name=q_name(message.queue_name),
                status=JobState.STARTED,
                attempt=attempt,
                sent_at_ms=message.message_timestamp,
            ).status
        if status is JobState.CANCELLED:
            logger.info("Skipping message %s: its job was cancelled", message.message_id)
            raise SkipMessage(f"job {message.message_id} was cancelled")
        running = RunningJob(
            self.store,
            JobRun(
                message.message_id,
                actor_name=message.actor_name,
                queue_name=q_name(message.queue_name),
                attempt=attempt,
                sent_at_ms=message.message_timestamp,
            ),
        )
        set_running_job(running)
        set_recorder(functools.partial(record_warning, running))

    def running(self, message: MessageProxy) -> JobRun | None:
        """The attempt of ``message`` this thread runs, once recorded STARTED; ``None`` before
        (or for another message).

        The ``Results`` middleware stores the result with this attempt's SUCCESS (see
        :meth:`~geotasks.postgres.results.PostgresBackend.store_success`), then says so with
        :meth:`success_stored`.
        """
        running = running_job()
        if running is None or running.run.message_id != message.message_id:
            return None
        return running.run

    def success_stored(self, message: MessageProxy) -> None:
        """Note that SUCCESS of ``message`` was recorded with its result: nothing is left to
        write in :meth:`after_process_message`."""
        running = running_job()
        if running is not None and running.run.message_id == message.message_id:
            running.success_recorded = True

    def withhold_success(self, message: MessageProxy) -> None:
        """Note that the result of ``message`` was not stored (it runs again, or fails): there
        is no SUCCESS to record."""
        running = running_job()
        if running is not None and running.run.message_id == message.message_id:
            running.result_not_stored = True

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Record SUCCESS; a failure is recorded by Retries' re-enqueue or in ``after_nack``.

        When the ``Results`` middleware already recorded SUCCESS with the result, in one
        transaction (:meth:`success_stored`), or did not store it (:meth:`withhold_success`),
        there is nothing to write.
        """
        running = running_job()
        set_running_job(None)
        _processing.set(None)
        set_recorder(None)
        if exception is not None or message.failed:
            return
        if running is not None and (running.success_recorded or running.result_not_stored):
            return
        self._finish(broker, message, JobState.SUCCESS)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        """Record SKIPPED (with the reason, see :func:`mark_skipped`), unless the message was
        throttled or failed."""
        set_running_job(None)
        _processing.set(None)
        set_recorder(None)
        reason = message.options.pop(SKIP_REASON_OPTION, None)
        if message.failed or THROTTLED_UNTIL_OPTION in message.options:
            return
        error = None if reason is None else JobError("Skipped", str(reason))
        self._finish(broker, message, JobState.SKIPPED, error=error)

    def after_ack(self, broker: Broker, message: MessageProxy) -> None:
        """Forget the attempt the delivery ran as: it is finished."""
        self._attempt_that_ran(message)

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:
        """Record FAILURE with what the actor raised: the message is finished.

        The attempt recorded is the one that ran, not the next one that Retries counted in the
        message before it decided against retrying.
        """
        exception = message._exception
        error = (
            describe_exception(exception)
            if exception is not None
            else describe_exception(Exception("unknown"))
        )
        self._finish(
            broker, message, JobState.FAILURE, error=error, attempt=self._attempt_that_ran(message)
        )

    def _attempt_that_ran(self, message: MessageProxy) -> int | None:
        """The attempt this delivery ran as (``None`` if it never started here); forgets it."""
        with self._ran_as_lock:
            ran = self._ran_as.pop(id(message), None)
        return ran[1] if ran is not None and ran[0]() is message else None

    def _finish(
        self,
        broker: Broker,
        message: MessageProxy,
        status: JobState,
        *,
        attempt: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.store.transition(
            message.message_id,
            actor_name=message.actor_name,
            queue_name=q_name(message.queue_name),
            status=status,
            attempt=message.options.get("retries", 0) if attempt is None else attempt,
            sent_at_ms=message.message_timestamp,
            ttl_ms=self._result_ttl_ms(broker, message),
            **kwargs,
        )

    def _result_ttl_ms(self, broker: Broker, message: MessageProxy) -> int:
        try:
            actor_options = broker.get_actor(message.actor_name).options
        except ActorNotFound:
            actor_options = {}
        ttl_ms = message.options.get("result_ttl", actor_options.get("result_ttl"))
        return int(ttl_ms) if ttl_ms is not None else self.result_ttl_ms


def _retried_error(message: Message[Any]) -> JobError | None:
    """What the delivery being retried raised, when this thread is processing it."""
    delivery = _processing.get()
    if delivery is None or delivery.message_id != message.message_id:
        return None
    exception = delivery._exception
    if exception is None:
        return None
    return describe_exception(exception, fallback_traceback=message.options.get("traceback"))
