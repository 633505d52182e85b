"""The queue benchmark: Celery, stock Dramatiq and geotasks' brokers side by side, in one run.

Run it from the repository root as a module (the file's name would shadow the standard library's
``queue`` module if run as a script)::

    python -m benchmarks.queue [--jobs 2000] [--round-trips 300] [--repeat 3] [--only NAME,...]

For each configuration it starts one worker process with 8 threads (Celery: the threads pool),
then measures:

- throughput: send ``--jobs`` tiny jobs, then fetch every result; jobs per second from the first
  send to the last result in hand;
- round trip: one job at a time, send → result in hand; p50 and p99.

The rows marked "submit + job.get()" go through geotasks' public client path: an actor declared
with ``@geotasks.actor`` (checked by name and type on both sides), ``geotasks.submit(name, …)``
and ``job.get()``, with the broker built from ``GEOTASKS_*`` settings as an application's is.
The other geotasks rows send with Dramatiq's ``actor.send`` and fetch with
``message.get_result()``.

Celery and stock Dramatiq store results in Redis; the geotasks rows run geotasks' whole
middleware stack: the poison guard, job status and the Postgres results store (a blocking get
woken by NOTIFY), whatever the broker. The row "PG broker + Redis results" runs the
Postgres broker and the poison guard with stock Dramatiq's middleware and Redis results: the
broker's own cost. On a machine shared with other work, ``--repeat`` runs that many rounds of
every configuration, interleaved, and keeps each figure's best run.

Servers: PostgreSQL, Redis and RabbitMQ on 127.0.0.1 (override with ``GEOTASKS_TEST_*_URL``).
A fresh database, Redis keys and RabbitMQ queues, all unique to the run, are created and deleted
afterwards.
"""

from __future__ import annotations

import sys

if not __package__:
    sys.exit("run the benchmark as a module: python -m benchmarks.queue")

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import psycopg2
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from .cpu import ms_per_job, ticks_by_role

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "GEOTASKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GEOTASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("GEOTASKS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


WORKER_THREADS = 8
#: Longest a worker may take to start and answer its first job, in seconds.
WARMUP_TIMEOUT_S = 60
RESULT_TIMEOUT_MS = 60_000
#: How long backends may keep their transaction counters before reporting them, in seconds.
STATS_FLUSH_S = 11


@dataclass(frozen=True)
class Config:
    """One row of the table: how to build the broker, on the client and in the worker."""

    name: str
    label: str
    #: "celery", "stock-redis", geotasks with "postgres" / "redis" / "rabbitmq", or
    #: "postgres-broker-only": the Postgres broker and poison guard with stock Dramatiq's
    #: middleware and Redis results, to tell the broker's cost from the rest of geotasks'.
    broker: str
    #: How the client sends and fetches: Dramatiq's ``send`` and ``message.get_result()``, or
    #: "job": ``geotasks.submit(name, …)`` and ``job.get()`` on a ``@geotasks.actor``.
    client: str = "get_result"


#: The label of a configuration measured through the public client path ends with this.
PUBLIC_SUFFIX = ", submit+job.get()"

CONFIGS = [
    Config("celery-redis", "Celery 5, Redis broker", "celery"),
    Config("dramatiq-redis", "stock Dramatiq, Redis broker", "stock-redis"),
    Config("geotasks-postgres", "geotasks, Postgres broker", "postgres"),
    Config("geotasks-postgres-job", f"geotasks, Postgres broker{PUBLIC_SUFFIX}", "postgres", "job"),
    Config("broker-postgres", "geotasks, PG broker + Redis results", "postgres-broker-only"),
    Config("geotasks-redis", "geotasks, Redis broker", "redis"),
    Config("geotasks-redis-job", f"geotasks, Redis broker{PUBLIC_SUFFIX}", "redis", "job"),
    Config("geotasks-rabbitmq", "geotasks, RabbitMQ broker", "rabbitmq"),
]


def with_database(url: str, name: str) -> str:
    scheme_host, _, _ = url.rpartition("/")
    return f"{scheme_host}/{name}"


def build(broker_kind: str, namespace: str, database_url: str) -> dramatiq.Broker:
    """Build the broker of a configuration and set it as Dramatiq's global broker.

    Stock Dramatiq stores results in Redis; geotasks brokers carry geotasks' own middleware:
    poison guard, job status and the Postgres results store.
    """
    broker: dramatiq.Broker
    redis_results = Results(backend=RedisBackend(url=REDIS_URL, namespace=f"{namespace}-results"))
    if broker_kind == "stock-redis":
        broker = RedisBroker(url=REDIS_URL, namespace=namespace)
        broker.add_middleware(redis_results)
    elif broker_kind == "postgres-broker-only":
        from geotasks.middleware.deliveries import DeliveryLimit
        from geotasks.postgres.broker import PostgresBroker
        from geotasks.postgres.pool import get_database

        broker = PostgresBroker(database=get_database(database_url))
        broker.add_middleware(DeliveryLimit(get_database(database_url)), before=AgeLimit)
        broker.add_middleware(redis_results)
    else:
        from geotasks.broker import build_broker
        from geotasks.settings import Settings

        broker_url = {
            "postgres": database_url,
            "redis": REDIS_URL,
            "rabbitmq": RABBITMQ_URL,
        }[broker_kind]
        broker = build_broker(
            Settings(
                database_url=database_url,
                broker_url=broker_url,
                tmp_dir=Path(tempfile.gettempdir()) / "geotasks-bench",
            )
        )
        if isinstance(broker, RedisBroker):
            broker.namespace = namespace
    dramatiq.set_broker(broker)
    return broker


def declare(queue_name: str) -> dramatiq.Actor[[int], int]:
    @dramatiq.actor(queue_name=queue_name, store_results=True, max_retries=0)
    def tiny(n: int) -> int:
        return n

    return tiny


def declare_public(actor_name: str, queue_name: str, broker: dramatiq.Broker | None) -> Any:
    """The same tiny actor as an application declares it: ``@geotasks.actor``.

    Without ``broker`` (the client) it is registered by name for ``geotasks.submit`` and sends
    through the broker built from the ``GEOTASKS_*`` settings.
    """
    import geotasks

    def tiny(n: int) -> int:
        return n

    return geotasks.actor(actor_name=actor_name, queue_name=queue_name, broker=broker)(tiny)


def make_celery_app(queue_name: str) -> Any:
    """Celery with Redis as broker and results store, and the same tiny task."""
    from celery import Celery

    app = Celery("geotasks-bench", broker=REDIS_URL, backend=REDIS_URL)
    app.conf.update(
        task_default_queue=queue_name,
        result_expires=600,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="tiny", shared=False)
    def tiny(n: int) -> int:
        return n

    return app


if os.environ.get("GEOTASKS_BENCH_BROKER") == "celery":
    # Loaded by the `celery` worker command.
    celery_app = make_celery_app(os.environ["GEOTASKS_BENCH_QUEUE"])
elif os.environ.get("GEOTASKS_BENCH_BROKER"):
    # Imported by the `dramatiq` worker command: configure from the environment.
    _worker_broker = build(
        os.environ["GEOTASKS_BENCH_BROKER"],
        os.environ["GEOTASKS_BENCH_NAMESPACE"],
        os.environ["GEOTASKS_BENCH_DATABASE_URL"],
    )
    if os.environ.get("GEOTASKS_BENCH_ACTOR"):
        declare_public(
            os.environ["GEOTASKS_BENCH_ACTOR"], os.environ["GEOTASKS_BENCH_QUEUE"], _worker_broker
        )
    else:
        declare(os.environ["GEOTASKS_BENCH_QUEUE"])


@dataclass
class Row:
    label: str
    jobs_per_s: float
    p50_ms: float
    p99_ms: float
    #: Transactions committed in the benchmark database per job of the throughput run (client
    #: and worker together; an autocommit statement counts as one).
    commits_per_job: float
    #: CPU milliseconds per job of the throughput run, by process: "worker" (its whole process
    #: tree), "client" (this process), "postgres" and "redis" (every server process of the
    #: machine: run it on an otherwise quiet one).
    cpu_ms_per_job: dict[str, float]


@contextmanager
def worker_process(
    config: Config, namespace: str, queue: str, database_url: str, actor_name: str
) -> Iterator[int]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "GEOTASKS_BENCH_BROKER": config.broker,
        "GEOTASKS_BENCH_NAMESPACE": namespace,
        "GEOTASKS_BENCH_QUEUE": queue,
        "GEOTASKS_BENCH_DATABASE_URL": database_url,
        "GEOTASKS_BENCH_ACTOR": actor_name,
    }
    if config.broker == "celery":
        command = [
            *("-m", "celery", "-A", "benchmarks.queue:celery_app", "worker"),
            *("--pool", "threads", "--concurrency", str(WORKER_THREADS), "--loglevel", "WARNING"),
            *("--without-heartbeat", "--without-gossip", "--without-mingle", "-Q", queue),
        ]
    else:
        command = [
            *("-m", "dramatiq", "benchmarks.queue"),
            *("--processes", "1", "--threads", str(WORKER_THREADS)),
        ]
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-{config.name}-", suffix=".log") as log:
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process.pid
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read()[-5000:])
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def best_of(label: str, runs: list[Row]) -> Row:
    """Each figure's best over ``runs`` of one configuration.

    On a machine shared with other work, the best run is the one least disturbed by it.
    """
    return Row(
        label,
        max(run.jobs_per_s for run in runs),
        min(run.p50_ms for run in runs),
        min(run.p99_ms for run in runs),
        min(run.commits_per_job for run in runs),
        # The CPU of the run with the best throughput: the least disturbed one.
        max(runs, key=lambda run: run.jobs_per_s).cpu_ms_per_job,
    )


def measure(config: Config, jobs: int, round_trips: int, database_url: str) -> Row:
    namespace = f"geotasks-bench-{uuid.uuid4().hex[:8]}"
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    actor_name = f"tiny_{uuid.uuid4().hex[:8]}" if config.client == "job" else ""
    send_and_get: Callable[[int], Callable[[], object]]
    broker: dramatiq.Broker | None = None
    if config.broker == "celery":
        task = make_celery_app(queue).tasks["tiny"]

        def send_and_get(n: int) -> Callable[[], object]:
            result = task.delay(n)
            return lambda: result.get(timeout=RESULT_TIMEOUT_MS / 1000)

    elif config.client == "job":
        broker = public_broker(config.broker, namespace, database_url)
        declare_public(actor_name, queue, None)

        def send_and_get(n: int) -> Callable[[], object]:
            import geotasks

            job = geotasks.submit(actor_name, n)
            return lambda: job.get(timeout=RESULT_TIMEOUT_MS / 1000)

    else:
        broker = build(config.broker, namespace, database_url)
        actor = declare(queue)

        def send_and_get(n: int) -> Callable[[], object]:
            message = actor.send(n)
            return lambda: message.get_result(block=True, timeout=RESULT_TIMEOUT_MS)

    try:
        with worker_process(config, namespace, queue, database_url, actor_name) as worker_pid:
            send_and_get(0)()

            commits_before = committed(database_url)
            cpu_before = ticks_by_role(worker_pid)
            started = time.perf_counter()
            pending = [send_and_get(n) for n in range(jobs)]
            for get in pending:
                get()
            jobs_per_s = jobs / (time.perf_counter() - started)
            cpu_ms = ms_per_job(cpu_before, ticks_by_role(worker_pid), jobs)
            commits_per_job = (committed(database_url) - commits_before) / jobs

            durations_ms = []
            for n in range(round_trips):
                sent_at = time.perf_counter()
                send_and_get(n)()
                durations_ms.append((time.perf_counter() - sent_at) * 1000)
    finally:
        clean_up(broker, namespace, queue)
        if actor_name:
            from geotasks.registry import DECLARED

            DECLARED.pop(actor_name, None)
    percentiles = statistics.quantiles(durations_ms, n=100)
    return Row(
        config.label,
        jobs_per_s,
        statistics.median(durations_ms),
        percentiles[98],
        commits_per_job,
        cpu_ms,
    )


def public_broker(broker_kind: str, namespace: str, database_url: str) -> dramatiq.Broker:
    """geotasks' broker as an application gets it: built from ``GEOTASKS_*`` variables."""
    from geotasks.broker import setup_broker
    from geotasks.settings import get_settings

    os.environ["GEOTASKS_DATABASE_URL"] = database_url
    os.environ["GEOTASKS_BROKER_URL"] = {"postgres": database_url, "redis": REDIS_URL}[broker_kind]
    # A directory of its own per measurement: settings that differ get a broker of their own.
    os.environ["GEOTASKS_TMP_DIR"] = str(Path(tempfile.gettempdir()) / "geotasks-bench" / namespace)
    get_settings.cache_clear()
    broker = setup_broker()
    if isinstance(broker, RedisBroker):
        broker.namespace = namespace
    return broker


def committed(database_url: str) -> int:
    """Return the benchmark database's committed transactions, less this query's own."""
    # A busy backend reports its counters at most once a second; an idle one holds the last
    # of them up to 10 s (PostgreSQL's PGSTAT_IDLE_INTERVAL): wait for them.
    time.sleep(STATS_FLUSH_S)
    conn = psycopg2.connect(database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def clean_up(broker: dramatiq.Broker | None, namespace: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = [*client.scan_iter(f"{namespace}*"), *client.scan_iter(f"{queue}*")]
    if keys:
        client.delete(*keys)
    if broker is None:
        return
    if type(broker).__name__ == "RabbitmqBroker":
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            broker.channel.queue_delete(name)
    broker.close()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database with the geotasks schema, unique to this run, dropped afterwards."""
    from geotasks.postgres.migrate import migrate
    from geotasks.postgres.pool import Database

    name = f"geotasks_bench_queue_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        url = with_database(POSTGRES_URL, name)
        database = Database(url, max_connections=1)
        migrate(database)
        database.close()
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def print_table(rows: list[Row], jobs: int, round_trips: int, repeat: int) -> None:
    print()
    print(
        f"queue benchmark, {platform.node()}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}; 1 worker process x "
        f"{WORKER_THREADS} threads; throughput over {jobs} jobs, round trip over "
        f"{round_trips}; best of {repeat} run(s); results: in Redis unless the row says "
        "geotasks (Postgres results store and job status)"
    )
    print(f"{'configuration':45} {'jobs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'PG commits/job':>15}")
    for row in rows:
        print(
            f"{row.label:45} {row.jobs_per_s:8.0f} {row.p50_ms:8.1f} {row.p99_ms:8.1f} "
            f"{row.commits_per_job:15.2f}"
        )
    print()
    print(
        "CPU ms per job of the throughput run, by process "
        "(Postgres and Redis: all of the machine's processes)"
    )
    print(
        f"{'configuration':45} {'worker':>7} {'client':>7} {'Postgres':>8} {'Redis':>7} "
        f"{'total':>7}"
    )
    for row in rows:
        cpu = row.cpu_ms_per_job
        print(
            f"{row.label:45} {cpu['worker']:7.2f} {cpu['client']:7.2f} {cpu['postgres']:8.2f} "
            f"{cpu['redis']:7.2f} {sum(cpu.values()):7.2f}"
        )
    print()
    references = [row for row in rows if not row.label.startswith("geotasks")]
    for row in rows:
        if row in references:
            continue
        ratios = ", ".join(
            f"{row.jobs_per_s / ref.jobs_per_s:.2f}x {ref.label.split(',')[0]}'s throughput, "
            f"p50 {row.p50_ms / ref.p50_ms:.2f}x"
            for ref in references
        )
        print(f"  {row.label}: {ratios}")
    by_label = {row.label: row for row in rows}
    for row in rows:
        stock = by_label.get(row.label.removesuffix(PUBLIC_SUFFIX))
        if row.label.endswith(PUBLIC_SUFFIX) and stock is not None:
            print(
                f"  {row.label} against get_result(): p50 {row.p50_ms / stock.p50_ms:.2f}x, "
                f"throughput {row.jobs_per_s / stock.jobs_per_s:.2f}x"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queue", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per configuration; the best is shown"
    )
    parser.add_argument(
        "--only",
        type=lambda value: value.split(","),
        default=[config.name for config in CONFIGS],
        help="comma-separated configurations: " + ", ".join(c.name for c in CONFIGS),
    )
    args = parser.parse_args(argv)
    configs = [config for config in CONFIGS if config.name in args.only]
    runs: dict[str, list[Row]] = {config.name: [] for config in configs}
    with fresh_database() as database_url:
        # Round after round of every configuration, each run with a fresh worker: a slow spell
        # of the machine then falls on several configurations, not on all runs of one.
        for round_number in range(1, args.repeat + 1):
            for config in configs:
                print(f"round {round_number}: measuring {config.label} ...", flush=True)
                runs[config.name].append(measure(config, args.jobs, args.round_trips, database_url))
        from geotasks.postgres.listener import close_listeners

        # Before the database is dropped, or the listener reconnects and warns.
        close_listeners()
    rows = [best_of(config.label, runs[config.name]) for config in configs]
    print_table(rows, args.jobs, args.round_trips, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
