"""The README is a front door (the two commands first) whose links lead somewhere, and
docs/configuration.md documents every setting."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from geotasks.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text("utf-8")
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [
        env_name(setting.name)
        for setting in fields(Settings)
        if f"| `{env_name(setting.name)}` |" not in CONFIGURATION
    ]
    assert missing == []


def test_the_configuration_table_lists_only_settings_that_exist() -> None:
    known = {env_name(setting.name) for setting in fields(Settings)}
    table_rows = [line for line in CONFIGURATION.splitlines() if line.startswith("| `GEOTASKS_")]
    documented = {row.split("`")[1] for row in table_rows}
    assert documented - known == set()


def test_the_readme_links_to_the_configuration_page() -> None:
    assert "(docs/configuration.md)" in README


def test_the_two_commands_come_first() -> None:
    first_section = README.split("\n## ")[1]
    assert first_section.startswith("Two commands")
    assert "make demo" in first_section and "make test" in first_section


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    dashes (code blocks, whose lines may start with ``#``, left out)."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    headings = re.findall(r"^#+ (.+)$", prose, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def leads_somewhere(page: Path, target: str) -> bool:
    """Whether a relative link of ``page`` names a file or folder that exists, and a heading of
    that page when it has an anchor."""
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    if not linked.exists():
        return False
    return not anchor or anchor in heading_anchors(linked.read_text("utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    relative = [t for t in LINK.findall(page.read_text("utf-8")) if not re.match(r"[a-z]+:", t)]
    broken = [target for target in relative if not leads_somewhere(page, target)]
    assert broken == []
