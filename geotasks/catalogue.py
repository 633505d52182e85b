"""Which actors a client may send to by name, without importing their code.

Three sources, first match wins:

1. actors declared in this process (``@geotasks.actor``): their code is here, the last word;
2. the catalogue workers publish to Postgres when they start (:mod:`geotasks.postgres.catalogue`),
   cached for :data:`CACHE_TTL_S` and read again before a name is declared unknown, so a new
   actor can be sent to as soon as a worker that serves it has started;
3. the built-in actors as this release declares them (``builtin_actors.json``, kept equal to
   :mod:`geotasks.actors` by a test), so a fresh database, or none, already knows them: a client
   can queue work before any worker has ever run.

When two worker releases publish different signatures for one name (a rolling upgrade), the
worker that started last wins the catalogue; either way a worker checks every message against
its own code before running it, and fails a message it cannot run once, with the reason.

Reading the catalogue imports nothing of fiona, shapely or pyproj.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from importlib import resources

from .postgres.catalogue import list_published
from .postgres.pool import Database, get_database
from .registry import DECLARED, ActorSpec, Registry, not_registered
from .settings import get_settings

logger = logging.getLogger(__name__)

#: How long a client trusts what it read of the published catalogue, in seconds.
CACHE_TTL_S = 10.0

#: The file holding the built-in actors' specs, beside this module.
BUILTIN_FILE = "builtin_actors.json"

_lock = threading.Lock()
#: Per database URL: when the catalogue was read (monotonic seconds), and what it held.
_published: dict[str, tuple[float, dict[str, ActorSpec]]] = {}


@functools.cache
def builtin_actors() -> Registry:
    """The actors geotasks ships, as this release declares them."""
    text = resources.files(__package__).joinpath(BUILTIN_FILE).read_text("utf-8")
    return Registry(ActorSpec.from_json(document) for document in json.loads(text))


def find_actor(name: str, *, database: Database | None = None) -> ActorSpec:
    """Return what clients know of the actor ``name``.

    Parameters:
      name: The actor's name.
      database: Where the published catalogue is; ``GEOTASKS_DATABASE_URL``'s by default, and
        none at all when no database is configured.

    Raises:
      ActorNotRegistered: with the closest known names.
      DatabaseUnavailable: when the name is unknown here and Postgres cannot be asked.
    """
    declared = DECLARED.get(name)
    if declared is not None:
        return declared.spec
    database = database if database is not None else _configured_database()
    published = _read(database, refresh=False)
    if name in published:
        return published[name]
    builtin = builtin_actors()
    if name in builtin:
        return builtin[name]
    published = _read(database, refresh=True)
    if name in published:
        return published[name]
    raise not_registered(name, {*DECLARED, *published, *builtin})


def list_actors(*, database: Database | None = None) -> list[ActorSpec]:
    """Every actor clients may send to: built-in first, in their order, then by name.

    Parameters:
      database: As for :func:`find_actor`.

    Raises:
      DatabaseUnavailable: when Postgres cannot be reached.
    """
    database = database if database is not None else _configured_database()
    actors = {name: builtin_actors()[name] for name in builtin_actors()}
    published = _read(database, refresh=False)
    for name in sorted(published):
        actors[name] = published[name]
    for name, declared in DECLARED.items():
        if declared.public:
            actors[name] = declared.spec
    return list(actors.values())


def forget_cache() -> None:
    """Forget what was read of the published catalogue (tests; after publishing)."""
    with _lock:
        _published.clear()


def _read(database: Database | None, *, refresh: bool) -> dict[str, ActorSpec]:
    if database is None:
        return {}
    now = time.monotonic()
    with _lock:
        cached = _published.get(database.url)
    if cached is not None and not refresh and now - cached[0] < CACHE_TTL_S:
        return cached[1]
    specs = {entry.spec.name: entry.spec for entry in list_published(database)}
    with _lock:
        _published[database.url] = (now, specs)
    return specs


def _configured_database() -> Database | None:
    settings = get_settings()
    if not settings.database_url:
        return None
    return get_database(
        settings.database_url,
        max_connections=settings.pool_max_connections,
        connect_timeout_s=settings.connect_timeout_s,
    )
