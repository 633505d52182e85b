"""The shared LISTEN connection: payload filtering, no missed wake-ups, reconnects."""

from __future__ import annotations

import time

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
