"""A large shapefile split between helper processes: the same document, and no helper left."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import shapely

from geotasks.errors import InputError
from geotasks.geo import parallel
from geotasks.geo.geojson import FeatureCollectionWriter
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.reading import open_layer
from geotasks.geo.result import GeoJSONResult
from geotasks.geo.validity import InvalidPolicy
from geotasks.job_warnings import recording

from .conftest import MakeShapefile
from .helpers import document, shapefile_members, with_reading, zip_files

#: Features of the generated shapefile, and the fewest per process the tests split at.
FEATURES = 3_000
PER_PROCESS = 500


@pytest.fixture(autouse=True)
def split_small_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split at a few hundred features a process, so that small files exercise helpers."""
    monkeypatch.setattr(parallel, "MIN_FEATURES_PER_PROCESS", PER_PROCESS)


def _cell(index: int) -> dict[str, Any]:
    """A square of Web Mercator metres, clockwise as shapefiles store it, every third with a
    hole, every hundredth null."""
    if index % 100 == 99:
        return {"geometry": None, "properties": {"name": f"nul·{index}"}}
    x, y = (index % 60) * 2_000.0 + 0.123456789, (index // 60) * 2_000.0
    outer = [(x, y), (x, y + 1_000), (x + 1_000, y + 1_000), (x + 1_000, y), (x, y)]
    rings = [outer]
    if index % 3 == 0:
        rings.append(
            [(x + 200, y + 200), (x + 400, y + 200), (x + 400, y + 400), (x + 200, y + 200)]
        )
    return {
        "geometry": {"type": "Polygon", "coordinates": rings},
        "properties": {"name": f"ñ{index}"},
    }


@pytest.fixture
def cells(make_shapefile: MakeShapefile) -> Path:
    """``cells``: 3,000 polygons in EPSG:3857 (reprojected on the way)."""
    return make_shapefile("cells", "Polygon", map(_cell, range(FEATURES)), crs="EPSG:3857")


def _convert(data_dir: Path, name: str, processes: int, **options: Any) -> bytes:
    limits = GeoLimits(max_read_processes=processes)
    with (
        shapefile_to_geojson(
            name, data_dir=data_dir, limits=limits, **with_reading(options)
        ) as result,
        result.open() as stream,
    ):
        return stream.read()


def _helpers_running() -> list[int]:
    """Process ids of this process's children that are range helpers."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if parallel.__name__.encode() in cmdline:
                pids.append(int(child))
    return pids


def test_a_split_read_writes_the_same_document_as_one_process(
    data_dir: Path, cells: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alone = _convert(data_dir, "cells", 1)
    with caplog.at_level(logging.INFO, logger=parallel.__name__):
        split = _convert(data_dir, "cells", 3)

    assert split == alone
    helpers = [r for r in caplog.records if "a helper process wrote features" in r.getMessage()]
    assert [r.args[1:3] for r in helpers] == [(1_000, 1_999), (2_000, 2_999)]  # type: ignore[index]
    features = document(GeoJSONResult.from_bytes(split))["features"]
    assert [feature["id"] for feature in features] == list(range(FEATURES))
    assert features[99]["geometry"] is None
    assert features[2_998]["properties"] == {"name": "ñ2998"}
    assert _helpers_running() == []


def test_records_marked_deleted_are_left_out_once_whichever_process_reads_them(
    data_dir: Path, cells: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given records 950 to 1,049 marked deleted in the .dbf, across the first split at 1,000
    dbf = bytearray(cells.with_suffix(".dbf").read_bytes())
    header_bytes, record_bytes = struct.unpack_from("<HH", dbf, 8)
    for record in range(950, 1_050):
        dbf[header_bytes + record * record_bytes] = ord("*")
    cells.with_suffix(".dbf").write_bytes(bytes(dbf))

    with caplog.at_level(logging.INFO, logger=parallel.__name__):
        split = _convert(data_dir, "cells", 3)

    assert "a helper process wrote features" in caplog.text
    assert split == _convert(data_dir, "cells", 1)
    ids = [feature["id"] for feature in document(GeoJSONResult.from_bytes(split))["features"]]
    assert ids == [*range(950), *range(1_050, FEATURES)]


def test_a_limit_is_read_in_one_process(data_dir: Path, cells: Path) -> None:
    split = _convert(data_dir, "cells", 2, limit=1_700)

    assert split == _convert(data_dir, "cells", 1, limit=1_700)
    assert len(document(GeoJSONResult.from_bytes(split))["features"]) == 1_700


@pytest.mark.parametrize(
    ("options", "processes", "expected"),
    [
        ({}, 3, [(0, 1_000), (1_000, 2_000), (2_000, 3_000)]),
        (
            {},
            8,
            [
                (0, 500),
                (500, 1_000),
                (1_000, 1_500),
                (1_500, 2_000),
                (2_000, 2_500),
                (2_500, 3_000),
            ],
        ),
        # The first n features are not the first n records when some are deleted.
        ({"limit": 2_000}, 3, [(0, 3_000)]),
        ({"where": "name = 'ñ1'"}, 3, [(0, 3_000)]),
        ({"bbox": [0, 0, 1, 1]}, 3, [(0, 3_000)]),
        # Past the feature limit the job's own read fails at once, so no helper is started.
        ({"max_features": 2_999}, 3, [(0, 3_000)]),
        ({}, 1, [(0, 3_000)]),
    ],
)
def test_plan_ranges_splits_only_what_can_be_split(
    data_dir: Path, cells: Path, options: dict[str, Any], processes: int, expected: list[Any]
) -> None:
    limit = options.pop("limit", None)
    limits = GeoLimits(
        max_read_processes=processes, max_features=options.pop("max_features", 10**6)
    )
    with open_layer("cells", data_dir=data_dir, limits=limits, **options) as layer:
        ranges = parallel.plan_ranges(layer, limits=limits, limit=limit)

    assert [(r.start, r.stop) for r in ranges] == expected


def test_a_zipped_shapefile_is_read_in_one_process(data_dir: Path, cells: Path) -> None:
    zip_files(data_dir / "zipped.zip", shapefile_members(cells))
    limits = GeoLimits(max_read_processes=3)
    with open_layer("zipped", data_dir=data_dir, limits=limits) as layer:
        assert [
            (r.start, r.stop) for r in parallel.plan_ranges(layer, limits=limits, limit=None)
        ] == [(0, FEATURES)]


@pytest.fixture
def bowtie_cells(make_shapefile: MakeShapefile) -> Path:
    """``cells`` whose feature 2500, in the range a helper process reads, is a bow tie."""
    bowtie = [(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]
    features = [_cell(index) for index in range(FEATURES)]
    features[2_500] = {"geometry": {"type": "Polygon", "coordinates": [bowtie]}}
    return make_shapefile("cells", "Polygon", features, crs="EPSG:3857")


def test_bad_data_in_a_helper_s_range_fails_the_job_with_its_reason(
    data_dir: Path, bowtie_cells: Path
) -> None:
    with pytest.raises(InputError, match=r"cells: feature 2500 has an invalid polygon"):
        _convert(data_dir, "cells", 3, strict=True)
    assert _helpers_running() == []
    repaired = document(GeoJSONResult.from_bytes(_convert(data_dir, "cells", 3, repair=True)))
    assert len(repaired["features"]) == FEATURES


def test_invalid_polygons_a_helper_keeps_are_reported_by_the_job(
    data_dir: Path, bowtie_cells: Path
) -> None:
    # Given a bow-tie in the range a helper process reads
    # When converted in 3 processes with the default policy
    with recording() as warnings:
        kept = document(GeoJSONResult.from_bytes(_convert(data_dir, "cells", 3)))

    # Then the job's warning names the helper's feature, which is written as it was
    assert [(w["count"], w["first_ids"]) for w in warnings] == [(1, [2500])]
    assert len(kept["features"]) == FEATURES
    assert not shapely.geometry.shape(kept["features"][2_500]["geometry"]).is_valid


@pytest.mark.parametrize(
    ("signal_name", "error", "message"),
    [
        ("SIGSEGV", InputError, r"^cells: reading features 10 to 19 crashed GDAL \(SIGSEGV\)"),
        ("SIGKILL", RuntimeError, r"features 10 to 19 of cells died \(exit code -9\)"),
    ],
)
def test_a_helper_that_dies_fails_the_job_saying_how(
    data_dir: Path, cells: Path, signal_name: str, error: type[Exception], message: str
) -> None:
    limits = GeoLimits()
    with open_layer("cells", data_dir=data_dir, limits=limits) as layer:
        task = parallel._RangeTask(
            layer.detached(),
            parallel.FeatureRange(10, 20),
            7,
            False,
            InvalidPolicy.FAIL,
            limits,
            "unused",
        )
    code = f"import os, signal; os.kill(os.getpid(), signal.{signal_name})"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    helper = parallel._Helper(task, process)
    try:
        with pytest.raises(error, match=message):
            helper.wait()
    finally:
        helper.stop()


def test_a_helper_stops_when_its_job_goes_away(data_dir: Path, cells: Path, tmp_path: Path) -> None:
    limits = GeoLimits()
    fragment = tmp_path / "fragment.json"
    with open_layer("cells", data_dir=data_dir, limits=limits) as layer:
        task = parallel._RangeTask(
            layer.detached(),
            parallel.FeatureRange(0, FEATURES),
            7,
            False,
            False,
            limits,
            str(fragment),
        )
        process = subprocess.Popen(
            [sys.executable, "-m", parallel.__name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert process.stdin is not None and process.stdout is not None
        parallel._send(process.stdin, task)
        # What a job's process dying does to the pipe: closed before the first batch is done.
        process.stdin.close()
        started = time.monotonic()
        assert process.wait(timeout=30) == 0
        report = process.stdout.read()
        process.stdout.close()

    assert report == b""
    assert time.monotonic() - started < 10
    written = fragment.read_bytes()
    assert written.count(b'"type":"Feature"') < FEATURES


def test_a_fragment_appended_keeps_the_commas_and_the_bbox(tmp_path: Path) -> None:
    import shapely

    first, second = shapely.Point(1, 2), shapely.Point(-3, 4)
    with GeoJSONResult() as whole:
        writer = FeatureCollectionWriter(whole, write_bbox=True)
        writer.write_feature(0, {}, first)
        writer.write_feature(1, {}, second)
        writer.close()
        expected = document(whole)

    path = tmp_path / "fragment.json"
    with open(path, "wb") as sink:
        fragment = FeatureCollectionWriter(sink, write_bbox=True, fragment=True)
        fragment.write_feature(1, {}, second)
        fragment.close()
    with GeoJSONResult() as joined:
        writer = FeatureCollectionWriter(joined, write_bbox=True)
        writer.write_feature(0, {}, first)
        with open(path, "rb") as stream:
            writer.append_fragment(stream, fragment.count, fragment.bounds)
        writer.close()
        assert document(joined) == expected
        assert expected["bbox"] == [-3, 2, 1, 4]
