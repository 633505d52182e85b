"""``PublishActors``: a worker publishes the actors it serves to the catalogue when it starts.

That is how a web process that cannot import an application's code learns its actors' names,
queues and parameters (:mod:`geotasks.catalogue`): the catalogue always describes what running
workers actually serve.
"""

from __future__ import annotations

import logging
import os
import socket
from importlib import metadata
from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

from ..errors import GeotasksError
from ..postgres.catalogue import publish_actors
from ..postgres.pool import Database
from ..registry import ActorSpec

logger = logging.getLogger(__name__)


def publisher_label() -> str:
    """``host pid N geotasks X.Y.Z``: who published, as ``geotasks actors`` shows it."""
    try:
        version = metadata.version("geotasks")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{socket.gethostname()} pid {os.getpid()} geotasks {version}"


class PublishActors(Middleware):
    """Publish, at worker boot, every public geotasks actor on a queue the worker consumes.

    Parameters:
      database: Where the catalogue is.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        queues = getattr(worker, "queues", None)
        specs = [
            spec
            for actor in broker.actors.values()
            if isinstance(spec := getattr(actor, "spec", None), ActorSpec)
            and getattr(actor, "public", False)
            and (not queues or actor.queue_name in queues)
        ]
        try:
            changed = publish_actors(self.database, specs, publisher_label())
        except GeotasksError as exc:
            # The worker can run without it; clients then know the actors they knew before.
            logger.error("Could not publish this worker's actors to the catalogue: %s", exc)
            return
        if changed:
            logger.info("Published actors to the catalogue: %s", ", ".join(changed))
