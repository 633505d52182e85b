"""Dramatiq's RateLimiterBackend interface, and Dramatiq's own limiters, on Postgres and Redis."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dramatiq
import pytest
from dramatiq import group
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import GroupCallbacks
from dramatiq.rate_limits import Barrier, ConcurrentRateLimiter, WindowRateLimiter

from geotasks.errors import DatabaseUnavailable, RateLimiterUnavailable, TransientError
from geotasks.postgres.pool import Database
from geotasks.postgres.rate_limits import PostgresBackend
from geotasks.rate_limits import LimiterBackend


def test_add_sets_a_key_only_when_absent_or_expired(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given a key added with a short TTL
    assert limiter_backend.add(limiter_key, 1, 300)

    # Then adding it again fails until the TTL has passed
    assert not limiter_backend.add(limiter_key, 5, 300)
    time.sleep(0.4)
    assert limiter_backend.add(limiter_key, 5, 300)


def test_incr_and_decr_respect_their_bounds(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given an absent key: it counts as 0
    assert limiter_backend.incr(limiter_key, 2, 3, 10_000)
    # When incremented past the maximum, it refuses and keeps its value
    assert not limiter_backend.incr(limiter_key, 2, 3, 10_000)
    assert limiter_backend.incr(limiter_key, 1, 3, 10_000)
    # Then decrements stop at the minimum
    assert limiter_backend.decr(limiter_key, 3, 0, 10_000)
    assert not limiter_backend.decr(limiter_key, 1, 0, 10_000)
    # And an amount alone beyond the bounds is refused on an absent key
    assert not limiter_backend.incr(limiter_key + "-other", 5, 3, 10_000)


def test_an_expired_counter_counts_from_zero(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given a counter at its maximum with a short TTL
    assert limiter_backend.incr(limiter_key, 3, 3, 200)
    assert not limiter_backend.incr(limiter_key, 1, 3, 200)

    # When the TTL passes, it starts again from zero
    time.sleep(0.3)
    assert limiter_backend.incr(limiter_key, 3, 3, 200)


def test_incr_and_sum_counts_every_key(limiter_backend: LimiterBackend, limiter_key: str) -> None:
    # Given two keys of a window, the older holding 2
    older, current = f"{limiter_key}@1", f"{limiter_key}@2"
    assert limiter_backend.incr(older, 2, 10, 10_000)

    def keys() -> list[str]:
        return [current, older]

    # Then the current key may take only what the sum leaves under the maximum
    assert limiter_backend.incr_and_sum(current, keys, 1, 3, 10_000)
    assert not limiter_backend.incr_and_sum(current, keys, 1, 3, 10_000)


def test_window_rate_limiter_admits_limit_per_window(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given Dramatiq's window limiter of 3 per second, at the start of a fresh second
    limiter = WindowRateLimiter(limiter_backend, limiter_key, limit=3, window=1)
    time.sleep(1.05 - time.time() % 1)

    # When 12 threads try at once
    def attempt(_: int) -> bool:
        with limiter.acquire(raise_on_failure=False) as acquired:
            return bool(acquired)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))

    # Then exactly 3 got through
    assert sum(results) == 3


def test_concurrent_rate_limiter_never_admits_more_than_its_limit(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given Dramatiq's concurrent limiter of 2 and 8 threads hammering it
    limiter = ConcurrentRateLimiter(limiter_backend, limiter_key, limit=2, ttl=10_000)
    lock = threading.Lock()
    running, most, admitted = 0, 0, 0

    def attempt(_: int) -> None:
        nonlocal running, most, admitted
        for _ in range(5):
            with limiter.acquire(raise_on_failure=False) as acquired:
                if not acquired:
                    continue
                with lock:
                    running += 1
                    admitted += 1
                    most = max(most, running)
                time.sleep(0.02)
                with lock:
                    running -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(attempt, range(8)))

    # Then at most 2 ever held it at once, and it was used
    assert most == 2
    assert admitted >= 2


def test_barrier_releases_every_party_once_all_arrive(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given a barrier of 3 parties
    barrier = Barrier(limiter_backend, limiter_key, ttl=10_000)
    assert barrier.create(parties=3)
    assert not barrier.create(parties=3)

    # When two wait (blocking) and a third arrives later
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(barrier.wait, timeout=5_000) for _ in range(2)]
        time.sleep(0.3)
        assert not any(future.done() for future in waiting)
        started = time.monotonic()
        assert barrier.wait(block=False)

        # Then both waiters are released promptly
        assert all(future.result(timeout=5) for future in waiting)
        assert time.monotonic() - started < 1.5


def test_wait_times_out_without_a_notification(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    started = time.monotonic()
    assert not limiter_backend.wait(limiter_key, 1_000)
    assert 0.9 < time.monotonic() - started < 3


def test_a_notification_wakes_a_waiter_at_once_and_persists_for_its_ttl(
    database: Database, listeners_closed: None, limiter_key: str
) -> None:
    # Given a waiter on Postgres (Redis' BRPOPLPUSH has whole-second timeouts only)
    backend = PostgresBackend(database)
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(backend.wait, limiter_key, 10_000)
        time.sleep(0.3)

        # When the key is notified
        notified = time.monotonic()
        backend.wait_notify(limiter_key, 2_000)

        # Then the waiter wakes within a fraction of a second (LISTEN, not polling)
        assert waiter.result(timeout=5)
        assert time.monotonic() - notified < 0.5

    # And a later wait returns at once while the notification lives
    started = time.monotonic()
    assert backend.wait(limiter_key, 5_000)
    assert time.monotonic() - started < 0.5


@pytest.fixture
def group_broker(limiter_backend: LimiterBackend) -> Iterator[StubBroker]:
    broker = StubBroker()
    broker.add_middleware(GroupCallbacks(limiter_backend))
    broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    worker = dramatiq.Worker(broker, worker_threads=3, worker_timeout=50)
    worker.start()
    try:
        yield broker
    finally:
        worker.stop()
        broker.close()


def test_group_completion_callbacks_run_once_when_the_group_is_done(
    group_broker: StubBroker,
) -> None:
    # Given a group of 4 messages with a completion callback, on this backend's barrier
    finished: list[str] = []
    completed: list[int] = []

    @dramatiq.actor(broker=group_broker, actor_name=f"piece_{uuid.uuid4().hex}")
    def piece(name: str) -> None:
        finished.append(name)

    @dramatiq.actor(broker=group_broker, actor_name=f"done_{uuid.uuid4().hex}")
    def done(count: int) -> None:
        completed.append(count)

    pieces = group(piece.message(str(n)) for n in range(4))
    pieces.add_completion_callback(done.message(4))

    # When the group runs
    pieces.run()
    group_broker.join(piece.queue_name, timeout=10_000)

    # Then the callback ran exactly once, after all four
    assert sorted(finished) == ["0", "1", "2", "3"]
    assert completed == [4]


def test_an_unreachable_postgres_is_a_transient_error() -> None:
    # Given a backend on a port nothing listens on
    database = Database("postgresql://postgres@127.0.0.1:1/none", attempts=1)
    backend = PostgresBackend(database)

    # Then every operation fails with a transient error, never a silent success
    with pytest.raises(DatabaseUnavailable):
        backend.reserve("key", 1, 1_000)
    with pytest.raises(TransientError):
        backend.acquire_lease("key", "holder", 1, 10_000)


def test_an_unreachable_redis_is_a_transient_error() -> None:
    pytest.importorskip("redis")
    from geotasks.redis.rate_limits import RedisBackend

    backend = RedisBackend(url="redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    with pytest.raises(RateLimiterUnavailable):
        backend.reserve("key", 1, 1_000)
    with pytest.raises(RateLimiterUnavailable):
        backend.acquire_lease("key", "holder", 1, 10_000)
