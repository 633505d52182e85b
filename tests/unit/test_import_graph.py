"""geotasks' modules form a hierarchy: no import cycle, not even through a function-local import."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import cycle_path, cycles, import_graph


def test_no_module_imports_itself_through_others() -> None:
    # Given every import in the package, at module level or inside a function
    graph = import_graph()

    # Then following them never leads back where it started
    found = [" → ".join(cycle_path(graph, component)) for component in cycles(graph)]
    assert found == [], "move the code to the module it belongs to, below both"


def test_the_scan_sees_function_local_and_relative_imports(tmp_path: Path) -> None:
    # Given a package whose cycles hide in a function and behind relative imports, and an
    # import that never runs (typing only)
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from .sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from .. import a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import d\n",
        "d.py": "import pkg.c\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)

    # When it is scanned
    graph = import_graph(package)

    # Then the hidden cycle is found, and the typing-only import is no edge
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    assert cycle_path(graph, ["pkg.a", "pkg.sub.b"]) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    assert graph["pkg.c"] == set()
    assert graph["pkg.d"] == {"pkg.c"}
