"""Where the test servers are, and what to do when one is missing.

A test that needs a server skips when the server is unreachable locally, and fails when
``CI=true``: CI must never go green by skipping everything.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

#: True in CI, where a missing server is a failure, not a skip.
IN_CI = os.environ.get("CI", "").lower() == "true"

#: The machine's PostgreSQL (any database on it; tests create their own).
POSTGRES_URL = os.environ.get(
    "GEOTASKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GEOTASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("GEOTASKS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def reachable(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a TCP connection to ``url``'s host and port succeeds."""
    parts = urlsplit(url)
    default_ports = {"postgresql": 5432, "redis": 6379, "amqp": 5672}
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_ports[parts.scheme]),
            timeout=timeout_s,
        ):
            return True
    except OSError:
        return False


def require(name: str, url: str) -> str:
    """Return ``url`` if its server answers; otherwise skip (locally) or fail (in CI)."""
    if reachable(url):
        return url
    message = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(f"{message} (set CI=true to make this a failure)")
