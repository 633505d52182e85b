"""submit → status → get, through a real broker and an in-process Dramatiq worker."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq.worker
import fiona
import orjson
import pytest
from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware, SkipMessage

from geotasks.errors import JobFailed, JobSkipped, JobTimeout, ResultTooLarge
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.result import GeoJSONResult
from geotasks.http.status import status_info
from geotasks.job_model import JobState
from geotasks.jobs import Job, submit_with_options
from geotasks.middleware.job_status import JobStatus, mark_throttled
from geotasks.middleware.running import progress
from geotasks.postgres.job_status import FINISHED_CHANNEL
from geotasks.postgres.listener import get_listener
from geotasks.postgres.outcome import OUTCOME_CHANNEL, parse_payload
from geotasks.postgres.results import PostgresBackend
from geotasks.registry import ActorSpec, Parameter, Registry
from geotasks.settings import Settings
from tests.integration.conftest import Stack

S = JobState
REGISTRY = Registry(
    [
        ActorSpec("add_numbers", "default", (Parameter("x"), Parameter("y"))),
        ActorSpec("points", "geo", (Parameter("count"),)),
        ActorSpec("fail_on", "default", (Parameter("name"),)),
        ActorSpec("returns_a_set", "default", ()),
        ActorSpec("echo", "default", (Parameter("value"),)),
    ]
)


def submit(stack: Stack, name: str, *args: Any, **kwargs: Any) -> Job:
    return submit_with_options(
        name, args=args, kwargs=kwargs, broker=stack.broker, registry=REGISTRY
    )


def points(count: int) -> GeoJSONResult:
    result = GeoJSONResult(spool_max_bytes=256 * 1024)
    result.write(b'{"type":"FeatureCollection","features":[')
    for i in range(count):
        separator = b"," if i else b""
        result.write(
            separator
            + orjson.dumps(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [i * 1e-4, 46.5]},
                    "properties": {"i": i},
                }
            )
        )
    result.write(b"]}")
    return result


def test_submit_by_name_then_status_then_get(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an actor declared on the worker side only
    stack.actor(lambda x, y: x + y, actor_name="add_numbers")

    # When a client submits by name, before any worker runs
    job = submit(stack, "add_numbers", 2, y=40)

    # Then the job is PENDING, and not ready
    assert job.status is S.PENDING
    assert not job.ready()

    # When a worker runs it, the client's blocking get returns the value
    with stack.worker():
        assert job.get(timeout=10) == 42

    # And the job is a success with every timestamp in order
    assert job.ready()
    assert job.successful()
    assert not job.failed()
    assert job.error is None
    info = job.info()
    assert (info.status, info.attempt, info.runs) == (S.SUCCESS, 0, 1)
    assert info.pending_at is not None
    assert info.started_at is not None
    assert info.finished_at is not None
    assert info.pending_at <= info.started_at <= info.finished_at
    assert (info.actor_name, info.queue_name) == ("add_numbers", "default")
    # SUCCESS was recorded in the very transaction that stored the result (one commit)
    assert info.finished_at == job.result_info().stored_at
    # Dramatiq's worker recognises geotasks' Results subclass: no false "value discarded"
    # warning is built, let alone logged
    assert dramatiq.worker.has_results_middleware(stack.broker)
    assert "Results middleware" not in caplog.text


def test_a_geojson_result_is_parsed_saved_and_streamed(stack: Stack, tmp_path: Path) -> None:
    stack.actor(points, actor_name="points", queue_name="geo")
    expected = points(30_000)

    with stack.worker():
        job = submit(stack, "points", 30_000)
        document = job.get(timeout=30)

    # The parsed result is the GeoJSON document
    assert document["type"] == "FeatureCollection"
    assert len(document["features"]) == 30_000

    # job.save and job.open give the exact bytes the actor wrote (about 2.5 MB: chunked)
    expected_bytes = b"".join(expected.iter_chunks())
    stored = job.result_info()
    assert (stored.kind, stored.media_type) == ("geojson", "application/geo+json")
    assert stored.size_bytes == len(expected_bytes) > 2 * 1024 * 1024
    saved = job.save(tmp_path / "points.geojson")
    assert saved.read_bytes() == expected_bytes
    assert list(tmp_path.iterdir()) == [saved]
    with job.open() as stream:
        assert stream.read(40) == expected_bytes[:40]


def test_a_small_result_comes_with_its_success_notification_a_large_one_is_read(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a client that listens already (it waited for a job before), on both channels
    stack.actor(lambda value: value, actor_name="echo")
    stack.actor(points, actor_name="points", queue_name="geo")
    listener = get_listener(stack.database)
    assert listener.wait_until_listening(OUTCOME_CHANNEL, timeout_s=5)
    assert listener.wait_until_listening(FINISHED_CHANNEL, timeout_s=5)
    reads: list[str] = []
    read_outcome = PostgresBackend.outcome
    monkeypatch.setattr(
        PostgresBackend,
        "outcome",
        lambda self, job_id: reads.append(job_id) or read_outcome(self, job_id),
    )

    # When it submits small results (JSON and GeoJSON) and one too large for a notification
    small = submit(stack, "echo", {"sum": 42})
    small_geojson = submit(stack, "points", 10)
    large = submit(stack, "echo", "x" * 20_000)
    with contextlib.ExitStack() as waiting:
        # (a client of an older version waits on the first channel)
        old_clients = [
            waiting.enter_context(listener.expect(FINISHED_CHANNEL, job.id))
            for job in (small, small_geojson, large)
        ]
        with stack.worker():
            # Then the small results come with their notifications, parsed, and nothing is read
            assert small.get(timeout=10) == {"sum": 42}
            assert small_geojson.get(timeout=10) == orjson.loads(b"".join(points(10).iter_chunks()))
            assert reads == []
            # And the large one is announced by its id alone and read, unchanged
            assert large.get(timeout=10) == "x" * 20_000
            assert reads == [large.id]

        # And clients on the first channel were woken for each job
        assert all(old_client.wait(timeout=5) for old_client in old_clients)

    # And what the notifications carried is the stored result
    with listener.expect(OUTCOME_CHANNEL, small_geojson.id) as remembered:
        assert remembered.payload is not None
        carried = parse_payload(remembered.payload)
    assert carried is not None
    assert (carried.kind, carried.media_type) == ("geojson", "application/geo+json")
    with small_geojson.open() as stream:
        assert carried.data == stream.read()


def test_a_failure_carries_type_message_and_traceback(stack: Stack) -> None:
    def fail_on(name: str) -> None:
        raise ValueError(f"{name}.shp has no .dbf")

    stack.actor(fail_on, actor_name="fail_on")

    with stack.worker():
        job = submit(stack, "fail_on", "parcels")
        with pytest.raises(JobFailed) as excinfo:
            job.get(timeout=10)

    failure = excinfo.value
    assert (failure.type_name, failure.error_message) == ("ValueError", "parcels.shp has no .dbf")
    assert "in fail_on" in failure.traceback
    assert job.failed()
    assert job.error is not None
    assert job.error.type_name == "ValueError"
    assert "in fail_on" in job.error.traceback
    assert job.info().error is not None


def test_a_result_that_cannot_be_stored_fails_the_job_with_the_reason(stack: Stack) -> None:
    # Given an actor that returns what JSON cannot hold
    stack.actor(lambda: {1, 2}, actor_name="returns_a_set")

    # When it runs
    with stack.worker():
        job = submit(stack, "returns_a_set")
        with pytest.raises(JobFailed) as excinfo:
            job.get(timeout=10)

    # Then the job failed once, saying why, rather than reading SUCCESS with no result
    failure = excinfo.value
    assert failure.type_name == "ResultNotStorable"
    assert "returns_a_set" in failure.error_message
    assert "set is not JSON serializable" in failure.error_message
    info = job.info()
    assert (info.status, info.runs) == (S.FAILURE, 1)


def test_a_large_result_is_refused_by_result_and_points_to_streaming(
    stack: Stack, settings: Settings
) -> None:
    stack.actor(points, actor_name="points", queue_name="geo")
    with stack.worker():
        submitted = submit(stack, "points", 100)
        submitted.wait(timeout=10)

    job = Job(
        submitted.id,
        database=stack.database,
        settings=Settings(database_url=settings.database_url, result_parse_max_bytes=100),
    )
    with pytest.raises(ResultTooLarge, match=r"job.save\(path\) or job.open\(\)"):
        _ = job.result
    with job.open() as stream:
        assert stream.read(1) == b"{"


def test_waiting_for_a_job_that_nobody_runs_times_out(stack: Stack) -> None:
    stack.actor(lambda x, y: x + y, actor_name="add_numbers")
    job = submit(stack, "add_numbers", 1, 2)

    started = time.monotonic()
    with pytest.raises(TimeoutError) as excinfo:
        job.get(timeout=0.3)
    assert isinstance(excinfo.value, JobTimeout)
    assert 0.29 < time.monotonic() - started < 2


def test_progress_is_seen_by_the_client_while_started(stack: Stack) -> None:
    # Given an actor that reports progress, then waits for the test
    reported = threading.Event()
    release = threading.Event()

    def add_numbers(x: int, y: int) -> int:
        progress(3, 4)
        reported.set()
        release.wait(timeout=10)
        return x + y

    stack.actor(add_numbers, actor_name="add_numbers")
    with stack.worker():
        job = submit(stack, "add_numbers", 1, 2)
        assert reported.wait(timeout=10)

        # Then the client sees STARTED with the progress
        assert job.status is S.STARTED
        seen = job.progress
        assert seen is not None
        assert (seen.done, seen.total, seen.fraction) == (3, 4, 0.75)
        release.set()
        assert job.get(timeout=10) == 3


def test_invalid_polygons_a_conversion_kept_are_in_the_job_s_warnings(
    stack: Stack, tmp_path: Path
) -> None:
    # Given an actor converting a dataset whose second polygon is a bow tie
    bowtie = [(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]
    square = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]
    schema = {"geometry": "Polygon", "properties": {}}
    with fiona.open(tmp_path / "parcels.shp", "w", "ESRI Shapefile", schema, crs="EPSG:4326") as f:
        f.writerecords(
            [{"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}}
             for ring in (square, bowtie)]
        )  # fmt: skip

    def points(count: int) -> GeoJSONResult:
        return shapefile_to_geojson("parcels", data_dir=tmp_path, limits=GeoLimits())

    stack.actor(points, actor_name="points")

    # When a worker runs it
    with stack.worker():
        job = submit(stack, "points", 1)
        assert len(job.get(timeout=10)["features"]) == 2

    # Then the job succeeded, and its info (job.info(), GET /jobs/{id}) says what was kept
    info = job.info()
    assert [(w["kind"], w["count"], w["first_ids"]) for w in info.warnings] == [
        ("invalid_geometries", 1, [1])
    ]
    assert info.to_dict()["warnings"] == list(info.warnings)
    assert status_info(info, "http://x/")["warnings"][0]["message"].startswith(
        "parcels: 1 invalid polygon(s) kept as they are"
    )


def test_a_cancelled_job_is_skipped_by_the_worker(stack: Stack) -> None:
    calls = []
    stack.actor(lambda x, y: calls.append((x, y)), actor_name="add_numbers")

    # Given a job cancelled before any worker ran
    job = submit(stack, "add_numbers", 1, 2)
    assert job.cancel()

    # When a worker receives it, and a later job after it
    with stack.worker():
        later = submit(stack, "add_numbers", 3, 4)
        later.get(timeout=10)

    # Then the cancelled one never ran and stays CANCELLED, without a result
    assert calls == [(3, 4)]
    assert job.status is S.CANCELLED
    assert job.info().started_at is None
    with pytest.raises(JobSkipped):
        job.get(timeout=1)


class ThrottleFirstDelivery(Middleware):
    """Stands in for the rate limiter: re-enqueues each message once, 300 ms later."""

    def __init__(self) -> None:
        self.throttled: set[str] = set()

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        if message.message_id in self.throttled:
            return
        self.throttled.add(message.message_id)
        mark_throttled(message, int(time.time() * 1000) + 300)
        broker.enqueue(message, delay=300)
        raise SkipMessage("throttled")


class SkipEverything(Middleware):
    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        raise SkipMessage("duplicate")


def test_a_throttled_job_reads_throttled_then_succeeds_without_a_none_result(
    stack: Stack,
) -> None:
    stack.broker.add_middleware(ThrottleFirstDelivery(), before=JobStatus)
    stack.actor(lambda x, y: x + y, actor_name="add_numbers")

    with stack.worker():
        job = submit(stack, "add_numbers", 20, 22)
        deadline = time.monotonic() + 5
        while job.status is not S.THROTTLED and time.monotonic() < deadline:
            time.sleep(0.01)
        # While throttled, no result (in particular no None) is stored
        assert job.status is S.THROTTLED
        assert job.info().result_kind is None
        assert job.get(timeout=10) == 42

    info = job.info()
    assert (info.status, info.attempt, info.runs) == (S.SUCCESS, 0, 1)
    assert info.throttled_at is not None


def test_a_skipped_job_reads_skipped_and_stores_no_result(stack: Stack) -> None:
    stack.broker.add_middleware(SkipEverything(), before=JobStatus)
    stack.actor(lambda x, y: x + y, actor_name="add_numbers")

    with stack.worker():
        job = submit(stack, "add_numbers", 1, 1)
        with pytest.raises(JobSkipped) as excinfo:
            job.get(timeout=10)

    assert excinfo.value.status == "SKIPPED"
    assert job.info().result_kind is None


def test_a_message_the_poison_guard_rejects_reads_failure(stack: Stack) -> None:
    # Given a message whose last deliveries all killed their worker, running alone each time
    # (the default limit is 5)
    calls = []
    actor = stack.actor(lambda x, y: calls.append((x, y)), actor_name="add_numbers")
    message = actor.message(1, 2)
    stack.database.transaction(
        lambda cur: cur.execute(
            "INSERT INTO geotasks.message_deliveries "
            "(message_id, attempt, deliveries, solo_deliveries) VALUES (%s, 0, 5, 5)",
            (message.message_id,),
        )
    )

    # When it is delivered once more
    stack.broker.enqueue(message)
    job = stack.job(message.message_id)
    with stack.worker(), pytest.raises(JobFailed) as excinfo:
        job.get(timeout=10)

    # Then it did not run, and the job failed saying why
    assert calls == []
    assert excinfo.value.type_name == "DeliveryLimitExceeded"
    assert "killed its worker 5 times" in excinfo.value.error_message
    assert job.status is S.FAILURE
