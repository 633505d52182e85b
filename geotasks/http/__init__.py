"""The HTTP face of geotasks: OGC API - Processes - Part 1: Core 1.0 over the job store.

``geotasks serve`` runs :func:`geotasks.http.app.create_app` under uvicorn. The app needs
Starlette, uvicorn, jsonschema and Jinja2 (``pip install 'geotasks[http]'``); this package
itself imports none of them, so a worker can import :mod:`geotasks.http.echo` without a web
stack. Nothing here imports fiona, shapely or pyproj.
"""
