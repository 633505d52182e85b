"""Stand-in actors for the demo and the broker tests, until the geoprocessing actors exist.

They do trivial arithmetic and log what they computed, so that a worker's log shows that each
message ran.
"""

from __future__ import annotations

import logging

from .broker import setup_broker
from .registry import REGISTRY

logger = logging.getLogger(__name__)

setup_broker()


@REGISTRY["add_numbers"].declare
def add_numbers(x: float, y: float) -> float:
    """Return ``x + y`` (and log it)."""
    total = x + y
    logger.info("add_numbers(%r, %r) = %r", x, y, total)
    return total
