"""One LISTEN connection per process, shared by everything that waits on Postgres.

Result waiters, the broker's doorbell and rate-limit wake-ups all need ``LISTEN``; each of them
holding its own connection would multiply connections by threads. A :class:`Listener` owns one
autocommit connection and one daemon thread. Callers register interest in a channel (and
optionally one payload, such as a message id) *before* they check the database, then wait on the
returned event: a notification that arrives between the check and the wait is never missed.

Notifications are doorbells, not data: after any reconnect every registered waiter is woken, so
it re-checks the database instead of trusting that nothing happened while the connection was
down.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from ..errors import DatabaseError
from .pool import Database, describe_error

#: Seconds between reconnection attempts while Postgres is unreachable.
RECONNECT_DELAY_S = 0.5
#: Longest the listener thread sleeps in ``select`` before checking its connection, seconds.
POLL_INTERVAL_S = 5.0

#: Matches every payload on a channel.
ANY_PAYLOAD = None


class Listener:
    """A LISTEN connection and the thread that dispatches its notifications.

    Parameters:
      database: The pool whose URL and settings the LISTEN connection uses.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._waiters: dict[tuple[str, str | None], set[threading.Event]] = defaultdict(set)
        self._channels: set[str] = set()
        self._listening: set[str] = set()
        self._wake_read, self._wake_write = os.pipe()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="geotasks-listener", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def expect(self, channel: str, payload: str | None = ANY_PAYLOAD) -> Iterator[threading.Event]:
        """Register for a notification and yield the event it will set.

        Check the database *inside* the ``with`` block, then wait on the event: a notification
        sent after registration sets it even if it came before the wait.

        Parameters:
          channel: The ``NOTIFY`` channel.
          payload: Only notifications with this payload wake the waiter; ``None`` for any.
        """
        event = threading.Event()
        key = (channel, payload)
        with self._lock:
            self._waiters[key].add(event)
            subscribe = channel not in self._channels
            self._channels.add(channel)
        if subscribe:
            self._wake_thread()
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    def wait_until_listening(self, channel: str, timeout_s: float) -> bool:
        """Block until ``LISTEN channel`` is in effect (used by tests and start-up checks)."""
        with self._lock:
            self._channels.add(channel)
        self._wake_thread()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if channel in self._listening:
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Stop the thread and close the connection."""
        self._stopped = True
        self._wake_thread()
        self._thread.join(timeout=POLL_INTERVAL_S)

    def _wake_thread(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        while not self._stopped:
            try:
                conn = self.database.connect(autocommit=True)
            except DatabaseError as exc:
                # Unreachable, or refused: keep trying, the settings may be fixed meanwhile.
                # Logged as part of the database's outage, not at every attempt.
                self.database.outage.failed(f"LISTEN connection: {exc}")
                time.sleep(RECONNECT_DELAY_S)
                continue
            self.database.outage.recovered()
            try:
                self._serve(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                self.database.outage.failed(f"LISTEN connection lost: {describe_error(exc)}")
            finally:
                with self._lock:
                    self._listening.clear()
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
            # Notifications may have been lost while down: let every waiter re-check.
            self._wake_all()

    def _serve(self, conn: Connection) -> None:
        while not self._stopped:
            self._listen_new_channels(conn)
            readable, _, _ = select.select(
                [conn.fileno(), self._wake_read], [], [], POLL_INTERVAL_S
            )
            if self._wake_read in readable:
                os.read(self._wake_read, 4096)
            if conn.fileno() in readable or not readable:
                # On a timeout, poll() doubles as a liveness check of the socket.
                conn.poll()
                while conn.notifies:
                    notify = conn.notifies.pop(0)
                    self._dispatch(notify.channel, notify.payload)

    def _listen_new_channels(self, conn: Connection) -> None:
        with self._lock:
            new = self._channels - self._listening
        if not new:
            return
        with conn.cursor() as cur:
            for channel in sorted(new):
                cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        with self._lock:
            self._listening |= new
        # Anything sent before LISTEN took effect was missed: waiters re-check.
        self._wake_channels(new)

    def _dispatch(self, channel: str, payload: str) -> None:
        with self._lock:
            events = [
                *self._waiters.get((channel, payload), ()),
                *self._waiters.get((channel, ANY_PAYLOAD), ()),
            ]
        for event in events:
            event.set()

    def _wake_channels(self, channels: set[str]) -> None:
        with self._lock:
            events = [
                event
                for (channel, _payload), waiters in self._waiters.items()
                if channel in channels
                for event in waiters
            ]
        for event in events:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [event for waiters in self._waiters.values() for event in waiters]
        for event in events:
            event.set()


_listeners: dict[tuple[int, str], Listener] = {}
_listeners_lock = threading.Lock()


def get_listener(database: Database) -> Listener:
    """Return this process's listener for ``database``'s URL, starting it on first use."""
    key = (os.getpid(), database.url)
    with _listeners_lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = Listener(database)
            _listeners[key] = listener
        return listener


def close_listeners(url: str | None = None) -> None:
    """Close this process's listeners (on ``url`` only, if given) before a database goes away."""
    with _listeners_lock:
        keys = [key for key in _listeners if url is None or key[1] == url]
        listeners = [_listeners.pop(key) for key in keys]
    for listener in listeners:
        listener.close()


def notify(cursor: psycopg2.extensions.cursor, channel: str, payload: str) -> None:
    """Send a notification; delivered when the caller's transaction commits."""
    cursor.execute("SELECT pg_notify(%s, %s)", (channel, payload))
