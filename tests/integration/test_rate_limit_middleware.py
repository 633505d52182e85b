"""The RateLimit middleware inside geotasks' stack: job status, results, retries, failures.

Each test runs an in-process worker on each broker of the ``stack`` fixture, whose middleware
(built by :func:`geotasks.broker.build_middleware`) keeps its rate limits in the test's database.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware, SkipMessage

from geotasks.job_model import JobState
from geotasks.jobs import Job
from geotasks.middleware.rate_limit import CONCURRENCY_KEY_PREFIX, RateLimit
from geotasks.postgres.pool import Database
from geotasks.postgres.rate_limits import PostgresBackend
from tests.integration.conftest import Stack


def rate_limit(stack: Stack, **settings: int) -> RateLimit:
    """The stack's RateLimit middleware, with ``settings`` changed."""
    middleware = next(m for m in stack.broker.middleware if isinstance(m, RateLimit))
    for name, value in settings.items():
        setattr(middleware, name, value)
    return middleware


@pytest.fixture
def limiter(stack: Stack) -> PostgresBackend:
    backend = rate_limit(stack).backend
    assert isinstance(backend, PostgresBackend)
    return backend


def wait_for(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_throttled_job_reads_throttled_and_runs_at_its_slot_without_using_a_retry(
    stack: Stack,
) -> None:
    # Given an actor limited to "2/s" (no retries allowed: a used retry would fail it), and a
    # worker that waits at most 100 ms in a thread for a slot
    rate_limit(stack, hold_ms=100)
    started: list[float] = []

    @stack.actor(actor_name="stamp", rate_limit="2/s")
    def stamp(n: int) -> int:
        started.append(time.monotonic())
        return n

    with stack.worker(threads=3):
        # When three messages are sent at once
        messages = [stamp.send(n) for n in range(3)]
        jobs = [stack.job(message.message_id) for message in messages]

        # Then those that wait read THROTTLED, with no result (no None) stored
        def throttled() -> list[Job]:
            return [job for job in jobs if job.status is JobState.THROTTLED]

        assert wait_for(throttled, timeout_s=5)
        assert all(job.info().result_kind is None for job in throttled())
        # And all succeed, each on its first attempt
        assert [job.get(timeout=10) for job in jobs] == [0, 1, 2]

    # About 525 ms apart (500 ms and the guard), never 3 in one second
    starts = sorted(started)
    assert 1.0 <= starts[2] - starts[0] <= 2.5, starts
    assert all(b - a >= 0.45 for a, b in itertools.pairwise(starts)), starts
    for job in jobs:
        info = job.info()
        assert (info.status, info.attempt, info.runs) == (JobState.SUCCESS, 0, 1)
    # At least the two whose slots were 525 and 1050 ms away waited in the queue
    assert sum(job.info().throttled_at is not None for job in jobs) >= 2


def test_a_message_may_run_under_a_lower_limit_than_its_actor(stack: Stack) -> None:
    # Given an actor allowed "100/s"
    rate_limit(stack, hold_ms=100)
    started: list[float] = []

    @stack.actor(actor_name="stamp", rate_limit="100/s")
    def stamp() -> None:
        started.append(time.monotonic())

    with stack.worker(threads=2):
        # When two messages are sent with rate_limit="2/s"
        jobs = [stack.job(stamp.send_with_options(rate_limit="2/s").message_id) for _ in range(2)]
        for job in jobs:
            job.get(timeout=10)

    # Then they start half a second apart, not 10 ms
    assert abs(started[1] - started[0]) >= 0.45


def test_an_unreachable_limiter_holds_messages_back_until_it_is_reachable_again(
    stack: Stack, limiter: PostgresBackend
) -> None:
    # Given a rate limiter whose database cannot be reached
    unreachable = PostgresBackend(Database("postgresql://postgres@127.0.0.1:1/none", attempts=1))
    middleware = rate_limit(stack)
    middleware.backend = unreachable
    ran = threading.Event()

    @stack.actor(actor_name="guarded", rate_limit="10/s")
    def guarded() -> None:
        ran.set()

    with stack.worker():
        # When a message is sent
        job = stack.job(guarded.send().message_id)

        # Then it does not run unthrottled: it waits, THROTTLED, without using a retry
        assert not ran.wait(timeout=1.5)
        assert job.status is JobState.THROTTLED

        # And once the limiter is back, it runs
        middleware.backend = limiter
        assert ran.wait(timeout=10)
        job.get(timeout=5)
    assert job.info().attempt == 0


class SkipAfterRateLimit(Middleware):
    """Skips every message after RateLimit took its slot (as a cancelled job is skipped)."""

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        raise SkipMessage("cancelled")


def holders(limiter: PostgresBackend, actor_name: str) -> list[str]:
    def work(cursor: Any) -> list[str]:
        cursor.execute(
            "SELECT holder FROM geotasks.concurrency_leases WHERE key = %s",
            (CONCURRENCY_KEY_PREFIX + actor_name,),
        )
        return [row[0] for row in cursor.fetchall()]

    return limiter.database.transaction(work)


def test_a_concurrency_slot_is_freed_when_the_message_fails(
    stack: Stack, limiter: PostgresBackend
) -> None:

    @stack.actor(actor_name="fails", concurrency_limit=1)
    def fails() -> None:
        raise RuntimeError("boom")

    with stack.worker():
        job = stack.job(fails.send().message_id)
        assert wait_for(lambda: job.status is JobState.FAILURE, timeout_s=10)
        assert wait_for(lambda: not holders(limiter, "fails"), timeout_s=5)


def test_a_concurrency_slot_is_freed_when_a_later_middleware_skips_the_message(
    stack: Stack, limiter: PostgresBackend
) -> None:
    stack.broker.add_middleware(SkipAfterRateLimit(), after=RateLimit)

    @stack.actor(actor_name="skipped", concurrency_limit=1)
    def skipped() -> None: ...

    with stack.worker():
        job = stack.job(skipped.send().message_id)
        assert wait_for(lambda: job.status is JobState.SKIPPED, timeout_s=10)
        assert wait_for(lambda: not holders(limiter, "skipped"), timeout_s=5)


def test_worker_shutdown_frees_the_slots_of_messages_still_running(
    stack: Stack, limiter: PostgresBackend
) -> None:
    # Given a message holding the only slot, still running
    running, release = threading.Event(), threading.Event()

    @stack.actor(actor_name="slow", concurrency_limit=1, time_limit=60_000)
    def slow() -> None:
        running.set()
        release.wait(timeout=30)

    with stack.worker() as worker:
        slow.send()
        assert running.wait(timeout=10)
        assert len(holders(limiter, "slow")) == 1

        # When the worker shuts down without waiting for it
        worker.stop(timeout=100)

        # Then the slot is free for other workers
        assert holders(limiter, "slow") == []
        release.set()
