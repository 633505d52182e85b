"""The rate-limit benchmark: what the RateLimit middleware costs, and how close it runs to a limit.

Run it from the repository root::

    python -m benchmarks.rate_limit [--jobs 2000] [--repeat 3] [--brokers postgres,redis]

For each broker (geotasks' Postgres broker, Redis), with an in-process worker of 8 threads:

- overhead: ``--jobs`` tiny jobs drained from a full queue, jobs per second, with and without
  the middleware in the same run (interleaved, best of ``--repeat``): an actor with no limit,
  and one whose limit is never reached (so every message reserves a slot: the real cost);
- hook cost: RateLimit's two hooks timed alone, per message (no broker, no worker), which is
  what remains of the overhead once the noise of a shared machine is taken out;
- saturation: an actor limited to N per second, fed more than it may run; achieved/allowed over
  the run and the most starts seen in any sliding second (never above N). The limiter backend is
  the broker's server: Postgres with the Postgres broker, Redis with Redis.

Servers: PostgreSQL and Redis on 127.0.0.1 (override with ``GEOTASKS_TEST_*_URL``). A fresh
database is created and dropped; Redis keys are unique to the run and deleted afterwards.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run the benchmark as a module: python -m benchmarks.rate_limit")

import argparse
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message

from benchmarks.databases import bench_database
from geotasks.broker import build_broker
from geotasks.middleware.rate_limit import RateLimit
from geotasks.settings import Settings

REDIS_URL = os.environ.get("GEOTASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

WORKER_THREADS = 8
#: Limits of the saturation runs: (rate, messages), about 6 s each.
SATURATION_RUNS = [("10/s", 60), ("50/s", 300)]


@dataclass
class Recorder:
    """Start times of the messages an actor ran, and an event when all expected have run."""

    expected: int
    starts: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def record(self) -> None:
        now = time.monotonic()
        with self.lock:
            self.starts.append(now)
            if len(self.starts) >= self.expected:
                self.done.set()


def make_broker(
    kind: str, database_url: str, namespace: str, *, rate_limit: bool
) -> dramatiq.Broker:
    """geotasks' broker and middleware for ``kind``, without RateLimit if asked."""
    broker_url = database_url if kind == "postgres" else REDIS_URL
    settings = Settings(
        database_url=database_url,
        broker_url=broker_url,
        rate_limit_url=None if kind == "postgres" else REDIS_URL,
    )
    broker = build_broker(settings)
    if isinstance(broker, RedisBroker):
        broker.namespace = namespace
    if not rate_limit:
        broker.middleware[:] = [m for m in broker.middleware if not isinstance(m, RateLimit)]
    broker.emit_after("process_boot")
    return broker


def drain(
    broker: dramatiq.Broker, queue: str, jobs: int, declare: Callable[[Recorder], str]
) -> tuple[float, list[float]]:
    """Fill ``queue`` with ``jobs`` messages, then time an 8-thread worker emptying it."""
    recorder = Recorder(jobs)
    actor_name = declare(recorder)
    for n in range(jobs):
        broker.enqueue(
            Message(queue_name=queue, actor_name=actor_name, args=(n,), kwargs={}, options={})
        )
    worker = dramatiq.Worker(broker, worker_threads=WORKER_THREADS, worker_timeout=100)
    started = time.monotonic()
    worker.start()
    try:
        if not recorder.done.wait(timeout=max(120, jobs / 5)):
            raise RuntimeError(f"only {len(recorder.starts)} of {jobs} jobs ran")
        elapsed_s = time.monotonic() - started
    finally:
        worker.stop(timeout=10_000)
    return jobs / elapsed_s, recorder.starts


def declarer(broker: dramatiq.Broker, queue: str, **options: object) -> Callable[[Recorder], str]:
    def declare(recorder: Recorder) -> str:
        name = f"bench_{uuid.uuid4().hex[:8]}"

        def run(n: int) -> None:
            recorder.record()

        dramatiq.actor(run, broker=broker, actor_name=name, queue_name=queue, **options)
        return name

    return declare


def most_in_any_second(starts: list[float]) -> int:
    starts = sorted(starts)
    most, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def overhead(kind: str, database_url: str, jobs: int, repeat: int) -> list[str]:
    rows = []
    cases = [
        ("no limit on the actor", {}),
        ("limit never reached (100000/s)", {"rate_limit": "100000/s"}),
    ]
    for label, options in cases:
        best: dict[bool, float] = {True: 0.0, False: 0.0}
        for _ in range(repeat):
            for with_middleware in (False, True):
                namespace = f"bench-{uuid.uuid4().hex[:8]}"
                broker = make_broker(kind, database_url, namespace, rate_limit=with_middleware)
                try:
                    queue = namespace
                    # Without the middleware the option is declared but nothing reads it.
                    rate, _ = drain(broker, queue, jobs, declarer(broker, queue, **options))
                    best[with_middleware] = max(best[with_middleware], rate)
                finally:
                    cleanup(broker, namespace)
        ratio = best[True] / best[False]
        rows.append(f"| {kind} | {label} | {best[False]:8.0f} | {best[True]:8.0f} | {ratio:5.2f} |")
    return rows


def hook_cost(kind: str, database_url: str, calls: int) -> list[str]:
    """Time RateLimit's hooks alone, per message, without a broker round trip or a worker."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    broker = make_broker(kind, database_url, namespace, rate_limit=True)
    try:
        middleware = next(m for m in broker.middleware if isinstance(m, RateLimit))
        rows = []
        for label, options in [
            ("no limit on the actor", {}),
            ("limit never reached (100000/s)", {"rate_limit": "100000/s"}),
        ]:
            name = declarer(broker, namespace, **options)(Recorder(0))
            timings_us = []
            for n in range(calls):
                message = MessageProxy(
                    Message(queue_name=namespace, actor_name=name, args=(n,), kwargs={}, options={})
                )
                started = time.perf_counter()
                middleware.before_process_message(broker, message)
                middleware.after_process_message(broker, message, result=None)
                timings_us.append((time.perf_counter() - started) * 1e6)
            timings_us.sort()
            p50, p99 = timings_us[len(timings_us) // 2], timings_us[int(len(timings_us) * 0.99)]
            rows.append(f"| {kind} | {label} | {p50:9.1f} | {p99:9.1f} |")
        return rows
    finally:
        cleanup(broker, namespace)


def saturation(kind: str, database_url: str) -> list[str]:
    rows = []
    for rate_text, jobs in SATURATION_RUNS:
        limit = int(rate_text.partition("/")[0])
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        broker = make_broker(kind, database_url, namespace, rate_limit=True)
        try:
            _, starts = drain(
                broker, namespace, jobs, declarer(broker, namespace, rate_limit=rate_text)
            )
            middleware = next(m for m in broker.middleware if isinstance(m, RateLimit))
            lead_ms = middleware.lead_ms()
        finally:
            cleanup(broker, namespace)
        starts.sort()
        achieved = (len(starts) - 1) / (starts[-1] - starts[0])
        rows.append(
            f"| {kind} | {rate_text} | {jobs} | {achieved:6.2f}/s | {achieved / limit:5.3f} "
            f"| {most_in_any_second(starts)} | {lead_ms} |"
        )
    return rows


def cleanup(broker: dramatiq.Broker, namespace: str) -> None:
    broker.close()
    if isinstance(broker, RedisBroker):
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"*{namespace}*"))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per overhead run")
    parser.add_argument("--repeat", type=int, default=3, help="overhead runs; the best is kept")
    parser.add_argument("--brokers", default="postgres,redis", help="postgres and/or redis")
    args = parser.parse_args()
    kinds = [kind for kind in args.brokers.split(",") if kind]

    print(
        f"# RateLimit benchmark: {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {WORKER_THREADS} worker threads in-process\n"
    )
    with bench_database("rl") as database_url:
        print("Overhead (jobs/s draining a full queue, best of", args.repeat, "runs)\n")
        print("| broker | actor | without | with | with/without |")
        print("| --- | --- | ---: | ---: | ---: |")
        for kind in kinds:
            for row in overhead(kind, database_url, args.jobs, args.repeat):
                print(row, flush=True)
        print("\nRateLimit's hooks per message, alone (µs; the limit reserves a slot each time)\n")
        print("| broker/limiter | actor | p50 | p99 |")
        print("| --- | --- | ---: | ---: |")
        for kind in kinds:
            for row in hook_cost(kind, database_url, calls=500):
                print(row, flush=True)
        print("\nSaturated limit (never more than N in any sliding second)\n")
        print("| broker | limit | jobs | achieved | achieved/allowed | most in 1 s | lead ms |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for kind in kinds:
            for row in saturation(kind, database_url):
                print(row, flush=True)


if __name__ == "__main__":
    main()
