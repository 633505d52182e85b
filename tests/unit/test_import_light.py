"""`import geotasks` is what a web application pays: never fiona, shapely or pyproj."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("fiona", "shapely", "pyproj", "osgeo")


def test_importing_the_client_api_loads_no_geo_library() -> None:
    # Given a fresh interpreter, when it imports the package and its client API
    code = (
        "import json, sys, geotasks, geotasks.jobs, geotasks.registry, geotasks.geo.result;"
        "import geotasks.geo, geotasks.geo.options, geotasks.datasets;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout

    # Then none of the geo libraries was imported
    modules = json.loads(output)
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    assert "geotasks.jobs" in modules
