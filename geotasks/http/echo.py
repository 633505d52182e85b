"""The ``echo`` actor: OGC API - Processes' test process, which returns its inputs.

OGC's conformance suite executes a process named ``echo``; this is it. It is also the cheapest
way to check a deployment end to end (HTTP → queue → worker → results → HTTP). Its ``pause_s``
input makes it wait, reporting progress, so tests and people can watch a job run.

It is not in the default worker: a deployment that wants it loads it as an application module
(``GEOTASKS_MODULES=geotasks.http.echo``), and its worker then publishes it to the catalogue the
HTTP API reads.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from ..declaration import actor
from ..middleware.running import progress

#: How often a pausing echo reports progress, in seconds.
PROGRESS_STEP_S = 0.25


class BoundingBox(TypedDict):
    """An OGC bounding box input."""

    bbox: Annotated[list[float], Field(min_length=4, max_length=6)]
    crs: NotRequired[str]


@actor(queue_name="geo")
def echo(
    stringInput: Annotated[str, Field(max_length=10_000)],
    doubleInput: float | None = None,
    arrayInput: Annotated[list[int], Field(max_length=100)] | None = None,
    boundingBoxInput: BoundingBox | None = None,
    complexObjectInput: dict[str, Any] | None = None,
    pause_s: Annotated[float, Field(ge=0, le=60)] = 0,
) -> dict[str, Any]:
    """Return the inputs it was given (the OGC API - Processes test process).

    Parameters:
      stringInput: any text, returned as it is
      doubleInput: any number, returned as it is
      arrayInput: up to 100 integers, returned as they are
      boundingBoxInput: an OGC bounding box ({bbox: [west, south, east, north], crs}), returned
      complexObjectInput: any JSON object, returned as it is
      pause_s: seconds to wait before answering, reporting progress (for tests), 0 to 60
    """
    steps = int(pause_s / PROGRESS_STEP_S)
    for step in range(steps):
        progress(step, steps)
        time.sleep(PROGRESS_STEP_S)
    if steps:
        progress(steps, steps)
    inputs = {
        "stringInput": stringInput,
        "doubleInput": doubleInput,
        "arrayInput": arrayInput,
        "boundingBoxInput": boundingBoxInput,
        "complexObjectInput": complexObjectInput,
    }
    return {name: value for name, value in inputs.items() if value is not None}
