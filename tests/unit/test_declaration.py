"""``@geotasks.actor``: a plain function becomes an actor with geotasks' defaults and checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage
from dramatiq.results import ResultFailure, Results
from dramatiq.results.backends import StubBackend
from shapely.geometry import Polygon

import geotasks
from geotasks.errors import InputError, ResultNotStorable, TransientError
from tests.acceptance.conftest import ROOT, clean_environment


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    """A stub broker with Dramatiq's default middleware, results and the current message."""
    broker = StubBroker()
    broker.add_middleware(Results(backend=StubBackend()))
    broker.add_middleware(CurrentMessage())
    yield broker
    broker.close()


@geotasks.actor
def add_for_declaration_test(x: int, y: int = 1) -> int:
    """Add two integers."""
    return x + y


def test_a_bare_decorator_makes_an_actor_with_geotasks_defaults() -> None:
    actor = add_for_declaration_test
    assert isinstance(actor, dramatiq.Actor)
    assert actor(2, 3) == 5  # a direct call runs here and now
    assert (actor.actor_name, actor.queue_name) == ("add_for_declaration_test", "default")
    assert actor.options["store_results"] is True
    assert InputError in actor.options["throws"] and ResultNotStorable in actor.options["throws"]
    # Only transient errors are retried, a bounded number of times
    assert actor.options["retry_when"](0, TransientError())
    assert not actor.options["retry_when"](0, RuntimeError())
    assert actor.spec.description == "Add two integers."


def test_options_have_dramatiqs_meaning_and_an_unknown_one_is_refused_at_declaration() -> None:
    @geotasks.actor(
        actor_name="limited_for_declaration_test",
        queue_name="slow",
        rate_limit="4/m",
        time_limit=60_000,
        max_retries=2,
    )
    def limited(name: str) -> str:
        return name

    assert limited.options["rate_limit"] == "4/m"
    assert limited.options["time_limit"] == 60_000
    assert limited.spec.options == {"rate_limit": "4/m", "time_limit": 60_000, "max_retries": 2}
    # max_retries bounds the retries of transient errors (Dramatiq ignores it under retry_when)
    assert limited.options["retry_when"](1, TransientError())
    assert not limited.options["retry_when"](2, TransientError())

    with pytest.raises(ValueError, match="undefined: rate_limt"):
        geotasks.actor(rate_limt="4/m")(lambda: None)


def test_submit_checks_names_and_types_before_anything_is_sent(broker: StubBroker) -> None:
    @geotasks.actor(broker=broker)
    def get_shps(name: str, min_area_km2: float = 0.0) -> list[Polygon]:
        return []

    with pytest.raises(InputError, match=r"get_shps\(name, .*argument 'name': 42 is not of type"):
        get_shps.submit(42)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown argument 'min_area'"):
        get_shps.submit("parcels", min_area=3)  # type: ignore[call-arg]
    assert broker.queues["default"].qsize() == 0

    job = get_shps.submit("parcels", min_area_km2=2)
    also = get_shps.delay("parcels")  # Celery's name, for ported code

    assert isinstance(job, geotasks.Job) and isinstance(also, geotasks.Job)
    assert broker.queues["default"].qsize() == 2
    assert job.id.encode() in broker.queues["default"].get()


def test_a_worker_runs_the_message_with_converted_arguments(broker: StubBroker) -> None:
    calls: list[object] = []

    @geotasks.actor(broker=broker)
    def triangle_perimeter(area: Polygon) -> float:
        calls.append(area)
        # A direct call from inside an actor runs as a plain function
        return float(add_for_declaration_test(int(area.length), 0))

    # submit() sends a shapely argument as GeoJSON…
    triangle_perimeter.submit(Polygon([(0, 0), (3, 0), (3, 4)]))
    assert b'"type":"Polygon"' in broker.queues["default"].get()
    broker.queues["default"].task_done()
    # …which is what a message carries however it was sent
    message = triangle_perimeter.send(
        {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 4], [0, 0]]]}  # type: ignore[arg-type]
    )
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        broker.join("default")
        worker.join()
    finally:
        worker.stop()

    # Then the function received a shapely polygon, and its result was stored
    assert isinstance(calls[0], Polygon)
    backend = next(m for m in broker.middleware if isinstance(m, Results)).backend
    assert message.get_result(backend=backend) == 12


def test_a_worker_checks_a_message_again_and_fails_a_bad_one_once(broker: StubBroker) -> None:
    calls: list[object] = []

    @geotasks.actor(broker=broker)
    def count(limit: int) -> int:
        calls.append(limit)
        return limit

    # Sent without checks (plain Dramatiq send): the worker is the last word
    message = count.send("ten")  # type: ignore[arg-type]
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        broker.join("default", fail_fast=False)
        worker.join()
    finally:
        worker.stop()

    assert calls == []
    (dead,) = broker.dead_letters
    assert dead.options.get("retries", 0) == 0  # failed on its first attempt
    backend = next(m for m in broker.middleware if isinstance(m, Results)).backend
    with pytest.raises(ResultFailure, match="argument 'limit': 'ten' is not of type 'integer'"):
        message.get_result(backend=backend)


def test_declaring_an_actor_connects_to_nothing_and_a_direct_call_needs_no_setting(
    tmp_path: Path,
) -> None:
    # Given an application module, and no GEOTASKS_* setting but the data directory
    (tmp_path / "my_tasks.py").write_text(
        textwrap.dedent(
            """
            import geotasks
            from shapely.geometry import Point

            @geotasks.actor(rate_limit="4/m")
            def buffered(x: float, y: float, distance: float) -> Point:
                return Point(x, y).buffer(distance)
            """
        )
    )
    script = textwrap.dedent(
        """
        import my_tasks
        from geotasks.actors import shapefile_to_geojson
        from geotasks.broker import current_broker

        print(round(my_tasks.buffered(0, 0, 1).area, 1))
        result = shapefile_to_geojson("naturalearth_cities", limit=2)
        print(len(result.to_dict()["features"]))
        print(current_broker())
        """
    )
    env = clean_environment(GEOTASKS_DATA_DIR=str(ROOT / "sample_data"))
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"

    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )

    # Then the module imports, the functions run, and no broker was built
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.1", "2", "None"]


def test_a_float_that_json_cannot_hold_fails_the_job_once(broker: StubBroker) -> None:
    @geotasks.actor(broker=broker)
    def ratio(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator else float("nan")

    message = ratio.send(1.0, 0.0)
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        broker.join("default", fail_fast=False)
        worker.join()
    finally:
        worker.stop()

    (dead,) = broker.dead_letters
    assert dead.options.get("retries", 0) == 0
    backend = next(m for m in broker.middleware if isinstance(m, Results)).backend
    with pytest.raises(ResultFailure, match=r"ratio returned .*nan"):
        message.get_result(backend=backend)
