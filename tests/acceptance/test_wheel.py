"""What a user installs: the wheel built from a checkout (geotasks is on no public index yet).

The README's install section tells users to build a wheel and install it (issue 25, item 9); this
builds one as they would and imports it outside the checkout, where the data directory has no
default (issue 25, item 7) and every file the package reads at run time must be inside it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")


def test_the_readme_installs_from_a_built_wheel_not_from_an_index() -> None:
    commands = "\n".join(re.findall(r"```sh\n(.*?)```", README, re.S))
    assert "python3 -m build" in commands
    assert re.search(r"pip install [^\n]*geotasks-[^\n]*\.whl\[rabbitmq\]", commands)
    # A name pip would look up on an index, which has no geotasks
    assert not re.search(r"pip install[^\n]*'geotasks\[", commands)


def test_the_built_wheel_imports_and_carries_its_files(tmp_path: Path) -> None:
    # Given a wheel built from the checkout (pip builds it as `python -m build` does)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("geotasks-*-py3-none-any.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # When it is imported from elsewhere, with no GEOTASKS_* setting
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTASKS_")}
    env["PYTHONPATH"] = str(site)
    script = (
        "import geotasks, geotasks.http.app, importlib.resources as r\n"
        "from geotasks.settings import get_settings\n"
        "from geotasks.postgres.migrate import latest_version\n"
        "print(geotasks.__file__)\n"
        "print(get_settings().data_dir)\n"
        "print(latest_version())\n"
        "http = r.files('geotasks.http')\n"
        "print(all((http / p).is_file() for p in ('templates/error.html', 'static/process.js',"
        " 'static/ne_110m_land.geojson', 'static/leaflet/leaflet.js')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then the installed package is the one imported, it has no data directory by default,
    # and its SQL, templates and static files are in the wheel
    assert result.returncode == 0, result.stderr
    module, data_dir, version, packaged = result.stdout.split()
    assert module.startswith(str(site))
    assert data_dir == "None"
    assert int(version) >= 1
    assert packaged == "True"
