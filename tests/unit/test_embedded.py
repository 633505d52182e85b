"""The embedded PostgreSQL refuses data directories it would expose."""

from __future__ import annotations

from pathlib import Path

import pytest

from geotasks.embedded import check_data_dir
from geotasks.errors import EmbeddedPostgresError


@pytest.mark.parametrize("path", ["/root/project/.geotasks", "/home/alice/app/.geotasks", "/root"])
def test_root_refuses_a_data_dir_under_a_home_directory(path: str) -> None:
    with pytest.raises(EmbeddedPostgresError, match="world-readable"):
        check_data_dir(Path(path), as_root=True)


def test_root_accepts_a_data_dir_outside_home_directories(tmp_path: Path) -> None:
    assert (
        check_data_dir(tmp_path / ".geotasks", as_root=True) == (tmp_path / ".geotasks").resolve()
    )


def test_another_user_may_use_a_home_directory() -> None:
    assert check_data_dir(Path("/home/alice/app/.geotasks"), as_root=False) == Path(
        "/home/alice/app/.geotasks"
    )
