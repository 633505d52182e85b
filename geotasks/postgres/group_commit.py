"""Group commit: the writes of threads that are ready at the same time go in one statement.

A worker process runs several threads, and each writes one or two rows per job (the poison
guard's count with STARTED, the result with SUCCESS). Sent one by one, every row costs a round
trip, a commit, and Postgres' fixed cost of a statement; sent together as one multi-row statement
(``unnest`` of arrays), the fixed costs are paid once for all of them.

:class:`GroupCommit` is a classic leader/follower group commit, with no timer: a thread that
finds no write in flight sends its own at once, alone, with the ordinary single-row statement;
threads that arrive while a write is in flight queue up, and when it has committed the first of
them sends everything queued as one statement. Every thread returns only once the statement that
carried its row has committed, so durability and ordering are those of a write of its own.

When Postgres rejects a batch (:class:`~geotasks.errors.DatabaseError`), every thread of the
batch writes its own row again with the single-row statement, so one bad row cannot fail its
neighbours; when Postgres is unreachable (:class:`~geotasks.errors.DatabaseUnavailable`, after
the pool's retries), every thread of the batch gets that error.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from psycopg2.extensions import cursor as Cursor

from ..errors import DatabaseError, DatabaseUnavailable
from .pool import Database

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT")
OutcomeT = TypeVar("OutcomeT")

#: Most rows one statement carries; writers beyond it wait for the next statement.
MAX_BATCH = 64


class _Waiter(Generic[RequestT, OutcomeT]):
    """One thread's write, and how it came out."""

    __slots__ = ("_wake", "alone", "error", "lead", "outcome", "request", "settled")

    def __init__(self, request: RequestT) -> None:
        self.request = request
        self.outcome: OutcomeT | None = None
        self.error: BaseException | None = None
        #: Set when this thread is to send the next statement.
        self.lead = False
        #: Set when its batch was rejected: it writes its row again, alone.
        self.alone = False
        #: Set once the leader of its batch has given it its outcome, error, or ``alone``.
        self.settled = False
        # A lock held from birth is the cheapest way to park a thread until someone wakes it.
        self._wake = threading.Lock()
        self._wake.acquire()

    def sleep(self) -> None:
        self._wake.acquire()

    def wake(self) -> None:
        self._wake.release()


class GroupCommit(Generic[RequestT, OutcomeT]):
    """Writes the requests of threads that are ready together in one statement and commit.

    Parameters:
      database: The pool the statements run through (each in a transaction of its own, sent
        as one string: ``Database.transaction(single_statement=True)``).
      write_one: Writes one request with the single-row statement and returns its outcome;
        used for a request that arrives alone, and for each request of a rejected batch.
      write_many: Writes two or more requests with one statement (``execute`` once) and returns
        their outcomes, in the order of the requests.
      key: What two requests of one statement must not share (a row both would write: one
        multi-row upsert cannot update a row twice); the second waits for the next statement.
      max_batch: Most requests in one statement.
    """

    def __init__(
        self,
        database: Database,
        *,
        write_one: Callable[[Cursor, RequestT], OutcomeT],
        write_many: Callable[[Cursor, Sequence[RequestT]], Sequence[OutcomeT]],
        key: Callable[[RequestT], Hashable],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.database = database
        self._write_one = write_one
        self._write_many = write_many
        self._key = key
        self.max_batch = max_batch
        #: Statements sent: single-row ones (a lone request, or a rejected batch's rows).
        self.single_statements = 0
        #: Statements sent: multi-row ones.
        self.batch_statements = 0
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Waiter[RequestT, OutcomeT]] = deque()
        self._busy = False
        self._pid = os.getpid()

    @property
    def waiting(self) -> int:
        """Writes queued behind the statement in flight."""
        with self._lock:
            return len(self._queue)

    def write(self, request: RequestT) -> OutcomeT:
        """Write ``request``, with the requests of other threads ready at the same time.

        Returns once the statement that carried it has committed.

        Returns:
          Its outcome, as ``write_one`` or ``write_many`` gave it.

        Raises:
          DatabaseUnavailable: when Postgres could not be reached.
          DatabaseError: when Postgres rejected the request (written alone).
        """
        if self._pid != os.getpid():
            # A child of fork() inherits the parent's queue but none of its threads.
            self._reset()
        waiter: _Waiter[RequestT, OutcomeT] = _Waiter(request)
        try:
            with self._lock:
                if self._busy:
                    self._queue.append(waiter)
                else:
                    waiter.lead = True
                    self._busy = True
            if not waiter.lead:
                waiter.sleep()
            if waiter.lead:
                self._lead(waiter)
        except BaseException:
            # An exception raised into this thread from outside (Dramatiq's time limit or
            # shutdown notification) must not leave the writers queued behind it asleep.
            self._leave(waiter)
            raise
        if waiter.alone:
            return self._write_alone(waiter.request)
        if waiter.error is not None:
            raise _own_copy(waiter.error) from waiter.error
        return waiter.outcome  # type: ignore[return-value]

    def _lead(self, leader: _Waiter[RequestT, OutcomeT]) -> None:
        """Send the leader's request and those queued behind it, then pass the lead on.

        A request with no company is written at once with the single-row statement (cheaper
        for Postgres than a batch of one), still holding the lead so that writers arriving
        meanwhile queue up for the next statement.
        """
        batch = [leader]
        try:
            batch = self._take_batch(leader)
            if len(batch) == 1:
                leader.outcome = self._write_alone(leader.request)
            else:
                self._send(batch)
        finally:
            for waiter in batch:
                if waiter is not leader:
                    # A leader interrupted before its statement came back cannot say whether
                    # the rows were written: each writes its own again (the writes are upserts).
                    waiter.alone = waiter.alone or not waiter.settled
                    waiter.wake()
            self._pass_lead(leader)

    def _pass_lead(self, leader: _Waiter[RequestT, OutcomeT]) -> None:
        """Hand the lead to the first writer queued, or free it."""
        with self._lock:
            if not leader.lead:
                return
            leader.lead = False
            successor = self._queue.popleft() if self._queue else None
            if successor is None:
                self._busy = False
            else:
                successor.lead = True
        if successor is not None:
            successor.wake()

    def _leave(self, waiter: _Waiter[RequestT, OutcomeT]) -> None:
        """Take a writer interrupted by an exception out of the queue, or pass on its lead."""
        with self._lock:
            if waiter in self._queue:
                self._queue.remove(waiter)
                return
        self._pass_lead(waiter)

    def _take_batch(self, leader: _Waiter[RequestT, OutcomeT]) -> list[_Waiter[RequestT, OutcomeT]]:
        batch = [leader]
        keys = {self._key(leader.request)}
        with self._lock:
            skipped: list[_Waiter[RequestT, OutcomeT]] = []
            while self._queue and len(batch) < self.max_batch:
                waiter = self._queue.popleft()
                key = self._key(waiter.request)
                if key in keys:
                    skipped.append(waiter)
                    continue
                keys.add(key)
                batch.append(waiter)
            self._queue.extendleft(reversed(skipped))
        return batch

    def _send(self, batch: list[_Waiter[RequestT, OutcomeT]]) -> None:
        requests = [waiter.request for waiter in batch]
        self.batch_statements += 1  # Only the leader counts it.
        try:
            outcomes = self.database.transaction(
                lambda cursor: self._write_many(cursor, requests), single_statement=True
            )
        except DatabaseUnavailable as exc:
            for waiter in batch:
                waiter.error, waiter.settled = exc, True
            return
        except DatabaseError as exc:
            logger.warning(
                "A statement of %d rows was rejected (%s); each row is written alone",
                len(batch),
                exc,
            )
            for waiter in batch:
                waiter.alone, waiter.settled = True, True
            return
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.outcome, waiter.settled = outcome, True

    def _write_alone(self, request: RequestT) -> OutcomeT:
        with self._lock:
            self.single_statements += 1
        return self.database.transaction(
            lambda cursor: self._write_one(cursor, request), single_statement=True
        )


def _own_copy(error: BaseException) -> BaseException:
    """A copy of a batch's error for one of its threads: threads raising one exception object
    at once would each rewrite its traceback."""
    try:
        return copy.copy(error)
    except Exception:
        return error
