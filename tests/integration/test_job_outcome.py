"""job.get()'s fast path: the status and the result read together, never one without the other.

The client reads a job's status and its result's header (small payloads inline) in one
statement. These tests write the job's row and its result directly, in the orders a worker
(or a redelivery) can produce, and check that what the client returns is the current truth.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from dramatiq.message import Message

from geotasks.errors import JobNotFound, JobTimeout, ResultExpired
from geotasks.job_model import JobState
from geotasks.jobs import WAITED_CHANNELS, Job
from geotasks.postgres.job_status import FINISHED_CHANNEL, JobRun, JobStore
from geotasks.postgres.listener import get_listener, notify
from geotasks.postgres.outcome import OUTCOME_CHANNEL, success_payload
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend
from geotasks.settings import Settings

TTL_MS = 60_000


def record(store: JobStore, job_id: str, status: JobState) -> None:
    transition = store.transition(
        job_id, actor_name="add_numbers", queue_name="default", status=status, attempt=0,
        ttl_ms=TTL_MS,
    )  # fmt: skip
    assert transition.applied


@pytest.fixture
def job_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def store(database: Database) -> JobStore:
    return JobStore(database)


@pytest.fixture
def job(job_id: str, database: Database, settings: Settings) -> Job:
    return Job(job_id, database=database, settings=settings)


def test_outcome_is_the_status_and_the_result_of_one_moment(
    backend: PostgresBackend, store: JobStore, job_id: str
) -> None:
    # An id never sent: UNKNOWN, no result
    assert backend.outcome(job_id) == (JobState.UNKNOWN, None)

    # Sent: PENDING, no result
    record(store, job_id, JobState.PENDING)
    assert backend.outcome(job_id) == (JobState.PENDING, None)

    # Done: SUCCESS with the payload inline, as the header read gives it
    record(store, job_id, JobState.STARTED)
    backend._store(job_id, {"sum": 42}, TTL_MS)
    record(store, job_id, JobState.SUCCESS)
    status, stored = backend.outcome(job_id)
    assert status is JobState.SUCCESS
    assert stored == backend.header(job_id)
    assert stored is not None and stored.inline == b'{"sum":42}'


def test_get_never_returns_a_result_while_the_status_says_it_is_not_finished(
    backend: PostgresBackend, store: JobStore, job_id: str, job: Job
) -> None:
    # Given a running job whose result row is already there (an earlier delivery stored it)
    record(store, job_id, JobState.PENDING)
    record(store, job_id, JobState.STARTED)
    backend._store(job_id, "from an earlier delivery", TTL_MS)

    # Then get() waits for the status, not for the row
    with pytest.raises(JobTimeout, match="STARTED"):
        job.get(timeout=0.3)

    # When the run in progress stores its own result, then SUCCESS (two doorbells)
    def finish() -> None:
        time.sleep(0.2)
        backend._store(job_id, "final", TTL_MS)
        record(store, job_id, JobState.SUCCESS)

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        # Then the waiting client returns the result stored with SUCCESS, not the earlier one
        assert job.get(timeout=10) == "final"
    finally:
        finisher.join()


def test_get_returns_a_replaced_result_not_a_stale_one(
    backend: PostgresBackend, store: JobStore, job_id: str, job: Job
) -> None:
    # Given a finished job whose result was read once
    record(store, job_id, JobState.PENDING)
    record(store, job_id, JobState.STARTED)
    backend._store(job_id, [1, 2], TTL_MS)
    record(store, job_id, JobState.SUCCESS)
    assert job.get(timeout=1) == [1, 2]

    # When a redelivery replaces it
    backend._store(job_id, [3, 4], TTL_MS)

    # Then the same handle returns the new one, by get() and by result
    assert job.get(timeout=1) == [3, 4]
    assert job.result == [3, 4]


def test_get_of_an_expired_or_dismissed_job_says_so(
    backend: PostgresBackend, store: JobStore, database: Database, job_id: str, job: Job
) -> None:
    record(store, job_id, JobState.PENDING)
    record(store, job_id, JobState.STARTED)
    backend._store(job_id, "old", TTL_MS)
    record(store, job_id, JobState.SUCCESS)

    # When its time to live has passed: EXPIRED, and no result however the row lingers
    database.transaction(
        lambda cursor: cursor.execute(
            "UPDATE geotasks.job SET expires_at = now() - interval '1 s' WHERE message_id = %s;"
            "UPDATE geotasks.result SET expires_at = now() - interval '1 s' "
            "WHERE message_id = %s",
            (job_id, job_id),
        )
    )
    assert backend.outcome(job_id) == (JobState.EXPIRED, None)
    with pytest.raises(ResultExpired):
        job.get(timeout=1)

    # When it is dismissed: its id is unknown
    assert job.dismiss()
    with pytest.raises(JobNotFound):
        job.get(timeout=1)


def marked(database: Database) -> Any:
    """A mark of the channels a client waits on, as submit takes it before sending."""
    listener = get_listener(database)
    for channel in WAITED_CHANNELS:
        assert listener.wait_until_listening(channel, timeout_s=5)
    mark = listener.mark(*WAITED_CHANNELS)
    assert mark is not None
    return mark


def announce(database: Database, payload: str, delay_s: float = 0.0) -> threading.Thread:
    def send() -> None:
        time.sleep(delay_s)
        database.transaction(lambda cursor: notify(cursor, OUTCOME_CHANNEL, payload))

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_get_takes_a_small_result_from_its_success_notification_without_a_read(
    database: Database, settings: Settings, job_id: str, listeners_closed: None
) -> None:
    # Given a job sent after this process's outcome channel was marked (submit does it)
    job = Job(job_id, database=database, settings=settings, sent_mark=marked(database))

    # When its SUCCESS notification carries the result (and the database knows nothing of it)
    payload = success_payload(
        job_id, kind="value", media_type="application/json", ttl_ms=TTL_MS, data=b'{"sum":42}'
    )
    assert payload is not None
    sender = announce(database, payload, delay_s=0.2)
    try:
        # Then get() waits without reading, and returns the result the notification carried
        assert job.get(timeout=5) == {"sum": 42}
    finally:
        sender.join()

    # And a handle created after the notification arrived gets it too, from what the listener
    # remembers (a GeoJSON result likewise)
    later = Job(job_id, database=database, settings=settings)
    assert later.get(timeout=1) == {"sum": 42}

    # And a client whose parse limit is lower does not parse it from the notification: it
    # reads, as for a large result (and here finds no job: nothing was stored)
    strict = Settings(database_url=settings.database_url, result_parse_max_bytes=4)
    with pytest.raises(JobNotFound):
        Job(job_id, database=database, settings=strict).get(timeout=1)


def test_a_doorbell_on_the_outcome_channel_makes_get_read_the_database(
    backend: PostgresBackend, store: JobStore, database: Database, settings: Settings, job_id: str
) -> None:
    # Given a job sent after the mark, that nothing announced yet
    job = Job(job_id, database=database, settings=settings, sent_mark=marked(database))
    record(store, job_id, JobState.PENDING)
    with pytest.raises(JobTimeout, match="did not finish"):
        job.get(timeout=0.2)  # no read needed to know it has not finished

    # When it finishes with a result stored, announced by its id alone (a large result)
    record(store, job_id, JobState.STARTED)
    backend._store(job_id, "x" * 10_000, TTL_MS)
    record(store, job_id, JobState.SUCCESS)

    # Then get() reads it
    assert job.get(timeout=5) == "x" * 10_000


def test_a_result_replaced_after_its_success_notification_is_read_not_remembered(
    backend: PostgresBackend, store: JobStore, database: Database, settings: Settings, job_id: str
) -> None:
    # Given a job whose SUCCESS notification carried its result, remembered by the listener
    job = Job(job_id, database=database, settings=settings, sent_mark=marked(database))
    record(store, job_id, JobState.PENDING)
    record(store, job_id, JobState.STARTED)
    message = Message("default", "add_numbers", (), {}, {}, message_id=job_id)
    backend.store_success(
        message, [1, 2], TTL_MS, job=JobRun(job_id, "add_numbers", "default", 0, None)
    )
    assert job.get(timeout=5) == [1, 2]

    # When a redelivery replaces the result (the job stays SUCCESS)
    backend._store(job_id, [3, 4], TTL_MS)
    # (the replacement rings the outcome channel with the id alone: wait till it arrived)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with get_listener(database).expect(OUTCOME_CHANNEL, job_id) as remembered:
            if remembered.payload == job_id:
                break
        time.sleep(0.02)
    assert remembered.payload == job_id

    # Then a new handle, and the same one, read the new result
    assert Job(job_id, database=database, settings=settings).get(timeout=5) == [3, 4]
    assert job.get(timeout=5) == [3, 4]


def test_a_client_wakes_for_a_worker_of_an_older_version_that_rings_the_first_channel_only(
    database: Database, settings: Settings, job_id: str, listeners_closed: None
) -> None:
    # Given a client waiting for a job it sent
    job = Job(job_id, database=database, settings=settings, sent_mark=marked(database))

    # When an older worker records its SUCCESS and result, and rings the first channel only
    def finish_as_an_older_worker(cursor: Any) -> None:
        cursor.execute(
            "INSERT INTO geotasks.job (message_id, actor_name, queue_name, status, attempt,"
            " runs, finished_at, expires_at) VALUES (%(id)s, 'add_numbers', 'default',"
            " 'SUCCESS', 0, 1, now(), now() + interval '1 min');"
            "INSERT INTO geotasks.result (message_id, kind, media_type, size_bytes, data,"
            " expires_at) VALUES (%(id)s, 'value', 'application/json', 2, '42',"
            " now() + interval '1 min')",
            {"id": job_id},
        )
        notify(cursor, FINISHED_CHANNEL, job_id)

    def later() -> None:
        time.sleep(0.2)
        database.transaction(finish_as_an_older_worker)

    finisher = threading.Thread(target=later)
    finisher.start()
    try:
        # Then the client wakes and reads the result
        assert job.get(timeout=5) == 42
    finally:
        finisher.join()
