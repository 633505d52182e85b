"""Warnings a running job leaves for its client, next to its status.

A job that succeeds may still have something to say: invalid geometries it kept as they were,
a ``.prj`` it could not read. :func:`warn` records it on the running job, where the client reads
it as ``job.info().warnings`` (``"warnings"`` in ``GET /jobs/{id}`` and ``geotasks status``).
This module imports nothing of geotasks, so the geo code (which knows nothing of Dramatiq or
Postgres) can call it; the job status middleware installs the recorder for the job it runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Receives each warning of the job this thread runs.
Recorder = Callable[[dict[str, Any]], None]

_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "geotasks_job_warnings", default=None
)


def warn(message: str, **details: Any) -> None:
    """Record a warning on the job this thread runs; outside a worker, do nothing.

    Logging stays the caller's business (with its own logger): this only tells the client.

    Parameters:
      message: One sentence for a person, such as ``"parcels: 3 invalid geometries kept"``.
      details: JSON values a program can read, such as ``count=3, first_ids=[4, 9, 12]``.
    """
    recorder = _recorder.get()
    if recorder is not None:
        recorder({"message": message, **details})


def set_recorder(recorder: Recorder | None) -> None:
    """Install (or, with ``None``, remove) the recorder of this thread's job."""
    _recorder.set(recorder)


@contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    """Collect the warnings given meanwhile in a list (a direct call, a helper process, a test).

    Returns:
      A context manager yielding the list the warnings are appended to.
    """
    collected: list[dict[str, Any]] = []
    token = _recorder.set(collected.append)
    try:
        yield collected
    finally:
        _recorder.reset(token)
