"""The child process of the fuzz test: converts the shapefiles it is told to, one at a time.

It reads one JSON request a line on stdin (``{"data_dir": ..., "name": ..., "tmp_dir": ...}``)
and answers one JSON line: ``{"outcome": "result" | "input_error" | "error", ...}``. GDAL and
logging may write to stdout, so answers go to a private copy of the original stdout and fd 1
is pointed at stderr.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson

#: Address space the child may use, in bytes: a mutated length field asking for gigabytes
#: fails with MemoryError (a finding) instead of swapping a shared machine to death.
MEMORY_LIMIT_BYTES = 3 * 1024**3

LIMITS = GeoLimits()


def convert(request: dict[str, Any]) -> dict[str, Any]:
    """Run one case; return its outcome."""
    try:
        result = shapefile_to_geojson(
            request["name"],
            data_dir=Path(request["data_dir"]),
            limits=LIMITS,
            tmp_dir=Path(request["tmp_dir"]),
        )
    except InputError as exc:
        return {"outcome": "input_error", "message": str(exc)}
    except Exception as exc:
        return {"outcome": "error", "type": type(exc).__qualname__, "trace": traceback.format_exc()}
    try:
        features = len(result.to_dict()["features"])
    except Exception as exc:
        return {
            "outcome": "error",
            "type": f"unreadable result: {type(exc).__qualname__}",
            "trace": traceback.format_exc(),
        }
    finally:
        result.close()
    return {"outcome": "result", "features": features}


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    answers.write(json.dumps({"outcome": "ready"}) + "\n")
    for line in sys.stdin:
        answers.write(json.dumps(convert(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
