"""Running the HTTP API: ``geotasks serve``, safe by default.

It listens on loopback unless told otherwise, and refuses to listen anywhere else without
bearer tokens: submitting work costs CPU, so an open API is only ever reachable from the
machine itself (or through a reverse proxy on it).
"""

from __future__ import annotations

import ipaddress
import logging

from ..errors import ConfigurationError
from ..settings import Settings

logger = logging.getLogger(__name__)

#: Host names that always mean the machine itself.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A name that may resolve to anything (or a wildcard) is not loopback.
        return False


def check_exposure(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without bearer tokens.

    Raises:
      ConfigurationError: when ``host`` is not loopback and ``GEOTASKS_API_TOKENS`` is empty.
    """
    if is_loopback(host) or settings.api_tokens:
        return
    raise ConfigurationError(
        f"refusing to listen on {host}: beyond loopback anyone who reaches the port could "
        "submit work; set GEOTASKS_API_TOKENS (comma-separated, 16+ characters each) or listen "
        "on 127.0.0.1 behind a reverse proxy"
    )


def serve(host: str, port: int, settings: Settings, *, log_level: str = "info") -> None:
    """Run the API under uvicorn until interrupted.

    Parameters:
      host: Address to listen on.
      port: TCP port.
      settings: The configuration (database, tokens, CORS origins, limits).
      log_level: uvicorn's log level.

    Raises:
      ConfigurationError: when the address needs tokens that are not set, or no database is
        configured.
    """
    import uvicorn

    from .app import create_app

    check_exposure(host, settings)
    app = create_app(settings)
    logger.info(
        "Serving OGC API - Processes on http://%s:%d/ (bearer tokens %s)",
        host,
        port,
        "required" if settings.api_tokens else "not required: loopback only",
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # Headers beyond 16 KiB are refused before any endpoint runs.
        h11_max_incomplete_event_size=16 * 1024,
        timeout_keep_alive=5,
        server_header=False,
    )
