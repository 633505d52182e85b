"""`geotasks submit ACTOR ARGS…`: how the command line becomes the actor's arguments."""

from __future__ import annotations

import pytest

from geotasks.cli import build_parser
from geotasks.cli.submit_arguments import parse_submit_arguments
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


@pytest.mark.parametrize(
    "tokens",
    [
        # the order of issue 25: options after the actor's arguments
        ["cities", "--distance-m", "1000", "--wait", "-o", "out.geojson"],
        ["-o", "out.geojson", "cities", "--wait", "--distance-m", "1000"],
        ["cities", "-oout.geojson", "--distance-m=1000", "--wait"],
        ["--wait", "cities", "--output", "out.geojson", "--distance-m", "1000"],
    ],
)
def test_every_option_of_the_command_works_wherever_it_stands(tokens: list[str]) -> None:
    parsed = parse_submit_arguments(tokens)
    assert (parsed.args, parsed.kwargs) == (["cities"], {"distance_m": 1000})
    assert (parsed.wait, parsed.output) == (True, "out.geojson")


def test_after_a_double_dash_every_option_is_the_actor_s() -> None:
    # An actor whose parameters are named like the command's options still gets them
    parsed = parse_submit_arguments(
        ["parcels", "--wait", "--", "--timeout", "30", "--output", "x.json", "--wait", "true"]
    )
    assert parsed.args == ["parcels"]
    assert parsed.kwargs == {"timeout": 30, "output": "x.json", "wait": True}
    assert (parsed.wait, parsed.timeout_s, parsed.output) == (True, None, None)


def test_a_positional_text_that_starts_with_dashes_is_given_as_json() -> None:
    assert parse_submit_arguments(['"--wait"', "-5"]).args == ["--wait", -5]


def test_a_timeout_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(InputError, match="--timeout needs a number of seconds"):
        parse_submit_arguments(["--timeout", "soon"])


def test_an_option_without_its_value_is_refused() -> None:
    with pytest.raises(InputError, match="--precision needs a value"):
        parse_submit_arguments(["parcels", "--precision"])


def test_options_before_the_actor_name_are_the_command_s_own() -> None:
    args = build_parser().parse_args(["submit", "--wait", "-o", "out.geojson", "buffer_features"])
    assert (args.wait, args.output, args.rest) == (True, "out.geojson", ["buffer_features"])


def test_a_double_dash_right_after_the_actor_name_reaches_the_parser() -> None:
    # argparse would swallow it after a positional ACTOR: the actor's name is part of the rest
    args = build_parser().parse_args(["submit", "-o", "x", "add", "--", "--wait", "1"])
    assert args.rest == ["add", "--", "--wait", "1"]
