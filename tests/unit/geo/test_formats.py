"""Formats besides shapefiles: each read by name, plain and zipped, and held inside the data dir.

Every dataset is generated here with fiona (or written as text); nothing is committed.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import fiona
import pytest

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.options import ReadingOptions

from .helpers import document

SCHEMA = {"geometry": "Polygon", "properties": {"name": "str"}}
#: A lon/lat square near Paris and its name, with a letter outside ASCII.
SQUARE = [(2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 49.0), (2.0, 48.0)]
FEATURE = {"geometry": {"type": "Polygon", "coordinates": [SQUARE]}, "properties": {"name": "é"}}

KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>é</name>
<Polygon><outerBoundaryIs><LinearRing><coordinates>
2,48 3,48 3,49 2,49 2,48</coordinates></LinearRing></outerBoundaryIs></Polygon>
</Placemark></Document></kml>
"""

GML = """<?xml version="1.0" encoding="utf-8" ?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/"
    xmlns:gml="http://www.opengis.net/gml"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="{schema}">
  <gml:featureMember><ogr:parcels fid="parcels.0"><ogr:geometryProperty><gml:Polygon
    srsName="EPSG:4326"><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>2,48 3,48 3,49
    2,49 2,48</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon>
  </ogr:geometryProperty><ogr:name>é</ogr:name></ogr:parcels></gml:featureMember>
</ogr:FeatureCollection>
"""

Write = Callable[[Path], Path]


def with_fiona(suffix: str, driver: str, **options: Any) -> Write:
    def write(folder: Path) -> Path:
        target = folder / f"parcels{suffix}"
        with fiona.open(target, "w", driver=driver, schema=SCHEMA, crs="EPSG:4326", **options) as f:
            f.write(FEATURE)
        return target

    return write


def with_text(suffix: str, text: str) -> Write:
    def write(folder: Path) -> Path:
        target = folder / f"parcels{suffix}"
        target.write_text(text, encoding="utf-8")
        return target

    return write


def kmz(folder: Path) -> Path:
    target = folder / "parcels.kmz"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("doc.kml", KML)
        archive.writestr("files/icon.png", b"\x89PNG")
    return target


WKT = "POLYGON ((2 48, 3 48, 3 49, 2 49, 2 48))"
WRITERS: dict[str, Write] = {
    "gpkg": with_fiona(".gpkg", "GPKG"),
    "geojson": with_fiona(".geojson", "GeoJSON"),
    "json": with_fiona(".json", "GeoJSON"),
    "geojsonseq": with_text(".geojsonl", 2 * (json.dumps({"type": "Feature", **FEATURE}) + "\n")),
    "flatgeobuf": with_fiona(".fgb", "FlatGeobuf"),
    "kml": with_text(".kml", KML),
    "kmz": kmz,
    "gml": with_text(".gml", GML.format(schema="http://ogr.maptools.org/ none.xsd")),
    "filegdb": with_fiona(".gdb", "OpenFileGDB"),
    "csv-wkt": with_text(".csv", f'WKT,name\n"{WKT}",é\n'),
}


def convert(data_dir: Path, name: str, **options: Any) -> dict[str, Any]:
    limits = options.pop("limits", GeoLimits())
    result = shapefile_to_geojson(
        name, data_dir=data_dir, limits=limits, reading=ReadingOptions(**options)
    )
    return document(result)


def assert_the_square(doc: dict[str, Any]) -> None:
    """Every feature (one, or two for the GeoJSON sequence) is the square named é."""
    assert doc["features"]
    for feature in doc["features"]:
        ring = feature["geometry"]["coordinates"]
        if feature["geometry"]["type"] == "MultiPolygon":
            (ring,) = ring
        assert sorted(tuple(position[:2]) for position in ring[0][:-1]) == sorted(SQUARE[:-1])
        assert "é" in feature["properties"].values()


def zipped(data_dir: Path, dataset: Path) -> Path:
    """Move ``dataset`` (and its sidecars, or a folder's files) into ``parcels_zip.zip``."""
    target = data_dir / "parcels_zip.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(data_dir.rglob("*")):
            if path.is_file() and path != target:
                archive.write(path, path.relative_to(data_dir).as_posix())
    for path in sorted(data_dir.iterdir()):
        if path != target:
            if path.is_dir():
                for member in path.iterdir():
                    member.unlink()
                path.rmdir()
            else:
                path.unlink()
    return target


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_is_read_by_name_plain_and_zipped(data_dir: Path, kind: str) -> None:
    # Given the square in one format
    dataset = WRITERS[kind](data_dir)
    # When converted by its bare name and by its file name, Then it is the square, lon/lat
    assert_the_square(convert(data_dir, "parcels"))
    assert_the_square(convert(data_dir, dataset.name))
    # And zipped, read in place (a KMZ is already a zip)
    if kind != "kmz":
        zipped(data_dir, dataset)
        assert_the_square(convert(data_dir, "parcels_zip"))
    assert not list(data_dir.rglob("*.gfs"))


def test_a_csv_with_lon_lat_columns(data_dir: Path) -> None:
    # Given a CSV of points in lon/lat columns
    (data_dir / "cities.csv").write_text(
        "id,name,lat,lon\n1,Paris,48.85,2.35\n2,Oslo,59.91,10.75\n"
    )
    # When converted, Then each row is a point and the coordinate columns are not properties
    features = convert(data_dir, "cities")["features"]
    assert [f["geometry"]["coordinates"] for f in features] == [[2.35, 48.85], [10.75, 59.91]]
    assert features[0]["properties"] == {"id": "1", "name": "Paris"}


def test_a_latin1_csv_is_decoded_with_encoding(data_dir: Path) -> None:
    # Given a CSV written by an old tool in Latin-1
    (data_dir / "towns.csv").write_bytes("lon,lat,name\n6.02,47.24,Besançon\n".encode("latin-1"))
    # When converted with encoding=, Then the name survives
    features = convert(data_dir, "towns", encoding="latin-1")["features"]
    assert features[0]["properties"]["name"] == "Besançon"
    # And encoding= on a format that declares its own is refused
    WRITERS["gpkg"](data_dir)
    with pytest.raises(InputError, match="encoding= applies to shapefiles and CSV"):
        convert(data_dir, "parcels", encoding="latin-1")


@pytest.mark.parametrize("kind", ["gpkg", "filegdb"])
def test_layers_of_a_multi_layer_dataset_plain_and_zipped(data_dir: Path, kind: str) -> None:
    # Given a dataset with layers "parks" and "roads"
    suffix, driver = {"gpkg": (".gpkg", "GPKG"), "filegdb": (".gdb", "OpenFileGDB")}[kind]
    for layer in ("parks", "roads"):
        with_fiona(suffix, driver, layer=layer)(data_dir)
    for name in ("parcels", "parcels_zip"):
        if name == "parcels_zip":
            zipped(data_dir, data_dir / f"parcels{suffix}")
        # When converted without layer=, Then the message lists the layers
        with pytest.raises(InputError, match=r"holds 2 layers \(parks, roads\); pass layer="):
            convert(data_dir, name)
        # And with layer= that layer is read; an unknown one is refused
        assert_the_square(convert(data_dir, name, layer="roads"))
        with pytest.raises(InputError, match="no layer 'lakes'; its layers: parks, roads"):
            convert(data_dir, name, layer="lakes")


def test_crs_fields_where_and_limits_apply_to_a_geopackage(data_dir: Path) -> None:
    # Given a GeoPackage of three points in Lambert-93
    schema = {"geometry": "Point", "properties": {"name": "str", "pop": "int"}}
    with fiona.open(data_dir / "towns.gpkg", "w", "GPKG", schema, crs="EPSG:2154") as sink:
        for name, pop, x in (("a", 10, 652_469.0), ("b", 20, 652_469.0), ("c", 30, 652_469.0)):
            sink.write({"geometry": {"type": "Point", "coordinates": (x, 6_862_035.0)},
                        "properties": {"name": name, "pop": pop}})  # fmt: skip
    # When converted with fields=, where= and limit=
    doc = convert(data_dir, "towns", fields=["name"], where="pop > 10", limit=1)
    # Then it is reprojected to lon/lat, filtered, cut down, and limited
    (feature,) = doc["features"]
    lon, lat = feature["geometry"]["coordinates"]
    assert (round(lon, 2), round(lat, 2)) == (2.35, 48.86)
    assert feature["properties"] == {"name": "b"}
    # And the feature limit holds
    with pytest.raises(InputError, match="more than the limit of 2"):
        convert(data_dir, "towns", limits=GeoLimits(max_features=2))


# --- what can reach other files or the network is refused --------------------------------

VRT = (
    '<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>{source}</SrcDataSource>'
    "</OGRVRTLayer></OGRVRTDataSource>"
)


@pytest.mark.parametrize(
    "name",
    [
        "http://example.com/parcels.geojson",
        "/vsicurl/http://example.com/parcels.geojson",
        "region//vsizip/parcels.zip",
        "vsizip/parcels.zip",
        "region/vsicurl/x",
    ],
)
def test_names_that_are_urls_or_gdal_virtual_paths_are_refused(data_dir: Path, name: str) -> None:
    with pytest.raises(InputError, match=r"URL or a GDAL virtual path|absolute path|empty"):
        convert(data_dir, name)


def test_a_vrt_is_refused_by_name_in_a_folder_and_in_a_zip(data_dir: Path, tmp_path: Path) -> None:
    # Given a VRT that would read a file outside the data directory
    secret = tmp_path / "secret.csv"
    secret.write_text('WKT,secret\n"POINT (1 2)",hunter2\n')
    (data_dir / "parcels.vrt").write_text(VRT.format(source=secret))
    with zipfile.ZipFile(data_dir / "archive.zip", "w") as archive:
        archive.writestr("parcels.vrt", VRT.format(source=secret))
    # When named, bare or by its file name, or zipped, Then it is refused as a VRT
    for name in ("parcels", "parcels.vrt", "archive"):
        with pytest.raises(InputError, match="GDAL virtual dataset"):
            convert(data_dir, name)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".gml", ".kml", ".csv", ".fgb"])
def test_a_vrt_passing_for_another_format_is_not_followed(
    data_dir: Path, tmp_path: Path, suffix: str
) -> None:
    # Given a VRT saved under another format's suffix, pointing outside the data directory
    secret = tmp_path / "secret.csv"
    secret.write_text('WKT,secret\n"POINT (1 2)",hunter2\n')
    (data_dir / f"parcels{suffix}").write_text(VRT.format(source=secret))
    # When converted, Then it is bad input (or, to the CSV reader, a table of no rows), and
    # the secret is never read
    try:
        outcome = json.dumps(convert(data_dir, "parcels"))
    except InputError as exc:
        outcome = str(exc)
    assert "hunter2" not in outcome


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".gml", GML.format(schema="http://ogr.maptools.org/ /vsicurl/http://x/s.xsd")),
        (".kml", KML.replace("<name>é</name>", "<name>é</name><href>/vsizip/x.zip</href>")),
        (".geojson", '{"type": "FeatureCollection", "features": [], "x": "/VSICURL/http://x"}'),
        (".csv", 'WKT,name\n"POINT (1 2)",/vsimem/x\n'),
    ],
)
def test_a_text_dataset_naming_a_gdal_virtual_path_is_refused_plain_and_zipped(
    data_dir: Path, suffix: str, text: str
) -> None:
    dataset = with_text(suffix, text)(data_dir)
    with pytest.raises(InputError, match=r"GDAL virtual path \(/vsi…\)"):
        convert(data_dir, "parcels")
    zipped(data_dir, dataset)
    with pytest.raises(InputError, match=r"GDAL virtual path \(/vsi…\)"):
        convert(data_dir, "parcels_zip")


@pytest.mark.parametrize("location", ["../outside.xsd", "/etc/schema.xsd", "C:/schema.xsd"])
def test_a_gml_naming_a_local_schema_outside_its_folder_is_refused(
    data_dir: Path, location: str
) -> None:
    with_text(".gml", GML.format(schema=f"http://ogr.maptools.org/ {location}"))(data_dir)
    with pytest.raises(InputError, match="names a schema outside its folder"):
        convert(data_dir, "parcels")


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def schema_server() -> Iterator[str]:
    """An HTTP server on localhost that records the paths asked for."""
    _Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_gml_is_read_without_fetching_its_remote_schema_or_writing_a_gfs(
    data_dir: Path, schema_server: str
) -> None:
    # Given a GML whose schema lives on a server, in a data directory we can watch
    with_text(".gml", GML.format(schema=f"http://ogr.maptools.org/ {schema_server}/s.xsd"))(
        data_dir
    )
    before = sorted(os.listdir(data_dir))
    # When converted
    assert_the_square(convert(data_dir, "parcels"))
    # Then the server was never asked, and nothing was written beside the data
    assert _Recorder.requests == []
    assert sorted(os.listdir(data_dir)) == before


def test_a_csv_that_is_not_utf8_has_its_encoding_guessed_plain_and_zipped(data_dir: Path) -> None:
    # Given a Latin-1 CSV, header and values (found by the fuzz test: fiona raised
    # UnicodeDecodeError on the header, and GDAL read the values as nulls)
    csv = data_dir / "entête.csv"
    csv.write_bytes("lon,lat,entête\n6.02,47.24,Besançon\n".encode("latin-1"))
    # When converted without encoding=, Then the text is decoded, as a DBF's would be
    assert convert(data_dir, "entête")["features"][0]["properties"] == {"entête": "Besançon"}
    zipped(data_dir, csv)
    assert convert(data_dir, "parcels_zip")["features"][0]["properties"] == {"entête": "Besançon"}
    # And an encoding= that does not fit the header is bad input saying what to do
    with pytest.raises(InputError, match=r"not utf-8 .*pass encoding="):
        convert(data_dir, "parcels_zip", encoding="utf-8")
