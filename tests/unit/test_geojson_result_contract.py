"""The GeoJSONResult contract the results backend relies on (shared/DESIGN.md, Contracts)."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from geotasks.geo.result import GeoJSONResult

DOCUMENT = orjson.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": None, "properties": {"i": i}} for i in range(500)
        ],
    }
)


def test_bytes_written_in_pieces_come_back_identical_every_way(tmp_path: Path) -> None:
    # Given a result written in pieces that spills to disk
    result = GeoJSONResult(spool_max_bytes=1024, dir=tmp_path)
    for start in range(0, len(DOCUMENT), 1000):
        result.write(DOCUMENT[start : start + 1000])

    # Then every way of reading it gives the same bytes
    assert result.size_bytes == len(DOCUMENT)
    assert b"".join(result.iter_chunks(4096)) == DOCUMENT
    assert all(len(c) == 4096 for c in list(result.iter_chunks(4096))[:-1])
    sink = io.BytesIO()
    assert result.write_to(sink) == len(DOCUMENT)
    assert sink.getvalue() == DOCUMENT
    with result.open() as first, result.open() as second:
        assert first.read(10) == DOCUMENT[:10]
        assert second.read() == DOCUMENT
        assert first.read() == DOCUMENT[10:]
    assert result.to_dict() == orjson.loads(DOCUMENT)
    assert result.__geo_interface__["type"] == "FeatureCollection"
    assert result.media_type == "application/geo+json"
    result.close()


def test_from_stream_and_from_bytes_copy_the_document() -> None:
    assert GeoJSONResult.from_bytes(DOCUMENT).to_dict() == orjson.loads(DOCUMENT)
    copied = GeoJSONResult.from_stream(io.BytesIO(DOCUMENT), spool_max_bytes=100)
    assert copied.size_bytes == len(DOCUMENT)
    assert b"".join(copied.iter_chunks()) == DOCUMENT
