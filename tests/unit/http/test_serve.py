"""``geotasks serve`` listens beyond loopback only with bearer tokens."""

from __future__ import annotations

import pytest

from geotasks.errors import ConfigurationError
from geotasks.http.serve import check_exposure, is_loopback
from geotasks.settings import load_settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.10.0.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("maps.example.org", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_listening_beyond_loopback_without_tokens_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="GEOTASKS_API_TOKENS"):
        check_exposure("0.0.0.0", load_settings({}))


def test_listening_beyond_loopback_with_tokens_is_allowed() -> None:
    check_exposure("0.0.0.0", load_settings({"GEOTASKS_API_TOKENS": "x" * 32}))


def test_loopback_needs_no_token() -> None:
    check_exposure("127.0.0.1", load_settings({}))


def test_short_tokens_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"GEOTASKS_API_TOKENS": "a" * 20 + ",secret"})
    assert "item 2" in str(raised.value)
    assert "secret" not in str(raised.value)
