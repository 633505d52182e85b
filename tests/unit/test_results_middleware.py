"""The results middleware stores a result with nothing left to interrupt the thread."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import TimeLimit
from dramatiq.results.backends import StubBackend

from geotasks.middleware.results import Results


def test_the_time_limit_is_disarmed_before_the_result_is_stored() -> None:
    time_limit = TimeLimit()
    deadlines_when_storing: list[Any] = []

    class Backend(StubBackend):
        def _store(self, message_key: str, result: Any, ttl: int) -> None:
            deadlines_when_storing.append(time_limit.manager.deadlines.get(threading.get_ident()))
            super()._store(message_key, result, ttl)

    broker = StubBroker(middleware=[time_limit, Results(backend=Backend(), store_results=True)])
    results = broker.middleware[-1]

    @dramatiq.actor(broker=broker, time_limit=60_000)
    def answer() -> int:
        return 42

    message = MessageProxy(answer.message())
    time_limit.before_process_message(broker, message)
    armed = time_limit.manager.deadlines[threading.get_ident()]

    results.after_process_message(broker, message, result=42)

    assert armed is not None
    assert deadlines_when_storing == [None]
    assert results.backend.get_result(message) == 42
