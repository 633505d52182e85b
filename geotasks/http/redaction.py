"""Server paths out of every text the HTTP API serves.

Error messages are written by workers for their operators: a GDAL error names the file it could
not read, a missing directory is named in full, a traceback lists source files. Over HTTP such a
path tells anyone with a job id how the servers are laid out (where the package is installed,
where the data is mounted), so every absolute path in a served message keeps only its last
component: ``/srv/geo/data/parcels.shp`` reads ``…/parcels.shp``. The API's own URL paths
(``poll /jobs/{id}``) are kept, and so is the request's own path (``no resource at /x``).
"""

from __future__ import annotations

import re

#: First segments of the API's own URL paths, which messages may name (``poll /jobs/{id}``).
API_PATH_ROOTS = frozenset(
    {"jobs", "processes", "conformance", "openapi.json", "api", "static", "health"}
)

#: An absolute POSIX path: a ``/`` not inside a word, URL or relative path, and what follows up
#: to a space, quote, bracket or punctuation that ends a path in prose.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:\\}-])/[^\s'\"`<>|,;:()\[\]{}]*")


def redact_paths(text: str, *, request_path: str | None = None) -> str:
    """Return ``text`` with every absolute server path cut to its last component.

    Parameters:
      text: A message about to be served (a problem's detail, a job's error).
      request_path: The path of the request answered, which the client knows already.

    Returns:
      str: the same text, each absolute path but the API's own reduced to ``…/<last part>``.
    """

    def redact_one(match: re.Match[str]) -> str:
        path = match.group(0)
        segments = [segment for segment in path.split("/") if segment]
        if not segments or segments[0] in API_PATH_ROOTS or path == request_path:
            return path
        return "…/" + segments[-1]

    return _ABSOLUTE_PATH.sub(redact_one, text)
