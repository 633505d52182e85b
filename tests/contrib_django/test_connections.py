"""Workers close Django's stale database connections around each job."""

from __future__ import annotations

import time

from dramatiq import Message
from dramatiq.brokers.stub import StubBroker


def test_a_stale_connection_is_closed_before_the_next_job_and_all_at_shutdown(
    django_here: str,
) -> None:
    from django.db import connection

    from geotasks.contrib.django.middleware import CloseDjangoConnections

    middleware = CloseDjangoConnections()
    broker = StubBroker()
    message = Message(queue_name="default", actor_name="a", args=(), kwargs={}, options={})
    # Given: a connection past its CONN_MAX_AGE, as a long-lived worker thread has
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1
    # When: the next job starts
    middleware.before_process_message(broker, message)
    # Then: it was closed (the job opens a fresh one)
    assert connection.connection is None
    # And a live connection is closed when the worker thread stops
    connection.ensure_connection()
    middleware.before_worker_thread_shutdown(broker, None)
    assert connection.connection is None
