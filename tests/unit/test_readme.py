"""The README documents every setting and the two commands."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from geotasks.settings import Settings, env_name

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [
        env_name(setting.name)
        for setting in fields(Settings)
        if f"| `{env_name(setting.name)}` |" not in README
    ]
    assert missing == []


def test_the_two_commands_come_first() -> None:
    first_section = README.split("\n## ")[1]
    assert first_section.startswith("Two commands")
    assert "make demo" in first_section and "make test" in first_section
