"""Stand-in actors for the demo and the deployment tests: trivial arithmetic, logged.

Not in the default worker: the demo and the tests that need them load them with
``GEOTASKS_MODULES=geotasks.demo_actors``, as an application loads its own.
"""

from __future__ import annotations

import logging
import time

from .declaration import actor
from .errors import InputError

logger = logging.getLogger(__name__)

#: Longest delay ``add_numbers_slowly`` accepts, in seconds.
MAX_DEMO_DELAY_S = 60


@actor(max_retries=0)
def add_numbers(x: float, y: float) -> float:
    """Add two numbers: the demo's stand-in for real work.

    Parameters:
      x: a number
      y: another number
    """
    total = x + y
    logger.info("add_numbers(%r, %r) = %r", x, y, total)
    return total


@actor(max_retries=0)
def add_numbers_slowly(x: float, y: float, delay_s: float) -> float:
    """Add two numbers after a delay: the demo's stand-in for a long job.

    The deployment tests stop and reload a worker while this runs: it must finish and its result
    be stored.

    Parameters:
      x: a number
      y: another number
      delay_s: seconds to wait before answering

    Raises:
      InputError: when ``delay_s`` is negative or above :data:`MAX_DEMO_DELAY_S`.
    """
    if not 0 <= delay_s <= MAX_DEMO_DELAY_S:
        raise InputError(f"delay_s must be between 0 and {MAX_DEMO_DELAY_S} s, not {delay_s!r}")
    time.sleep(delay_s)
    total = x + y
    logger.info("add_numbers_slowly(%r, %r, %r) = %r", x, y, delay_s, total)
    return total
