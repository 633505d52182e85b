"""The outcome channel's payload: a small result travels whole, anything else as the id alone."""

from __future__ import annotations

import pytest

from geotasks.postgres.outcome import MAX_PAYLOAD_BYTES, parse_payload, success_payload

JOB_ID = "5f0c6a8e-2b8d-4b1e-9f3a-0a6c2d1e4b7f"


@pytest.mark.parametrize(
    ("kind", "media_type", "data"),
    [
        ("value", "application/json", b'{"sum":42,"name":"Z\\u00fcrich"}'),
        ("geojson", "application/geo+json", '{"type":"FeatureCollection","x":"é"}'.encode()),
        ("value", "application/json", b'"a b  c"'),
    ],
)
def test_a_small_result_round_trips(kind: str, media_type: str, data: bytes) -> None:
    payload = success_payload(JOB_ID, kind=kind, media_type=media_type, ttl_ms=60_000, data=data)
    assert payload is not None
    parsed = parse_payload(payload)
    assert parsed is not None
    assert (parsed.message_id, parsed.kind, parsed.media_type, parsed.ttl_ms, parsed.data) == (
        JOB_ID, kind, media_type, 60_000, data,
    )  # fmt: skip


def test_the_largest_payload_postgres_accepts_and_no_more() -> None:
    head = len(f"{JOB_ID} value application/json 60000 ".encode())
    fits = b'"' + b"x" * (MAX_PAYLOAD_BYTES - head - 2) + b'"'
    too_large = b'"' + b"x" * (MAX_PAYLOAD_BYTES - head - 1) + b'"'
    fitting = success_payload(
        JOB_ID, kind="value", media_type="application/json", ttl_ms=60_000, data=fits
    )
    assert fitting is not None and len(fitting.encode()) == MAX_PAYLOAD_BYTES < 8000
    assert (
        success_payload(
            JOB_ID, kind="value", media_type="application/json", ttl_ms=60_000, data=too_large
        )
        is None
    )


@pytest.mark.parametrize(
    ("kind", "media_type", "data"),
    [
        ("value", "application/json", None),  # stored in chunks
        ("value", "application/octet-stream", b"\x80\x04K*."),  # another encoder's bytes
        ("file", "application/flatgeobuf", b"fgb\x03"),
        ("value", "application/json", b'"\xff"'),  # not UTF-8
        ("value", "application/json", b'"\x00"'),  # Postgres text cannot hold NUL
    ],
)
def test_other_results_are_announced_by_id_alone(
    kind: str, media_type: str, data: bytes | None
) -> None:
    assert success_payload(JOB_ID, kind=kind, media_type=media_type, ttl_ms=1, data=data) is None


def test_a_doorbell_carries_no_result() -> None:
    assert parse_payload(JOB_ID) is None
