"""Open a dataset and stream its features with fiona, inside the limits.

A source is a dataset *name* (``str``), resolved safely inside the data directory, or a
trusted ``pathlib.Path`` to a local GeoJSON or shapefile that the calling layer made itself
(the result of an earlier job). A ``str`` is never treated as a path.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fiona
from fiona._err import CPLE_BaseError
from fiona.errors import FionaError

from geotasks.errors import InputError
from geotasks.geo.archive import open_zip_layer
from geotasks.geo.bbox import source_mask
from geotasks.geo.crs import SourceCRS, resolve_source_crs
from geotasks.geo.encoding import resolve_encoding
from geotasks.geo.limits import GeoLimits
from geotasks.geo.names import DatasetKind, resolve_dataset
from geotasks.geo.options import LonLatBox, check_fields, check_layer, check_where, parse_bbox
from geotasks.geo.shapefile import ShapefileInfo, inspect_shapefile, inspect_zip_shapefile

logger = logging.getLogger(__name__)

#: GDAL drivers allowed for a trusted ``Path`` source.
PATH_DRIVERS = ("ESRI Shapefile", "GeoJSON", "GeoJSONSeq")

Source = str | Path


@dataclass(frozen=True)
class LayerFile:
    """What opens a layer's file again, in this process or another: a GDAL path and options.

    Parameters:
      gdal_path: The path GDAL opens (a local file, or a ``/vsizip/`` path inside a zip).
      options: Keyword arguments of ``fiona.open`` (driver, encoding, fields to read).
    """

    gdal_path: str
    options: dict[str, Any]

    @property
    def seekable(self) -> bool:
        """Whether feature ``n`` can be reached without reading those before it.

        True of a plain shapefile (its ``.shx`` gives every record's offset); not of one
        inside a zip, whose compressed stream is read from its start to reach any offset.
        """
        return not self.gdal_path.startswith("/vsi") and self.options.get("driver") == (
            "ESRI Shapefile"
        )


@dataclass
class Layer:
    """An opened dataset layer, ready to stream.

    Parameters:
      label: The dataset's name, for messages.
      source_crs: The CRS its coordinates are in.
      fields: The property names each feature will carry, in order.
      feature_count: How many features the layer holds before filtering.
      uniform_dims: Whether every geometry has the same coordinate dimension (true of a
        shapefile, whose shape type fixes it).
      select_fields: Properties each feature must be cut down to by the reader of
        :meth:`features`, or ``None`` when the features carry exactly :attr:`fields`.
      file: How to open the layer's file again (see :func:`reopen_layer`).
    """

    label: str
    source_crs: SourceCRS
    fields: list[str]
    feature_count: int
    uniform_dims: bool
    select_fields: list[str] | None
    file: LayerFile
    _collection: Any = field(repr=False)
    _filter: dict[str, Any] = field(repr=False)
    _limits: GeoLimits = field(repr=False)
    _matches_nothing: bool = field(repr=False, default=False)

    @property
    def filtered(self) -> bool:
        """Whether a ``where`` or ``bbox`` filter picks the features to read."""
        return bool(self._filter) or self._matches_nothing

    def detached(self) -> Layer:
        """A copy without the open file, which pickles: for :func:`reopen_layer` elsewhere."""
        return replace(self, _collection=None)

    def features(
        self, limit: int | None = None, *, start: int = 0, stop: int | None = None
    ) -> Iterator[Any]:
        """Yield the layer's features (fiona ``Feature`` objects), filtered, in file order.

        Parameters:
          limit: Stop after this many features.
          start: Begin at record ``start`` of an unfiltered shapefile (GDAL seeks to it).
          stop: End before record ``stop`` of an unfiltered shapefile. Records, not features:
            a record marked deleted in the ``.dbf`` is no feature, so counting features from
            ``start`` would overrun ``stop`` by the deleted records in between.

        Returns:
          An iterator of features whose geometry is in :attr:`source_crs` (or ``None``).

        Raises:
          InputError: If the data cannot be read, the ``where`` filter is invalid, or the
            layer yields more than ``max_features`` features.
        """
        if self._matches_nothing:
            return
        max_features = self._limits.max_features
        # Unfiltered, the count is known up front: fail before any work is done.
        too_many = self.feature_count > max_features and (limit is None or limit > max_features)
        if not self._filter and too_many:
            raise InputError(
                f"{self.label} has {self.feature_count} features, more than the limit of "
                f"{max_features}; narrow it with bbox=, where= or limit="
            )
        if (start or stop is not None) and self._filter:
            raise ValueError("start= and stop= cannot pick records of a filtered layer")
        try:
            if self._filter:
                iterator = self._collection.filter(**self._filter)
            elif start:
                iterator = self._collection.filter(start, None)
            else:
                iterator = iter(self._collection)
            for count, feature in enumerate(iterator, start=1):
                if stop is not None and int(feature.id) >= stop:
                    return
                if count > max_features:
                    raise InputError(
                        f"{self.label} has more than {max_features} features; narrow it with "
                        "bbox=, where= or limit="
                    )
                yield feature
                if limit is not None and count >= limit:
                    return
        except FionaError as exc:
            raise InputError(f"{self.label}: cannot read features: {exc}") from exc
        except SystemError as exc:
            # Fiona's GDAL error handler fails to decode a message quoting non-UTF-8 bytes of
            # a damaged .dbf, and the next call reports that as a SystemError.
            if not isinstance(exc.__cause__, UnicodeDecodeError):
                raise
            raise InputError(f"{self.label}: cannot read features: the data is damaged") from exc


@contextmanager
def open_layer(
    source: Source,
    *,
    data_dir: Path,
    limits: GeoLimits,
    layer: str | None = None,
    source_crs: str | None = None,
    encoding: str | None = None,
    fields: Sequence[str] | None = None,
    where: str | None = None,
    bbox: Sequence[float] | None = None,
    tmp_dir: Path | None = None,
) -> Iterator[Layer]:
    """Open ``source`` for streaming; close it (and any temporary copy) on exit.

    Parameters:
      source: A dataset name inside ``data_dir``, or a trusted local ``Path``.
      data_dir: The directory holding every dataset.
      limits: Feature, vertex and archive limits.
      layer: The layer to read from a folder or zip holding several shapefiles.
      source_crs: The CRS of the coordinates, overriding the ``.prj``.
      encoding: The DBF's encoding, overriding ``.cpg`` and the DBF header.
      fields: The properties to keep, or ``None`` for all of them.
      where: An OGR SQL attribute filter, such as ``"pop_est > 1000000"``.
      bbox: Keep only features intersecting ``(west, south, east, north)`` in degrees.
      tmp_dir: Where temporary copies go (a rebuilt ``.shx``).

    Returns:
      A context manager yielding the :class:`Layer`.

    Raises:
      InputError: If the source or an argument is bad.
    """
    box = parse_bbox(bbox) if bbox is not None else None
    where = check_where(where, limits.max_where_chars)
    wanted_fields = check_fields(fields)
    with ExitStack() as stack:
        gdal_path, label, info = _locate(source, data_dir, limits, layer, tmp_dir, stack)
        open_options: dict[str, Any] = {}
        if info is not None:
            open_options["encoding"] = resolve_encoding(
                encoding, cpg_text=info.cpg_text, dbf_header=info.dbf_header, sample=info.dbf_sample
            )
            logger.debug("%s: reading attributes as %s", label, open_options["encoding"])
        file = _layer_file(gdal_path, info, open_options)
        collection = _fiona_open(file, label)
        stack.callback(collection.close)
        available = list(collection.schema["properties"])
        select = None
        if wanted_fields is not None:
            _check_known(wanted_fields, available, label)
        if wanted_fields is not None and where is not None:
            # GDAL evaluates a where= filter only on the fields it reads: read them all and
            # select afterwards.
            select = wanted_fields
        elif wanted_fields is not None:
            collection.close()
            open_options["include_fields"] = wanted_fields
            file = _layer_file(gdal_path, info, open_options)
            collection = _fiona_open(file, label)
            stack.callback(collection.close)
        count = len(collection)
        bounds = tuple(collection.bounds) if count else None
        crs = resolve_source_crs(
            prj_wkt=_prj_wkt(collection, label),
            has_prj=info.has_prj if info is not None else False,
            source_crs=source_crs,
            bounds=bounds,
            dataset=label,
        )
        filters, matches_nothing = _filters(where, box, crs)
        yield Layer(
            label=label,
            source_crs=crs,
            fields=available if wanted_fields is None else wanted_fields,
            feature_count=count,
            uniform_dims=info is not None,
            select_fields=select,
            file=file,
            _collection=collection,
            _filter=filters,
            _limits=limits,
            _matches_nothing=matches_nothing,
        )


def _locate(
    source: Source,
    data_dir: Path,
    limits: GeoLimits,
    layer: str | None,
    tmp_dir: Path | None,
    stack: ExitStack,
) -> tuple[str, str, ShapefileInfo | None]:
    """The GDAL path to open, a label for messages, and shapefile facts (if a shapefile)."""
    check_layer(layer)

    def scratch() -> Path:
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        # The prefix lets the per-host sweep (geotasks.tmpfiles) recognise a folder a killed
        # worker left behind.
        return Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="geotasks-", dir=tmp_dir))
        )

    if isinstance(source, str):
        resolved = resolve_dataset(source, data_dir, layer=layer)
        label, path, kind = source, resolved.path, resolved.kind
    elif isinstance(source, Path):
        label, path = source.name, source
        if not path.is_file():
            raise InputError(f"{label}: no such file")
        kind = DatasetKind.ZIP if path.suffix.lower() == ".zip" else DatasetKind.SHAPEFILE
        if kind is DatasetKind.SHAPEFILE and path.suffix.lower() != ".shp":
            return str(path), label, None
    else:
        raise InputError(f"a dataset must be a name (str), not {type(source).__name__}")
    if kind is DatasetKind.ZIP:
        zip_layer = open_zip_layer(path, layer=layer, limits=limits)
        info = inspect_zip_shapefile(zip_layer, label, scratch)
    else:
        info = inspect_shapefile(path, label, scratch)
    return info.gdal_path, label, info


@contextmanager
def reopen_layer(detached: Layer) -> Iterator[Layer]:
    """Open a :meth:`Layer.detached` layer's file again (in a helper process, say).

    The name, CRS and filters were resolved when the layer was first opened; only the file is
    opened here. The caller must keep that first layer open meanwhile: it owns any temporary
    copy the file path points into.

    Returns:
      A context manager yielding the layer, with its file open.

    Raises:
      InputError: If the file can no longer be opened.
    """
    collection = _fiona_open(detached.file, detached.label)
    try:
        yield replace(detached, _collection=collection)
    finally:
        collection.close()


def _layer_file(gdal_path: str, info: ShapefileInfo | None, options: dict[str, Any]) -> LayerFile:
    kwargs = dict(options)
    if info is None:
        kwargs["enabled_drivers"] = list(PATH_DRIVERS)
    else:
        kwargs["driver"] = "ESRI Shapefile"
    return LayerFile(gdal_path, kwargs)


def _fiona_open(file: LayerFile, label: str) -> Any:
    try:
        return fiona.open(file.gdal_path, **file.options)
    except FionaError as exc:
        raise InputError(f"{label} cannot be opened as a vector dataset: {exc}") from exc


def _prj_wkt(collection: Any, label: str) -> str | None:
    """The ``.prj``'s CRS as WKT, or ``None`` when GDAL cannot parse it (a corrupt ``.prj``)."""
    try:
        wkt: str = collection.crs_wkt
    # Fiona's get_crs_wkt ends in UnboundLocalError when the .prj is not UTF-8.
    except (CPLE_BaseError, UnboundLocalError) as exc:
        logger.info("%s: GDAL cannot parse the .prj: %s", label, exc)
        return None
    return wkt


def _check_known(wanted: list[str], available: list[str], label: str) -> None:
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InputError(
            f"{label} has no field named {', '.join(map(repr, unknown))}; its fields: "
            f"{', '.join(available) or '(none)'}"
        )


def _filters(
    where: str | None, box: LonLatBox | None, crs: SourceCRS
) -> tuple[dict[str, Any], bool]:
    filters: dict[str, Any] = {}
    if where is not None:
        filters["where"] = where
    if box is not None:
        mask = source_mask(box, crs)
        if mask is None:
            return filters, True
        filters["mask"] = mask
    return filters, False
