"""Hostile and broken input, end to end, through one real worker process.

Every case must fail on its first attempt with an ``InputError`` that says what is wrong, never
be retried, leave the worker running, and read nothing outside the data directory: a canary
outside it must never show up in a result, an error or a traceback.
"""

from __future__ import annotations

import re
import shutil
import struct
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fiona
import pytest
from dramatiq.message import Message

import geotasks
from geotasks.broker import setup_broker
from geotasks.errors import ActorNotRegistered, InputError, JobFailed
from geotasks.job_model import JobState
from geotasks.jobs import Job
from geotasks.postgres.pool import get_database
from tests.waiting import wait_until

from .conftest import SAMPLE_DATA, WORKER_TIMEOUT_S, WorkerProcess, worker_environment

#: The vertex limit the worker runs with, low so a test polygon can exceed it cheaply.
MAX_VERTICES = 1_000
#: A string that exists only outside the data directory.
CANARY = f"CANARY-{uuid.uuid4().hex}"

SQUARE = [(2.0, 48.0), (2.0, 49.0), (3.0, 49.0), (3.0, 48.0), (2.0, 48.0)]


def write_shapefile(
    path: Path, geometry_type: str, geometries: list[dict[str, Any]], crs: str = "EPSG:4326"
) -> Path:
    schema = {"geometry": geometry_type, "properties": {"name": "str"}}
    with fiona.open(path, "w", driver="ESRI Shapefile", schema=schema, crs=crs) as sink:
        for geometry in geometries:
            sink.write({"geometry": geometry, "properties": {"name": CANARY[:8]}})
    return path


def copy_shapefile(stem: str, folder: Path, new_stem: str) -> Path:
    for path in SAMPLE_DATA.glob(f"{stem}.*"):
        shutil.copy(path, folder / f"{new_stem}{path.suffix}")
    return folder / f"{new_stem}.shp"


def shapefile_bytes(shp: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in shp.parent.glob(f"{shp.stem}.*")}


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data directory full of hostile datasets, and an outside folder holding the canary."""
    base = tmp_path_factory.mktemp("hostile")
    data, outside, scratch = base / "data", base / "outside", base / "scratch"
    for folder in (data, outside, scratch):
        folder.mkdir()
    # Outside: a readable shapefile and a text file, both carrying the canary.
    secret = write_shapefile(
        outside / "secret.shp", "Point", [{"type": "Point", "coordinates": (1.0, 2.0)}]
    )
    with fiona.open(secret, "a") as sink:
        sink.write(
            {
                "geometry": {"type": "Point", "coordinates": (3.0, 4.0)},
                "properties": {"name": CANARY},
            }
        )
    (outside / "passwd").write_text(CANARY)
    # Names that lead out.
    (data / "escape.shp").symlink_to(secret)
    for suffix in (".shx", ".dbf", ".prj"):
        (data / f"escape{suffix}").symlink_to(secret.with_suffix(suffix))
    (data / "linked").symlink_to(outside, target_is_directory=True)
    # Archives.
    good = shapefile_bytes(copy_shapefile("naturalearth_cities", scratch, "cities"))
    write_zip(data / "slip.zip", {f"../{name}": body for name, body in good.items()})
    write_zip(
        data / "bomb.zip", {"bomb.shp": b"\0" * 200_000_000, "bomb.shx": b"", "bomb.dbf": b""}
    )
    inner = scratch / "inner.zip"
    write_zip(inner, good)
    write_zip(data / "nested.zip", {"inner.zip": inner.read_bytes()})
    # Files that are not what they claim.
    (data / "garbage.shp").write_bytes(b"<html>not a shapefile</html>" * 10)
    (data / "garbage.shx").write_bytes(b"x" * 100)
    (data / "garbage.dbf").write_bytes(b"y" * 100)
    for suffix in (".shp", ".shx", ".dbf"):
        shp = copy_shapefile("naturalearth_lowres", data, f"cut{suffix[1:]}")
        victim = shp.with_suffix(suffix)
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    # Coordinates that lie, or overflow, or have too many vertices.
    write_shapefile(
        data / "wrongprj.shp",
        "Polygon",
        [{"type": "Polygon", "coordinates": [SQUARE]}],
        crs="EPSG:2154",
    )
    biggest = sys.float_info.max
    write_shapefile(
        data / "huge.shp", "Point", [{"type": "Point", "coordinates": (biggest, -biggest)}]
    )
    # 1.8e308 itself is past the largest double: written as bytes, it reads as ±infinity.
    infinite = write_shapefile(
        data / "infinite.shp", "Point", [{"type": "Point", "coordinates": (1.0, 2.0)}]
    )
    patched = bytearray(infinite.read_bytes())
    patched[36:68] = struct.pack("<4d", float("-inf"), float("-inf"), float("inf"), float("inf"))
    patched[112:128] = struct.pack("<2d", float("inf"), float("-inf"))
    infinite.write_bytes(bytes(patched))
    ring = [(2.0 + 0.5 * (i / 5000), 48.0 + (i % 2) * 0.001) for i in range(5000)]
    ring = [*ring, (2.5, 49.0), (2.0, 49.0), ring[0]]
    write_shapefile(data / "dense.shp", "Polygon", [{"type": "Polygon", "coordinates": [ring]}])
    # Datasets of other formats that would read the canary: a VRT, and one passing for a
    # GeoPackage; a GML whose schema lies outside its folder.
    vrt = (
        f'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>{outside / "passwd"}'
        "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>"
    )
    (data / "trap.vrt").write_text(vrt)
    (data / "fake.gpkg").write_text(vrt)
    (data / "schema.gml").write_text(
        '<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" '
        'xmlns:gml="http://www.opengis.net/gml" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://ogr.maptools.org/ ../outside/secret.xsd"/>'
    )
    # A sound dataset, to show the worker still serves.
    copy_shapefile("naturalearth_cities", data, "cities")
    return data, outside


@pytest.fixture(scope="module")
def worker(
    module_client: str, dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for the module, with a low vertex limit, on the hostile data directory."""
    data, _ = dirs
    logs = tmp_path_factory.mktemp("worker-log")
    env = worker_environment(
        GEOTASKS_DATABASE_URL=module_client,
        GEOTASKS_DATA_DIR=str(data),
        GEOTASKS_TMP_DIR=str(logs / "tmp"),
        GEOTASKS_MAX_VERTICES=str(MAX_VERTICES),
    )
    process = WorkerProcess(env, logs / "worker.log", arguments=("-p", "1", "-t", "2", "-Q", "geo"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(module_client: str, dirs: tuple[Path, Path]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEOTASKS_DATA_DIR", str(dirs[0]))
        geotasks.settings.get_settings.cache_clear()
        yield
    geotasks.settings.get_settings.cache_clear()


#: (case id, actor, args, kwargs, a regular expression the error message must match)
CASES: list[tuple[str, str, tuple[Any, ...], dict[str, Any], str]] = [
    ("dotdot", "shapefile_to_geojson", ("../outside/secret",), {}, r"'\.\.'"),
    ("dotdot-passwd", "shapefile_to_geojson", ("../../../../etc/passwd",), {}, r"'\.\.'"),
    ("absolute", "shapefile_to_geojson", ("@OUTSIDE@/secret.shp",), {}, "absolute path"),
    ("symlink-file", "shapefile_to_geojson", ("escape",), {}, "outside the data directory"),
    ("symlink-dir", "shapefile_to_geojson", ("linked/secret",), {}, "outside the data directory"),
    ("nul-byte", "shapefile_to_geojson", ("cities\x00.shp",), {}, "NUL|control|character"),
    ("long-name", "shapefile_to_geojson", ("a" * 5000,), {}, "longer than"),
    ("zip-slip", "shapefile_to_geojson", ("slip",), {}, "unsafe path"),
    ("zip-bomb", "shapefile_to_geojson", ("bomb",), {}, "zip bomb"),
    ("zip-in-zip", "shapefile_to_geojson", ("nested",), {}, "zip"),
    ("not-a-shapefile", "shapefile_to_geojson", ("garbage",), {}, r"\.shp|shapefile"),
    ("truncated-shp", "shapefile_to_geojson", ("cutshp",), {}, r"\.shp|truncated|corrupt"),
    ("truncated-dbf", "shapefile_to_geojson", ("cutdbf",), {}, r"\.dbf|truncated|corrupt"),
    ("prj-mismatch", "shapefile_to_geojson", ("wrongprj",), {}, r"\.prj"),
    ("coordinates-1.8e308", "shapefile_to_geojson", ("huge",), {}, "coordinate|finite|range"),
    ("coordinates-infinite", "shapefile_to_geojson", ("infinite",), {}, "coordinate|finite|range"),
    ("vertex-limit", "buffer_features", ("dense", 10), {}, "vertices"),
    ("name-not-a-string", "shapefile_to_geojson", (42,), {}, "string"),
    ("name-a-url", "shapefile_to_geojson", ("https://example.com/x.zip",), {}, "URL"),
    ("vrt", "shapefile_to_geojson", ("trap",), {}, "GDAL virtual dataset"),
    ("vrt-as-gpkg", "shapefile_to_geojson", ("fake",), {}, "cannot be opened"),
    ("gml-schema-outside", "shapefile_to_geojson", ("schema",), {}, "schema outside"),
    ("precision-a-string", "shapefile_to_geojson", ("cities",), {"precision": "x"}, "precision"),
    ("bbox-not-numbers", "shapefile_to_geojson", ("cities",), {"bbox": "abc"}, "bbox"),
    ("limit-negative", "shapefile_to_geojson", ("cities",), {"limit": -1}, "limit"),
    ("distance-a-string", "buffer_features", ("cities", "far"), {}, "distance"),
    ("fields-unknown", "shapefile_to_geojson", ("cities",), {"fields": ["nope"]}, "nope"),
    (
        "where-injection",
        "shapefile_to_geojson",
        ("cities",),
        {"where": "1=1; DROP TABLE x"},
        "SQL expression",
    ),
]


@pytest.mark.parametrize(
    ("actor", "args", "kwargs", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input_fails_once_with_a_clear_message(
    worker: WorkerProcess,
    client: None,
    dirs: tuple[Path, Path],
    actor: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    pattern: str,
) -> None:
    # Given a hostile or broken input
    args = tuple(a.replace("@OUTSIDE@", str(dirs[1])) if isinstance(a, str) else a for a in args)

    # When it is submitted: a value the actor's JSON Schema refuses never leaves the client…
    try:
        job = geotasks.submit(actor, *args, **kwargs)
    except InputError as refused:
        assert re.search(r"argument '\w+'", str(refused)), refused
        # …so it is sent by hand, past every check a client makes: the worker is the last word
        pattern = rf"{pattern}|argument '\w+'"
        job = Job.from_message(
            setup_broker().enqueue(
                Message(queue_name="geo", actor_name=actor, args=args, kwargs=kwargs, options={})
            )
        )
    with pytest.raises(JobFailed) as failed:
        job.get(timeout=WORKER_TIMEOUT_S)

    # Then it failed on its first and only run, as bad input, saying why
    info = job.info()
    assert (info.status, info.attempt, info.runs) == (JobState.FAILURE, 0, 1)
    assert failed.value.type_name == "InputError", failed.value.traceback
    assert re.search(pattern, failed.value.error_message, re.IGNORECASE), failed.value.error_message
    # And nothing from outside the data directory leaked into what was stored
    assert CANARY not in failed.value.error_message + failed.value.traceback
    # And the worker is still running
    assert worker.alive(), worker.log()


def test_the_worker_still_serves_and_read_nothing_outside(
    worker: WorkerProcess, client: None, module_client: str
) -> None:
    # Given the worker that saw every hostile case above
    # When a sound job is sent
    job = geotasks.submit("shapefile_to_geojson", "cities", limit=2)

    # Then it succeeds, and no stored result or error anywhere holds the canary
    assert len(job.get(timeout=WORKER_TIMEOUT_S)["features"]) == 2
    assert worker.alive(), worker.log()

    def dump(cur: Any) -> str:
        cur.execute(
            "SELECT coalesce(string_agg(t, ''), '') FROM ("
            " SELECT r::text || convert_from(coalesce(r.data, ''), 'UTF8') AS t"
            " FROM geotasks.result r"
            " UNION ALL SELECT convert_from(c.data, 'UTF8') FROM geotasks.result_chunk c"
            " UNION ALL SELECT j::text FROM geotasks.job j) x"
        )
        return str(cur.fetchone()[0])

    stored = get_database(module_client).transaction(dump)
    assert stored and CANARY not in stored
    assert CANARY not in worker.log()


def test_an_unknown_actor_is_refused_before_anything_is_sent(client: None) -> None:
    # When an actor name nobody registered is submitted, Then the client refuses it at once
    with pytest.raises(ActorNotRegistered, match="no actor named 'read_passwd'"):
        geotasks.submit("read_passwd", "/etc/passwd")


def test_a_truncated_shx_is_rebuilt_on_a_copy_and_read_in_full(
    worker: WorkerProcess, client: None, dirs: tuple[Path, Path]
) -> None:
    # Given a shapefile whose .shx index is cut in half (the .shp and .dbf are whole)
    data, _ = dirs
    before = (data / "cutshx.shx").read_bytes()

    # When it is measured by the worker
    job = geotasks.submit("measure_features", "cutshx")

    # Then the index is rebuilt on a private copy: every feature, first attempt, data untouched
    assert len(job.get(timeout=WORKER_TIMEOUT_S)["features"]) == 177
    assert (job.info().attempt, job.info().runs) == (0, 1)
    assert (data / "cutshx.shx").read_bytes() == before


@pytest.mark.parametrize(
    "body", ["{not json", "[1, 2, 3]", '{"queue_name": "geo"}', '"a JSON string"']
)
def test_a_body_that_is_not_a_message_is_dead_lettered_and_logged(
    worker: WorkerProcess, client: None, module_client: str, body: str
) -> None:
    # Given a row on the geo queue whose body is not a Dramatiq message (no id to give a status)
    database = get_database(module_client)
    marker = f"garbage-{uuid.uuid4().hex}"

    def insert(cur: Any) -> None:
        cur.execute(
            "INSERT INTO geotasks.broker_messages (message_id, queue_name, body)"
            " VALUES (%s, 'geo', %s)",
            (marker, body),
        )
        cur.execute("NOTIFY geotasks_queue, 'geo'")

    database.transaction(insert)

    # When the worker claims it, Then it is dead-lettered with the reason, and logged
    def dead() -> str | None:
        def look(cur: Any) -> str | None:
            cur.execute(
                "SELECT d.error FROM geotasks.broker_dead_letters d"
                " WHERE d.body = %s AND d.queue_name = 'geo'"
                " AND NOT EXISTS (SELECT 1 FROM geotasks.broker_messages m"
                "                 WHERE m.message_id = %s)",
                (body, marker),
            )
            row = cur.fetchone()
            return None if row is None else str(row[0])

        return database.transaction(look)

    wait_until(lambda: dead() is not None, WORKER_TIMEOUT_S, "dead letter")
    wait_until(lambda: "its body is not a message" in worker.log(), 10, "log line")
    # And the worker still serves
    assert worker.alive(), worker.log()
    assert geotasks.submit("shapefile_to_geojson", "cities", limit=1).get(timeout=WORKER_TIMEOUT_S)
