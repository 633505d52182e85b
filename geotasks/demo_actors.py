"""Stand-in actors for the demo and the broker tests, until the geoprocessing actors exist.

They do trivial arithmetic and log what they computed, so that a worker's log shows that each
message ran.
"""

from __future__ import annotations

import logging
import time

from .broker import setup_broker
from .errors import InputError
from .registry import MAX_DEMO_DELAY_S, REGISTRY

logger = logging.getLogger(__name__)

setup_broker()


@REGISTRY["add_numbers"].declare
def add_numbers(x: float, y: float) -> float:
    """Return ``x + y`` (and log it)."""
    total = x + y
    logger.info("add_numbers(%r, %r) = %r", x, y, total)
    return total


@REGISTRY["add_numbers_slowly"].declare
def add_numbers_slowly(x: float, y: float, delay_s: float) -> float:
    """Return ``x + y`` after ``delay_s`` seconds.

    The deployment tests stop and reload a worker while this runs: it must finish and its result
    be stored.

    Raises:
      InputError: when ``delay_s`` is negative or above :data:`MAX_DEMO_DELAY_S`.
    """
    if not 0 <= delay_s <= MAX_DEMO_DELAY_S:
        raise InputError(f"delay_s must be between 0 and {MAX_DEMO_DELAY_S} s, not {delay_s!r}")
    time.sleep(delay_s)
    total = x + y
    logger.info("add_numbers_slowly(%r, %r, %r) = %r", x, y, delay_s, total)
    return total
