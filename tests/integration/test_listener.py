"""The shared LISTEN connection: payload filtering, no missed wake-ups, reconnects."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid

import pytest

from geotasks.errors import DatabaseUnavailable
from geotasks.postgres.listener import Listener, notify
from geotasks.postgres.pool import Database

CHANNEL = "geotasks_test"


def send(database: Database, payload: str) -> None:
    database.transaction(lambda cur: notify(cur, CHANNEL, payload))


def test_a_waiter_wakes_only_for_its_payload(database: Database) -> None:
    listener = Listener(database)
    try:
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        with listener.expect(CHANNEL, "job-1") as mine, listener.expect(CHANNEL, "job-2") as other:
            # When job-1 is announced
            started = time.monotonic()
            send(database, "job-1")

            # Then its waiter wakes within milliseconds and the other one does not
            assert mine.wait(timeout=2)
            assert time.monotonic() - started < 0.5
            assert not other.wait(timeout=0.1)
    finally:
        listener.close()


def test_a_notification_sent_between_register_and_wait_is_not_missed(database: Database) -> None:
    listener = Listener(database)
    try:
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        with listener.expect(CHANNEL) as event:
            send(database, "anything")
            time.sleep(0.2)  # the notification arrives before anyone waits
            assert event.wait(timeout=2)
    finally:
        listener.close()


def test_after_the_connection_is_killed_waiters_are_woken_and_listening_resumes(
    database: Database,
) -> None:
    # Given a listener and a waiter
    listener = Listener(database)
    try:
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        with listener.expect(CHANNEL, "never-sent") as event:
            # When the server terminates the LISTEN backend (as a restart would)
            database.transaction(
                lambda cur: cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
                )
            )
            # Then the waiter is woken to re-check the database
            assert event.wait(timeout=10)

        # And notifications are delivered again on the new connection
        assert listener.wait_until_listening(CHANNEL, timeout_s=10)
        with listener.expect(CHANNEL, "after") as after:
            send(database, "after")
            assert after.wait(timeout=5)
    finally:
        listener.close()


def test_an_unreachable_server_is_logged_once_not_at_every_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a server that does not answer, and a listener plus three threads' units of work
    # retrying against it (the listener every half second)
    # (its own name: the outage of a server is shared by everything in the process)
    url = f"postgresql://nobody@127.0.0.1:1/none_{uuid.uuid4().hex[:8]}"
    unreachable = Database(url, attempts=4, connect_timeout_s=1)
    caplog.set_level(logging.WARNING)
    listener = Listener(unreachable)
    try:
        outcomes: list[BaseException] = []

        def unit_of_work() -> None:
            try:
                unreachable.transaction(lambda cur: cur.execute("SELECT 1"))
            except DatabaseUnavailable as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=unit_of_work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        listener.close()
    assert len(outcomes) == 3

    # Then the outage was logged once, in a line naming the server, and nothing else warned
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"PostgreSQL at {url} is unavailable")


def test_the_end_of_an_outage_is_logged_with_its_length(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a listener whose connection the server terminates
    caplog.set_level(logging.WARNING, logger="geotasks.postgres.outage")
    listener = Listener(database)
    try:
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        database.transaction(
            lambda cur: cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
            )
        )
        # When it has reconnected
        time.sleep(0.5)
        assert listener.wait_until_listening(CHANNEL, timeout_s=10)
    finally:
        listener.close()

    # Then the outage's start and end were logged, the end with its length
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "is unavailable: LISTEN connection lost" in messages[0]
    assert re.search(r"is available again after an outage of \d+\.\d s", messages[1])


def test_a_payload_with_data_wakes_the_waiter_of_its_key_and_hands_it_over(
    database: Database,
) -> None:
    listener = Listener(database)
    try:
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        with listener.expect(CHANNEL, "job-1") as mine, listener.expect(CHANNEL, "job-2") as other:
            # When job-1 is announced with data after its key
            send(database, 'job-1 value application/json 60000 {"a": 1}')

            # Then its waiter wakes with the whole payload, the other one does not wake
            assert mine.wait(timeout=2)
            assert mine.payload == 'job-1 value application/json 60000 {"a": 1}'
            assert not other.wait(timeout=0.1)
    finally:
        listener.close()


def test_a_marked_channel_remembers_payloads_and_says_what_arrived_since_the_mark(
    database: Database,
) -> None:
    listener = Listener(database)
    try:
        # Given a listener that listens on the channel, and a mark taken before anything is sent
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        mark = listener.mark(CHANNEL)
        assert mark is not None

        # When job-1 is announced before anyone waits for it
        send(database, "job-1 done")
        with listener.expect(CHANNEL, "probe") as probe:
            send(database, "probe")
            assert probe.wait(timeout=2)  # the listener has handled job-1's too

        # Then a waiter registered afterwards is set at once, with the payload
        with listener.expect(CHANNEL, "job-1", since=mark) as late:
            assert late.is_set()
            assert late.payload == "job-1 done"
            assert not late.quiet_since_mark

        # And a waiter for a job nothing was announced for since the mark knows it, unset
        with listener.expect(CHANNEL, "job-2", since=mark) as quiet:
            assert quiet.quiet_since_mark
            assert not quiet.is_set()

        # And without a mark, nothing can be known: a database read is needed
        with listener.expect(CHANNEL, "job-2") as unmarked:
            assert not unmarked.quiet_since_mark
    finally:
        listener.close()


def test_a_mark_no_longer_holds_after_the_connection_was_lost(database: Database) -> None:
    listener = Listener(database)
    try:
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        mark = listener.mark(CHANNEL)
        assert mark is not None

        # When the LISTEN connection is lost and comes back (notifications may have been lost)
        database.transaction(
            lambda cur: cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
            )
        )
        deadline = time.monotonic() + 10
        while listener.mark(CHANNEL) == mark and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.wait_until_listening(CHANNEL, timeout_s=10)

        # Then a waiter given the old mark cannot conclude that nothing arrived
        with listener.expect(CHANNEL, "job-1", since=mark) as waiter:
            assert not waiter.quiet_since_mark
    finally:
        listener.close()


def test_mark_is_none_until_listening_starts(database: Database) -> None:
    listener = Listener(database)
    try:
        # The first mark starts LISTEN but cannot vouch for anything before it is in effect
        assert listener.mark(CHANNEL) is None
        assert listener.wait_until_listening(CHANNEL, timeout_s=5)
        assert listener.mark(CHANNEL) is not None
    finally:
        listener.close()
