"""Dramatiq middleware for workers of a Django project."""

from __future__ import annotations

from typing import Any

from django import db
from dramatiq import Broker, Middleware


class CloseDjangoConnections(Middleware):
    """Close Django's stale database connections around each job, and all of them when a
    worker thread or process stops (as django_dramatiq's ``DbConnectionsMiddleware``).

    A worker thread lives for days; without this, a connection the database dropped, or one past
    ``CONN_MAX_AGE``, fails the next job that touches the ORM.
    """

    def _close_old_connections(self, broker: Broker, *args: Any, **kwargs: Any) -> None:
        db.close_old_connections()

    def _close_all_connections(self, broker: Broker, *args: Any, **kwargs: Any) -> None:
        db.connections.close_all()

    before_process_message = _close_old_connections
    after_process_message = _close_old_connections
    after_skip_message = _close_old_connections
    before_consumer_thread_shutdown = _close_all_connections
    before_worker_thread_shutdown = _close_all_connections
    before_worker_shutdown = _close_all_connections
