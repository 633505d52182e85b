"""TickStore on a real Postgres: one owner per (actor, slot), redeliveries counted, pruning."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

from geotasks.postgres.periodic import TickStore
from geotasks.postgres.pool import Database

SLOT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_first_message_owns_the_tick_and_its_redelivery_is_counted(database: Database) -> None:
    ticks = TickStore(database)

    # Given message m1 claimed the 12:00 tick of an actor
    assert ticks.claim("delete_expired_results", SLOT, "m1") == 1

    # When m1 is delivered again, and m2 (another scheduler's copy) arrives
    redelivery = ticks.claim("delete_expired_results", SLOT, "m1")
    second_copy = ticks.claim("delete_expired_results", SLOT, "m2")

    # Then m1 still owns the tick (second delivery) and m2 gets nothing
    assert redelivery == 2
    assert second_copy is None


def test_slots_and_actors_are_independent(database: Database) -> None:
    ticks = TickStore(database)

    # Given the 12:00 tick of one actor is owned
    assert ticks.claim("a", SLOT, "m1") == 1

    # Then the next slot of the same actor, and the same slot of another actor, are free
    assert ticks.claim("a", SLOT + timedelta(minutes=1), "m2") == 1
    assert ticks.claim("b", SLOT, "m3") == 1


def test_the_same_instant_in_another_offset_is_the_same_slot(database: Database) -> None:
    ticks = TickStore(database)
    paris = SLOT.astimezone(timezone(timedelta(hours=2)))

    # Given the tick claimed with the slot in UTC
    assert ticks.claim("a", SLOT, "m1") == 1

    # Then the same instant written at +02:00 is the same slot, owned by m1
    assert ticks.claim("a", paris, "m2") is None


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
        outcomes[message_id] = TickStore(pool).claim("a", SLOT, message_id)

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
    ticks.claim("a", now - timedelta(days=2), "old")
    ticks.claim("a", now - timedelta(hours=2), "recent")
    ticks.claim("a", now - timedelta(minutes=1), "fresh")

    # When ticks older than a day are deleted
    deleted = ticks.delete_older_than(86_400)

    # Then only the two-day-old one is gone: its slot is free, the others are still owned
    assert deleted == 1
    assert ticks.claim("a", now - timedelta(days=2), "again") == 1
    assert ticks.claim("a", now - timedelta(hours=2), "again") is None
    assert ticks.claim("a", now - timedelta(minutes=1), "again") is None
