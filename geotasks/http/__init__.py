"""The HTTP face of geotasks: OGC API - Processes - Part 1: Core 1.0 over the job store.

``geotasks serve`` runs :func:`create_app` under uvicorn. The package needs Starlette, uvicorn,
jsonschema and Jinja2 (``pip install 'geotasks[http]'``) and never imports fiona, shapely or
pyproj.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
