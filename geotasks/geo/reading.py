"""Open a dataset and stream its features with fiona, inside the limits.

A source is a dataset *name* (``str``), resolved safely inside the data directory, or a
trusted ``pathlib.Path`` to a local file that the calling layer made itself (the result of an
earlier job). A ``str`` is never treated as a path. Shapefiles are checked here before GDAL
opens them (:mod:`geotasks.geo.shapefile`); the other formats are opened by their own driver
only (:mod:`geotasks.geo.formats`).
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
from geotasks.geo.archive import ZipDataset, open_zip_layer
from geotasks.geo.bbox import source_mask
from geotasks.geo.crs import SourceCRS, resolve_source_crs
from geotasks.geo.encoding import resolve_encoding
from geotasks.geo.formats import (
    KMZ_SUFFIX,
    VectorFormat,
    check_local_references,
    format_of,
    open_options,
)
from geotasks.geo.limits import GeoLimits
from geotasks.geo.names import DatasetKind, ResolvedDataset, resolve_dataset
from geotasks.geo.options import LonLatBox, check_fields, check_layer, check_where, parse_bbox
from geotasks.geo.shapefile import ShapefileInfo, inspect_shapefile, inspect_zip_shapefile

logger = logging.getLogger(__name__)

#: GDAL drivers allowed for a trusted ``Path`` source.
PATH_DRIVERS = ("ESRI Shapefile", "GeoJSON", "GeoJSONSeq")

Source = str | Path

#: Most layers listed in one dataset (each is opened to learn its name).
MAX_LAYERS = 1000

#: Bytes of a CSV read to guess its encoding.
TEXT_SAMPLE_BYTES = 256 * 1024


@dataclass(frozen=True)
class _Located:
    """A source found: what GDAL opens, and what is known of it before it is opened.

    Parameters:
      gdal_path: The path GDAL opens.
      label: The dataset's name, for messages.
      info: Facts about a shapefile, or ``None``.
      fmt: The format of a dataset of another format, or ``None``.
      layer: The layer to read inside a dataset of another format.
      text_sample: The first bytes of a CSV, to guess its encoding from.
    """

    gdal_path: str
    label: str
    info: ShapefileInfo | None = None
    fmt: VectorFormat | None = None
    layer: str | None = None
    text_sample: bytes = b""


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
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.label}: {_undecodable(exc)}") from exc
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
        located = _locate(source, data_dir, limits, layer, tmp_dir, stack)
        label, info = located.label, located.info
        open_options = _open_options(located, encoding)
        file = LayerFile(located.gdal_path, open_options)
        collection = _fiona_open(file, label)
        stack.callback(collection.close)
        available = _field_names(collection, label)
        select = None
        if wanted_fields is not None:
            _check_known(wanted_fields, available, label)
        if wanted_fields is not None and where is not None:
            # GDAL evaluates a where= filter only on the fields it reads: read them all and
            # select afterwards.
            select = wanted_fields
        elif wanted_fields is not None:
            collection.close()
            file = LayerFile(located.gdal_path, {**open_options, "include_fields": wanted_fields})
            collection = _fiona_open(file, label)
            stack.callback(collection.close)
        count = _feature_count(collection, label, limits)
        bounds = _bounds(collection) if count else None
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
) -> _Located:
    """Find ``source``, check it, and say how GDAL is to open it."""
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
        label = source
        resolved = resolve_dataset(source, data_dir, layer=layer)
    elif isinstance(source, Path):
        label = source.name
        if not source.is_file():
            raise InputError(f"{label}: no such file")
        trusted = _trusted(source, layer)
        if trusted is None:
            return _Located(str(source), label)
        resolved = trusted
    else:
        raise InputError(f"a dataset must be a name (str), not {type(source).__name__}")
    path = resolved.path
    if resolved.kind is DatasetKind.OTHER:
        assert resolved.format is not None
        check_local_references(path, resolved.format, label)
        sample = b""
        if resolved.format.driver == "CSV":
            with path.open("rb") as stream:
                sample = stream.read(TEXT_SAMPLE_BYTES)
        return _Located(
            str(path), label, fmt=resolved.format, layer=resolved.layer, text_sample=sample
        )
    if resolved.kind is DatasetKind.ZIP:
        zipped = open_zip_layer(path, layer=resolved.layer, limits=limits)
        if isinstance(zipped, ZipDataset):
            csv = zipped.format.driver == "CSV"
            sample = zipped.head(TEXT_SAMPLE_BYTES) if csv else b""
            return _Located(
                zipped.vsi_path, label, fmt=zipped.format, layer=zipped.layer, text_sample=sample
            )
        info = inspect_zip_shapefile(zipped, label, scratch)
    else:
        info = inspect_shapefile(path, label, scratch)
    return _Located(info.gdal_path, label, info=info)


def _trusted(path: Path, layer: str | None) -> ResolvedDataset | None:
    """What a trusted local file is, by its suffix; ``None`` for GeoJSON (any JSON) to sniff."""
    suffix = path.suffix.lower()
    if suffix in (".zip", KMZ_SUFFIX):
        return ResolvedDataset(DatasetKind.ZIP, path, layer=layer)
    if suffix == ".shp":
        return ResolvedDataset(DatasetKind.SHAPEFILE, path)
    fmt = format_of(path.name)
    if fmt is None or fmt.driver in PATH_DRIVERS:
        return None
    return ResolvedDataset(DatasetKind.OTHER, path, fmt, layer)


def _open_options(located: _Located, encoding: str | None) -> dict[str, Any]:
    """The keywords of ``fiona.open`` for the located dataset (its layer chosen)."""
    info, fmt, label = located.info, located.fmt, located.label
    if info is not None:
        chosen = resolve_encoding(
            encoding, cpg_text=info.cpg_text, dbf_header=info.dbf_header, sample=info.dbf_sample
        )
        logger.debug("%s: reading attributes as %s", label, chosen)
        return {"driver": "ESRI Shapefile", "encoding": chosen}
    if fmt is None:
        return {"enabled_drivers": list(PATH_DRIVERS)}
    options = open_options(fmt)
    if encoding is not None and fmt.driver != "CSV":
        raise InputError(
            f"encoding= applies to shapefiles and CSV files; {label} is {fmt.name}, whose "
            "encoding is declared in the file"
        )
    if fmt.driver == "CSV":
        # As for a DBF without .cpg: encoding=, or a guess from the bytes (GDAL would read
        # text that is not UTF-8 as nulls).
        options["encoding"] = resolve_encoding(
            encoding, cpg_text=None, dbf_header=b"", sample=located.text_sample
        )
    options["layer"] = _inner_layer(located.gdal_path, fmt, located.layer, label)
    return options


def _inner_layer(gdal_path: str, fmt: VectorFormat, layer: str | None, label: str) -> str:
    """The layer to read in a dataset of another format: ``layer``, or its only one."""
    names = _layer_names(gdal_path, fmt, label)
    if layer is not None:
        if layer not in names:
            raise InputError(f"{label} has no layer {layer!r}; its layers: {', '.join(names)}")
        return layer
    if len(names) > 1:
        raise InputError(f"{label} holds {len(names)} layers ({', '.join(names)}); pass layer=")
    name: str = names[0]
    return name


def _layer_names(gdal_path: str, fmt: VectorFormat, label: str) -> list[str]:
    """The names of a dataset's layers, each opened by the format's own driver.

    Not ``fiona.listlayers``: it lets GDAL guess the driver, which would follow a VRT passing
    for a GML, say.
    """
    names: list[str] = []
    while len(names) < MAX_LAYERS:
        try:
            # fiona reads layer=0 as no layer given, and then looks for one named after the
            # file: the first layer is the one opened without layer=.
            index = {"layer": len(names)} if names else {}
            collection = fiona.open(gdal_path, **index, **open_options(fmt))
        # Past the last layer, fiona raises ValueError ("Null layer").
        except (ValueError, FionaError) as exc:
            if names:
                break
            raise InputError(f"{label} cannot be opened as {fmt.name}: {exc}") from exc
        with collection:
            names.append(collection.name)
    return names


def _field_names(collection: Any, label: str) -> list[str]:
    try:
        return list(collection.schema["properties"])
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: the field names: {_undecodable(exc)}") from exc


def _undecodable(exc: UnicodeDecodeError) -> str:
    return (
        f"text that is not {exc.encoding} (byte {exc.object[exc.start : exc.start + 1]!r}); "
        "pass encoding= (a CSV or shapefile) or fix the file"
    )


def _bounds(collection: Any) -> tuple[float, float, float, float] | None:
    """The layer's extent, or ``None`` when the driver cannot tell (a GeoJSON sequence)."""
    try:
        return tuple(collection.bounds)
    except FionaError:
        return None


def _feature_count(collection: Any, label: str, limits: GeoLimits) -> int:
    """How many features the layer holds; counted by reading when the driver cannot say."""
    try:
        return len(collection)
    # fiona's "Layer does not support counting" is a TypeError.
    except (FionaError, TypeError):
        # GML read with a schema cannot count without a pass over the features.
        count = 0
        for count, _feature in enumerate(collection, start=1):
            if count > limits.max_features:
                break
        return count


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
