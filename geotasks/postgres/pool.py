"""A bounded, thread-safe pool of psycopg2 connections that survives a Postgres restart.

Every statement geotasks sends goes through :meth:`Database.transaction`: it borrows a
connection, runs a unit of work in one transaction and commits. When the connection turns out to
be broken (Postgres restarted, network blip) the connection is discarded and the whole unit of
work is run again on a fresh one, a bounded number of times. Units of work must therefore be
idempotent, which every geotasks query is (they are keyed by message or delivery ids).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from ..errors import DatabaseError, DatabaseMisconfigured, DatabaseUnavailable
from .outage import shared_outage
from .permanent_errors import is_permanent, missing_schema_hint

# Re-exported: stores imported them from here before they had a module of their own.
from .prepared import PreparedStatement as PreparedStatement
from .prepared import bind_prepared as bind_prepared
from .prepared import execute_prepared as execute_prepared

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one unit of work before :class:`DatabaseUnavailable` is raised.
DEFAULT_ATTEMPTS = 6
#: First pause between attempts, in seconds; doubled each time up to the cap below.
RETRY_BACKOFF_S = 0.1
#: Longest pause between attempts, in seconds.
RETRY_BACKOFF_MAX_S = 2.0
#: How long a caller waits for a free connection before giving up, in seconds.
CHECKOUT_TIMEOUT_S = 30.0

#: Errors after which a connection is considered broken (or the statement worth retrying:
#: serialization failures and deadlocks are ``OperationalError`` subclasses too).
RETRYABLE_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError, DatabaseUnavailable)


class PooledConnection(psycopg2.extensions.connection):
    """A connection of the pool, which remembers the statements prepared in its session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, location = rest.rpartition("@")
    user, colon, _password = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}{at}{location}"


class Database:
    """A pool of connections to one Postgres database.

    Parameters:
      url: A libpq connection URL (``postgresql://user:password@host:port/db``).
      max_connections: Connections this pool may hold at once; callers beyond that wait.
      connect_timeout_s: TCP connect timeout for new connections.
      attempts: How many times a unit of work is tried when the connection breaks.
      application_name: Shown in ``pg_stat_activity``.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 4,
        connect_timeout_s: int = 5,
        attempts: int = DEFAULT_ATTEMPTS,
        application_name: str = "geotasks",
    ) -> None:
        self.url = url
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self.attempts = attempts
        self.application_name = application_name
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pid = os.getpid()
        # Connections inherited through fork() belong to the parent: closing them here would
        # send a Terminate message down the parent's socket, so they are only kept referenced.
        self._inherited: list[Connection] = []
        #: Shared by everything in this process that reaches this server (pools, listener), so
        #: an outage is logged once, not once per attempt of every thread.
        self.outage = shared_outage(f"PostgreSQL at {redact_url(url)}")

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r}, max_connections={self.max_connections})"

    def connect(self, *, autocommit: bool = False) -> Connection:
        """Open a new connection outside the pool (for LISTEN, or a caller that owns it).

        Raises:
          DatabaseUnavailable: when Postgres cannot be reached.
          DatabaseMisconfigured: when it refuses the connection for good (authentication, no
            such database or role): never retried.
        """
        try:
            conn = psycopg2.connect(
                self.url,
                connect_timeout=self.connect_timeout_s,
                application_name=self.application_name,
                connection_factory=PooledConnection,
                # A peer that vanished without closing the socket (power loss) is noticed
                # within about a minute instead of never.
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
        except psycopg2.OperationalError as exc:
            if is_permanent(exc):
                raise DatabaseMisconfigured(
                    f"PostgreSQL at {redact_url(self.url)} refused the connection: "
                    f"{describe_error(exc)} (check GEOTASKS_DATABASE_URL)"
                ) from exc
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {redact_url(self.url)}: {describe_error(exc)}"
            ) from exc
        conn.autocommit = autocommit
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """Borrow a connection for the duration of a ``with`` block.

        The connection is returned to the pool afterwards, rolled back if a transaction is still
        open, and discarded if it is broken. Prefer :meth:`transaction`, which also retries.

        Raises:
          DatabaseUnavailable: when no connection is free within the checkout timeout or
            Postgres cannot be reached.
        """
        self._check_fork()
        if not self._slots.acquire(timeout=CHECKOUT_TIMEOUT_S):
            raise DatabaseUnavailable(
                f"no free connection in the pool of {self.max_connections} "
                f"after {CHECKOUT_TIMEOUT_S:.0f} s"
            )
        conn: Connection | None = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self.connect()
            yield conn
        finally:
            if conn is not None:
                self._release(conn)
            self._slots.release()

    def transaction(
        self,
        work: Callable[[Cursor], T],
        *,
        attempts: int | None = None,
        single_statement: bool = False,
    ) -> T:
        """Run ``work(cursor)`` in one transaction and commit, retrying on broken connections.

        Parameters:
          work: Called with a fresh cursor; its return value is returned. May be called more
            than once, so it must be idempotent.
          attempts: Override the pool's number of attempts (``1`` never retries).
          single_statement: Run every ``execute`` call of ``work`` as a transaction of its own
            (several statements in one string are one implicit transaction, so ``SET LOCAL``
            still applies): sent without BEGIN and COMMIT, one round trip instead of three. For
            work with one ``execute``, or one write followed by reads that need not share its
            snapshot.

        Returns:
          Whatever ``work`` returned.

        Raises:
          DatabaseUnavailable: when the connection broke on every attempt.
          DatabaseMisconfigured: at once, when the settings are wrong (authentication, no such
            database, role or schema).
          DatabaseError: when Postgres rejected the work (wrapping the psycopg2 error).
        """
        attempts = self.attempts if attempts is None else attempts
        delay_s = RETRY_BACKOFF_S
        for attempt in range(1, attempts + 1):
            try:
                with self.connection() as conn:
                    conn.autocommit = single_statement
                    try:
                        with conn.cursor() as cur:
                            result = work(cur)
                        if not single_statement:
                            conn.commit()
                        self.outage.recovered()
                        return result
                    except BaseException:
                        if not conn.closed and not single_statement:
                            with contextlib.suppress(psycopg2.Error):
                                conn.rollback()
                        raise
                    finally:
                        if single_statement and not conn.closed:
                            conn.autocommit = False
            except RETRYABLE_ERRORS as exc:
                self.outage.failed(describe_error(exc))
                if attempt == attempts:
                    raise DatabaseUnavailable(
                        f"PostgreSQL at {redact_url(self.url)} failed {attempts} times; "
                        f"last error: {describe_error(exc)}"
                    ) from exc
                logger.debug(
                    "Database operation failed (attempt %d of %d), retrying in %.1f s: %s",
                    attempt,
                    attempts,
                    delay_s,
                    describe_error(exc),
                )
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, RETRY_BACKOFF_MAX_S)
            except psycopg2.Error as exc:
                hint = missing_schema_hint(exc)
                if hint or is_permanent(exc):
                    raise DatabaseMisconfigured(describe_error(exc) + hint) from exc
                raise DatabaseError(describe_error(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection. Borrowed ones are closed when returned."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def _release(self, conn: Connection) -> None:
        if conn.closed:
            return
        if conn.status != psycopg2.extensions.STATUS_READY:
            try:
                conn.rollback()
            except psycopg2.Error:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
                return
        with self._lock:
            self._idle.append(conn)

    def _check_fork(self) -> None:
        pid = os.getpid()
        if pid == self._pid:
            return
        with self._lock:
            if pid != self._pid:
                self._inherited.extend(self._idle)
                self._idle = []
                self._slots = threading.BoundedSemaphore(self.max_connections)
                self._pid = pid


def describe_error(exc: BaseException) -> str:
    """Return the first line of an exception's message, for logs and wrapped errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_databases: dict[tuple[int, str], Database] = {}
_databases_lock = threading.Lock()


def get_database(url: str, *, max_connections: int = 4, connect_timeout_s: int = 5) -> Database:
    """Return this process's shared pool for ``url``, creating it on first use."""
    key = (os.getpid(), url)
    with _databases_lock:
        database = _databases.get(key)
        if database is None:
            database = Database(
                url, max_connections=max_connections, connect_timeout_s=connect_timeout_s
            )
            _databases[key] = database
        return database
