"""One LISTEN connection per process, shared by everything that waits on Postgres.

Result waiters, the broker's doorbell and rate-limit wake-ups all need ``LISTEN``; each of them
holding its own connection would multiply connections by threads. A :class:`Listener` owns one
autocommit connection and one daemon thread. Callers register interest in a channel (and
optionally one payload, such as a message id) *before* they check the database, then wait on the
returned event: a notification that arrives between the check and the wait is never missed.

Notifications are doorbells, and sometimes carry data: a payload ``key data…`` (a space after the
key) wakes the waiters of ``key`` and hands them the whole payload (the outcome channel carries a
small result this way). After any reconnect every registered waiter is woken with no payload, so
it re-checks the database instead of trusting that nothing happened while the connection was
down.

A channel someone took a :meth:`Listener.mark` of is *remembered*: its recent payloads are kept
by key, so a waiter registered after its notification arrived still gets it, and a waiter given a
mark learns whether anything for its key arrived since that mark. A client that marks the outcome
channel before it sends a job therefore needs no database read to know the job has not finished
yet: it only waits.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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

#: Most payloads remembered per remembered channel (see :meth:`Listener.mark`).
REMEMBERED_MAX = 10_000
#: Most characters of payloads remembered per remembered channel.
REMEMBERED_MAX_CHARS = 4 * 1024 * 1024
#: Longest a payload is remembered, in seconds: it is a fact about a moment.
REMEMBERED_MAX_AGE_S = 10.0


@dataclass(frozen=True)
class Mark:
    """Where some channels' notifications stood on one LISTEN connection (:meth:`Listener.mark`).

    Attributes:
      connection: Which of the listener's connections it was.
      seqs: ``(channel, notifications received on it so far)`` for each channel marked.
    """

    connection: int
    seqs: tuple[tuple[str, int], ...]


class Waiter(threading.Event):
    """What :meth:`Listener.expect` yields: an event set by each matching notification.

    Attributes:
      payload: The payload of the notification that last set it; ``None`` when a reconnect (or
        nothing yet) set it: then only the database knows.
      payloads: The last payload received on each channel, until a reconnect empties it.
      received_at: When the last notification arrived (``time.monotonic()``).
      quiet_since_mark: Whether the waiter was registered with a mark and no matching
        notification had arrived since that mark: what it waits for had not happened by then.
    """

    def __init__(self) -> None:
        super().__init__()
        self.payload: str | None = None
        self.payloads: dict[str, str] = {}
        self.received_at = 0.0
        self.quiet_since_mark = False

    def ring(self, channel: str | None, payload: str | None, received_at: float) -> None:
        """Set the event, with the payload that set it and when it arrived (``channel`` and
        ``payload`` are ``None`` after a reconnect)."""
        if channel is None or payload is None:
            self.payloads.clear()
        else:
            self.payloads[channel] = payload
        self.payload = payload
        self.received_at = received_at
        self.set()


class _Remembered:
    """A remembered channel's recent payloads, by key, in the order they arrived."""

    def __init__(self) -> None:
        #: key -> (sequence number, monotonic time received, payload)
        self.entries: OrderedDict[str, tuple[int, float, str]] = OrderedDict()
        #: Notifications received on the channel so far.
        self.seq = 0
        #: The highest sequence number forgotten (evicted for room or age).
        self.forgotten_seq = 0
        self.chars = 0

    def add(self, key: str, payload: str, now: float) -> None:
        self.seq += 1
        replaced = self.entries.pop(key, None)
        if replaced is not None:
            self.chars -= len(replaced[2])
        self.entries[key] = (self.seq, now, payload)
        self.chars += len(payload)
        self.prune(now)

    def get(self, key: str, now: float, after_seq: int) -> tuple[str, float] | None:
        """The payload for ``key`` and when it arrived, if it arrived after ``after_seq``."""
        self.prune(now)
        entry = self.entries.get(key)
        return (entry[2], entry[1]) if entry is not None and entry[0] > after_seq else None

    def prune(self, now: float) -> None:
        while self.entries:
            seq, received_at, payload = next(iter(self.entries.values()))
            if (
                len(self.entries) <= REMEMBERED_MAX
                and self.chars <= REMEMBERED_MAX_CHARS
                and now - received_at <= REMEMBERED_MAX_AGE_S
            ):
                return
            self.entries.popitem(last=False)
            self.chars -= len(payload)
            self.forgotten_seq = max(self.forgotten_seq, seq)


class Listener:
    """A LISTEN connection and the thread that dispatches its notifications.

    Parameters:
      database: The pool whose URL and settings the LISTEN connection uses.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._waiters: dict[tuple[str, str | None], set[Waiter]] = defaultdict(set)
        self._channels: set[str] = set()
        self._listening: set[str] = set()
        self._remembered: dict[str, _Remembered] = {}
        # Counts LISTEN connections: a mark holds only on the connection it was taken on.
        self._connection = 0
        self._wake_read, self._wake_write = os.pipe()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="geotasks-listener", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def expect(
        self,
        channel: str | Sequence[str],
        payload: str | None = ANY_PAYLOAD,
        *,
        since: Mark | None = None,
    ) -> Iterator[Waiter]:
        """Register for a notification and yield the event it will set.

        Check the database *inside* the ``with`` block, then wait on the event: a notification
        sent after registration sets it even if it came before the wait. On a remembered
        channel, a notification for ``payload`` that arrived before registration (since
        ``since``, if given) sets it at once.

        Parameters:
          channel: The ``NOTIFY`` channel, or several: a notification on any of them sets it.
          payload: Only notifications with this payload (or this key: ``payload data…``) wake
            the waiter; ``None`` for any.
          since: A :meth:`mark` of the channels taken before what is waited for could have
            happened: the waiter then says whether anything for ``payload`` arrived since
            (:attr:`Waiter.quiet_since_mark`).
        """
        channels = (channel,) if isinstance(channel, str) else tuple(channel)
        waiter = Waiter()
        keys = [(name, payload) for name in channels]
        with self._lock:
            for key in keys:
                self._waiters[key].add(waiter)
            subscribe = not self._channels.issuperset(channels)
            self._channels.update(channels)
            if payload is not ANY_PAYLOAD:
                self._recall(waiter, channels, payload, since)
        if subscribe:
            self._wake_thread()
        try:
            yield waiter
        finally:
            with self._lock:
                for key in keys:
                    waiters = self._waiters.get(key)
                    if waiters is not None:
                        waiters.discard(waiter)
                        if not waiters:
                            del self._waiters[key]

    def _recall(
        self, waiter: Waiter, channels: tuple[str, ...], key: str, since: Mark | None
    ) -> None:
        # Called with the lock held: ring the waiter with what its channels remember of `key`,
        # and tell it whether nothing arrived for `key` since the mark.
        now = time.monotonic()
        held = (
            dict(since.seqs) if since is not None and since.connection == self._connection else {}
        )
        quiet = True
        for channel in channels:
            remembered = self._remembered.get(channel)
            if remembered is None:
                quiet = False
                continue
            after_seq = held.get(channel)
            arrived = remembered.get(key, now, after_seq or 0)
            if arrived is not None:
                waiter.ring(channel, *arrived)
            quiet = (
                quiet
                and arrived is None
                and after_seq is not None
                and channel in self._listening
                and remembered.forgotten_seq <= after_seq
            )
        waiter.quiet_since_mark = quiet

    def mark(self, *channels: str) -> Mark | None:
        """Remember ``channels`` from now on, and return where their notifications stand.

        Take it before doing what will be notified (sending a job): :meth:`expect` given the
        mark then knows whether the notification arrived since, without a database read.

        Returns:
          The mark, or ``None`` while ``LISTEN`` is not in effect on all of them (it is started).
        """
        with self._lock:
            for channel in channels:
                self._remembered.setdefault(channel, _Remembered())
            if self._listening.issuperset(channels):
                return Mark(
                    self._connection,
                    tuple((channel, self._remembered[channel].seq) for channel in channels),
                )
            subscribe = not self._channels.issuperset(channels)
            self._channels.update(channels)
        if subscribe:
            self._wake_thread()
        return None

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
            with self._lock:
                self._connection += 1
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
        key, _space, _data = payload.partition(" ")
        now = time.monotonic()
        with self._lock:
            remembered = self._remembered.get(channel)
            if remembered is not None:
                remembered.add(key, payload, now)
            waiters = [
                *self._waiters.get((channel, key), ()),
                *(self._waiters.get((channel, payload), ()) if key != payload else ()),
                *self._waiters.get((channel, ANY_PAYLOAD), ()),
            ]
        for waiter in waiters:
            waiter.ring(channel, payload, now)

    def _wake_channels(self, channels: set[str]) -> None:
        with self._lock:
            waiters = [
                waiter
                for (channel, _payload), channel_waiters in self._waiters.items()
                if channel in channels
                for waiter in channel_waiters
            ]
        now = time.monotonic()
        for waiter in waiters:
            waiter.ring(None, None, now)

    def _wake_all(self) -> None:
        with self._lock:
            waiters = [
                waiter for channel_waiters in self._waiters.values() for waiter in channel_waiters
            ]
        now = time.monotonic()
        for waiter in waiters:
            waiter.ring(None, None, now)


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


def running_listener(url: str) -> Listener | None:
    """Return this process's listener for ``url`` if one runs; never start one."""
    return _listeners.get((os.getpid(), url))


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
