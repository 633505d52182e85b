"""Content negotiation (JSON or HTML) and strict query parameters.

OGC API clients choose a representation with ``?f=json`` / ``?f=html`` or the ``Accept``
header; ``f`` wins. A browser (``Accept: text/html,…``) gets HTML, everything else JSON.
Query parameters are checked against each endpoint's list: a misspelt filter
(``processId`` for ``processID``) is a 400, never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from starlette.requests import Request

from .problems import INVALID_PARAMETER, Problem

#: The two representations every resource has.
JSON = "json"
HTML = "html"


def _accept_quality(accept: str, media_type: str) -> float:
    """Return the quality ``Accept`` gives ``media_type`` (exact, ``type/*`` or ``*/*``)."""
    best = (-1, 0.0)
    major = media_type.split("/", 1)[0]
    for item in accept.split(","):
        parts = [part.strip() for part in item.split(";")]
        candidate = parts[0].lower()
        quality = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if candidate == media_type:
            specificity = 2
        elif candidate == f"{major}/*":
            specificity = 1
        elif candidate == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def output_format(request: Request) -> str:
    """Return :data:`HTML` or :data:`JSON` for this request.

    Raises:
      Problem: 400 when ``f`` names another format.
    """
    f = request.query_params.get("f")
    if f is not None:
        if f not in (JSON, HTML):
            raise Problem(
                400, f"f={f!r} is not offered; use f=json or f=html", type_=INVALID_PARAMETER
            )
        return f
    return HTML if _accept_prefers_html(request) else JSON


def wants_html(request: Request) -> bool:
    """Whether an error should be answered as an HTML page: as :func:`output_format`, except
    that an ``f`` naming no format (the error may be about it) leaves the choice to ``Accept``.
    """
    f = request.query_params.get("f")
    if f in (JSON, HTML):
        return f == HTML
    return _accept_prefers_html(request)


def _accept_prefers_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    html = _accept_quality(accept, "text/html")
    json = max(_accept_quality(accept, "application/json"), 0.0)
    return html > 0 and html > json


def check_query(request: Request, allowed: Collection[str]) -> None:
    """Reject query parameters this endpoint does not know (``f`` is always allowed), and
    values holding control characters (a NUL byte can reach no database column).

    Raises:
      Problem: 400 naming the unknown parameters, or the parameter with a control character.
    """
    unknown = sorted(set(request.query_params.keys()) - set(allowed) - {"f"})
    if unknown:
        raise Problem(
            400,
            f"unknown query parameter(s): {', '.join(unknown)}; this resource accepts "
            f"{', '.join(sorted({*allowed, 'f'}))}",
            type_=INVALID_PARAMETER,
        )
    for name, value in request.query_params.multi_items():
        if _CONTROL.search(value):
            raise Problem(400, f"{name}= contains a control character", type_=INVALID_PARAMETER)


#: C0 control characters and DEL: never part of a process id, status, date or number.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
