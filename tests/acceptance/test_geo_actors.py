"""The geo actors end to end: a real ``dramatiq geotasks.worker`` process on the Postgres broker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import fiona
import pytest
from dramatiq.message import Message

import geotasks
from geotasks.broker import setup_broker
from geotasks.errors import InputError, JobFailed, ResultIsAFile
from geotasks.settings import get_settings
from tests.acceptance.conftest import ROOT, clean_environment
from tests.processes import Process, dramatiq_command, started

SAMPLE_DATA = ROOT / "sample_data"


@pytest.fixture
def worker(geotasks_env: str, tmp_path: Path) -> Iterator[Process]:
    """A worker process on the test database, serving the geo queue."""
    with _worker(geotasks_env, SAMPLE_DATA, tmp_path) as process:
        yield process


def _worker(database_url: str, data_dir: Path, tmp_path: Path) -> AbstractContextManager[Process]:
    env = clean_environment(
        GEOTASKS_DATABASE_URL=database_url,
        GEOTASKS_DATA_DIR=str(data_dir),
        GEOTASKS_TMP_DIR=str(tmp_path / "tmp"),
    )
    return started(
        dramatiq_command("geotasks.worker", "-p", "1", "-t", "2", "-Q", "geo"),
        env,
        tmp_path / "worker.log",
        stop_timeout_s=30,
    )


@pytest.fixture
def client_env(geotasks_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOTASKS_DATA_DIR", str(SAMPLE_DATA))
    get_settings.cache_clear()


def test_shapefile_to_geojson_then_a_chained_buffer(worker: Process, client_env: None) -> None:
    # Given the Natural Earth cities, sent by name from a client that imports no actor code
    job = geotasks.submit("shapefile_to_geojson", "naturalearth_cities", precision=5)

    # When the worker has run it
    collection = job.get(timeout=60)

    # Then the result is an RFC 7946 FeatureCollection of every city, rounded as asked
    assert job.successful()
    assert collection["type"] == "FeatureCollection"
    assert "crs" not in collection
    assert len(collection["features"]) > 200
    lon, lat = collection["features"][0]["geometry"]["coordinates"]
    assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert all(len(str(c).split(".")[-1]) <= 5 for c in (lon, lat))

    # And a second job reads the first one's result by id (no download by the client)
    buffered = geotasks.submit("buffer_features", f"job:{job.id}", 1000, limit=3)
    polygons = buffered.get(timeout=60)["features"]
    assert [f["geometry"]["type"] for f in polygons] == ["Polygon"] * 3


@pytest.mark.parametrize(
    ("media_type", "suffix"),
    [
        ("application/flatgeobuf", ".fgb"),
        ("application/geopackage+sqlite3", ".gpkg"),
        ("application/zip", ".zip"),
    ],
)
def test_a_result_in_another_format_is_saved_and_chained(
    worker: Process, client_env: None, tmp_path: Path, media_type: str, suffix: str
) -> None:
    # Given the first cities, asked for in another format than GeoJSON
    job = geotasks.submit_with_options(
        "shapefile_to_geojson",
        args=("naturalearth_cities",),
        kwargs={"limit": 4},
        output_format=media_type,
    )

    # When the worker has run it, Then its result is a file with that media type
    job.wait(timeout=60)
    assert job.successful(), job.error
    assert job.result_info().media_type == media_type
    with pytest.raises(ResultIsAFile, match=r"job\.save\(path\).*job\.open\(\)"):
        job.get(timeout=1)
    # And it is saved under its name, a file GDAL reads
    saved = job.save(tmp_path)
    assert saved == tmp_path / f"{job.id}{suffix}"
    path = f"/vsizip/{saved}/shapefile_to_geojson.shp" if suffix == ".zip" else str(saved)
    with fiona.open(path) as features:
        assert [f.geometry.type for f in features] == ["Point"] * 4

    # And a job chained onto it reads it
    buffered = geotasks.submit("buffer_features", f"job:{job.id}", 1000)
    assert [f["geometry"]["type"] for f in buffered.get(timeout=60)["features"]] == ["Polygon"] * 4


def test_a_result_asked_for_in_an_unknown_format_fails_once_saying_why(
    worker: Process, client_env: None
) -> None:
    # A result asked for in a format geotasks does not write is refused before it is sent…
    with pytest.raises(InputError, match="output_format must be one of"):
        geotasks.submit_with_options(
            "shapefile_to_geojson", args=("naturalearth_lowres",), output_format="text/csv"
        )
    # …and when such a message reaches a worker all the same (sent by hand)
    sent = setup_broker().enqueue(
        Message(
            queue_name="geo",
            actor_name="shapefile_to_geojson",
            args=("naturalearth_lowres",),
            kwargs={},
            options={"output_format": "text/csv"},
        )
    )
    job = geotasks.Job.from_message(sent)
    # Then the job fails once, as bad input, naming the formats it can have
    with pytest.raises(JobFailed, match="output_format must be one of"):
        job.get(timeout=60)
    assert (job.info().attempt, job.error.type_name) == (0, "InputError")


def test_a_job_chained_before_its_input_finished_waits_for_it(
    worker: Process, client_env: None
) -> None:
    # Given a source job that will not start for a while, and a job chained onto it at once
    source = geotasks.submit_with_options(
        "shapefile_to_geojson", args=("naturalearth_cities",), kwargs={"limit": 2}, delay_ms=1500
    )
    chained = geotasks.submit("measure_features", f"job:{source.id}")

    # When both have run
    measured = chained.get(timeout=60)["features"]

    # Then the chained job was retried until its input existed, and read it
    assert len(measured) == 2
    assert chained.info().attempt >= 1
    assert source.successful()

    # And a chain onto a job that never existed fails once, clearly
    missing = geotasks.submit("measure_features", "job:00000000-0000-0000-0000-000000000000")
    with pytest.raises(JobFailed, match="no such job"):
        missing.get(timeout=60)
    assert missing.info().attempt == 0


def test_bad_input_fails_once_with_a_clear_message(worker: Process, client_env: None) -> None:
    # A dataset outside the data directory is refused before it is sent…
    with pytest.raises(
        InputError, match=r"argument 'name': '\.\./\.\./etc/passwd' is not a dataset name"
    ):
        geotasks.submit("shapefile_to_geojson", "../../etc/passwd")

    # …and when it reaches the worker all the same (a message sent by hand)
    sent = setup_broker().enqueue(
        Message(
            queue_name="geo",
            actor_name="shapefile_to_geojson",
            args=("../../etc/passwd",),
            kwargs={},
            options={},
        )
    )
    job = geotasks.Job.from_message(sent)

    # Then the job fails on its first attempt, with the reason, and is not retried
    with pytest.raises(JobFailed) as excinfo:
        job.get(timeout=60)
    assert excinfo.value.type_name == "InputError"
    assert job.info().attempt == 0
    assert job.info().runs == 1

    # And the worker is still up and serving
    assert worker.alive(), worker.log()
    assert geotasks.submit("measure_features", "naturalearth_lowres", limit=1).get(timeout=60)


def test_unknown_actor_and_unknown_argument_are_refused_before_sending(client_env: None) -> None:
    with pytest.raises(InputError, match="no actor named 'shapefile_to_json'"):
        geotasks.submit("shapefile_to_json", "naturalearth_cities")
    with pytest.raises(InputError, match="unknown argument 'precison'"):
        geotasks.submit("shapefile_to_geojson", "naturalearth_cities", precison=3)


def test_a_direct_call_runs_synchronously_and_returns_the_same_result_type(
    geotasks_env: str,
) -> None:
    # The old `get_shps('test')`: no queue, no worker
    code = (
        "from geotasks.actors import shapefile_to_geojson\n"
        "with shapefile_to_geojson('naturalearth_lowres', fields=['name'], limit=5) as result:\n"
        "    doc = result.to_dict()\n"
        "    print(type(result).__name__, result.media_type, len(doc['features']),\n"
        "          sorted(doc['features'][0]['properties']))\n"
    )
    env = clean_environment(GEOTASKS_DATABASE_URL=geotasks_env, GEOTASKS_DATA_DIR=str(SAMPLE_DATA))
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert output.returncode == 0, output.stderr
    assert output.stdout.split() == ["GeoJSONResult", "application/geo+json", "5", "['name']"]


def test_a_large_shapefile_is_split_between_the_worker_and_a_helper_process(
    geotasks_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a plain shapefile large enough to be split (50,000 features a process)
    import fiona

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    count = 100_001
    schema = {"geometry": "Point", "properties": {"n": "int"}}
    with fiona.open(data_dir / "points.shp", "w", driver="ESRI Shapefile", schema=schema,
                    crs="EPSG:3857") as sink:  # fmt: skip
        sink.writerecords(
            {"geometry": {"type": "Point", "coordinates": (n * 10.0, n * 5.0)},
             "properties": {"n": n}}
            for n in range(count)
        )  # fmt: skip
    monkeypatch.setenv("GEOTASKS_DATA_DIR", str(data_dir))
    get_settings.cache_clear()

    # When a worker (default settings: 2 read processes) converts it
    with _worker(geotasks_env, data_dir, tmp_path) as process:
        collection = geotasks.submit("shapefile_to_geojson", "points").get(timeout=120)
        process.stop()
        log = process.log()

    # Then every feature is there once, in file order, and a helper process wrote the second half
    features = collection["features"]
    assert [f["id"] for f in features] == list(range(count))
    assert [f["properties"]["n"] for f in features[49_999:50_002]] == [49_999, 50_000, 50_001]
    assert "a helper process wrote features 50000 to 100000" in log
