"""What each Postgres statement on a job's path costs: wall time, Postgres CPU, client CPU.

Run from the repository root::

    python -m benchmarks.statements [--calls 3000]

Each statement is called ``--calls`` times in a row from one thread, through geotasks' own code
(the pool, the stores, the poison guard), on a fresh database. Postgres CPU is the CPU time all
``postgres`` processes of this machine used meanwhile (from ``/proc``, Linux only), so run it on
an otherwise quiet machine; ``SELECT 1`` is the floor of a round trip.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import uuid
from collections.abc import Callable

from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message

from geotasks.job_model import JobState
from geotasks.middleware.deliveries import DeliveryLimit
from geotasks.postgres.job_status import JobStore
from geotasks.postgres.pool import Database
from geotasks.postgres.results import PostgresBackend

from .cpu import postgres_cpu_ticks
from .databases import bench_database

TTL_MS = 60_000


def postgres_cpu_s_since(before: dict[int, int]) -> float:
    """CPU seconds ``postgres`` processes used since ``before`` (those still running)."""
    after = postgres_cpu_ticks()
    used = sum(ticks - before.get(pid, 0) for pid, ticks in after.items())
    return used / os.sysconf("SC_CLK_TCK")


def measure(
    label: str, calls: int, call: Callable[[int], object]
) -> tuple[str, float, float, float]:
    """Call ``call(i)`` for each i below ``calls``; return ms per call: wall, Postgres CPU,
    client CPU."""
    postgres_before, client_before = postgres_cpu_ticks(), time.process_time()
    started = time.perf_counter()
    for i in range(calls):
        call(i)
    wall_s = time.perf_counter() - started
    postgres_s = postgres_cpu_s_since(postgres_before)
    client_s = time.process_time() - client_before
    return label, 1000 * wall_s / calls, 1000 * postgres_s / calls, 1000 * client_s / calls


def run(database: Database, calls: int) -> list[tuple[str, float, float, float]]:
    store = JobStore(database)
    backend = PostgresBackend(database=database)
    guard = DeliveryLimit(database)
    ids = [str(uuid.uuid4()) for _ in range(calls)]
    sent_at_ms = int(time.time() * 1000)

    def transition(status: JobState) -> Callable[[int], object]:
        return lambda i: store.transition(
            ids[i],
            actor_name="tiny",
            queue_name="default",
            status=status,
            attempt=0,
            sent_at_ms=sent_at_ms,
            ttl_ms=TTL_MS,
        )

    broker = StubBroker()

    def count(i: int) -> object:
        message = MessageProxy(Message("default", "tiny", (), {}, {}, message_id=ids[i]))
        guard.before_process_message(broker, message)
        guard.after_process_message(broker, message)
        return None

    def store_result(i: int) -> object:
        message: Message[int] = Message("default", "tiny", (), {}, {}, message_id=ids[i])
        backend.store_result(message, i, TTL_MS)
        return None

    def select_one(i: int) -> object:
        return database.transaction(lambda cur: cur.execute("SELECT 1"), single_statement=True)

    return [
        measure("SELECT 1 (a round trip)", calls, select_one),
        measure("PENDING", calls, transition(JobState.PENDING)),
        measure("delivery count", calls, count),
        measure("STARTED", calls, transition(JobState.STARTED)),
        measure("result store (durable)", calls, store_result),
        measure("SUCCESS (durable)", calls, transition(JobState.SUCCESS)),
        measure("result read", calls, lambda i: backend.header(ids[i])),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    with bench_database("statements") as url:
        database = Database(url, max_connections=1)
        try:
            rows = run(database, args.calls)
        finally:
            database.close()
    print()
    print(
        f"statement costs, {platform.node()}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}; {args.calls} calls each, "
        "one thread, ms per call"
    )
    print(f"{'statement':28s} {'wall':>8s} {'Postgres CPU':>13s} {'client CPU':>11s}")
    for label, wall_ms, postgres_ms, client_ms in rows:
        print(f"{label:28s} {wall_ms:8.3f} {postgres_ms:13.3f} {client_ms:11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
