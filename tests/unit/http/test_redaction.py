"""Served messages keep no server path, but keep the API's own paths and URLs."""

from __future__ import annotations

import pytest

from geotasks.http.redaction import redact_paths


@pytest.mark.parametrize(
    ("message", "served"),
    [
        (
            "ConfigurationError: the data directory /usr/lib/python3/site-packages/sample_data "
            "does not exist",
            "ConfigurationError: the data directory …/sample_data does not exist",
        ),
        ("'/srv/data/x.shp' not recognized", "'…/x.shp' not recognized"),
        ("No such file or directory: '/tmp/geotasks/a1b2'", "No such file or directory: '…/a1b2'"),
        ('File "/opt/app/geo/names.py", line 3', 'File "…/names.py", line 3'),
        (
            "GEOTASKS_DATA_DIR=/nonexistent does not exist",
            "GEOTASKS_DATA_DIR=…/nonexistent does not exist",
        ),
        ("PosixPath('/home/geo/data')", "PosixPath('…/data')"),
    ],
)
def test_a_server_path_keeps_only_its_last_part(message: str, served: str) -> None:
    assert redact_paths(message) == served


@pytest.mark.parametrize(
    "message",
    [
        "job 1 has not finished yet; poll /jobs/1",
        "a dataset input may reference another job's results, /jobs/{id}/results",
        "rate 4/m, and/or relative/path, see http://example.org/a/b",
        "a / b",
    ],
)
def test_the_apis_own_paths_and_urls_are_kept(message: str) -> None:
    assert redact_paths(message) == message


def test_the_requests_own_path_is_kept() -> None:
    assert redact_paths("no resource at /srv/x", request_path="/srv/x") == "no resource at /srv/x"
