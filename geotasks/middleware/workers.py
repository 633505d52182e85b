"""The worker registry: every worker process records itself in Postgres, whatever the broker.

Dramatiq's brokers know nothing of the processes consuming from them (RabbitMQ and Redis do
not say who holds a message); the dashboard, ``/metrics`` and ``geotasks health`` need to know
which processes run, where, on which queues, and which ones died. Each process registers when it
boots, heart-beats every quarter of ``GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S`` (the timeout after
which the Postgres broker too counts a process as dead), and removes itself when it stops
cleanly; a row whose heartbeat is older than the timeout is a lost process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata

from dramatiq.broker import Broker, MessageProxy
from dramatiq.common import q_name
from dramatiq.middleware import Middleware
from dramatiq.worker import Worker

from ..errors import DatabaseError, DatabaseUnavailable
from ..postgres.broker import HEARTBEATS_PER_TIMEOUT
from ..postgres.workers import Registration, WorkerStore

logger = logging.getLogger(__name__)


def package_version() -> str:
    """Return the installed geotasks version (``unknown`` in a tree that was never installed)."""
    try:
        return metadata.version("geotasks")
    except metadata.PackageNotFoundError:
        return "unknown"


def registration_for(role: str, queues: tuple[str, ...], threads: int) -> Registration:
    """Return this process's registration under a new id."""
    return Registration(
        worker_id=uuid.uuid4(),
        role=role,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        parent_pid=os.getppid(),
        queues=queues,
        threads=threads,
        version=package_version(),
    )


class Presence(threading.Thread):
    """Keeps one process's row in the registry alive until :meth:`stop`, then removes it.

    A beat that fails (Postgres unreachable) is logged and tried again at the next interval: the
    process only shows as lost if it stays silent for a whole timeout.

    Parameters:
      store: The registry.
      interval_s: Seconds between heartbeats.
      describe: Returns the registration and the jobs in flight, read at every beat.
    """

    def __init__(
        self,
        store: WorkerStore,
        interval_s: float,
        describe: Callable[[], tuple[Registration, int]],
    ) -> None:
        super().__init__(name="geotasks-worker-registry", daemon=True)
        self.store = store
        self.interval_s = interval_s
        self.describe = describe
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            self.store.forget_lost()
        except DatabaseError as exc:
            logger.warning("Could not forget long-lost workers: %s", exc)
        while True:
            registration, in_flight = self.describe()
            try:
                self.store.beat(registration, in_flight)
            except DatabaseUnavailable as exc:
                # The pool logs the outage itself, once.
                logger.debug("Worker registry heartbeat failed, retrying: %s", exc)
            except DatabaseError as exc:
                logger.warning("Worker registry heartbeat failed, retrying: %s", exc)
            if self._stopped.wait(self.interval_s):
                return

    def stop(self) -> None:
        """Stop beating and remove the row: the process stopped cleanly, it is not lost."""
        self._stopped.set()
        self.join(timeout=self.store.database.connect_timeout_s + 1)
        registration, _ = self.describe()
        try:
            self.store.unregister(registration.worker_id)
        except DatabaseError as exc:
            logger.warning("Could not remove this worker from the registry: %s", exc)


class WorkerRegistry(Middleware):
    """Registers the worker process in ``geotasks.worker`` and keeps it there while it runs.

    Records; changes nothing about how messages are processed.

    Parameters:
      store: The registry.
      heartbeat_timeout_s: ``GEOTASKS_BROKER_HEARTBEAT_TIMEOUT_S``: a process silent this long
        is lost.
    """

    def __init__(self, store: WorkerStore, heartbeat_timeout_s: float) -> None:
        self.store = store
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._presence: Presence | None = None

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        """Start heart-beating; the first beat registers.

        Nothing slow happens here, not even the version lookup: Dramatiq calls the after-boot
        hooks last middleware first, so this one runs before the others' while the worker
        threads already process messages.
        """
        registration: Registration | None = None

        def describe() -> tuple[Registration, int]:
            nonlocal registration
            if registration is None:
                registration = registration_for("worker", (), worker.worker_threads)
            queues = tuple(sorted({q_name(name) for name in list(worker.consumers)}))
            with self._lock:
                in_flight = len(self._in_flight)
            return replace(registration, queues=queues), in_flight

        self._presence = Presence(
            self.store, self.heartbeat_timeout_s / HEARTBEATS_PER_TIMEOUT, describe
        )
        self._presence.start()

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        """Leave the registry: the worker's threads have finished."""
        presence, self._presence = self._presence, None
        if presence is not None:
            presence.stop()

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._in_flight.add(message.message_id)

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: object | None = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._in_flight.discard(message.message_id)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._in_flight.discard(message.message_id)
