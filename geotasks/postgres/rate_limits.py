"""The rate-limiter backend on Postgres: global limits with nothing but the database.

:class:`PostgresBackend` implements Dramatiq's whole ``RateLimiterBackend`` interface, so
Dramatiq's ``WindowRateLimiter``, ``ConcurrentRateLimiter``, ``Barrier`` and group completion
callbacks work with only Postgres, plus geotasks' start-slot reservations and concurrency leases
(:class:`~geotasks.rate_limits.LimiterBackend`). Every operation is one transaction through the
pool (most are one statement, sent in one round trip), retried on a broken connection;
:meth:`PostgresBackend.wait` sleeps on the process's shared LISTEN connection, not in a polling
loop. Expired rows are deleted now and then by whichever call comes along.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from psycopg2.extensions import cursor as Cursor

from ..rate_limits import Lease, LimiterBackend, Slot, slots_kept, spacing_ms
from .listener import get_listener, notify
from .pool import Database
from .queries import load_queries

#: The NOTIFY channel of :meth:`PostgresBackend.wait_notify`; the payload names the key.
CHANNEL = "geotasks_rate_limits"
#: Seconds between two clean-ups of expired rows by one process.
PURGE_INTERVAL_S = 60.0
#: Rows one clean-up deletes per table at most, so that it never holds up its caller for long.
PURGE_BATCH = 1_000

_BIGINT_MIN = -(2**63)
_BIGINT_MAX = 2**63 - 1
#: NOTIFY payloads are capped at 8000 bytes; longer keys are announced by their digest.
_MAX_PAYLOAD_BYTES = 200


def _payload(key: str) -> str:
    data = key.encode()
    return key if len(data) <= _MAX_PAYLOAD_BYTES else hashlib.sha256(data).hexdigest()


def _fetch_flag(cursor: Cursor) -> bool:
    row = cursor.fetchone()
    return bool(row and row[0])


class PostgresBackend(LimiterBackend):
    """Rate limits kept in Postgres tables (``geotasks db init`` creates them).

    Parameters:
      database: The pool to run statements on; its URL also gets the LISTEN connection.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queries = load_queries("rate_limits")
        self._purge_lock = threading.Lock()
        self._next_purge_s = time.monotonic() + PURGE_INTERVAL_S

    def __repr__(self) -> str:
        return f"PostgresBackend({self.database!r})"

    # Dramatiq's RateLimiterBackend: durations in milliseconds, like Dramatiq's.

    def add(self, key: str, value: int, ttl: int) -> bool:
        """Set ``key`` to ``value`` for ``ttl`` ms unless it exists; return whether it was set."""
        return self._run("add", key=key, value=value, ttl_ms=ttl)

    def incr(self, key: str, amount: int, maximum: int, ttl: int) -> bool:
        """Add ``amount`` to ``key`` unless that takes it over ``maximum``; reset its TTL."""
        return self._change(key, amount, _BIGINT_MIN, maximum, ttl)

    def decr(self, key: str, amount: int, minimum: int, ttl: int) -> bool:
        """Subtract ``amount`` from ``key`` unless it would go under ``minimum``; reset its TTL."""
        return self._change(key, -amount, minimum, _BIGINT_MAX, ttl)

    def incr_and_sum(
        self, key: str, keys: Callable[[], Iterable[str]], amount: int, maximum: int, ttl: int
    ) -> bool:
        """Add ``amount`` to ``key`` unless it, or the sum over ``keys()``, would pass ``maximum``.

        Every key involved is locked first, so concurrent callers whose windows overlap are
        serialised, as Redis' WATCH serialises them.
        """

        def work(cursor: Cursor) -> bool:
            summed = list(keys())
            cursor.execute(self._queries["lock_keys"], {"keys": sorted({key, *summed})})
            cursor.execute(self._queries["live_values"], {"keys": list({key, *summed})})
            live: dict[str, int] = dict(cursor.fetchall())
            value = live.get(key, 0) + amount
            if value > maximum or amount + sum(live.get(k, 0) for k in summed) > maximum:
                return False
            cursor.execute(self._queries["set"], {"key": key, "value": value, "ttl_ms": ttl})
            return True

        self._maybe_purge()
        return self.database.transaction(work)

    def wait(self, key: str, timeout: int | None) -> bool:
        """Wait up to ``timeout`` ms (forever if ``None``) for :meth:`wait_notify` on ``key``.

        Returns:
          bool: True when ``key`` was notified (and the notification has not expired).
        """
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        listener = get_listener(self.database)
        with listener.expect(CHANNEL, _payload(key)) as event:
            while True:
                event.clear()
                if self._run("is_live", key=key):
                    return True
                remaining_s = None if deadline is None else deadline - time.monotonic()
                if remaining_s is not None and remaining_s <= 0:
                    return False
                event.wait(remaining_s)

    def wait_notify(self, key: str, ttl: int) -> None:
        """Wake every :meth:`wait` on ``key``; later waits return at once for ``ttl`` ms."""

        def work(cursor: Cursor) -> None:
            cursor.execute(self._queries["set_event"], {"key": key, "ttl_ms": ttl})
            notify(cursor, CHANNEL, _payload(key))

        self.database.transaction(work)

    # geotasks' reservations and leases.

    def reserve(self, key: str, limit: int, period_ms: int, *, burst: int = 1) -> Slot:
        """Reserve the next start slot under ``key`` in one statement (see the base class)."""
        params = {
            "key": key,
            "limit": limit,
            "period_ms": period_ms,
            "burst": burst,
            "spacing_ms": spacing_ms(limit, period_ms, burst),
            "keep": slots_kept(limit, burst),
        }

        def work(cursor: Cursor) -> Slot:
            cursor.execute(self._queries["reserve"], params)
            row = cursor.fetchone()
            if row is None:
                raise AssertionError("the reservation returned no row")
            return Slot(int(row[0]), int(row[1]))

        self._maybe_purge()
        return self.database.transaction(work, single_statement=True)

    def now_ms(self) -> int:
        """Return the database server's clock in epoch milliseconds."""

        def work(cursor: Cursor) -> int:
            cursor.execute(self._queries["clock"])
            row = cursor.fetchone()
            if row is None:
                raise AssertionError("the clock query returned no row")
            return int(row[0])

        return self.database.transaction(work, single_statement=True)

    def acquire_lease(self, key: str, holder: str, limit: int, ttl_ms: int) -> bool:
        """Take a concurrency slot under ``key`` for ``holder`` (see the base class)."""

        def work(cursor: Cursor) -> bool:
            cursor.execute(self._queries["lock_leases"], {"key": key})
            cursor.execute(
                self._queries["acquire_lease"],
                {"key": key, "holder": holder, "limit": limit, "ttl_ms": ttl_ms},
            )
            return _fetch_flag(cursor)

        self._maybe_purge()
        return self.database.transaction(work)

    def release_lease(self, key: str, holder: str) -> None:
        """Give back ``holder``'s slot under ``key``."""
        self.database.transaction(
            lambda cursor: cursor.execute(
                self._queries["release_lease"], {"key": key, "holder": holder}
            ),
            single_statement=True,
        )

    def renew_leases(self, leases: Collection[Lease], ttl_ms: int) -> set[Lease]:
        """Extend live leases by ``ttl_ms``; return those that had expired."""
        if not leases:
            return set()
        wanted = set(leases)

        def work(cursor: Cursor) -> set[Lease]:
            cursor.execute(
                self._queries["renew_leases"],
                {
                    "keys": [key for key, _ in wanted],
                    "holders": [holder for _, holder in wanted],
                    "ttl_ms": ttl_ms,
                },
            )
            return wanted - {(key, holder) for key, holder in cursor.fetchall()}

        return self.database.transaction(work, single_statement=True)

    def purge_expired(self) -> int:
        """Delete rows that expired over a minute ago (a batch per table); return how many."""

        def work(cursor: Cursor) -> int:
            deleted = 0
            for name in ("purge_keys", "purge_slots", "purge_leases"):
                cursor.execute(self._queries[name], {"batch": PURGE_BATCH})
                deleted += cursor.rowcount
            return deleted

        return self.database.transaction(work)

    def _run(self, name: str, **params: Any) -> bool:
        def work(cursor: Cursor) -> bool:
            cursor.execute(self._queries[name], params)
            return _fetch_flag(cursor)

        return self.database.transaction(work, single_statement=True)

    def _change(self, key: str, delta: int, minimum: int, maximum: int, ttl_ms: int) -> bool:
        self._maybe_purge()
        # An absent key counts as 0, so only a live one can absorb a delta that is out of bounds.
        name = "change" if minimum <= delta <= maximum else "change_live"
        return self._run(
            name, key=key, delta=delta, minimum=minimum, maximum=maximum, ttl_ms=ttl_ms
        )

    def _maybe_purge(self) -> None:
        now_s = time.monotonic()
        if now_s < self._next_purge_s or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._next_purge_s = now_s + PURGE_INTERVAL_S
            self.purge_expired()
        finally:
            self._purge_lock.release()
