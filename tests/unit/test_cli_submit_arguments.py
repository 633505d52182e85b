"""`geotasks submit ACTOR ARGS…`: how the command line becomes the actor's arguments."""

from __future__ import annotations

import pytest

from geotasks.cli import build_parser, parse_submit_arguments
from geotasks.errors import InputError


def test_positional_keyword_and_json_values() -> None:
    parsed = parse_submit_arguments(
        ["parcels", "--distance-m", "50.5", '--fields=["name","area"]', "--repair", "true"]
    )
    assert parsed.args == ["parcels"]
    assert parsed.kwargs == {"distance_m": 50.5, "fields": ["name", "area"], "repair": True}
    assert not parsed.wait


def test_our_own_options_are_recognised_after_the_actor_arguments() -> None:
    parsed = parse_submit_arguments(["parcels", "--wait", "--timeout", "30", "--output=p.json"])
    assert (parsed.args, parsed.kwargs) == (["parcels"], {})
    assert (parsed.wait, parsed.timeout_s, parsed.output) == (True, 30.0, "p.json")


def test_text_that_is_not_json_stays_text_and_json_text_can_be_quoted() -> None:
    parsed = parse_submit_arguments(["job:1234-abcd", '"2056"', "-5", "--where", "pop > 5"])
    assert parsed.args == ["job:1234-abcd", "2056", -5]
    assert parsed.kwargs == {"where": "pop > 5"}


def test_after_a_double_dash_everything_is_positional() -> None:
    parsed = parse_submit_arguments(["--", "--wait", "--name"])
    assert parsed.args == ["--wait", "--name"]
    assert not parsed.wait


def test_an_option_without_its_value_is_refused() -> None:
    with pytest.raises(InputError, match="--precision needs a value"):
        parse_submit_arguments(["parcels", "--precision"])


def test_options_before_the_actor_name_are_the_command_s_own() -> None:
    args = build_parser().parse_args(["submit", "--wait", "-o", "out.geojson", "buffer_features"])
    assert (args.actor, args.wait, args.output, args.rest) == (
        "buffer_features",
        True,
        "out.geojson",
        [],
    )
