"""Bounded waits for tests: every wait on another thread or process ends, with a clear failure."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(condition: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"{what or 'condition'} not met within {timeout_s} s")
        time.sleep(0.02)


def actor_published(database_url: str, actor_name: str) -> bool:
    """Whether a worker has published ``actor_name`` to the catalogue."""
    import psycopg2

    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM geotasks.actor_catalogue WHERE actor_name = %s", (actor_name,))
        found = cur.fetchone() is not None
    conn.close()
    return found


def wait_for_published_actor(database_url: str, actor_name: str, timeout_s: float = 60.0) -> None:
    """Wait until a worker has published ``actor_name`` to the catalogue (it has booted)."""
    wait_until(
        lambda: actor_published(database_url, actor_name),
        timeout_s,
        f"a worker publishing {actor_name}",
    )
