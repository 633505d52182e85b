"""Dramatiq's Redis broker, with its maintenance on a clock as well as by chance.

A Redis worker keeps the messages it fetched in a per-worker "acks" set and proves it is alive
with heartbeats. When a worker process dies (SIGKILL, the OOM killer, a segfault in GDAL), its
messages go back to their queue only during *maintenance*, which Dramatiq runs inside one
command in a thousand (``maintenance_chance``), at random. On a quiet deployment that can take
many minutes, or never happen while no command is issued for the queue: a job that is neither
lost nor run.

:class:`RedisBroker` also runs maintenance with the first command a process issues for a queue
once ``maintenance_interval_s`` has passed since its last maintenance of that queue
(maintenance only ever restores the queue its command names). Idle consumers poll each of their
queues about once a second, so a dead worker's messages are back in their queue at most
``heartbeat_timeout`` plus ``maintenance_interval_s`` after its last heartbeat, on every
deployment, busy or not. Maintenance is part of the command's Lua script; with no dead worker,
it costs a sorted-set range query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker


class RedisBroker(DramatiqRedisBroker):
    """Dramatiq's :class:`~dramatiq.brokers.redis.RedisBroker`, with timely maintenance.

    Parameters:
      maintenance_interval_s: Longest time between two maintenance runs of this process
        while it issues commands (fetches, enqueues, acks do not count: Dramatiq never runs
        maintenance with an ack or a nack).
      **options: Passed to Dramatiq's broker (``url``, ``middleware``, ``heartbeat_timeout``
        in milliseconds, ``maintenance_chance``, ...).
    """

    def __init__(self, *, maintenance_interval_s: float, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.maintenance_interval_s = maintenance_interval_s
        self._maintenance_due: dict[str, float] = {}
        self._maintenance_lock = threading.Lock()
        # The queue of the command being dispatched by this thread.
        self._dispatching = threading.local()

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch = super()._dispatch(command)  # type: ignore[no-untyped-call]

        def do_dispatch(queue_name: str, *args: Any) -> Any:
            self._dispatching.queue_name = queue_name
            return dispatch(queue_name, *args)

        return do_dispatch

    def _should_do_maintenance(self, command: str) -> int:
        queue_name = getattr(self._dispatching, "queue_name", None)
        if command not in MAINTENANCE_COMMAND_BLACKLIST and queue_name is not None:
            with self._maintenance_lock:
                now = time.monotonic()
                if now >= self._maintenance_due.get(queue_name, now):
                    self._maintenance_due[queue_name] = now + self.maintenance_interval_s
                    return 1
        return int(super()._should_do_maintenance(command))
