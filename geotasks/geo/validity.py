"""What to do with invalid polygons (OGC rules), and the report of those found.

Published data is often slightly invalid (a ring touching itself after rounding, a bow-tie),
and every GIS tool converts it as it is. So by default a conversion keeps an invalid polygon
unchanged and reports it: the count and the first few ids, in the log and in the job's
warnings (:mod:`geotasks.job_warnings`). ``repair=True`` makes them valid instead, and
``strict=True`` fails on the first one. Operations (buffer, clip…) and the features read for
the user's actors need valid input: they repair what they read, and report it the same way,
unless ``strict=True``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from geotasks.errors import InputError
from geotasks.geo.options import ReadingOptions
from geotasks.job_warnings import warn

logger = logging.getLogger(__name__)

#: Ids of invalid features named in the report (the count covers them all).
MAX_REPORTED_IDS = 5


class InvalidPolicy(enum.Enum):
    """What happens to an invalid polygon."""

    KEEP = "keep"
    REPAIR = "repair"
    FAIL = "fail"


def invalid_policy(reading: ReadingOptions) -> InvalidPolicy:
    """The policy of a conversion: what the ``repair`` and ``strict`` options ask for."""
    if reading.repair:
        return InvalidPolicy.REPAIR
    return InvalidPolicy.FAIL if reading.strict else InvalidPolicy.KEEP


def operation_policy(reading: ReadingOptions) -> InvalidPolicy:
    """The policy of an operation, which needs valid input: repair, unless ``strict``."""
    return InvalidPolicy.FAIL if reading.strict else InvalidPolicy.REPAIR


@dataclass
class InvalidGeometries:
    """The invalid polygons met while reading one layer, and what to do with them.

    Parameters:
      policy: Keep, repair, or fail.
      count: How many were found.
      first: ``(feature id, GEOS's reason)`` of the first :data:`MAX_REPORTED_IDS`.
    """

    policy: InvalidPolicy
    count: int = 0
    first: list[tuple[Any, str]] = field(default_factory=list)

    @property
    def repair(self) -> bool:
        """Whether invalid polygons are made valid."""
        return self.policy is InvalidPolicy.REPAIR

    def found(self, label: str, fid: Any, reason: str) -> None:
        """Count one invalid polygon.

        Raises:
          InputError: If the policy is to fail.
        """
        if self.policy is InvalidPolicy.FAIL:
            raise InputError(
                f"{label}: feature {fid} has an invalid polygon ({reason}); fix the data, pass "
                "repair=True to make it valid, or leave strict= false to keep it as it is"
            )
        self.count += 1
        if len(self.first) < MAX_REPORTED_IDS:
            self.first.append((fid, reason))

    def merge(self, other: InvalidGeometries) -> None:
        """Add what another process found in a later range of the same layer."""
        self.count += other.count
        self.first.extend(other.first[: MAX_REPORTED_IDS - len(self.first)])

    def report(self, label: str) -> None:
        """Log a warning and tell the job's client, if any invalid polygon was found."""
        if not self.count:
            return
        done = "made valid" if self.repair else "kept as they are"
        ids = [fid for fid, _reason in self.first]
        more = ", …" if self.count > len(ids) else ""
        message = (
            f"{label}: {self.count} invalid polygon(s) {done} (feature ids "
            f"{', '.join(map(str, ids))}{more}; first reason: {self.first[0][1]})"
        )
        logger.warning("%s", message)
        warn(
            message,
            kind="invalid_geometries",
            dataset=label,
            count=self.count,
            first_ids=ids,
            repaired=self.repair,
        )


def valid_on_grid(geometry: BaseGeometry | None, precision: int) -> BaseGeometry | None:
    """An operation's result as it will be written: on the grid of ``precision`` decimals, valid.

    Rounding to the output's decimals moves vertices by up to half a unit of the last place,
    which can make a valid polygon invalid (two rings of Antarctica's 50 km buffer touched once
    rounded to 7 decimals; a sliver of Russia split at ±180° collapsed to a line). GEOS snaps
    to the grid keeping the result valid (``shapely.set_precision``), so the rounding the
    writer then does changes nothing.

    Parameters:
      geometry: The result in lon/lat, or ``None``.
      precision: Decimal places the coordinates are written with.

    Returns:
      The snapped geometry, or ``None`` if nothing is left of it.
    """
    if geometry is None or geometry.is_empty:
        return None
    snapped: BaseGeometry = shapely.set_precision(geometry, 10.0**-precision)
    return None if snapped.is_empty else snapped
