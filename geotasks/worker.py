"""The module the worker commands load: ``dramatiq geotasks.worker``, ``periodiq geotasks.worker``.

It builds the broker from the ``GEOTASKS_*`` settings (failing with a clear message when no
database is configured) and imports every module that declares actors.
"""

from __future__ import annotations

from .broker import setup_broker

broker = setup_broker()

from . import actors, demo_actors  # noqa: E402, F401  (declare actors on the broker above)
from .http import echo  # noqa: E402, F401  (OGC API's echo test process)
