"""The unit-file reader that lets tests run exactly what a systemd unit runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unitfile import (
    UnitFile,
    parse_environment_file,
    parse_timespan_s,
    split_command_line,
)

TEMPLATE = """\
# a comment
; another comment
[Unit]
Description=worker for %i (%n, %N, %p, 100%%)

[Service]
EnvironmentFile=/etc/app/app.env
EnvironmentFile=-/etc/app/worker-%i.env
Environment=QUEUES=%i PROCESSES=2 "GREETING=hello world"
ExecStart=/opt/venv/bin/dramatiq app.worker \\
    --queues $QUEUES --processes ${PROCESSES}
ExecReload=/bin/kill -HUP $MAINPID
"""


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "app-worker@.service"
    path.write_text(TEMPLATE)
    return path


def test_specifiers_are_resolved_for_the_instance(template: Path) -> None:
    unit = UnitFile.read(template, "geo")

    assert unit.name == "app-worker@geo.service"
    assert unit.value("Unit", "Description") == (
        "worker for geo (app-worker@geo.service, app-worker@geo, app-worker, 100%)"
    )


def test_a_template_needs_an_instance(template: Path) -> None:
    with pytest.raises(ValueError, match="template"):
        UnitFile.read(template)


def test_environment_files_override_environment_and_optional_ones_may_be_missing(
    template: Path,
) -> None:
    # Given a unit whose Environment= says QUEUES=geo and a per-instance file that overrides it
    unit = UnitFile.read(template, "geo")
    files = {"/etc/app/app.env": "DB=postgresql://x\n", "/etc/app/worker-geo.env": "QUEUES=a b\n"}

    # When the environment is assembled, Then the file wins and quoted words stay whole
    env = unit.environment(files)
    assert env == {
        "QUEUES": "a b",
        "PROCESSES": "2",
        "GREETING": "hello world",
        "DB": "postgresql://x",
    }

    # And the optional per-instance file may be missing, but not the mandatory one
    assert unit.environment({"/etc/app/app.env": ""})["QUEUES"] == "geo"
    with pytest.raises(FileNotFoundError, match=r"/etc/app/app\.env"):
        unit.environment({})


def test_command_lines_expand_variables_like_systemd(template: Path) -> None:
    unit = UnitFile.read(template, "geo")

    # $NAME as a whole word splits at whitespace; ${NAME} is always one word
    argv = unit.command("ExecStart", {"QUEUES": "geo maintenance", "PROCESSES": "3 4"})
    assert argv == [
        "/opt/venv/bin/dramatiq",
        "app.worker",
        "--queues",
        "geo",
        "maintenance",
        "--processes",
        "3 4",
    ]
    # An unset $NAME vanishes; an unset ${NAME} is an empty word
    assert unit.command("ExecStart", {})[2:] == ["--queues", "--processes", ""]
    assert unit.command("ExecReload", {"MAINPID": "42"}) == ["/bin/kill", "-HUP", "42"]


def test_an_empty_assignment_clears_the_list(tmp_path: Path) -> None:
    path = tmp_path / "x.service"
    path.write_text("[Service]\nEnvironment=A=1\nEnvironment=\nEnvironment=B=2\n")
    assert UnitFile.read(path).environment({}) == {"B": "2"}


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("-/bin/true", ["/bin/true"]),
        ("/bin/echo '$HOME' \"a b\" $$x", ["/bin/echo", "/root", "a b", "$x"]),
        ("/bin/echo pre${HOME}post", ["/bin/echo", "pre/rootpost"]),
    ],
)
def test_quotes_prefixes_and_dollars(line: str, argv: list[str]) -> None:
    assert split_command_line(line, {"HOME": "/root"}) == argv


@pytest.mark.parametrize(
    "line", ["@/bin/true x", "+/bin/true", "!/bin/true", "true", "/bin/a $b-c"]
)
def test_what_the_reader_does_not_model_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        split_command_line(line, {})


def test_environment_files_quotes_and_comments() -> None:
    text = '# c\n; c\n\nA=1\n B = two words \nC=\'$literal\'\nD="say \\"hi\\""\n'
    assert parse_environment_file(text) == {
        "A": "1",
        "B": "two words",
        "C": "$literal",
        "D": 'say "hi"',
    }
    with pytest.raises(ValueError, match="line 1"):
        parse_environment_file("export A=1\n")


@pytest.mark.parametrize(
    ("span", "seconds"),
    [("11min", 660), ("5s", 5), ("30", 30), ("1min 30s", 90), ("600000ms", 600), ("1d", 86400)],
)
def test_time_spans(span: str, seconds: float) -> None:
    assert parse_timespan_s(span) == seconds


@pytest.mark.parametrize("span", ["", "5 parsecs", "soon"])
def test_bad_time_spans_are_refused(span: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan_s(span)
