"""The actor of :mod:`benchmarks.features`' worker run, loaded by the worker through
``GEOTASKS_MODULES=benchmarks.feature_actors``: a user's actor that yields point features."""

from __future__ import annotations

from collections.abc import Iterator

import geotasks
from benchmarks.features import features
from geotasks.geo import Feature

#: Time limit of one run, in milliseconds: a million features through a busy machine.
TIME_LIMIT_MS = 30 * 60 * 1000


@geotasks.actor(time_limit=TIME_LIMIT_MS, max_retries=0)
def point_features(count: int) -> Iterator[Feature]:
    """Yield ``count`` point features, the benchmark's points."""
    return features(count)
