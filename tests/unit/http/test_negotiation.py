"""Content negotiation: ``f`` wins over ``Accept``; browsers get HTML, everything else JSON."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from geotasks.http.negotiation import HTML, JSON, check_query, output_format
from geotasks.http.problems import Problem


def make_request(query: str = "", accept: str | None = None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": query.encode(),
            "headers": headers,
        }
    )


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", None, JSON),
        ("", "*/*", JSON),
        ("", "application/json", JSON),
        ("", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", HTML),
        ("", "application/json;q=0.5, text/html", HTML),
        ("", "text/html;q=0.2, application/json", JSON),
        ("", "text/*", HTML),
        ("f=json", "text/html", JSON),
        ("f=html", "application/json", HTML),
    ],
)
def test_the_format_follows_f_then_accept(query: str, accept: str | None, expected: str) -> None:
    # Given a request with this query and Accept header
    request = make_request(query, accept)
    # When the format is chosen
    # Then it is the expected one
    assert output_format(request) == expected


def test_an_unknown_f_is_a_400() -> None:
    with pytest.raises(Problem) as raised:
        output_format(make_request("f=xml"))
    assert raised.value.status == 400
    assert "f=json or f=html" in raised.value.detail


def test_unknown_query_parameters_are_refused_by_name() -> None:
    # Given a misspelt filter
    request = make_request("processId=echo&f=json&limit=2")
    # When the endpoint checks its parameters
    with pytest.raises(Problem) as raised:
        check_query(request, ("processID", "limit"))
    # Then the 400 names the unknown one and lists the known ones
    assert raised.value.status == 400
    assert "processId" in raised.value.detail
    assert "processID" in raised.value.detail.split("accepts")[1]


def test_known_query_parameters_pass() -> None:
    check_query(make_request("processID=echo&f=json"), ("processID",))


@pytest.mark.parametrize("value", ["%00", "echo%00", "a%0Ab", "%7F"])
def test_a_control_character_in_a_query_value_is_a_400(value: str) -> None:
    # Given a filter holding a NUL byte, a newline or DEL (schemathesis found the NUL: it
    # reached psycopg2, which refuses it, as a 500)
    request = make_request(f"processID={value}")
    # When the endpoint checks its parameters
    with pytest.raises(Problem) as raised:
        check_query(request, ("processID",))
    # Then it is refused as a bad parameter, naming it
    assert raised.value.status == 400
    assert "processID=" in raised.value.detail
