"""Read a dataset by name as shapely features in lon/lat, for the user's own actors.

:func:`read_features` is the reader the built-in actors use, with every safety and limit they
have: names resolve inside ``GEOTASKS_DATA_DIR`` only, zips are read in place within their
caps, the DBF's encoding is found, coordinates come out in WGS84 lon/lat, the feature and
vertex limits apply, and ``job:<id>`` reads an earlier job's result. Where the data lives and
which limits apply come from :mod:`geotasks.geo.context`, set up by ``import geotasks``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import shapely.geometry
from shapely.geometry.base import BaseGeometry

from geotasks.geo.antimeridian import split
from geotasks.geo.context import ReadContext, current_context
from geotasks.geo.limits import GeoLimits
from geotasks.geo.options import ReadingOptions
from geotasks.geo.reading import Layer, open_layer
from geotasks.geo.streaming import lonlat_shapes, read_batches
from geotasks.geo.validity import InvalidGeometries, operation_policy


class Feature(NamedTuple):
    """One feature of a dataset.

    Attributes:
      id: The feature's id in its dataset (the record number, for a shapefile).
      geometry: A valid shapely geometry in WGS84 lon/lat (an invalid polygon is repaired and
        reported in the job's warnings), or ``None`` for a null geometry.
      properties: Its attributes by field name.
    """

    id: Any
    geometry: BaseGeometry | None
    properties: dict[str, Any]

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        """The feature as a GeoJSON-like mapping (what GeoPandas, fiona and shapely read)."""
        geometry = None if self.geometry is None else shapely.geometry.mapping(self.geometry)
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": geometry,
            "properties": self.properties,
        }


def read_features(
    name: str,
    *,
    layer: str | None = None,
    source_crs: str | None = None,
    bbox: list[float] | None = None,
    fields: list[str] | None = None,
    where: str | None = None,
    encoding: str | None = None,
    repair: bool = False,
    strict: bool = False,
    limit: int | None = None,
) -> Iterator[Feature]:
    """Yield the features of the dataset ``name``, one at a time, in lon/lat.

    Features are streamed: a dataset of millions of features is never held in memory (unless
    the caller keeps them). A feature that crosses the antimeridian is split there, as RFC 7946
    wants (a MultiPolygon with parts on both sides of ±180°); every geometry lies within
    -180..180. The arguments are checked at once; the dataset is opened when iteration starts,
    and closed when it ends or the iterator is closed.

    Parameters:
      name: A dataset name inside ``GEOTASKS_DATA_DIR`` (``parcels`` finds ``parcels.shp``,
        ``parcels/`` or ``parcels.zip``), or ``job:<id>`` for an earlier job's result.
      layer: The layer to read from a folder or zip holding several shapefiles.
      source_crs: The CRS of the coordinates (``EPSG:2154``…), overriding the ``.prj``.
      bbox: Only features intersecting ``[west, south, east, north]`` in WGS84 degrees (west
        > east crosses the antimeridian).
      fields: The properties to keep, in order; ``None`` keeps all.
      where: An OGR SQL attribute filter, such as ``"pop_est > 1000000"``.
      encoding: The DBF's encoding, overriding ``.cpg`` and the DBF header.
      repair: Make invalid polygons valid (keeping their polygonal parts); they always are,
        unless ``strict``.
      strict: Fail on an invalid polygon instead of repairing it (and reporting it in the
        job's warnings).
      limit: Stop after this many features.

    Returns:
      An iterator of :class:`Feature`.

    Raises:
      InputError: If an argument is bad (at once), or the dataset is missing, damaged or
        over a limit (while iterating): a permanent failure of the job, never retried.
      TransientError: If ``job:<id>`` names a job that has not finished yet.
    """
    options = ReadingOptions(
        layer=layer, source_crs=source_crs, bbox=bbox, fields=fields, where=where,
        encoding=encoding, repair=repair, strict=strict, limit=limit,
    )  # fmt: skip
    return _read(name, options, current_context())


def _read(name: str, options: ReadingOptions, context: ReadContext) -> Iterator[Feature]:
    with (
        context.open_source(name) as source,
        open_layer(
            source,
            data_dir=context.data_dir,
            limits=context.limits,
            tmp_dir=context.tmp_dir,
            **options.layer_options(),
        ) as opened,
    ):
        invalid = InvalidGeometries(operation_policy(options))
        for feature in continuous_features(opened, context.limits, options, invalid):
            geometry = feature.geometry
            if geometry is None:
                yield feature
            else:
                yield feature._replace(geometry=split(geometry))
        invalid.report(opened.label)


def continuous_features(
    layer: Layer, limits: GeoLimits, options: ReadingOptions, invalid: InvalidGeometries
) -> Iterator[Feature]:
    """Each feature of an open layer with a valid geometry in lon/lat, continuous across ±180.

    A geometry that crosses the antimeridian comes out whole, its longitudes passing 180 (or
    -180): the shape the operations work on in metres. :func:`~geotasks.geo.antimeridian.split`
    makes it RFC 7946.

    Parameters:
      layer: The opened layer.
      limits: Feature and vertex limits.
      options: ``limit`` applies.
      invalid: What to do with invalid polygons; counts them (the caller reports them).

    Returns:
      An iterator of :class:`Feature`.

    Raises:
      InputError: If a polygon is invalid and the policy is to fail, or the data is bad.
    """
    wrapped = not layer.source_crs.is_geographic
    for chunk in read_batches(layer, limits=limits, limit=options.limit):
        shapes = lonlat_shapes(layer.label, chunk, invalid=invalid, wrapped=wrapped)
        for fid, geometry, properties in zip(chunk.ids, shapes, chunk.properties, strict=True):
            yield Feature(fid, geometry, properties)
