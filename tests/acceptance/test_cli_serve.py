"""``geotasks serve`` as a subprocess: safe by default, and serving the API."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from tests.acceptance.conftest import RunGeotasks, clean_environment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_refuses_to_listen_beyond_loopback_without_tokens(run_geotasks: RunGeotasks) -> None:
    # Given no GEOTASKS_API_TOKENS, When asked to listen on every interface
    result = run_geotasks("serve", "--host", "0.0.0.0", "--port", str(free_port()), timeout_s=30)
    # Then it refuses at once, saying what to do, before starting any database
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "GEOTASKS_API_TOKENS" in result.stderr
    assert "embedded PostgreSQL" not in result.stdout


def test_serve_answers_on_loopback(database_url: str, tmp_path: Path) -> None:
    # Given a configured database, When geotasks serve runs
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "geotasks.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_environment(GEOTASKS_DATABASE_URL=database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/conformance", headers={"Accept": "application/json"})
                response = connection.getresponse()
                body = response.read()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "geotasks serve did not answer within 30 s"
                time.sleep(0.1)
        # Then the API answers, on loopback only
        assert response.status == 200
        assert (
            "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"
            in orjson.loads(body)["conformsTo"]
        )
        assert response.getheader("server") is None
    finally:
        process.terminate()
        process.wait(timeout=10)
