"""TickStore on a real Postgres: one owner per (actor, slot), redeliveries counted, no overlap,
pruning."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

from geotasks.job_model import JobState
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.periodic import OtherTick, TickStore
from geotasks.postgres.pool import Database

SLOT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_first_message_owns_the_tick_and_its_redelivery_is_counted(database: Database) -> None:
    ticks = TickStore(database)

    # Given message m1 claimed the 12:00 tick of an actor
    assert ticks.claim("delete_expired_results", SLOT, "m1", overlap=True).deliveries == 1

    # When m1 is delivered again, and m2 (another scheduler's copy) arrives
    redelivery = ticks.claim("delete_expired_results", SLOT, "m1", overlap=True).deliveries
    second_copy = ticks.claim("delete_expired_results", SLOT, "m2", overlap=True).deliveries

    # Then m1 still owns the tick (second delivery) and m2 gets nothing
    assert redelivery == 2
    assert second_copy is None


def test_slots_and_actors_are_independent(database: Database) -> None:
    ticks = TickStore(database)

    # Given the 12:00 tick of one actor is owned
    assert ticks.claim("a", SLOT, "m1", overlap=True).deliveries == 1

    # Then the next slot of the same actor, and the same slot of another actor, are free
    assert ticks.claim("a", SLOT + timedelta(minutes=1), "m2", overlap=True).deliveries == 1
    assert ticks.claim("b", SLOT, "m3", overlap=True).deliveries == 1


def test_the_same_instant_in_another_offset_is_the_same_slot(database: Database) -> None:
    ticks = TickStore(database)
    paris = SLOT.astimezone(timezone(timedelta(hours=2)))

    # Given the tick claimed with the slot in UTC
    assert ticks.claim("a", SLOT, "m1", overlap=True).deliveries == 1

    # Then the same instant written at +02:00 is the same slot, owned by m1
    assert ticks.claim("a", paris, "m2", overlap=True).deliveries is None


def test_concurrent_copies_from_separate_pools_have_exactly_one_owner(
    database_url: str,
) -> None:
    # Given eight workers, each with its own pool, racing for the same tick
    pools = [Database(database_url, max_connections=1) for _ in range(8)]
    start = threading.Barrier(len(pools))
    outcomes: dict[str, int | None] = {}

    def claim(pool: Database) -> None:
        message_id = str(uuid.uuid4())
        start.wait(timeout=10)
        outcomes[message_id] = TickStore(pool).claim("a", SLOT, message_id, overlap=True).deliveries

    threads = [threading.Thread(target=claim, args=(pool,)) for pool in pools]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for pool in pools:
            pool.close()

    # Then exactly one message owns it
    assert len(outcomes) == len(pools)
    assert sorted(outcomes.values(), key=str) == [1] + [None] * (len(pools) - 1)


def test_delete_older_than_removes_only_old_ticks(database: Database) -> None:
    ticks = TickStore(database)
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    # Given ticks two days, two hours and one minute old
    ticks.claim("a", now - timedelta(days=2), "old", overlap=True)
    ticks.claim("a", now - timedelta(hours=2), "recent", overlap=True)
    ticks.claim("a", now - timedelta(minutes=1), "fresh", overlap=True)

    # When ticks older than a day are deleted
    deleted = ticks.delete_older_than(86_400)

    # Then only the two-day-old one is gone: its slot is free, the others are still owned
    assert deleted == 1
    assert ticks.claim("a", now - timedelta(days=2), "again", overlap=True).deliveries == 1
    assert ticks.claim("a", now - timedelta(hours=2), "again", overlap=True).deliveries is None
    assert ticks.claim("a", now - timedelta(minutes=1), "again", overlap=True).deliveries is None


def test_without_overlap_a_slot_waits_for_the_previous_job_and_never_runs_after_a_later_one(
    database: Database,
) -> None:
    ticks, jobs = TickStore(database), JobStore(database)
    second = SLOT + timedelta(seconds=30)

    def record(message_id: str, status: JobState) -> None:
        jobs.transition(message_id, actor_name="a", queue_name="q", status=status, attempt=0)

    # Given the 12:00:00 slot's job m1 is running
    record("m1", JobState.PENDING)
    assert ticks.claim("a", SLOT, "m1", overlap=False).deliveries == 1
    record("m1", JobState.STARTED)

    # Then the 12:00:30 slot is blocked by it, unless the actor allows overlap
    blocked = ticks.claim("a", second, "m2", overlap=False)
    assert blocked.blocked_by == OtherTick(SLOT, "m1", "STARTED")
    assert ticks.claim("b", second, "m2", overlap=True).deliveries == 1

    # When m1 finishes, the next slot runs
    record("m1", JobState.SUCCESS)
    assert ticks.claim("a", second, "m3", overlap=False).deliveries == 1
    # And an older slot arriving after it never runs
    late = ticks.claim("a", SLOT - timedelta(seconds=30), "m4", overlap=False)
    assert late.blocked_by is not None and late.blocked_by.slot == second
