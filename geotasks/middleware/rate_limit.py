"""Declarative, global rate and concurrency limits: ``@actor(rate_limit="4/m")``.

Dramatiq itself only has limiters an actor calls in its body, whose ``RateLimitExceeded`` burns
the message's retries and finally drops it. :class:`RateLimit` instead decides before the actor
runs, against a backend every worker shares (Postgres or Redis):

* ``rate_limit="N/s|m|h|d"`` (with ``rate_limit_burst=B``): the message reserves its own start
  slot. When the slot has come, it runs. When it is near, the worker thread waits for it.
  Otherwise the message is re-enqueued to come back just before its slot (early by the broker's
  delivery delay, which the middleware measures) and skipped: no retry used, no result stored,
  job status THROTTLED. It keeps its slot, so throttled messages start one after another at
  their slots instead of all waking together.
* ``concurrency_limit=N``: at most N messages of the actor run at once across all workers; the
  slot is a lease freed when the message ends in any way, and by expiry when its worker was
  killed. A message that finds every slot taken is re-enqueued with a growing, jittered delay.

Both are actor options and message options (``send_with_options``); a message option may only
lower its actor's limit. A malformed value is an :class:`~geotasks.errors.InvalidRateLimit`
when the actor is declared or the message is sent. If the backend cannot be reached, the message
is re-enqueued to try again later: it never runs unthrottled.

Slots are spaced over the period plus a guard (``guard_ms``, or 1% of a longer period), and a
message may start at most half of the guard after its slot (the other half covers the middleware
between this one and the actor), so recorded start times keep the limit in every window even
though a start is a little late. A message that would start later reserves another slot.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from dramatiq import Actor, Broker, Worker
from dramatiq.broker import MessageProxy
from dramatiq.common import compute_backoff
from dramatiq.errors import ActorNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware, SkipMessage

from ..errors import InvalidRateLimit, RateLimiterUnavailable, TransientError
from ..rate_limits import Lease, LimiterBackend, Limits, Rate, Slot, lower_limits, parse_limits
from .job_status import THROTTLED_UNTIL_OPTION, mark_throttled

logger = logging.getLogger(__name__)

#: Message option: the start slot a throttled message holds (epoch ms on the backend's clock).
SLOT_OPTION = "geotasks_rate_limit_slot_ms"
#: Message option: when a throttled message was due back (epoch ms on the backend's clock), to
#: measure how late the broker delivers delayed messages.
DUE_OPTION = "geotasks_rate_limit_due_ms"
#: Message option: how many times in a row the message waited for a concurrency slot or for an
#: unreachable backend (the exponent of its back-off).
WAITS_OPTION = "geotasks_rate_limit_waits"
#: Logger of Dramatiq's worker threads, which warns about every skipped message.
_WORKER_LOGGER = "dramatiq.worker.WorkerThread"

#: Backend key of an actor's rate limit: this prefix and the actor's name.
RATE_KEY_PREFIX = "geotasks:rate:"
#: Backend key of an actor's concurrency limit: this prefix and the actor's name.
CONCURRENCY_KEY_PREFIX = "geotasks:concurrency:"

#: Slots a message reserves in a row, when its thread keeps waking too late to use them, before
#: it is re-enqueued instead.
SLOT_ATTEMPTS = 3
#: Delivery delays remembered to choose the lead (see :meth:`RateLimit.lead_ms`).
DELIVERY_DELAY_SAMPLES = 50
#: Added to the longest delivery delay seen, in ms, to choose the lead.
LEAD_MARGIN_MS = 50
#: The lead, in ms, before any delivery delay has been seen.
DEFAULT_LEAD_MS = 1_000

#: First wait, in ms, of a message that found every concurrency slot taken (doubled per wait,
#: jittered, up to the next constant).
CONCURRENCY_BACKOFF_MS = 100
#: Longest wait for a concurrency slot, in ms: a freed slot stays idle at most about this long.
CONCURRENCY_BACKOFF_MAX_MS = 5_000
#: First wait, in ms, of a message whose limiter backend was unreachable.
UNAVAILABLE_BACKOFF_MS = 1_000
#: Longest wait for an unreachable backend, in ms.
UNAVAILABLE_BACKOFF_MAX_MS = 60_000


class _ThrottledSkipFilter(logging.Filter):
    """Drops the worker's "Message … was skipped." warning for a throttled message.

    Dramatiq logs every skip as a warning; a throttled message is expected to be skipped (it is
    re-enqueued for its slot), possibly several times, and this module logs it at debug level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Message %s was skipped." or not isinstance(record.args, tuple):
            return True
        message = record.args[0] if record.args else None
        options = getattr(message, "options", None)
        return not (isinstance(options, dict) and THROTTLED_UNTIL_OPTION in options)


_skip_filter = _ThrottledSkipFilter()


class RateLimit(Middleware):
    """Global ``rate_limit`` and ``concurrency_limit`` actor options.

    Parameters:
      backend: Where limits are kept; every worker of a deployment must share it.
      guard_ms: Milliseconds added to every period (see the module); a message may start up to
        half of it after its slot, counting the round trip to the backend, so a few ms at least.
      hold_ms: The longest a worker thread waits for a slot. A message whose slot is further
        away is re-enqueued to come back early by the broker's delivery delay (as recently
        seen, at most this) and waits out the rest, so it starts on time. While saturated, about
        ``rate * lead`` threads wait; ``0`` never waits in a thread.
      lease_ttl_ms: How long a concurrency slot of a killed worker stays taken; running messages
        renew theirs every third of it.
    """

    def __init__(
        self,
        backend: LimiterBackend,
        *,
        guard_ms: int = 50,
        hold_ms: int = 2_000,
        lease_ttl_ms: int = 60_000,
    ) -> None:
        self.backend = backend
        self.guard_ms = guard_ms
        self.hold_ms = hold_ms
        self.lease_ttl_ms = lease_ttl_ms
        self._actor_limits: dict[str, Limits] = {}
        self._delivery_delays_ms: deque[int] = deque(maxlen=DELIVERY_DELAY_SAMPLES)
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}
        self._renewer: threading.Thread | None = None
        self._renewer_pid = 0
        self._stopped = threading.Event()
        worker_logger = logging.getLogger(_WORKER_LOGGER)
        if _skip_filter not in worker_logger.filters:
            worker_logger.addFilter(_skip_filter)

    @property
    def actor_options(self) -> set[str]:
        return {"rate_limit", "rate_limit_burst", "concurrency_limit"}

    def before_declare_actor(self, broker: Broker, actor: Actor[Any, Any]) -> None:
        """Refuse an actor whose limits are malformed (before it is registered)."""
        self._actor_limits[actor.actor_name] = parse_limits(
            actor.options, owner=f"actor {actor.actor_name!r}"
        )

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        """Refuse a message whose limits are malformed or would raise its actor's."""
        self._limits(broker, message)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        """Wait for a start slot and take a concurrency slot, or re-enqueue and skip."""
        limits = self._limits(broker, message)
        if not limits.any:
            return
        try:
            if limits.rate is not None:
                self._wait_for_slot(broker, message, limits.rate)
            if limits.concurrency is not None:
                self._take_lease(broker, message, limits.concurrency)
        except (SkipMessage, InvalidRateLimit):
            raise
        except Exception as exc:
            self._wait_for_backend(broker, message, exc)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self._release(message.message_id)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self._release(message.message_id)

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        """Free the slots of messages that did not finish, and stop renewing."""
        self._stopped.set()
        with self._lock:
            message_ids = list(self._leases)
        for message_id in message_ids:
            self._release(message_id)

    def holds_back(self, broker: Broker, message: MessageProxy) -> bool:
        """Whether a limit applies to ``message`` (it may then be re-enqueued to start later)."""
        return self._limits(broker, message).any

    def _limits(self, broker: Broker, message: MessageProxy | Message[Any]) -> Limits:
        try:
            actor = broker.get_actor(message.actor_name)
        except ActorNotFound:
            actor_limits = Limits()
        else:
            actor_limits = self._actor_limits.get(actor.actor_name) or parse_limits(
                actor.options, owner=f"actor {actor.actor_name!r}"
            )
        options = message.options
        if not (
            "rate_limit" in options
            or "concurrency_limit" in options
            or "rate_limit_burst" in options
        ):
            return actor_limits
        owner = f"message {message.message_id} of {message.actor_name!r}"
        return lower_limits(actor_limits, parse_limits(options, owner=owner), owner=owner)

    def guard_ms_for(self, rate: Rate) -> int:
        """The slack added to ``rate``'s period: ``guard_ms``, or 1% of a long period.

        A message may start up to half of it after its slot; a slow rate, whose missed slot
        would cost a long wait, can afford more.
        """
        return max(self.guard_ms, rate.period_ms // 100)

    def _wait_for_slot(self, broker: Broker, message: MessageProxy, rate: Rate) -> None:
        guard_ms = self.guard_ms_for(rate)
        grace_ms = guard_ms // 2
        asked_s = time.monotonic()
        slot = self._held_slot(message, grace_ms)
        for _ in range(SLOT_ATTEMPTS):
            if slot is None:
                asked_s = time.monotonic()
                slot = self.backend.reserve(
                    RATE_KEY_PREFIX + message.actor_name,
                    rate.limit,
                    rate.period_ms + guard_ms,
                    burst=rate.burst,
                )
            wait_ms, lead_ms = slot.wait_ms, self.lead_ms()
            if wait_ms > lead_ms:
                # Come back early enough that the broker's delay does not make it miss the slot.
                logger.debug(
                    "Message %s is throttled by %s: its slot is in %d ms.",
                    message.message_id,
                    rate,
                    wait_ms,
                )
                self._requeue(
                    broker,
                    message,
                    wait_ms - lead_ms,
                    {SLOT_OPTION: slot.start_ms, DUE_OPTION: slot.start_ms - lead_ms},
                    start_at_ms=slot.start_ms,
                )
            if wait_ms:
                time.sleep(wait_ms / 1000)
            # On this host's clock, counting the whole round trip to the backend as late (the
            # server read its clock somewhere in it): a thread that was not scheduled in time, or
            # a slow commit, must not make the message start next to the following slots.
            late_ms = max(0, slot.now_ms - slot.start_ms) + int(
                (time.monotonic() - asked_s) * 1000 - wait_ms
            )
            if late_ms <= grace_ms:
                # Used: a retry of this message must reserve a new slot, and is not throttled.
                for option in (SLOT_OPTION, DUE_OPTION, THROTTLED_UNTIL_OPTION):
                    message.options.pop(option, None)
                return
            logger.info(
                "Message %s would start %d ms after its slot; reserving another.",
                message.message_id,
                late_ms,
            )
            slot = None
        self._requeue(broker, message, 0, {SLOT_OPTION: None, DUE_OPTION: None})

    def _held_slot(self, message: MessageProxy, grace_ms: int) -> Slot | None:
        """The slot a re-enqueued message holds, unless it came back too late to use it."""
        held_ms = message.options.get(SLOT_OPTION)
        if held_ms is None:
            return None
        now_ms = self.backend.now_ms()
        due_ms = message.options.get(DUE_OPTION)
        if due_ms is not None:
            self._delivery_delays_ms.append(max(0, now_ms - int(due_ms)))
        late_ms = now_ms - int(held_ms)
        if late_ms <= grace_ms:
            return Slot(int(held_ms), now_ms)
        logger.info(
            "Message %s came back %d ms after its start slot; reserving another.",
            message.message_id,
            late_ms,
        )
        return None

    def lead_ms(self) -> int:
        """How long before its slot a throttled message is brought back, in milliseconds.

        The longest delivery delay recently seen (how late re-enqueued messages came back) plus
        a margin, at most ``hold_ms``; until there is anything to go by, Dramatiq's default
        worker timeout (its Redis consumer looks at delayed messages about that often).
        """
        delays_ms = list(self._delivery_delays_ms)
        if not delays_ms:
            return min(self.hold_ms, DEFAULT_LEAD_MS)
        return min(self.hold_ms, max(delays_ms) + LEAD_MARGIN_MS)

    def _take_lease(self, broker: Broker, message: MessageProxy, limit: int) -> None:
        key = CONCURRENCY_KEY_PREFIX + message.actor_name
        # One holder per delivery: a message redelivered while a lost worker still runs it
        # takes a slot of its own.
        holder = f"{message.message_id}/{uuid.uuid4().hex[:12]}"
        if self.backend.acquire_lease(key, holder, limit, self.lease_ttl_ms):
            with self._lock:
                self._leases[message.message_id] = (key, holder)
            self._start_renewer()
            for option in (WAITS_OPTION, THROTTLED_UNTIL_OPTION):
                message.options.pop(option, None)
            return
        waits = int(message.options.get(WAITS_OPTION, 0))
        _, delay_ms = compute_backoff(
            waits, factor=CONCURRENCY_BACKOFF_MS, max_backoff=CONCURRENCY_BACKOFF_MAX_MS
        )
        logger.debug(
            "Message %s waits %d ms: all %d concurrency slots are taken.",
            message.message_id,
            delay_ms,
            limit,
        )
        self._requeue(broker, message, delay_ms, {WAITS_OPTION: waits + 1})

    def _wait_for_backend(self, broker: Broker, message: MessageProxy, error: Exception) -> None:
        waits = int(message.options.get(WAITS_OPTION, 0))
        _, delay_ms = compute_backoff(
            waits, factor=UNAVAILABLE_BACKOFF_MS, max_backoff=UNAVAILABLE_BACKOFF_MAX_MS
        )
        logger.warning(
            "Rate limiter unavailable for message %s, which waits %d ms: %s",
            message.message_id,
            delay_ms,
            error,
            # A server that went away needs no traceback; anything else is a bug worth one.
            exc_info=not isinstance(error, TransientError | ConnectionError),
        )
        try:
            self._requeue(broker, message, delay_ms, {WAITS_OPTION: waits + 1})
        except SkipMessage:
            raise
        except Exception as exc:
            # Not even re-enqueued: let Retries bring it back rather than run it unthrottled.
            raise RateLimiterUnavailable(
                f"rate limiter unavailable and message {message.message_id} not re-enqueued: "
                f"{error}"
            ) from exc

    def _requeue(
        self,
        broker: Broker,
        message: MessageProxy,
        delay_ms: int,
        options: dict[str, Any],
        *,
        start_at_ms: int | None = None,
    ) -> None:
        """Re-enqueue the message ``delay_ms`` from now and skip this delivery (THROTTLED).

        Raises:
          SkipMessage: always, once the message is re-enqueued.
        """
        if start_at_ms is None:
            start_at_ms = int(time.time() * 1000) + delay_ms
        # Marked first, so that the copy carries the mark (job status: THROTTLED, not PENDING)
        # and this delivery's skip is not recorded as SKIPPED.
        mark_throttled(message, start_at_ms)
        try:
            broker.enqueue(message.copy(options=options), delay=delay_ms)
        except BaseException:
            message.options.pop(THROTTLED_UNTIL_OPTION, None)
            raise
        raise SkipMessage(f"message {message.message_id} waits {delay_ms} ms for its limit")

    def _release(self, message_id: str) -> None:
        with self._lock:
            lease = self._leases.pop(message_id, None)
        if lease is None:
            return
        try:
            self.backend.release_lease(*lease)
        except Exception as exc:
            logger.warning(
                "Could not free the concurrency slot of message %s (it frees itself in %d ms): %s",
                message_id,
                self.lease_ttl_ms,
                exc,
            )

    def _start_renewer(self) -> None:
        with self._lock:
            if self._renewer is not None and self._renewer_pid == os.getpid():
                return
            self._renewer_pid = os.getpid()
            self._renewer = threading.Thread(
                target=self._renew_leases, name="geotasks-lease-renewer", daemon=True
            )
            self._renewer.start()

    def _renew_leases(self) -> None:
        while not self._stopped.wait(self.lease_ttl_ms / 3000):
            with self._lock:
                leases = set(self._leases.values())
            if not leases:
                continue
            try:
                lost = self.backend.renew_leases(leases, self.lease_ttl_ms)
            except Exception as exc:
                logger.warning("Could not renew %d concurrency slots: %s", len(leases), exc)
                continue
            for key, holder in sorted(lost):
                logger.warning(
                    "The concurrency slot %s of message %s had expired while it ran: "
                    "the limit may be exceeded until it ends.",
                    key,
                    holder.partition("/")[0],
                )
