"""``geotasks dead-letters``: inspecting, re-queueing and purging rejected messages."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.pool import Database


def geotasks(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEOTASKS_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "geotasks.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def rows(database: Database, sql: str) -> list[tuple[Any, ...]]:
    def run(cur: Any) -> list[tuple[Any, ...]]:
        cur.execute(sql)
        return list(cur.fetchall())

    return database.transaction(run)


@pytest.fixture
def dead_letter_id(database: Database) -> Iterator[int]:
    """A message for `transform` that failed for good with a ValueError, dead-lettered."""
    broker = PostgresBroker(database=database, middleware=[])
    try:
        yield dead_letter(broker, database)
    finally:
        close_listeners(database.url)


def dead_letter(broker: PostgresBroker, database: Database) -> int:
    """Send a message, fail it as a worker would, and return its dead letter's id."""

    @dramatiq.actor(broker=broker, queue_name="geo")
    def transform(name: str) -> None:
        raise ValueError(f"no dataset named {name!r}")

    message = transform.send("parcels")
    consumer = broker.consume("geo", prefetch=1, timeout=1000)
    delivered = next(consumer)
    assert delivered is not None
    try:
        transform(*delivered.args)
    except ValueError as exc:
        delivered.stuff_exception(exc)
    delivered.fail()
    consumer.nack(delivered)
    consumer.close()
    broker.close()
    [(dead_letter_id, message_id)] = rows(
        database, "SELECT dead_letter_id, message_id FROM geotasks.broker_dead_letters"
    )
    assert message_id == message.message_id
    return int(dead_letter_id)


def test_list_shows_each_dead_letter_with_its_error(database_url: str, dead_letter_id: int) -> None:
    result = geotasks(database_url, "dead-letters", "list")
    assert result.returncode == 0, result.stderr
    [header, line] = result.stdout.splitlines()
    assert header.split()[:2] == ["ID", "DEAD"]
    assert line.split()[0] == str(dead_letter_id)
    assert "geo" in line and "transform" in line
    assert "ValueError: no dataset named 'parcels'" in line


def test_show_prints_the_message_and_the_full_traceback(
    database_url: str, dead_letter_id: int
) -> None:
    result = geotasks(database_url, "dead-letters", "show", str(dead_letter_id))
    assert result.returncode == 0, result.stderr
    assert '"actor_name": "transform"' in result.stdout
    assert "Traceback (most recent call last)" in result.stdout
    assert "ValueError: no dataset named 'parcels'" in result.stdout


def test_requeue_puts_the_message_back_in_its_queue(
    database_url: str, database: Database, dead_letter_id: int
) -> None:
    # When the dead letter is re-queued
    result = geotasks(database_url, "dead-letters", "requeue", str(dead_letter_id))

    # Then it is waiting in its queue again, and no longer a dead letter
    assert result.returncode == 0, result.stderr
    assert "on queue geo" in result.stdout
    assert rows(database, "SELECT count(*) FROM geotasks.broker_dead_letters") == [(0,)]
    assert rows(database, "SELECT queue_name, consumer_id FROM geotasks.broker_messages") == [
        ("geo", None)
    ]


def test_purge_needs_a_queue_or_all_then_deletes(
    database_url: str, database: Database, dead_letter_id: int
) -> None:
    assert geotasks(database_url, "dead-letters", "purge").returncode == 2
    result = geotasks(database_url, "dead-letters", "purge", "--queue", "geo")
    assert result.returncode == 0, result.stderr
    assert "deleted 1 dead letter(s)" in result.stdout
    assert rows(database, "SELECT count(*) FROM geotasks.broker_dead_letters") == [(0,)]


def test_an_unknown_id_is_an_error(database_url: str, database: Database) -> None:
    for command in ("show", "requeue"):
        result = geotasks(database_url, "dead-letters", command, "12345")
        assert result.returncode == 1
        assert "no dead letter 12345" in result.stderr


def test_another_brokers_dead_letters_are_not_looked_for_in_postgres(database_url: str) -> None:
    env_broker = {"GEOTASKS_BROKER_URL": "redis://127.0.0.1:6379/15"}
    result = subprocess.run(
        [sys.executable, "-m", "geotasks.cli", "dead-letters", "list"],
        env={**os.environ, "GEOTASKS_DATABASE_URL": database_url, **env_broker},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "keeps its own dead letters" in result.stderr
