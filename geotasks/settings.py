"""Every ``GEOTASKS_*`` environment variable, read in one place.

:func:`get_settings` reads the environment once per process and validates every value, so a bad
value is a :class:`~geotasks.errors.ConfigurationError` naming the variable at start-up, never a
traceback from deep inside a worker. Durations carry their unit in the name (``_s`` seconds,
``_ms`` milliseconds) and sizes theirs (``_bytes``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigurationError

#: Schemes accepted by ``GEOTASKS_DATABASE_URL``.
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
#: Schemes accepted by ``GEOTASKS_BROKER_URL``, each naming a broker.
BROKER_SCHEMES = POSTGRES_SCHEMES | {"redis", "rediss", "amqp", "amqps"}
#: Schemes accepted by ``GEOTASKS_RATE_LIMIT_URL``.
RATE_LIMIT_SCHEMES = POSTGRES_SCHEMES | {"redis", "rediss"}

#: Shortest bearer token accepted in ``GEOTASKS_API_TOKENS``: a guessable token protects nothing.
API_TOKEN_MIN_CHARS = 16


def checkout_data_dir(package_dir: Path) -> Path | None:
    """Return the ``sample_data`` folder of the source checkout holding ``package_dir``, if any.

    Run from a checkout (``make demo``, an editable install), the sample datasets are the
    natural default. An installed package has no such folder beside it (its parent is
    ``site-packages``), so a deployment must say where its data lives: ``None``.
    """
    root = package_dir.resolve().parent
    sample_data = root / "sample_data"
    if (root / "pyproject.toml").is_file() and sample_data.is_dir():
        return sample_data
    return None


#: ``GEOTASKS_DATA_DIR``'s default: the checkout's ``sample_data``, or none when installed.
DEFAULT_DATA_DIR = checkout_data_dir(Path(__file__).parent)


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one process.

    Each field is read from the environment variable of the same name in upper case with the
    ``GEOTASKS_`` prefix (``database_url`` ← ``GEOTASKS_DATABASE_URL``).
    """

    #: Postgres holding results, job status, rate limits and (with a ``postgresql://`` broker)
    #: the queue. ``None`` means "not configured": only the ``geotasks`` command then starts the
    #: embedded PostgreSQL; every other entry point refuses to start.
    database_url: str | None = field(
        default=None, repr=False, metadata={"schemes": POSTGRES_SCHEMES}
    )
    #: ``postgresql://…`` (geotasks' own broker), ``redis://…`` or ``amqp://…``. Defaults to
    #: ``database_url``: one Postgres serves everything.
    broker_url: str | None = field(default=None, repr=False, metadata={"schemes": BROKER_SCHEMES})
    #: Directory in which dataset names are resolved; read-only for workers. ``None`` (an
    #: installed package with no ``GEOTASKS_DATA_DIR``): workers refuse to start.
    data_dir: Path | None = DEFAULT_DATA_DIR
    #: Where geo actors spool large results and unpack chained inputs (per host).
    tmp_dir: Path = Path("/tmp/geotasks")
    #: How long a result (success or failure) is kept, in seconds.
    result_ttl_s: int = field(default=86_400, metadata={"minimum": 1})
    #: How long a finished job's status row outlives its result, in seconds: meanwhile the job
    #: reads EXPIRED; afterwards its id reads UNKNOWN, like an id never sent.
    job_retention_s: int = field(default=7 * 86_400, metadata={"minimum": 0})
    #: Results up to this size are parsed by ``job.result``; larger ones must be streamed.
    result_parse_max_bytes: int = field(default=64 * 1024 * 1024, metadata={"minimum": 1})
    #: Connections one process may hold in its pool (the LISTEN connection is extra).
    pool_max_connections: int = field(default=4, metadata={"minimum": 1})
    #: Seconds to wait for a TCP connection to Postgres.
    connect_timeout_s: int = field(default=5, metadata={"minimum": 1})
    #: Deliveries of one message before the poison guard dead-letters it.
    max_deliveries: int = field(default=5, metadata={"minimum": 1})
    #: Seconds without a heartbeat after which a worker process counts as dead: the messages it
    #: had claimed from the Postgres broker go back to their queue, the Redis broker requeues
    #: its unacked messages after the same time, and the worker registry (every broker) shows
    #: it as ``lost``.
    broker_heartbeat_timeout_s: int = field(default=60, metadata={"minimum": 1})
    #: Where rate limits are kept, shared by every worker: ``database_url`` by default, or a
    #: ``redis://…`` URL.
    rate_limit_url: str | None = field(
        default=None, repr=False, metadata={"schemes": RATE_LIMIT_SCHEMES}
    )
    #: Milliseconds added to every rate-limit period (or 1% of a longer period), so that a
    #: message starting up to half of this late after its slot (thread scheduling, the
    #: middleware that runs before the actor) still keeps the limit. The price: ``"10/s"`` runs
    #: at 10 per 1.05 s with the default.
    rate_limit_guard_ms: int = field(default=50, metadata={"minimum": 10})
    #: The longest, in milliseconds, a worker thread waits for a throttled message's start slot.
    #: A slot further away is re-enqueued to come back early by the broker's delivery delay (as
    #: measured, at most this) and waits out the rest. ``0`` never waits in a thread.
    rate_limit_hold_ms: int = 2_000
    #: Milliseconds a ``concurrency_limit`` slot stays taken after its worker stopped renewing it
    #: (killed); running messages renew theirs every third of this.
    concurrency_lease_ttl_ms: int = field(default=60_000, metadata={"minimum": 3_000})
    #: geotasks' named temporary files in ``tmp_dir`` older than this are removed when a worker
    #: starts, in seconds; longer than any job runs. Give systemd-tmpfiles the same age.
    tmp_max_age_s: int = field(default=86_400, metadata={"minimum": 60})
    #: A periodic actor's tick that starts more than this long after its slot is skipped (its
    #: job reads SKIPPED, with the reason), in seconds, unless the actor declares its own
    #: ``skip_late_s``: after an outage, stale ticks do not all run at once.
    periodic_skip_delay_s: int = field(default=60, metadata={"minimum": 1})
    #: Run a scheduler beside each worker instance: ``dramatiq geotasks.worker`` (and so every
    #: ``geotasks-worker@`` unit whose environment sets it) starts one more process that sends
    #: the periodic actors' ticks. Any number may run, each slot runs once: two or more on
    #: different hosts keep the schedules going when one dies. ``true`` or ``false``.
    worker_scheduler: bool = False
    #: How long the Postgres broker keeps a dead letter, in seconds (Dramatiq's Redis and
    #: RabbitMQ brokers keep theirs 7 days too); poison-guard counts left behind by messages
    #: that never finished are kept as long.
    dead_letter_retention_s: int = field(default=7 * 86_400, metadata={"minimum": 60})
    #: When ``delete_expired_results`` runs (results past their TTL, job statuses past their
    #: retention): a cron spec, read in UTC.
    delete_expired_results_schedule: str = field(default="*/5 * * * *", metadata={"schedule": True})
    #: When ``delete_old_broker_rows`` runs (dead letters, stale poison-guard counts).
    delete_old_broker_rows_schedule: str = field(default="7 * * * *", metadata={"schedule": True})
    #: When ``delete_old_periodic_ticks`` runs (the de-duplication records of periodic ticks).
    delete_old_periodic_ticks_schedule: str = field(
        default="17 * * * *", metadata={"schedule": True}
    )
    #: The application's modules that declare actors, comma-separated (``myapp.tasks``): every
    #: worker and scheduler imports them, so they serve the application's actors too.
    modules: tuple[str, ...] = ()
    #: Where the ``geotasks`` command keeps the embedded PostgreSQL's data directory.
    embedded_dir: Path = Path(".geotasks")
    #: Longest a geo actor may run, in seconds, before Dramatiq's time limit stops it (it fires
    #: between features: one GDAL/GEOS call is bounded by the feature and vertex limits below).
    geo_time_limit_s: int = field(default=900, metadata={"minimum": 1})
    #: Most processes that write one dataset's GeoJSON, the job's own included: a plain
    #: shapefile of at least 50,000 features a process (20,000 for buffer, simplify and
    #: measure) is split between helper processes (new Python processes of about 110 MB RSS
    #: each, started in about 0.45 s) that each render a range of its features. 1 keeps every
    #: job in its worker process.
    geo_read_processes: int = field(default=2, metadata={"minimum": 1})
    #: Most features one geo job may read.
    max_features: int = field(default=2_000_000, metadata={"minimum": 1})
    #: Most vertices in one geometry, before and after an operation.
    max_vertices: int = field(default=1_000_000, metadata={"minimum": 1})
    #: Most entries in a zipped dataset.
    max_zip_members: int = field(default=1_000, metadata={"minimum": 1})
    #: Most uncompressed bytes read out of one zipped dataset.
    max_zip_bytes: int = field(default=2 * 1024**3, metadata={"minimum": 1})
    #: Bearer tokens accepted by ``geotasks serve``, comma-separated, each at least
    #: :data:`API_TOKEN_MIN_CHARS` characters. Empty: no token is asked for, which the server
    #: allows only while it listens on loopback.
    api_tokens: tuple[str, ...] = field(
        default=(), repr=False, metadata={"min_item_chars": API_TOKEN_MIN_CHARS}
    )
    #: Origins (``https://maps.example.org``) whose web pages may call the HTTP API (CORS),
    #: comma-separated; ``*`` allows any. Empty: no cross-origin calls.
    api_cors_origins: tuple[str, ...] = ()
    #: Largest request body the HTTP API reads, in bytes (execute requests are small JSON).
    api_max_request_bytes: int = field(default=1024 * 1024, metadata={"minimum": 1})
    #: Serve Prometheus metrics at ``/metrics`` (``pip install 'geotasks[metrics]'``): ``true``
    #: or ``false``. Without ``api_tokens`` they answer loopback clients only.
    api_metrics: bool = False
    #: Longest an execute request with ``Prefer: respond-sync`` waits for its job, in seconds;
    #: a job still running then is answered asynchronously (201).
    api_sync_wait_s: int = field(default=10, metadata={"minimum": 0})

    @property
    def effective_broker_url(self) -> str | None:
        """The broker URL, falling back to the database URL."""
        return self.broker_url or self.database_url

    def require_database_url(self) -> str:
        """Return ``database_url``, or explain how to configure one.

        Raises:
          ConfigurationError: when no database is configured.
        """
        if not self.database_url:
            raise ConfigurationError(
                "GEOTASKS_DATABASE_URL is not set. Set it to a PostgreSQL URL "
                "(postgresql://user@host/db), or run through the `geotasks` command "
                "(`geotasks worker`, `geotasks demo`), which starts an embedded PostgreSQL."
            )
        return self.database_url

    def require_data_dir(self) -> Path:
        """Return ``data_dir`` if it is an existing directory, or explain how to configure it.

        Raises:
          ConfigurationError: when it is not set, does not exist or is not a directory.
        """
        if self.data_dir is None:
            raise ConfigurationError(
                "GEOTASKS_DATA_DIR is not set. Set it to the directory holding the datasets "
                "jobs may name (the same read-only mount on every worker host); only a source "
                "checkout defaults to its sample_data."
            )
        if not self.data_dir.is_dir():
            problem = "is not a directory" if self.data_dir.exists() else "does not exist"
            raise ConfigurationError(f"GEOTASKS_DATA_DIR={self.data_dir} {problem}")
        return self.data_dir


def _parse_int(name: str, raw: str, *, minimum: int) -> int:
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"true", "yes", "on", "1"}:
        return True
    if value in {"false", "no", "off", "0"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is neither true nor false")


def _parse_url(name: str, raw: str, *, schemes: frozenset[str]) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"{name} must start with one of {', '.join(sorted(s + '://' for s in schemes))}; "
            f"got {parts.scheme + '://' if parts.scheme else 'no scheme'}"
        )
    return raw.strip()


def _parse_path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigurationError(f"{name} is empty")
    return Path(raw.strip()).expanduser()


def _parse_schedule(name: str, raw: str) -> str:
    from .schedule import parse_cron

    spec = " ".join(raw.split())
    try:
        parse_cron(spec)
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None
    return spec


def _parse_list(name: str, raw: str, *, min_item_chars: int) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for index, item in enumerate(items, start=1):
        if len(item) < min_item_chars:
            # Never echo the value: these lists may hold secrets.
            raise ConfigurationError(
                f"{name}: item {index} is shorter than {min_item_chars} characters"
            )
    return items


def _parser_for(setting: Field[object]) -> Callable[[str, str], object]:
    if setting.metadata.get("schedule"):
        return _parse_schedule
    if setting.type == "tuple[str, ...]":
        return functools.partial(
            _parse_list, min_item_chars=setting.metadata.get("min_item_chars", 1)
        )
    if "schemes" in setting.metadata:
        return functools.partial(_parse_url, schemes=setting.metadata["schemes"])
    if setting.type == "int":
        return functools.partial(_parse_int, minimum=setting.metadata.get("minimum", 0))
    if setting.type in ("Path", "Path | None"):
        return _parse_path
    if setting.type == "bool":
        return _parse_bool
    raise TypeError(f"no parser for setting {setting.name} of type {setting.type}")


def env_name(field_name: str) -> str:
    """Return the environment variable that sets ``field_name``."""
    return "GEOTASKS_" + field_name.upper()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ``GEOTASKS_*`` variable.

    Parameters:
      environ: The environment to read; :data:`os.environ` by default.

    Returns:
      Settings: with defaults for every variable that is unset or empty.

    Raises:
      ConfigurationError: naming the first variable whose value is malformed.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for setting in fields(Settings):
        name = env_name(setting.name)
        raw = environ.get(name, "")
        if raw.strip():
            values[setting.name] = _parser_for(setting)(name, raw)
    return Settings(**values)  # type: ignore[arg-type]


@functools.cache
def get_settings() -> Settings:
    """Return this process's settings, read from the environment on first use."""
    return load_settings()
