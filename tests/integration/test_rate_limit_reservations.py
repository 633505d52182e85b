"""Start-slot reservations and concurrency leases, on Postgres and on Redis."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geotasks.postgres.pool import Database
from geotasks.postgres.rate_limits import PostgresBackend
from geotasks.rate_limits import LimiterBackend, spacing_ms

#: Slack for "now" on a shared, busy machine, in milliseconds.
CLOCK_SLACK_MS = 200


def relative(starts: list[int]) -> list[int]:
    return [start - starts[0] for start in starts]


def assert_within_limit(starts: list[int], limit: int, period_ms: int, burst: int) -> None:
    """No window of ``period_ms`` holds more than ``limit`` starts, nor one of a burst's
    spacing more than ``burst``."""
    starts = sorted(starts)
    for i in range(len(starts) - limit):
        assert starts[i + limit] - starts[i] >= period_ms, (i, relative(starts))
    for i in range(len(starts) - burst):
        assert starts[i + burst] - starts[i] >= spacing_ms(limit, period_ms, burst)


def test_four_per_minute_spaces_starts_fifteen_seconds_apart(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # When five starts are reserved at once under "4/m"
    slots = [limiter_backend.reserve(limiter_key, 4, 60_000) for _ in range(5)]

    # Then the first may start now and each next one 15 s after the previous: no burst of 4
    assert slots[0].wait_ms == 0
    assert relative([slot.start_ms for slot in slots]) == [0, 15_000, 30_000, 45_000, 60_000]
    assert 44_000 < slots[3].wait_ms <= 45_000


def test_a_burst_lets_that_many_start_together_but_never_more_than_the_limit_per_period(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # When "4/m" allows a burst of 4, and six starts are reserved at once
    full = [limiter_backend.reserve(limiter_key, 4, 60_000, burst=4) for _ in range(6)]
    # And another limit allows bursts of 2
    pairs = [limiter_backend.reserve(limiter_key + "-2", 4, 60_000, burst=2) for _ in range(5)]

    # Then the first four start now, the next four a minute later
    assert all(slot.wait_ms == 0 for slot in full[:4])
    assert [round(t / 1000) for t in relative([s.start_ms for s in full])] == [0, 0, 0, 0, 60, 60]
    # And pairs start 30 s apart
    assert [round(t / 1000) for t in relative([s.start_ms for s in pairs])] == [0, 0, 30, 30, 60]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.integers(min_value=1, max_value=12),
    burst_fraction=st.floats(min_value=0, max_value=1),
    period_ms=st.sampled_from([300, 1_000, 60_000]),
)
def test_reserved_slots_keep_the_limit_in_every_window_and_waste_no_time(
    limiter_backend: LimiterBackend, limit: int, burst_fraction: float, period_ms: int
) -> None:
    # Given any limit, burst and period, and a fresh key
    burst = max(1, round(limit * burst_fraction))
    key = f"geotasks-test-{uuid.uuid4().hex}"

    # When more than two periods' worth of starts are reserved one after another
    slots = [
        limiter_backend.reserve(key, limit, period_ms, burst=burst) for _ in range(2 * limit + 3)
    ]
    starts = [slot.start_ms for slot in slots]

    # Then slots never go backwards and no window breaks the limit
    assert starts == sorted(starts)
    assert_within_limit(starts, limit, period_ms, burst)

    # And each is the earliest the rule allows: now, or the first moment a constraint lifts
    for i, slot in enumerate(slots):
        earliest = [starts[i - 1]] if i else []
        if i >= burst:
            earliest.append(starts[i - burst] + spacing_ms(limit, period_ms, burst))
        if i >= limit:
            earliest.append(starts[i - limit] + period_ms)
        if earliest and max(earliest) >= slot.now_ms:
            assert slot.start_ms == max(earliest)
        else:
            assert slot.now_ms - CLOCK_SLACK_MS <= slot.start_ms <= slot.now_ms


def test_concurrent_reservers_in_threads_get_distinct_tightly_spaced_slots(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given "50/s" (a slot every 20 ms) and 8 threads reserving 8 slots each at once
    def reserve_eight(_: int) -> list[int]:
        return [limiter_backend.reserve(limiter_key, 50, 1_000).start_ms for _ in range(8)]

    with ThreadPoolExecutor(8) as pool:
        starts = sorted(start for batch in pool.map(reserve_eight, range(8)) for start in batch)

    # Then all 64 slots are distinct, at least 20 ms apart, with no slot thrown away
    assert len(set(starts)) == 64
    assert_within_limit(starts, 50, 1_000, 1)
    assert starts[-1] - starts[0] < 63 * 20 + CLOCK_SLACK_MS


def _reserve_from_a_process(kind: str, url: str, key: str) -> list[int]:
    """Run in a separate process: 4 threads reserving 5 slots each under "50/s"."""
    backend: LimiterBackend
    if kind == "postgres":
        backend = PostgresBackend(Database(url, max_connections=4))
    else:
        from geotasks.redis.rate_limits import RedisBackend

        backend = RedisBackend(url=url)

    def reserve_five(_: int) -> list[int]:
        return [backend.reserve(key, 50, 1_000).start_ms for _ in range(5)]

    with ThreadPoolExecutor(4) as pool:
        return [start for batch in pool.map(reserve_five, range(4)) for start in batch]


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_concurrent_reservers_in_processes_get_distinct_tightly_spaced_slots(
    kind: str, request: pytest.FixtureRequest, limiter_key: str
) -> None:
    # Given 3 processes of 4 threads each, all reserving under the same key
    url = request.getfixturevalue("database_url" if kind == "postgres" else "redis_url")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        futures = [pool.submit(_reserve_from_a_process, kind, url, limiter_key) for _ in range(3)]
        starts = sorted(start for future in futures for start in future.result(timeout=60))

    # Then the 60 slots are distinct and spaced as one limiter would space them
    assert len(set(starts)) == 60
    assert_within_limit(starts, 50, 1_000, 1)


def test_leases_admit_up_to_the_limit_and_free_on_release(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given a limit of 2 taken by two holders
    assert limiter_backend.acquire_lease(limiter_key, "a", 2, 10_000)
    assert limiter_backend.acquire_lease(limiter_key, "b", 2, 10_000)

    # Then a third is refused, while a holder taking its own slot again is not
    assert not limiter_backend.acquire_lease(limiter_key, "c", 2, 10_000)
    assert limiter_backend.acquire_lease(limiter_key, "a", 2, 10_000)

    # And releasing one lets the third in
    limiter_backend.release_lease(limiter_key, "b")
    limiter_backend.release_lease(limiter_key, "never-held")
    assert limiter_backend.acquire_lease(limiter_key, "c", 2, 10_000)


def test_a_lease_that_is_not_renewed_frees_itself(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # Given a slot held by a worker that dies (it never renews), and one that renews
    assert limiter_backend.acquire_lease(limiter_key, "dead", 2, 400)
    assert limiter_backend.acquire_lease(limiter_key, "alive", 2, 400)
    time.sleep(0.2)
    assert limiter_backend.renew_leases([(limiter_key, "alive")], 2_000) == set()

    # When the lease time passes
    time.sleep(0.3)

    # Then the dead one's slot is free, the renewed one still held, and renewing the dead one
    # reports it as lost
    assert limiter_backend.acquire_lease(limiter_key, "new", 2, 10_000)
    assert not limiter_backend.acquire_lease(limiter_key, "another", 2, 10_000)
    lost = limiter_backend.renew_leases([(limiter_key, "dead"), (limiter_key, "alive")], 2_000)
    assert lost == {(limiter_key, "dead")}


def test_concurrent_lease_takers_never_exceed_the_limit(
    limiter_backend: LimiterBackend, limiter_key: str
) -> None:
    # When 10 threads each try to take one of 3 slots at the same moment
    with ThreadPoolExecutor(10) as pool:
        taken = list(
            pool.map(
                lambda n: limiter_backend.acquire_lease(limiter_key, f"holder-{n}", 3, 10_000),
                range(10),
            )
        )

    # Then exactly 3 got one
    assert sum(taken) == 3
