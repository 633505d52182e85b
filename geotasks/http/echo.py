"""The ``echo`` actor: OGC API - Processes' test process, which returns its inputs.

OGC's conformance suite executes a process named ``echo``; this is it. It is also the cheapest
way to check a deployment end to end (HTTP → queue → worker → results → HTTP). Its ``pause_s``
input makes it wait, reporting progress, so tests and people can watch a job run.

The worker module imports this after the broker is set up; the HTTP API itself never imports
it (it sends by name, through the registry).
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq
import dramatiq.broker

from ..errors import ConfigurationError
from ..middleware.job_status import progress
from ..registry import REGISTRY

#: How often a pausing echo reports progress, in seconds.
PROGRESS_STEP_S = 0.25

if dramatiq.broker.global_broker is None:
    # Declaring an actor would otherwise make Dramatiq create a RabbitMQ broker on localhost.
    raise ConfigurationError(
        "geotasks.http.echo declares an actor: import it after the broker is set up "
        "(geotasks.worker does)"
    )

_SPEC = REGISTRY.spec("echo")


@dramatiq.actor(actor_name=_SPEC.name, queue_name=_SPEC.queue_name, **_SPEC.options)
def echo(
    stringInput: str,
    doubleInput: float | None = None,
    arrayInput: list[int] | None = None,
    boundingBoxInput: dict[str, Any] | None = None,
    complexObjectInput: dict[str, Any] | None = None,
    pause_s: float = 0,
) -> dict[str, Any]:
    """Return the inputs given (those not left out), after pausing ``pause_s`` seconds."""
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
