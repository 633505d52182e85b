"""Pure geoprocessing: open datasets safely by name, stream features, write RFC 7946 GeoJSON.

This package knows fiona, shapely, pyproj and orjson, and nothing of Dramatiq or Postgres. Its
``__init__`` imports nothing on purpose: :mod:`geotasks.geo.result` (the results contract) must
stay importable by a web application that never pays for GDAL. Import the heavy modules
explicitly where they are used::

    from geotasks.geo.operations import shapefile_to_geojson
    from geotasks.geo.result import GeoJSONResult
"""
