"""PostgresBackend against a real Postgres: round trips, chunking, TTL, failures, NOTIFY waits."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from dramatiq.message import Message
from dramatiq.results import ResultFailure, ResultMissing, ResultTimeout

from geotasks.errors import JobFailed, ResultExpired
from geotasks.geo.result import GeoJSONResult
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend, delete_expired

TTL_MS = 60_000
SMALL_CHUNK_BYTES = 1024


def message(message_id: str | None = None) -> Message[Any]:
    fields: dict[str, Any] = {"message_id": message_id} if message_id else {}
    return Message(
        queue_name="geo", actor_name="buffer_features", args=(), kwargs={}, options={}, **fields
    )


def feature_collection(features: int) -> bytes:
    return orjson.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [i / 1000, 46.5]},
                    "properties": {"i": i, "name": f"feature {i}"},
                }
                for i in range(features)
            ],
        }
    )


def count_chunks(database: Database, message_id: str) -> int:
    return database.transaction(
        lambda cur: (
            cur.execute(
                "SELECT count(*) FROM geotasks.result_chunk WHERE message_id = %s", (message_id,)
            ),
            cur.fetchone(),
        )[1][0]
    )


@pytest.fixture
def small_chunks(database: Database, backend: PostgresBackend) -> PostgresBackend:
    """A backend whose chunks are 1 kB, so chunking is exercised with small payloads."""
    return PostgresBackend(database=database, chunk_bytes=SMALL_CHUNK_BYTES)


@pytest.mark.parametrize(
    "value",
    [None, 42, "é ✓", [1, 2.5, None], {"nested": {"list": list(range(5000))}}],
    ids=["none", "int", "text", "list", "chunked-dict"],
)
def test_plain_values_round_trip_through_the_encoder(
    small_chunks: PostgresBackend, database: Database, value: Any
) -> None:
    # Given a stored value (the last one is larger than a chunk)
    sent = message()
    small_chunks.store_result(sent, value, TTL_MS)

    # Then it comes back equal, by message id alone
    assert small_chunks.get_result(message(sent.message_id)) == value
    stored = small_chunks.header(sent.message_id)
    assert stored is not None
    assert stored.media_type == "application/json"
    chunks = count_chunks(database, sent.message_id)
    assert (chunks > 1) == (stored.size_bytes > SMALL_CHUNK_BYTES)


@pytest.mark.parametrize("features", [3, 300], ids=["inline", "chunked"])
def test_geojson_is_stored_as_its_bytes_and_comes_back_as_geojson(
    small_chunks: PostgresBackend, database: Database, features: int
) -> None:
    # Given a GeoJSONResult whose bytes are not what json.dumps would produce (spaces, order)
    document = feature_collection(features).replace(b'"type":', b'"type" :  ')
    sent = message()
    small_chunks.store_result(sent, GeoJSONResult.from_bytes(document), TTL_MS)

    # Then the very same bytes are stored and read back, as a GeoJSONResult
    stored = small_chunks.header(sent.message_id)
    assert stored is not None
    assert (stored.kind, stored.media_type) == ("geojson", "application/geo+json")
    with small_chunks.open(stored) as stream:
        assert stream.read() == document
    result = small_chunks.get_result(sent)
    assert isinstance(result, GeoJSONResult)
    assert b"".join(result.iter_chunks()) == document
    assert (count_chunks(database, sent.message_id) > 0) == (len(document) > SMALL_CHUNK_BYTES)


class UnevenResult(GeoJSONResult):
    """A GeoJSONResult whose pieces have odd sizes: the store must re-cut them."""

    def iter_chunks(self, chunk_bytes: int = 1024) -> Iterator[bytes]:
        yield from super().iter_chunks(chunk_bytes // 3 + 1)


def test_a_stream_seeks_across_chunks(small_chunks: PostgresBackend) -> None:
    document = feature_collection(200)
    sent = message()
    uneven = UnevenResult()
    uneven.write(document)
    small_chunks.store_result(sent, uneven, TTL_MS)
    stored = small_chunks.header(sent.message_id)
    assert stored is not None

    with small_chunks.open(stored) as stream:
        # When a reader jumps into the middle of the fourth chunk, then back to the start
        stream.seek(3 * SMALL_CHUNK_BYTES + 100)
        middle = stream.read(2 * SMALL_CHUNK_BYTES)
        stream.seek(-10, 2)
        tail = stream.read()
        stream.seek(0)
        head = stream.read(5)

    # Then each read returns the right bytes
    start = 3 * SMALL_CHUNK_BYTES + 100
    assert middle == document[start : start + 2 * SMALL_CHUNK_BYTES]
    assert tail == document[-10:]
    assert head == document[:5]


def test_storing_again_replaces_the_result_and_its_chunks(
    small_chunks: PostgresBackend, database: Database
) -> None:
    # Given a chunked result, stored again (a redelivered message ran twice) as a small one
    sent = message()
    small_chunks.store_result(sent, GeoJSONResult.from_bytes(feature_collection(100)), TTL_MS)
    assert count_chunks(database, sent.message_id) > 1
    small_chunks.store_result(sent, {"small": True}, TTL_MS)

    # Then only the new result remains, without orphan chunks
    assert small_chunks.get_result(sent) == {"small": True}
    assert count_chunks(database, sent.message_id) == 0


def test_a_result_replaced_while_being_read_is_an_error_not_a_mix(
    small_chunks: PostgresBackend,
) -> None:
    sent = message()
    small_chunks.store_result(sent, GeoJSONResult.from_bytes(feature_collection(100)), TTL_MS)
    stored = small_chunks.header(sent.message_id)
    assert stored is not None
    with small_chunks.open(stored) as stream:
        stream.read(10)
        # When the result is replaced between two chunks
        small_chunks.store_result(sent, GeoJSONResult.from_bytes(feature_collection(120)), TTL_MS)
        # Then reading on fails clearly
        with pytest.raises(ResultExpired, match="expired or was replaced"):
            stream.read()


def test_a_failure_stores_type_message_and_traceback(backend: PostgresBackend) -> None:
    # Given an actor-like function that failed
    def parse_dataset() -> None:
        raise ValueError("parcels.shp has no .dbf")

    try:
        parse_dataset()
    except ValueError as exc:
        failure = exc
    sent = message()
    backend.store_exception(sent, failure, TTL_MS)

    # Then getting the result raises JobFailed, also a Dramatiq ResultFailure, with everything
    with pytest.raises(JobFailed) as excinfo:
        backend.get_result(sent)
    error = excinfo.value
    assert isinstance(error, ResultFailure)
    assert (error.type_name, error.error_message) == ("ValueError", "parcels.shp has no .dbf")
    assert (error.orig_exc_type, error.orig_exc_msg) == ("ValueError", "parcels.shp has no .dbf")
    assert "in parse_dataset" in error.traceback
    assert error.traceback.strip().endswith("ValueError: parcels.shp has no .dbf")
    assert error.job_id == sent.message_id


def test_a_failure_without_a_live_traceback_keeps_the_one_retries_recorded(
    backend: PostgresBackend,
) -> None:
    sent = message()
    sent.options["traceback"] = "".join(traceback.format_stack())
    backend.store_exception(sent, RuntimeError("lost"), TTL_MS)
    with pytest.raises(JobFailed) as excinfo:
        backend.get_result(sent)
    assert "test_a_failure_without_a_live_traceback" in excinfo.value.traceback


def test_expired_results_are_not_returned_and_are_deleted(
    backend: PostgresBackend, database: Database
) -> None:
    # Given one result that lives 1 ms (chunked) and one that lives a minute
    expired, alive = message(), message()
    chunky = PostgresBackend(database=database, chunk_bytes=SMALL_CHUNK_BYTES)
    chunky.store_result(expired, GeoJSONResult.from_bytes(feature_collection(50)), 1)
    backend.store_result(alive, "still here", TTL_MS)
    time.sleep(0.01)

    # Then the expired one is gone for readers at once
    with pytest.raises(ResultMissing):
        backend.get_result(expired)
    assert backend.header(expired.message_id) is None

    # And the sweep deletes it with its chunks, and only it
    counts = delete_expired(database, retention_s=3600)
    assert counts.results == 1
    assert count_chunks(database, expired.message_id) == 0
    assert backend.get_result(alive) == "still here"
    assert delete_expired(database, retention_s=3600).results == 0


def test_a_blocking_get_is_woken_by_notify_not_by_polling(
    backend: PostgresBackend, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a client blocked on a result that nobody has stored yet
    sent = message()
    reads = []
    original_header = backend.header

    def counting_header(message_id: str) -> Any:
        reads.append(time.monotonic())
        return original_header(message_id)

    monkeypatch.setattr(backend, "header", counting_header)
    got: list[Any] = []
    done = threading.Event()

    def client() -> None:
        got.append(backend.get_result(sent, block=True, timeout=10_000))
        got.append(time.monotonic())
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.5)

    # When a worker stores it half a second later
    writer = PostgresBackend(database=database)
    writer.store_result(sent, {"ok": True}, TTL_MS)
    committed_at = time.monotonic()
    assert done.wait(timeout=5)
    thread.join()

    # Then the client returns within milliseconds, having read the table only a few times
    latency_s = got[1] - committed_at
    assert got[0] == {"ok": True}
    assert latency_s < 0.1, f"woken {latency_s * 1000:.1f} ms after the commit"
    assert len(reads) <= 3, f"{len(reads)} reads: that is polling"


def test_a_blocking_get_times_out(backend: PostgresBackend) -> None:
    started = time.monotonic()
    with pytest.raises(ResultTimeout):
        backend.get_result(message(), block=True, timeout=300)
    assert 0.29 < time.monotonic() - started < 2


_BOUNDED_MEMORY_SCRIPT = """
import hashlib, json, resource, sys
from dramatiq.message import Message
from geotasks.geo.result import GeoJSONResult
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend

url, spool, out, size_mb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
backend = PostgresBackend(database=Database(url))

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

feature = b'{"type":"Feature","geometry":{"type":"Point","coordinates":[7.4,46.9]},"properties":{}}'
msg = Message(queue_name="geo", actor_name="a", args=(), kwargs={}, options={})
backend.store_result(msg, GeoJSONResult.from_bytes(b'{"type":"FeatureCollection"}'), 60000)
baseline = peak_mb()

result = GeoJSONResult(spool_max_bytes=1024 * 1024, dir=spool)
digest = hashlib.sha256()
result.write(b'{"type":"FeatureCollection","features":[')
digest.update(b'{"type":"FeatureCollection","features":[')
block = b",".join([feature] * 10000) + b","
while result.size_bytes < size_mb * 1024 * 1024:
    result.write(block)
    digest.update(block)
result.write(feature + b"]}")
digest.update(feature + b"]}")
backend.store_result(msg, result, 60000)
result.close()
after_write = peak_mb()

stored = backend.header(msg.message_id)
read_digest = hashlib.sha256()
with backend.open(stored) as stream, open(out, "wb") as sink:
    while chunk := stream.read(1024 * 1024):
        read_digest.update(chunk)
        sink.write(chunk)
print(json.dumps({
    "baseline_mb": baseline, "after_write_mb": after_write, "after_read_mb": peak_mb(),
    "size": stored.size_bytes, "same": digest.hexdigest() == read_digest.hexdigest(),
}))
"""


def test_a_30_mb_result_is_written_and_read_in_bounded_memory(
    database_url: str, tmp_path: Path, listeners_closed: None
) -> None:
    # Given a separate process (so its peak RSS is its own) that writes a 30 MB GeoJSON
    # result through a spooled GeoJSONResult, stores it, and streams it back to a file
    spool = tmp_path / "spool"
    spool.mkdir()
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            _BOUNDED_MEMORY_SCRIPT,
            database_url,
            str(spool),
            str(tmp_path / "out.geojson"),
            "30",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    report = json.loads(output)

    # Then the bytes came back identical and the process never held a copy of the result
    assert report["same"]
    assert report["size"] >= 30 * 1024 * 1024
    assert hashlib.sha256((tmp_path / "out.geojson").read_bytes()).hexdigest()
    grown_mb = report["after_read_mb"] - report["baseline_mb"]
    assert grown_mb < 20, f"peak RSS grew by {grown_mb:.0f} MB for a 30 MB result: {report}"
