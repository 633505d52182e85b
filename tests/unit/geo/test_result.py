"""GeoJSONResult: the bytes contract between the geo layer and the results store."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from geotasks.errors import InputError
from geotasks.geo.result import GeoJSONResult

DOCUMENT = b'{"type":"FeatureCollection","features":[]}'


def test_small_result_round_trips_bytes_and_dict() -> None:
    # Given a result built from a small document
    with GeoJSONResult.from_bytes(DOCUMENT) as result:
        # When it is read back every way a consumer can
        with result.open() as stream:
            streamed = stream.read()
        sink = io.BytesIO()
        written = result.write_to(sink)
        # Then every view gives exactly the written bytes
        assert streamed == DOCUMENT
        assert sink.getvalue() == DOCUMENT
        assert written == result.size_bytes == len(DOCUMENT)
        assert b"".join(result.iter_chunks(5)) == DOCUMENT
        assert result.to_dict() == {"type": "FeatureCollection", "features": []}
        assert result.__geo_interface__ == result.to_dict()
        assert result.media_type == "application/geo+json"


def test_large_result_spills_to_a_file_in_dir_and_streams_are_independent(
    tmp_path: Path,
) -> None:
    # Given a result larger than its spool limit, spilled into tmp_path
    payload = b"x" * 10_000
    result = GeoJSONResult(spool_max_bytes=1_000, dir=tmp_path)
    for start in range(0, len(payload), 777):
        result.write(payload[start : start + 777])
    # When two readers read interleaved
    first, second = result.open(), result.open()
    a1 = first.read(3_000)
    b_all = second.read()
    a2 = first.read()
    # Then each sees the whole document from its own position
    assert a1 + a2 == payload
    assert b_all == payload
    assert result.size_bytes == len(payload)
    assert [len(c) for c in result.iter_chunks(4_096)] == [4_096, 4_096, 1_808]
    first.close()
    second.close()
    result.close()
    # And closing twice is harmless, while reading a closed result is refused
    result.close()
    with pytest.raises(ValueError):
        result.open()


def test_from_stream_copies_in_chunks() -> None:
    # Given a stored document larger than a chunk
    data = b'{"type":"FeatureCollection","features":[' + b" " * 3_000_000 + b"]}"
    # When it is copied from a stream
    with GeoJSONResult.from_stream(io.BytesIO(data), spool_max_bytes=1024) as result:
        # Then the bytes are the same and it parses
        assert result.size_bytes == len(data)
        assert result.to_dict()["features"] == []


def test_seek_and_tell_on_an_opened_stream() -> None:
    # Given an opened result stream
    with GeoJSONResult.from_bytes(DOCUMENT) as result, result.open() as stream:
        # When it seeks relative to the end and the current position
        stream.seek(-2, io.SEEK_END)
        tail = stream.read()
        stream.seek(1)
        stream.seek(8, io.SEEK_CUR)
        # Then reads start where asked
        assert tail == b"]}"
        assert stream.read(4) == b"Feat"
        assert stream.tell() == 13


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]"])
def test_to_dict_rejects_a_non_object(data: bytes) -> None:
    # Given bytes that are not a JSON object
    # When parsed, Then the error is an InputError
    with GeoJSONResult.from_bytes(data) as result, pytest.raises(InputError):
        result.to_dict()


def test_importing_the_result_module_does_not_load_gdal_shapely_or_pyproj() -> None:
    # Given a fresh interpreter
    code = (
        "import sys, geotasks.geo.result\n"
        "heavy = {'fiona', 'shapely', 'pyproj', 'numpy'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    # When it imports only the results contract
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    # Then none of the heavy libraries were imported
    assert output.strip() == "[]"
