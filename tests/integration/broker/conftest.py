"""One set of broker test bodies, run against every broker geotasks supports.

The ``broker`` fixture is built by :func:`geotasks.broker.build_broker` (with geotasks'
middleware) for Postgres, Redis and RabbitMQ in turn, as Dramatiq's own ``tests/conftest.py``
does for its brokers. Each test gets its own database, a unique queue name, and (on Redis) a
unique key namespace, so tests never see each other's messages on the shared servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dramatiq
import pytest
import redis
from dramatiq.common import dq_name, xq_name

from geotasks.broker import build_broker
from geotasks.postgres import pool as pool_module
from geotasks.postgres.broker import PostgresBroker
from geotasks.postgres.listener import close_listeners
from geotasks.postgres.pool import Database
from geotasks.settings import Settings

BROKER_KINDS = ["postgres", "redis", "rabbitmq"]

#: Heartbeat timeout of the brokers under test, seconds: short, so redelivery tests are quick.
HEARTBEAT_TIMEOUT_S = 1
#: The poison guard's limit in these tests.
MAX_DELIVERIES = 2


@dataclass
class Broker:
    """The broker under test and how to look inside it."""

    kind: str
    broker: dramatiq.Broker
    queue_name: str
    database: Database
    settings: Settings
    twins: list[dramatiq.Broker]

    def twin(self) -> dramatiq.Broker:
        """Another broker instance on the same server and queues, as another process has."""
        twin = build_broker(self.settings)
        if self.kind == "redis":
            twin.namespace = self.broker.namespace
        twin.emit_after("process_boot")
        self.twins.append(twin)
        return twin

    def dead_letters(self) -> int:
        """How many messages of the queue were dead-lettered."""
        if isinstance(self.broker, PostgresBroker):
            return self._count(
                "SELECT count(*) FROM geotasks.broker_dead_letters WHERE queue_name = %s"
            )
        if self.kind == "redis":
            return int(self.broker.client.zcard(f"{self.broker.namespace}:{self.queue_name}.XQ"))
        return int(self.broker.get_queue_message_counts(self.queue_name)[2])

    def waiting(self) -> int:
        """How many messages of the queue (delayed ones included) are waiting for a worker."""
        if isinstance(self.broker, PostgresBroker):
            return self._count(
                "SELECT count(*) FROM geotasks.broker_messages "
                "WHERE queue_name = %s AND consumer_id IS NULL"
            )
        if self.kind == "redis":
            client, namespace = self.broker.client, self.broker.namespace
            return int(
                client.llen(f"{namespace}:{self.queue_name}")
                + client.llen(f"{namespace}:{dq_name(self.queue_name)}")
            )
        return sum(self.broker.get_queue_message_counts(self.queue_name)[:2])

    def _count(self, sql: str) -> int:
        def count(cur: object) -> int:
            cur.execute(sql, (self.queue_name,))  # type: ignore[attr-defined]
            return int(cur.fetchone()[0])  # type: ignore[attr-defined]

        return self.database.transaction(count)


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def broker_url_for(kind: str, request: pytest.FixtureRequest, database_url: str) -> str:
    """The URL selecting broker ``kind`` (skipping the test when its server is absent)."""
    if kind == "postgres":
        return database_url
    return str(request.getfixturevalue(f"{kind}_url"))


@pytest.fixture
def broker(broker_kind: str, request: pytest.FixtureRequest, database_url: str) -> Iterator[Broker]:
    """A broker of each kind with geotasks' middleware, on a queue of its own."""
    url = broker_url_for(broker_kind, request, database_url)
    settings = Settings(
        database_url=database_url,
        broker_url=url,
        broker_heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S,
        max_deliveries=MAX_DELIVERIES,
    )
    built = build_broker(settings)
    if broker_kind == "redis":
        built.namespace = f"geotasks-test-{uuid.uuid4().hex[:12]}"
    built.emit_after("process_boot")
    queue_name = f"test-{uuid.uuid4().hex[:12]}"
    database = pool_module.get_database(database_url)
    under_test = Broker(broker_kind, built, queue_name, database, settings, [])
    try:
        yield under_test
    finally:
        if broker_kind == "redis":
            keys = list(built.client.scan_iter(f"{built.namespace}:*"))
            if keys:
                built.client.delete(*keys)
        elif broker_kind == "rabbitmq":
            for name in built.get_declared_queues():
                for queue in (name, dq_name(name), xq_name(name)):
                    built.channel.queue_delete(queue)
        for closing in (*under_test.twins, built):
            closing.close()
        release_process_resources(database_url)


def release_process_resources(url: str) -> None:
    """Close this process's pool and LISTEN connection on ``url`` before its database is dropped."""
    database = pool_module._databases.pop((os.getpid(), url), None)
    if database is not None:
        close_listeners(database.url)
        database.close()


@pytest.fixture
def start_worker(broker: Broker) -> Iterator[Callable[..., dramatiq.Worker]]:
    """Start in-process workers (on the broker under test unless told otherwise); all are
    stopped after the test."""
    workers: list[dramatiq.Worker] = []

    def start(on: dramatiq.Broker | None = None, **options: object) -> dramatiq.Worker:
        options.setdefault("worker_timeout", 100)
        options.setdefault("worker_threads", 2)
        worker = dramatiq.Worker(on or broker.broker, **options)
        worker.start()
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop(timeout=10_000)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A Redis key namespace of the test's own, deleted afterwards."""
    name = f"geotasks-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)
    client.close()
