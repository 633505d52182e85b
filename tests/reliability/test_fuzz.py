"""Fuzzing ``shapefile_to_geojson`` with mutated copies of real datasets.

Hypothesis flips, overwrites, truncates and inserts bytes in the ``.shp``, ``.shx``, ``.dbf``,
``.prj`` and ``.cpg`` of the sample datasets, and in copies of them written in every other
format read (GeoPackage, GeoJSON, GeoJSONSeq, FlatGeobuf, KML, GML, a File Geodatabase's files,
CSV, each also zipped); a long-lived child process
(:mod:`tests.reliability.fuzz_child`) converts each case. Every case must end with a result or
an ``InputError``: a death by signal (GDAL or GEOS crashing), a case over its time limit, or any
other exception is a failure. A dead or hung child is replaced for the next case.

``GEOTASKS_FUZZ_EXAMPLES`` sets the number of cases (30 by default, to keep the suite short).
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiona
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ROOT, SAMPLE_DATA, worker_environment

#: Cases per run; raise it for a long fuzzing session.
EXAMPLES = int(os.environ.get("GEOTASKS_FUZZ_EXAMPLES", "30"))
#: Longest one case may take, in seconds (the sample datasets convert in well under one).
CASE_TIMEOUT_S = 20.0
#: Longest the child may take to import geotasks and say it is ready, in seconds.
START_TIMEOUT_S = 60.0

STEMS = ("naturalearth_lowres", "naturalearth_cities")
SUFFIXES = (".shp", ".shx", ".dbf", ".prj", ".cpg")
ORIGINALS = {
    stem: {suffix: (SAMPLE_DATA / f"{stem}{suffix}").read_bytes() for suffix in SUFFIXES}
    for stem in STEMS
}


def _other_formats() -> dict[str, dict[str, bytes]]:
    """The countries in each other format read, as ``{format: {file name: bytes}}``."""
    formats: dict[str, dict[str, bytes]] = {}
    writers = {
        "gpkg": ("fuzz.gpkg", "GPKG", {}),
        "geojson": ("fuzz.geojson", "GeoJSON", {}),
        "geojsonseq": ("fuzz.geojsonl", "GeoJSONSeq", {}),
        "flatgeobuf": ("fuzz.fgb", "FlatGeobuf", {}),
        "gml": ("fuzz.gml", "GML", {}),
        "filegdb": ("fuzz.gdb", "OpenFileGDB", {}),
        "csv": ("fuzz.csv", "CSV", {"GEOMETRY": "AS_WKT"}),
    }
    with fiona.open(SAMPLE_DATA / "naturalearth_lowres.shp") as source:
        schema, crs = {**source.schema, "geometry": "MultiPolygon"}, source.crs
        # Shapefiles mix polygons and multipolygons under one type; the other formats'
        # writers hold each record to the schema's.
        features = [
            {
                "geometry": {"type": "MultiPolygon", "coordinates": [f.geometry.coordinates]}
                if f.geometry.type == "Polygon"
                else f.geometry,
                "properties": f.properties,
            }
            for f in source
        ]
    with tempfile.TemporaryDirectory() as scratch:
        for kind, (name, driver, options) in writers.items():
            folder = Path(scratch) / kind
            folder.mkdir()
            with fiona.open(folder / name, "w", driver, schema, crs=crs, **options) as sink:
                sink.writerecords(features)
            formats[kind] = {
                path.relative_to(folder).as_posix(): path.read_bytes()
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            }
    with fiona.open(SAMPLE_DATA / "naturalearth_cities.shp") as source:
        placemarks = "".join(
            f"<Placemark><name>{f.properties['name']}</name><Point><coordinates>"
            f"{f.geometry.coordinates[0]},{f.geometry.coordinates[1]}</coordinates></Point>"
            "</Placemark>"
            for f in source
        )
    formats["kml"] = {
        "fuzz.kml": (
            '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
            f"<Document>{placemarks}</Document></kml>"
        ).encode()
    }
    return formats


#: The countries (the cities for KML) in each format besides shapefiles: file name to bytes.
FORMAT_FILES = _other_formats()

#: Values that break length, count and offset fields in interesting ways.
SPECIAL_BYTES = (
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\x00\x00\xf0\x7f\x00\x00\xf0\x7f",  # +inf as a little-endian double, twice
    b"\x00\x00\xf8\x7f\x00\x00\xf8\x7f",  # NaN
    b"\xff\xff\xff\xff\xff\xff\xef\x7f",  # the largest double
)


@dataclass(frozen=True)
class Mutation:
    """One change to one file: ``kind`` is flip, overwrite, truncate or insert."""

    suffix: str
    kind: str
    #: An offset from the start of the file (headers hold the fragile fields), or a fraction
    #: of its length.
    position: int | float
    data: bytes

    def apply(self, body: bytes) -> bytes:
        fraction = isinstance(self.position, float)
        at = min(int(self.position * len(body)) if fraction else int(self.position), len(body))
        if self.kind == "truncate":
            return body[:at]
        if self.kind == "insert":
            return body[:at] + self.data + body[at:]
        if self.kind == "overwrite":
            return body[:at] + self.data + body[at + len(self.data) :]
        if at == len(body):
            return body
        mask = self.data[0] or 1
        return body[:at] + bytes([body[at] ^ mask]) + body[at + 1 :]


mutations = st.builds(
    Mutation,
    suffix=st.sampled_from(SUFFIXES),
    kind=st.sampled_from(("flip", "overwrite", "truncate", "insert")),
    position=st.one_of(
        st.integers(min_value=0, max_value=120),
        st.floats(min_value=0, max_value=1, allow_nan=False),
    ),
    data=st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from(SPECIAL_BYTES)),
)


def format_mutations(kind: str) -> st.SearchStrategy[Mutation]:
    """Mutations of the files of one of :data:`FORMAT_FILES` (``suffix`` names the file)."""
    return st.builds(
        Mutation,
        suffix=st.sampled_from(sorted(FORMAT_FILES[kind])),
        kind=st.sampled_from(("flip", "overwrite", "truncate", "insert")),
        position=st.one_of(
            st.integers(min_value=0, max_value=4096),
            st.floats(min_value=0, max_value=1, allow_nan=False),
        ),
        data=st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from(SPECIAL_BYTES)),
    )


class Converter:
    """The child process, started again whenever it dies or hangs.

    Parameters:
      log_path: Where the children's stderr goes (GDAL's warnings, tracebacks).
    """

    def __init__(self, log_path: Path) -> None:
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        with self._log_path.open("a") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.fuzz_child"],
                cwd=ROOT,
                env=worker_environment(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._process = process
        ready = self._answer(START_TIMEOUT_S)
        assert ready == {"outcome": "ready"}, ready
        return process

    def _answer(self, timeout_s: float) -> dict[str, Any]:
        """The child's next answer, or what became of it."""
        process = self._process
        assert process is not None and process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], timeout_s)
        line = process.stdout.readline() if readable else ""
        if line:
            answer: dict[str, Any] = json.loads(line)
            return answer
        if not readable:
            self.stop()
            return {"outcome": "hang", "timeout_s": timeout_s}
        code = process.wait(timeout=CASE_TIMEOUT_S)
        self._process = None
        return {"outcome": "died", "returncode": code}

    def convert(self, data_dir: Path, name: str, tmp_dir: Path) -> dict[str, Any]:
        """Convert ``data_dir/name``; return the child's answer, a hang or a death."""
        process = self._process if self._process is not None else self._start()
        assert process.stdin is not None
        request = {"data_dir": str(data_dir), "name": name, "tmp_dir": str(tmp_dir)}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        return self._answer(CASE_TIMEOUT_S)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=CASE_TIMEOUT_S)
            self._process = None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def converter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converter]:
    child = Converter(tmp_path_factory.mktemp("fuzz-log") / "child.log")
    try:
        yield child
    finally:
        child.stop()


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cases")


def write_case(folder: Path, stem: str, changes: list[Mutation]) -> None:
    files = dict(ORIGINALS[stem])
    for change in changes:
        files[change.suffix] = change.apply(files[change.suffix])
    folder.mkdir()
    for suffix, body in files.items():
        (folder / f"fuzz{suffix}").write_bytes(body)


@pytest.mark.parametrize(
    ("kind", "zipped"),
    [
        *((stem, False) for stem in STEMS),
        *((kind, z) for kind in FORMAT_FILES for z in (False, True)),
    ],
)
def test_the_sound_samples_convert(
    converter: Converter, cases_dir: Path, kind: str, zipped: bool
) -> None:
    # Given an unmutated copy of a sample shapefile, or of the countries (the cities for KML)
    # in another format, plain or zipped
    folder = cases_dir / f"sound-{kind}-{zipped}"
    if kind in STEMS:
        write_case(folder, kind, [])
    else:
        write_format_case(folder, kind, [], zipped=zipped)

    # When the child converts it
    answer = converter.convert(folder, "fuzz", folder / "tmp")

    # Then every feature comes back
    assert answer["outcome"] == "result", answer
    assert answer["features"] > 100


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ_SETTINGS
@given(stem=st.sampled_from(STEMS), changes=st.lists(mutations, min_size=1, max_size=4))
def test_mutated_shapefiles_give_a_result_or_an_input_error(
    converter: Converter, cases_dir: Path, stem: str, changes: list[Mutation]
) -> None:
    # Given a sample dataset with some of its bytes flipped, overwritten, cut or added
    folder = cases_dir / uuid.uuid4().hex
    write_case(folder, stem, changes)

    # When the child process converts it
    answer = converter.convert(folder, "fuzz", folder / "tmp")

    # Then it neither crashed nor hung: it gave a result or an InputError, nothing else
    assert_result_or_input_error(answer, f"{stem} with {changes}", converter)


def assert_result_or_input_error(answer: dict[str, Any], case: str, converter: Converter) -> None:
    """Fail with the case, the child's answer and its log unless it was a result or bad input."""
    if answer["outcome"] not in ("result", "input_error"):
        pytest.fail(
            f"{case}: {answer.get('type', '')} {answer}\n"
            f"{answer.get('trace', '')}\nchild's log:\n{converter.log()}",
            pytrace=False,
        )
    if answer["outcome"] == "input_error":
        assert answer["message"].strip()


def write_format_case(folder: Path, kind: str, changes: list[Mutation], *, zipped: bool) -> None:
    files = dict(FORMAT_FILES[kind])
    for change in changes:
        files[change.suffix] = change.apply(files[change.suffix])
    folder.mkdir()
    if zipped:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, body in files.items():
                archive.writestr(name, body)
        (folder / "fuzz.zip").write_bytes(buffer.getvalue())
        return
    for name, body in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)


@FUZZ_SETTINGS
@given(
    case=st.sampled_from(sorted(FORMAT_FILES)).flatmap(
        lambda kind: st.tuples(
            st.just(kind), st.lists(format_mutations(kind), min_size=1, max_size=4), st.booleans()
        )
    )
)
def test_mutated_datasets_of_every_format_give_a_result_or_an_input_error(
    converter: Converter, cases_dir: Path, case: tuple[str, list[Mutation], bool]
) -> None:
    # Given a dataset in another format, maybe zipped, with some of its bytes changed
    kind, changes, zipped = case
    folder = cases_dir / uuid.uuid4().hex
    write_format_case(folder, kind, changes, zipped=zipped)

    # When the child process converts it
    answer = converter.convert(folder, "fuzz", folder / "tmp")

    # Then it neither crashed nor hung: it gave a result or an InputError, nothing else
    assert_result_or_input_error(answer, f"{kind} (zipped: {zipped}) with {changes}", converter)
