"""What only the Postgres broker does: its rows, doorbell, heartbeats and dead letters."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import pytest
from dramatiq.encoder import PickleEncoder
from dramatiq.errors import QueueJoinTimeout
from dramatiq.message import get_encoder, set_encoder
from dramatiq.middleware import Middleware

from geotasks.errors import MessageEncodingError
from geotasks.middleware.job_status import JobStatus
from geotasks.postgres.broker import NOTIFY_CHANNEL, PostgresBroker, PostgresMessage
from geotasks.postgres.listener import get_listener
from geotasks.postgres.pool import Database
from tests.waiting import wait_until

from .conftest import Broker

pytestmark = pytest.mark.parametrize("broker_kind", ["postgres"])

StartWorker = Callable[..., dramatiq.Worker]


def query(database: Database, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    def run(cur: Any) -> list[tuple[Any, ...]]:
        cur.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []

    return database.transaction(run)


def postgres(broker: Broker) -> PostgresBroker:
    assert isinstance(broker.broker, PostgresBroker)
    return broker.broker


def declare_noop(broker: Broker) -> dramatiq.Actor[[], None]:
    @dramatiq.actor(broker=broker.broker, queue_name=broker.queue_name)
    def noop() -> None:
        pass

    return noop


def test_a_delayed_message_is_not_claimed_before_it_is_due(broker: Broker) -> None:
    # Given a consumer and a message delayed by 800 ms
    noop = declare_noop(broker)
    consumer = postgres(broker).consume(broker.queue_name, prefetch=5, timeout=100)
    noop.send_with_options(delay=800)

    # When the consumer asks for messages during the delay
    early = [next(consumer) for _ in range(5)]

    # Then it gets none, and the row stays unclaimed
    assert early == [None] * 5
    assert query(broker.database, "SELECT consumer_id FROM geotasks.broker_messages") == [(None,)]

    # And once due, the message is handed out, with no eta left to delay it in the worker
    deadline = time.monotonic() + 3
    message = None
    while message is None and time.monotonic() < deadline:
        message = next(consumer)
    assert isinstance(message, PostgresMessage)
    assert "eta" not in message.options
    assert message.queue_name == broker.queue_name
    consumer.ack(message)
    consumer.close()


def test_an_idle_consumer_is_woken_by_the_doorbell_within_milliseconds(broker: Broker) -> None:
    # Given an idle consumer that would otherwise wait 5 s, listening for doorbells
    noop = declare_noop(broker)
    consumer = postgres(broker).consume(broker.queue_name, prefetch=1, timeout=5000)
    assert get_listener(broker.database).wait_until_listening(NOTIFY_CHANNEL, 5)
    received: list[tuple[float, Any]] = []
    thread = threading.Thread(target=lambda: received.append((time.monotonic(), next(consumer))))
    thread.start()
    time.sleep(0.3)

    # When a message is sent
    sent_at = time.monotonic()
    noop.send()
    thread.join(timeout=6)

    # Then the consumer has it within a fraction of its poll interval
    woke_at, message = received[0]
    assert message is not None
    assert woke_at - sent_at < 0.2
    consumer.ack(message)
    consumer.close()


def test_broker_priority_hands_out_higher_priorities_first(broker: Broker) -> None:
    # Given messages sent with broker priorities 0, 5 and 1
    noop = declare_noop(broker)
    for priority in (0, 5, 1):
        noop.send_with_options(broker_priority=priority)

    # When a consumer takes them one by one
    consumer = postgres(broker).consume(broker.queue_name, prefetch=1, timeout=100)
    order = []
    for _ in range(3):
        message = next(consumer)
        assert message is not None
        order.append(message.options["broker_priority"])
        consumer.ack(message)
    consumer.close()

    # Then the highest priority came first, as with RabbitMQ's broker_priority
    assert order == [5, 1, 0]


class RowsOfCurrentMessage(Middleware):
    """Records, after every other middleware's after-hook, the rows of the message processed."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.snapshots: list[list[tuple[Any, ...]]] = []

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        self.snapshots.append(
            query(
                self.database,
                "SELECT consumer_id IS NOT NULL FROM geotasks.broker_messages "
                "WHERE message_id = %s ORDER BY delivery_id",
                message.message_id,
            )
        )


def test_a_retry_is_enqueued_in_the_transaction_that_acks_the_failed_delivery(
    broker: Broker, start_worker: StartWorker
) -> None:
    # Given an actor that fails once, and a probe that looks at the rows after Retries has
    # re-enqueued the message (it is first in the list, so its after-hook runs last)
    probe = RowsOfCurrentMessage(broker.database)
    postgres(broker).middleware.insert(0, probe)
    runs: list[int] = []

    @dramatiq.actor(
        broker=broker.broker, queue_name=broker.queue_name, min_backoff=10, max_backoff=20
    )
    def fails_once() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("transient failure")

    start_worker()

    # When a message fails once
    fails_once.send()
    wait_until(lambda: len(probe.snapshots) == 2, what="two attempts")

    # Then after the failure only the claimed original existed: its retry was written with its
    # ack, so the message was never in the queue twice nor lost in between
    assert probe.snapshots[0] == [(True,)]
    assert probe.snapshots[1] == [(True,)]
    wait_until(lambda: broker.waiting() == 0, what="queue empty")
    assert query(broker.database, "SELECT count(*) FROM geotasks.broker_messages") == [(0,)]


def insert_claimed(broker: Broker, consumer_id: uuid.UUID, redeliveries: int) -> str:
    """Insert a message held by ``consumer_id``; return its message id."""
    message_id = str(uuid.uuid4())
    query(
        broker.database,
        "INSERT INTO geotasks.broker_messages "
        "(message_id, queue_name, body, consumer_id, claimed_at, redeliveries) "
        "VALUES (%s, %s, '{}', %s, now(), %s)",
        message_id,
        broker.queue_name,
        str(consumer_id),
        redeliveries,
    )
    return message_id


def test_messages_of_a_dead_consumer_are_redelivered_or_dead_lettered_past_the_limit(
    broker: Broker,
) -> None:
    # Given a consumer whose last heartbeat is an hour old, holding two messages, one already
    # redelivered as often as allowed
    dead = uuid.uuid4()
    query(
        broker.database,
        "INSERT INTO geotasks.broker_consumers (consumer_id, hostname, pid, heartbeat_at) "
        "VALUES (%s, 'gone', 1, now() - interval '1 hour')",
        str(dead),
    )
    fresh = insert_claimed(broker, dead, redeliveries=0)
    poisoned = insert_claimed(broker, dead, redeliveries=postgres(broker).max_deliveries)

    # When a live worker process starts consuming (its first heartbeat looks for the dead)
    consumer = postgres(broker).consume(broker.queue_name, prefetch=1, timeout=100)
    consumer.close()

    # Then the first message is back in its queue, counted as a redelivery, and the other one
    # is a dead letter
    assert query(
        broker.database,
        "SELECT message_id, consumer_id, redeliveries FROM geotasks.broker_messages",
    ) == [(fresh, None, 1)]
    [(message_id, error)] = query(
        broker.database, "SELECT message_id, error FROM geotasks.broker_dead_letters"
    )
    assert message_id == poisoned
    assert f"redelivered {postgres(broker).max_deliveries + 1} times" in error
    assert query(broker.database, "SELECT count(*) FROM geotasks.broker_consumers") == [(1,)]


def test_the_ack_of_a_consumer_declared_dead_does_not_delete_the_redelivery(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a message held by a consumer that was then declared dead and the message redelivered
    noop = declare_noop(broker)
    noop.send()
    consumer = postgres(broker).consume(broker.queue_name, prefetch=1, timeout=100)
    message = next(consumer)
    assert message is not None
    # (its heartbeat thread stops, as when the process froze)
    heartbeat = postgres(broker)._heartbeat
    assert heartbeat is not None
    heartbeat.stop()
    query(broker.database, "UPDATE geotasks.broker_consumers SET heartbeat_at = 'epoch'")
    other = broker.twin()
    assert isinstance(other, PostgresBroker)
    other.consume(broker.queue_name, prefetch=1, timeout=100).close()

    # When the first consumer finally acks it
    with caplog.at_level(logging.WARNING, logger="geotasks.postgres.broker"):
        consumer.ack(message)

    # Then the ack is dropped with a warning, and the redelivered message is still there
    assert "no longer held by this worker process" in caplog.text
    assert query(
        broker.database, "SELECT consumer_id, redeliveries FROM geotasks.broker_messages"
    ) == [(None, 1)]
    consumer.close()


def test_claims_the_process_does_not_know_about_are_released(broker: Broker) -> None:
    # Given a consuming process, and a row claimed under its id a minute ago that it never
    # received (the reply to its claim was lost with its connection)
    broker_ = postgres(broker)
    broker_.consume(broker.queue_name, prefetch=1, timeout=100).close()
    assert broker_.consumer_id is not None
    insert_claimed(broker, broker_.consumer_id, redeliveries=0)
    query(
        broker.database,
        "UPDATE geotasks.broker_messages SET claimed_at = now() - interval '1 min'",
    )

    # When its heartbeat runs, Then the row goes back to the queue
    wait_until(lambda: broker.waiting() == 1, what="unknown claim released")


def test_close_releases_prefetched_messages_and_hands_back_started_ones(broker: Broker) -> None:
    # Given a consumer that prefetched three messages and started one
    noop = declare_noop(broker)
    for _ in range(3):
        noop.send()
    consumer = postgres(broker).consume(broker.queue_name, prefetch=3, timeout=100)
    started = next(consumer)
    assert started is not None

    # When the consumer and then the broker are closed, as on worker shutdown
    consumer.close()
    postgres(broker).close()

    # Then the two unstarted messages are back as they were, the started one as a redelivery,
    # and the process no longer counts as a consumer
    assert sorted(
        query(broker.database, "SELECT consumer_id, redeliveries FROM geotasks.broker_messages")
    ) == [(None, 0), (None, 0), (None, 1)]
    assert query(broker.database, "SELECT count(*) FROM geotasks.broker_consumers") == [(0,)]


def test_requeue_puts_unstarted_messages_back_without_counting_a_redelivery(
    broker: Broker,
) -> None:
    # Given a message handed to a worker that never started it
    noop = declare_noop(broker)
    noop.send()
    consumer = postgres(broker).consume(broker.queue_name, prefetch=1, timeout=100)
    message = next(consumer)
    assert message is not None

    # When the worker stops and requeues it
    consumer.requeue([message])

    # Then it is waiting again, not counted as a redelivery
    assert query(
        broker.database, "SELECT consumer_id, redeliveries FROM geotasks.broker_messages"
    ) == [(None, 0)]
    consumer.close()


def test_join_waits_until_the_queue_is_empty(broker: Broker, start_worker: StartWorker) -> None:
    # Given a message and no worker
    noop = declare_noop(broker)
    noop.send()

    # Then join times out while it waits
    with pytest.raises(QueueJoinTimeout):
        postgres(broker).join(broker.queue_name, timeout=200)

    # And returns once a worker processed it
    start_worker()
    postgres(broker).join(broker.queue_name, timeout=5000)
    assert postgres(broker).queue_size(broker.queue_name) == 0


def test_a_message_whose_encoding_is_not_text_is_refused(broker: Broker) -> None:
    # Given Dramatiq's pickle encoder
    noop = declare_noop(broker)
    previous = get_encoder()
    set_encoder(PickleEncoder())
    try:
        # When a message is sent, Then it is refused with a clear error
        with pytest.raises(MessageEncodingError, match="JSON encoder"):
            noop.send()
    finally:
        set_encoder(previous)


def test_pending_is_committed_with_the_enqueue_and_in_its_round_trip(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the Postgres broker with geotasks' middleware, and a record of the status writes
    # that JobStatus sends on their own
    noop = declare_noop(broker)
    job_status = next(m for m in broker.broker.middleware if isinstance(m, JobStatus))
    own_writes: list[str] = []
    transition = job_status.store.transition

    def recording(message_id: str, **kwargs: Any) -> Any:
        own_writes.append(str(kwargs["status"]))
        return transition(message_id, **kwargs)

    monkeypatch.setattr(job_status.store, "transition", recording)

    # When a message is sent, and another one with a delay
    sent = noop.send()
    delayed = noop.send_with_options(delay=60_000)

    # Then each is on its queue and PENDING (the delayed one with its due time), recorded by
    # the enqueue's own statement
    assert own_writes == []
    for message in (sent, delayed):
        [(status, queued)] = query(
            broker.database,
            "SELECT j.status, (SELECT count(*) FROM geotasks.broker_messages m"
            " WHERE m.message_id = j.message_id) FROM geotasks.job j WHERE j.message_id = %s",
            message.message_id,
        )
        assert (status, queued) == ("PENDING", 1)
    [(next_at,)] = query(
        broker.database,
        "SELECT next_at FROM geotasks.job WHERE message_id = %s",
        delayed.message_id,
    )
    assert next_at is not None
