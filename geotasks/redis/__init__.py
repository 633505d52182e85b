"""Everything that speaks to Redis, as :mod:`geotasks.postgres` does for Postgres: the broker
(:mod:`.broker`), the rate-limiter backend (:mod:`.rate_limits`) and the queues' depths
(:mod:`.queues`).

Redis is optional (``pip install 'geotasks[redis]'``): only :mod:`geotasks.broker` and
:mod:`geotasks.monitoring.queues` import these modules, and only when a ``redis://`` URL is
configured.
"""

from __future__ import annotations

try:
    import redis  # noqa: F401  (the client this package needs; the import checks it is there)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "geotasks' Redis support needs the redis client: pip install 'geotasks[redis]'"
    ) from exc
