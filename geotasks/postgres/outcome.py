"""The outcome channel: "this job finished", with its result when the result is small.

The first channel, ``geotasks_result`` (:data:`~geotasks.postgres.job_status.FINISHED_CHANNEL`),
is a doorbell whose payload is a message id: a client woken by it reads the job's status and
result. Clients now listen on :data:`OUTCOME_CHANNEL` instead, rung by every transition of a job
to a final state (SUCCESS, FAILURE, SKIPPED, CANCELLED). Its payload is the message id alone, or,
for a SUCCESS whose result is small JSON or GeoJSON, the result itself::

    <message id> <kind> <media type> <ttl ms> <the result's text>

so a client has it without a database read. The first channel is still rung as before, so a
client of an older version still wakes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Rung by every transition to a final state; the payload carries a small result.
OUTCOME_CHANNEL = "geotasks_outcome"
#: Postgres refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
#: The results that travel inline, as ``(kind, media type)``: text a client parses as it is.
INLINE_RESULTS = frozenset({("value", "application/json"), ("geojson", "application/geo+json")})


@dataclass(frozen=True)
class InlineResult:
    """A job's result as its SUCCESS notification carried it.

    Attributes:
      kind: ``value`` (Dramatiq's JSON encoding) or ``geojson``.
      media_type: ``application/json`` or ``application/geo+json``.
      ttl_ms: How long the result is kept after it was stored, in milliseconds.
      data: The result's bytes, as stored.
    """

    message_id: str
    kind: str
    media_type: str
    ttl_ms: int
    data: bytes


def success_payload(
    message_id: str, *, kind: str, media_type: str, ttl_ms: int, data: bytes | None
) -> str | None:
    """Return the payload announcing a SUCCESS with its result, or ``None`` when the result does
    not travel inline (too large, stored in chunks, not UTF-8 JSON or GeoJSON): then the payload
    is the message id alone."""
    if data is None or (kind, media_type) not in INLINE_RESULTS:
        return None
    head = f"{message_id} {kind} {media_type} {int(ttl_ms)} "
    if len(head.encode()) + len(data) > MAX_PAYLOAD_BYTES:
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if "\0" in text:  # Postgres text cannot hold it
        return None
    return head + text


def parse_payload(payload: str) -> InlineResult | None:
    """Return the result a payload of :data:`OUTCOME_CHANNEL` carries, ``None`` for a doorbell."""
    parts = payload.split(" ", 4)
    if len(parts) != 5:
        return None
    message_id, kind, media_type, ttl_ms, text = parts
    if (kind, media_type) not in INLINE_RESULTS or not ttl_ms.isdigit():
        return None
    return InlineResult(message_id, kind, media_type, int(ttl_ms), text.encode())
