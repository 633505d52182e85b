"""Coordinate reference systems: from a dataset's ``.prj`` to WGS84 longitude/latitude.

Output is always ``OGC:CRS84`` (WGS84, longitude first, as RFC 7946 requires); every
transformer is built with ``always_xy`` so axis order never depends on the authority's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from geotasks.errors import InputError
from geotasks.geo.options import check_crs_text
from geotasks.job_warnings import warn

if TYPE_CHECKING:
    # The class CRS.area_of_use returns is only exported from pyproj's private module.
    from pyproj._crs import AreaOfUse

logger = logging.getLogger(__name__)

#: The output CRS: WGS84 with longitude first.
LONLAT = CRS.from_user_input("OGC:CRS84")

#: Degrees the data may extend past its CRS's area of use before it is called a mismatch.
AREA_OF_USE_MARGIN_DEG = 10.0

#: Degrees of slack when deciding that bounds are plainly longitude/latitude.
_LONLAT_SLACK_DEG = 1e-6

#: Widest extent (degrees) of data in a geographic CRS: 0..360 longitudes are a convention.
_MIN_LON, _MAX_LON, _MAX_LAT = -181.0, 361.0, 91.0

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class SourceCRS:
    """The CRS a dataset's coordinates are in, and how to bring them to lon/lat.

    Parameters:
      crs: The source CRS.
      to_lonlat: Transformer to ``OGC:CRS84`` (``always_xy``), or ``None`` when the source
        already is WGS84 lon/lat and coordinates pass through untouched.
    """

    crs: CRS
    to_lonlat: Transformer | None

    @property
    def is_geographic(self) -> bool:
        """Whether coordinates are angles: they never wrap when brought to lon/lat."""
        return bool(self.crs.is_geographic)

    @property
    def name(self) -> str:
        """A human name for messages, such as ``RGF93 v1 / Lambert-93``."""
        return str(self.crs.name)


def parse_crs(text: object, label: str) -> CRS:
    """Parse a CRS given as text (``EPSG:2154``, WKT or a PROJ string).

    Parameters:
      text: The value given.
      label: What it is, for messages (``source_crs=``).

    Returns:
      The CRS.

    Raises:
      InputError: If it is not a string or not a CRS PROJ knows.
    """
    checked = check_crs_text(text, label)
    try:
        return CRS.from_user_input(checked)
    except CRSError as exc:
        raise InputError(f"{label} is not a coordinate reference system PROJ knows: {exc}") from exc


def resolve_source_crs(
    *,
    prj_wkt: str | None,
    has_prj: bool,
    source_crs: str | None,
    bounds: Bounds | None,
    dataset: str,
) -> SourceCRS:
    """Decide a dataset's CRS and check that its coordinates plausibly are in it.

    Parameters:
      prj_wkt: The CRS GDAL read from the ``.prj`` (WKT), or ``None``/empty if it read none.
      has_prj: Whether a ``.prj`` file exists (so an empty ``prj_wkt`` means unreadable).
      source_crs: The caller's ``source_crs=``: it overrides the ``.prj``.
      bounds: The layer's extent in its own coordinates, or ``None`` if it has no features.
      dataset: The dataset's name, for messages.

    Returns:
      The source CRS with its transformer to lon/lat.

    Raises:
      InputError: If there is no usable CRS, or the coordinates cannot be in the CRS named.
    """
    crs = None
    if source_crs is not None:
        crs = parse_crs(source_crs, "source_crs=")
    elif prj_wkt:
        try:
            crs = CRS.from_wkt(prj_wkt)
        except CRSError as exc:
            logger.info("%s: PROJ cannot parse the .prj: %s", dataset, exc)
    if crs is None:
        # A .prj that neither GDAL nor PROJ can parse says no more than a missing one.
        missing = "a .prj that cannot be parsed" if has_prj else "no .prj"
        if bounds is not None and not _plainly_lonlat(bounds):
            raise InputError(
                f"{dataset} has {missing} and its coordinates are not longitude/latitude; "
                "pass source_crs= (such as 'EPSG:2154') to say which CRS it uses"
            )
        logger.warning("%s has %s and lon/lat-like bounds: reading it as WGS84", dataset, missing)
        warn(f"{dataset} has {missing}: read as WGS84 longitude/latitude", kind="crs_assumed")
        crs = LONLAT
    if bounds is not None and all(map(math.isfinite, bounds)):
        _check_bounds(crs, bounds, dataset)
    return SourceCRS(crs=crs, to_lonlat=_transformer(crs))


def area_of_use(crs: CRS) -> AreaOfUse | None:
    """Where a CRS is meant to be used, looking it up by EPSG code when the WKT omits it.

    A ``.prj`` written in ESRI's WKT dialect carries no area of use; identifying the CRS
    (PROJ's ``to_epsg``) recovers it.

    Parameters:
      crs: The CRS.

    Returns:
      Its area of use, or ``None`` if unknown.
    """
    if crs.area_of_use is not None:
        return crs.area_of_use
    code = crs.to_epsg(min_confidence=70)
    if code is None:
        return None
    try:
        return CRS.from_epsg(code).area_of_use
    except CRSError:
        return None


def _transformer(crs: CRS) -> Transformer | None:
    if crs.equals(LONLAT, ignore_axis_order=True):
        return None
    try:
        return Transformer.from_crs(crs, LONLAT, always_xy=True)
    except ProjError as exc:
        raise InputError(f"cannot transform from {crs.name} to WGS84: {exc}") from exc


def _plainly_lonlat(bounds: Bounds) -> bool:
    minx, miny, maxx, maxy = bounds
    limit_x, limit_y = 180 + _LONLAT_SLACK_DEG, 90 + _LONLAT_SLACK_DEG
    return -limit_x <= minx <= maxx <= limit_x and -limit_y <= miny <= maxy <= limit_y


def _check_bounds(crs: CRS, bounds: Bounds, dataset: str) -> None:
    minx, miny, maxx, maxy = bounds
    if crs.is_geographic:
        # Longitudes 0..360 are a known convention (Pacific data); beyond that, not angles.
        if not (_MIN_LON <= minx <= maxx <= _MAX_LON and -_MAX_LAT <= miny <= maxy <= _MAX_LAT):
            raise InputError(
                f"{dataset}: coordinates ({minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}) are "
                f"not angles, but the CRS is {crs.name}; is the .prj right? "
                "Pass source_crs= to override it"
            )
        return
    try:
        west, south, east, north = Transformer.from_crs(
            crs, LONLAT, always_xy=True
        ).transform_bounds(minx, miny, maxx, maxy, densify_pts=21)
    except ProjError as exc:
        raise InputError(
            f"{dataset}: coordinates cannot be transformed from {crs.name} to WGS84; "
            "is the .prj right? Pass source_crs= to override it"
        ) from exc
    if not all(map(math.isfinite, (west, south, east, north))):
        raise InputError(
            f"{dataset}: coordinates lie outside what {crs.name} can represent; is the .prj "
            "right? Pass source_crs= to override it"
        )
    area = area_of_use(crs)
    # Areas and bounds that cross the antimeridian are not compared: the test below is planar.
    if area is None or west > east or area.west > area.east:
        return
    margin = AREA_OF_USE_MARGIN_DEG
    if (
        east < area.west - margin
        or west > area.east + margin
        or north < area.south - margin
        or south > area.north + margin
    ):
        raise InputError(
            f"{dataset}: coordinates fall around lon {west:.1f}..{east:.1f}, lat "
            f"{south:.1f}..{north:.1f}, far from where {crs.name} is used ({area.name}); "
            "is the .prj right? Pass source_crs= to override it"
        )
