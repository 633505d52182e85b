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

It also rings a **doorbell**. Dramatiq's Redis consumer polls: when its queue is empty it sleeps
with a back-off that grows to a random 0.5 to 1 s, so a job sent to an idle worker waits for the
end of that sleep (7 to 8 ms at the median when jobs come one after another, up to a second
after a pause). Here, sending a message also pushes to a per-queue doorbell list, and a consumer
that found its queue empty twice in a row blocks on that list (``BLPOP``, at most
``doorbell_wait_s``) instead: it wakes as soon as a message is sent. The ring goes in the send's
own round trip (a pipeline).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis.client
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, _RedisConsumer
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.common import q_name
from redis.commands.core import Script
from redis.exceptions import NoScriptError

#: Longest a consumer of an empty queue blocks on its doorbell before Dramatiq's own sleep, in
#: seconds (it also bounds how late a stopping worker notices the stop).
DOORBELL_WAIT_S = 0.5


class RedisBroker(DramatiqRedisBroker):
    """Dramatiq's :class:`~dramatiq.brokers.redis.RedisBroker`, with timely maintenance.

    Parameters:
      maintenance_interval_s: Longest time between two maintenance runs of this process
        while it issues commands (fetches, enqueues, acks do not count: Dramatiq never runs
        maintenance with an ack or a nack).
      doorbell_wait_s: Longest a consumer of an empty queue waits on its doorbell.
      **options: Passed to Dramatiq's broker (``url``, ``middleware``, ``heartbeat_timeout``
        in milliseconds, ``maintenance_chance``, ...).
    """

    def __init__(
        self,
        *,
        maintenance_interval_s: float,
        doorbell_wait_s: float = DOORBELL_WAIT_S,
        **options: Any,
    ) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.scripts["dispatch"] = _RingingDispatch(self, self.scripts["dispatch"])
        self.maintenance_interval_s = maintenance_interval_s
        self.doorbell_wait_s = doorbell_wait_s
        self._maintenance_due: dict[str, float] = {}
        self._maintenance_lock = threading.Lock()
        # The queue of the command being dispatched by this thread.
        self._dispatching = threading.local()

    def _dispatch(self, command: str) -> Callable[..., Any]:
        dispatch = super()._dispatch(command)  # type: ignore[no-untyped-call]

        def do_dispatch(queue_name: str, *args: Any) -> Any:
            self._dispatching.queue_name = queue_name
            return dispatch(queue_name, *args)

        if command == "fetch":

            def fetch_or_wait(queue_name: str, *args: Any) -> Any:
                fetched = do_dispatch(queue_name, *args)
                empty_fetches: dict[str, int] = self._dispatching.__dict__.setdefault(
                    "empty_fetches", {}
                )
                if fetched or queue_name != q_name(queue_name):
                    empty_fetches[queue_name] = 0
                    return fetched
                # The first empty fetch sleeps Dramatiq's shortest back-off (a few ms), which
                # lets a busy queue's next messages gather into one fetch; from the second on,
                # the consumer waits on the doorbell.
                empty_fetches[queue_name] = empty_fetches.get(queue_name, 0) + 1
                if empty_fetches[queue_name] >= 2 and self._wait_for_doorbell(queue_name):
                    return do_dispatch(queue_name, *args)
                return fetched

            return fetch_or_wait
        return do_dispatch

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _DoorbellConsumer

    def doorbell_key(self, queue_name: str) -> str:
        """The Redis list that rings when a message is sent to ``queue_name``."""
        return f"{self.namespace}:{q_name(queue_name)}.doorbell"

    def ring(self, pipeline: redis.client.Pipeline, queue_name: str) -> None:
        """Add the commands that ring ``queue_name``'s doorbell to ``pipeline``."""
        key = self.doorbell_key(queue_name)
        # One ring is enough to wake a consumer; the list never grows past it.
        pipeline.lpush(key, 1)
        pipeline.ltrim(key, 0, 0)

    def _wait_for_doorbell(self, queue_name: str) -> bool:
        return self.client.blpop([self.doorbell_key(queue_name)], self.doorbell_wait_s) is not None

    def _should_do_maintenance(self, command: str) -> int:
        queue_name = getattr(self._dispatching, "queue_name", None)
        if command not in MAINTENANCE_COMMAND_BLACKLIST and queue_name is not None:
            with self._maintenance_lock:
                now = time.monotonic()
                if now >= self._maintenance_due.get(queue_name, now):
                    self._maintenance_due[queue_name] = now + self.maintenance_interval_s
                    return 1
        return int(super()._should_do_maintenance(command))


class _DoorbellConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, whose sleep on an empty queue that has a doorbell stays at its
    shortest (a few ms): its fetch has waited on the doorbell already. (Dramatiq's back-off grows
    to 0.5 to 1 s, during which a message rings no one.) A delay queue keeps Dramatiq's back-off.
    """

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        self._has_doorbell = queue_name == q_name(queue_name)
        self._misses = 0
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]

    @property
    def misses(self) -> int:
        """Empty fetches in a row, as Dramatiq's back-off sees them."""
        return 0 if self._has_doorbell else self._misses

    @misses.setter
    def misses(self, value: int) -> None:
        self._misses = value


class _RingingDispatch:
    """Dramatiq's dispatch script, which runs every Redis command of its broker; an enqueue on a
    queue with a doorbell also rings it, in the same round trip (one pipeline).

    Dramatiq calls it with ``args`` = ``[command, timestamp, queue_name, ...]``.
    """

    def __init__(self, broker: RedisBroker, script: Script) -> None:
        self.broker = broker
        self.script = script

    def __call__(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        command, queue_name = args[0], args[2]
        if command != "enqueue" or queue_name != q_name(queue_name):
            return self.script(keys=keys, args=args, client=client)
        pipeline = self.broker.client.pipeline(transaction=False)
        pipeline.evalsha(self.script.sha, len(keys), *keys, *args)
        self.broker.ring(pipeline, queue_name)
        try:
            return pipeline.execute()[0]
        except NoScriptError:
            # Redis lost its scripts (restarted): the enqueue did not run; load it and run it.
            result = self.script(keys=keys, args=args)
            pipeline = self.broker.client.pipeline(transaction=False)
            self.broker.ring(pipeline, queue_name)
            pipeline.execute()
            return result
