"""Logging an outage of Postgres once, not once per attempt.

While Postgres is down, every thread that needs it retries: the listener every half second, the
pool for each unit of work, the heartbeats at their intervals. Logged per attempt, a 38 s outage
made 78 warnings. An :class:`Outage` logs when the outage starts, at most once a minute while it
lasts, and when it ends, with its length.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Longest silence while an outage lasts, in seconds.
REPEAT_INTERVAL_S = 60.0

_shared: dict[str, Outage] = {}
_shared_lock = threading.Lock()


def shared_outage(what: str) -> Outage:
    """Return this process's :class:`Outage` of ``what``: every pool on one server shares it
    (a worker has several), so an outage is logged once per process."""
    with _shared_lock:
        outage = _shared.get(what)
        if outage is None:
            outage = _shared[what] = Outage(what)
        return outage


class Outage:
    """The state of one resource's outage, shared by every thread that uses the resource.

    Parameters:
      what: The resource, as the log names it (``PostgreSQL at postgresql://app:***@db/geo``).
      repeat_interval_s: Longest silence while the outage lasts.
      clock: Monotonic seconds (a parameter for tests).
    """

    def __init__(
        self,
        what: str,
        *,
        repeat_interval_s: float = REPEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.repeat_interval_s = repeat_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_logged = 0.0
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def failed(self, error: str) -> None:
        """Record a failed attempt; logs only the first of an outage and one a minute after."""
        now = self._clock()
        with self._lock:
            self._failures += 1
            if self._since is None:
                self._since = self._last_logged = now
                self._failures = 1
                logger.warning("%s is unavailable: %s", self.what, error)
                return
            if now - self._last_logged < self.repeat_interval_s:
                logger.debug("%s still unavailable: %s", self.what, error)
                return
            self._last_logged = now
            logger.warning(
                "%s still unavailable after %.0f s (%d failed attempts): %s",
                self.what,
                now - self._since,
                self._failures,
                error,
            )

    def recovered(self) -> None:
        """Record a successful attempt; logs the end of an outage with its length."""
        if self._since is None:
            # The common case, on every unit of work: no lock.
            return
        with self._lock:
            if self._since is None:
                return
            length_s = self._clock() - self._since
            self._since = None
            logger.warning(
                "%s is available again after an outage of %.1f s (%d failed attempts)",
                self.what,
                length_s,
                self._failures,
            )
