"""Reading real-world shapefiles: encodings, CRS, broken files, filters and limits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import fiona
import fiona.env
import fiona.errors
import pytest
import shapely
import shapely.geometry

from geotasks.errors import InputError
from geotasks.geo.limits import GeoLimits
from geotasks.geo.operations import shapefile_to_geojson
from geotasks.geo.streaming import BATCH_FEATURES
from geotasks.job_warnings import recording

from .conftest import MakeShapefile
from .helpers import SAMPLE_DATA, SQUARE_CW, document, with_reading

POLYGON = {"type": "Polygon", "coordinates": [SQUARE_CW]}


def convert(data_dir: Path, name: str, **options: Any) -> dict[str, Any]:
    limits = options.pop("limits", GeoLimits())
    return document(
        shapefile_to_geojson(name, data_dir=data_dir, limits=limits, **with_reading(options))
    )


def names(doc: dict[str, Any]) -> list[Any]:
    return [feature["properties"]["name"] for feature in doc["features"]]


# --- encodings -------------------------------------------------------------------------


@pytest.mark.parametrize("cpg", ["ANSI 1250", "1250", "CP1250", "Windows-1250"])
def test_cp1250_dbf_is_decoded_from_any_cpg_spelling(
    data_dir: Path, make_shapefile: MakeShapefile, cpg: str
) -> None:
    # Given a cp1250 DBF whose .cpg spells the code page the way some tool did
    shp = make_shapefile(
        "gminy", "Polygon", [{"geometry": POLYGON, "properties": {"name": "Łódź"}}],
        encoding="cp1250",
    )  # fmt: skip
    shp.with_suffix(".cpg").write_text(cpg)
    # When converted, Then the Polish name survives (GDAL alone ignores "ANSI 1250")
    assert names(convert(data_dir, "gminy")) == ["Łódź"]


def test_latin1_dbf_without_cpg_is_guessed(data_dir: Path, make_shapefile: MakeShapefile) -> None:
    # Given a Latin-1 DBF with no .cpg and no language driver id
    make_shapefile(
        "communes", "Polygon", [{"geometry": POLYGON, "properties": {"name": "Besançon"}}],
        encoding="latin1", cpg=False,
    )  # fmt: skip
    # When converted, Then the bytes are not mistaken for UTF-8
    assert names(convert(data_dir, "communes")) == ["Besançon"]


def test_language_driver_id_is_used_without_cpg(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a cp1250 DBF with no .cpg but LDID 0xC8 (Windows EE) in its header
    shp = make_shapefile(
        "obce", "Polygon", [{"geometry": POLYGON, "properties": {"name": "Plzeň"}}],
        encoding="cp1250", cpg=False,
    )  # fmt: skip
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    dbf[29] = 0xC8
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    # When converted, Then the header's code page is used
    assert names(convert(data_dir, "obce")) == ["Plzeň"]


def test_explicit_encoding_wins_and_unknown_is_refused(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a cp1250 DBF whose .cpg wrongly claims UTF-8
    shp = make_shapefile(
        "mis", "Polygon", [{"geometry": POLYGON, "properties": {"name": "Kraków"}}],
        encoding="cp1250",
    )  # fmt: skip
    shp.with_suffix(".cpg").write_text("UTF-8")
    # When the caller names the encoding, Then it wins
    assert names(convert(data_dir, "mis", encoding="windows-1250")) == ["Kraków"]
    # And an unknown encoding is bad input
    with pytest.raises(InputError, match="unknown encoding"):
        convert(data_dir, "mis", encoding="klingon")


# --- CRS -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crs", "point"),
    [
        ("EPSG:2154", (652_469.0, 6_862_035.0)),  # Lambert-93: Paris
        ("EPSG:3857", (261_845.7, 6_250_566.7)),  # Web Mercator: Paris
        ("EPSG:32631", (452_475.0, 5_411_900.0)),  # UTM 31N: Paris
    ],
)
def test_projected_data_comes_out_as_lon_lat(
    data_dir: Path, make_shapefile: MakeShapefile, crs: str, point: tuple[float, float]
) -> None:
    # Given a point near Paris stored in a projected CRS
    make_shapefile(
        "paris", "Point", [{"geometry": {"type": "Point", "coordinates": point}}], crs=crs
    )
    # When converted
    doc = convert(data_dir, "paris")
    # Then it is lon/lat (longitude first), with no crs member
    lon, lat = doc["features"][0]["geometry"]["coordinates"]
    assert lon == pytest.approx(2.35, abs=0.01)
    assert lat == pytest.approx(48.86, abs=0.01)
    assert "crs" not in doc


def test_no_prj_with_lon_lat_bounds_is_read_as_wgs84_with_a_warning(
    data_dir: Path, make_shapefile: MakeShapefile, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a shapefile with no .prj whose coordinates are plainly degrees
    make_shapefile("noprj", "Polygon", [{"geometry": POLYGON}], crs=None)
    # When converted
    with caplog.at_level(logging.WARNING):
        doc = convert(data_dir, "noprj")
    # Then it is read as WGS84 and a warning says so
    assert doc["features"][0]["geometry"]["coordinates"][0][0] == [2.0, 48.0]
    assert "no .prj" in caplog.text


def test_no_prj_with_projected_coordinates_needs_source_crs(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given projected coordinates with no .prj
    paris = {"type": "Point", "coordinates": (652_469.0, 6_862_035.0)}
    make_shapefile("l93", "Point", [{"geometry": paris}], crs=None)
    # When converted without source_crs=, Then the user is told what to pass
    with pytest.raises(InputError, match="source_crs="):
        convert(data_dir, "l93")
    # And with it, the data is placed correctly
    lon, lat = convert(data_dir, "l93", source_crs="EPSG:2154")["features"][0]["geometry"][
        "coordinates"
    ]
    assert (round(lon, 2), round(lat, 2)) == (2.35, 48.86)


def test_prj_contradicted_by_the_coordinates_is_refused(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given degrees labelled Lambert-93, and metres labelled WGS84
    make_shapefile("deg", "Polygon", [{"geometry": POLYGON}], crs="EPSG:2154")
    metres = {"type": "Point", "coordinates": (652_469.0, 6_862_035.0)}
    make_shapefile("met", "Point", [{"geometry": metres}], crs="EPSG:4326")
    # When converted, Then both are refused as a .prj mismatch
    for name in ("deg", "met"):
        with pytest.raises(InputError, match=r"is the \.prj right"):
            convert(data_dir, name)


@pytest.mark.parametrize("source_crs", ["EPSG:999999", "not a crs", 4326])
def test_bad_source_crs_is_refused(data_dir: Path, square: Path, source_crs: Any) -> None:
    # Given a bad source_crs=, When converting, Then it is bad input
    with pytest.raises(InputError, match="source_crs="):
        convert(data_dir, "square", source_crs=source_crs)


def test_unreadable_prj_over_lon_lat_is_read_as_wgs84(data_dir: Path, square: Path) -> None:
    # Given a .prj that is not a CRS over plainly lon/lat coordinates
    square.with_suffix(".prj").write_text("this is not WKT")
    # When converted, Then it is read as WGS84, as if the .prj were missing
    assert convert(data_dir, "square")["features"][0]["geometry"]["coordinates"][0][0] == [
        2.0,
        48.0,
    ]


# --- broken files ----------------------------------------------------------------------


def test_missing_shx_is_rebuilt_on_a_copy_only(data_dir: Path, square: Path) -> None:
    # Given a shapefile without its .shx
    square.with_suffix(".shx").unlink()
    # When converted
    doc = convert(data_dir, "square")
    # Then it is read, and the data directory is left untouched
    assert len(doc["features"]) == 1
    assert not square.with_suffix(".shx").exists()


@pytest.mark.parametrize("suffix", [".shp", ".dbf"])
def test_truncated_files_are_refused(data_dir: Path, sample: Any, suffix: str) -> None:
    # Given a real shapefile with one of its files cut in half
    shp = sample("naturalearth_lowres")
    part = shp.with_suffix(suffix)
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    # When converted, Then the truncation is reported (GDAL alone would read on silently)
    with pytest.raises(InputError, match="truncated"):
        convert(data_dir, "naturalearth_lowres")


def test_non_shapefile_bytes_are_refused(data_dir: Path, square: Path) -> None:
    # Given an HTML page saved as square.shp
    square.write_bytes(b"<html>not a shapefile</html>" * 10)
    # When converted, Then it is refused as not a shapefile
    with pytest.raises(InputError, match="not a shapefile"):
        convert(data_dir, "square")


# --- filters and limits ----------------------------------------------------------------


def test_fields_where_bbox_and_limit(data_dir: Path, sample: Any) -> None:
    # Given the Natural Earth countries
    sample("naturalearth_lowres")
    # When filtered by attribute and by a box around France, keeping two fields
    doc = convert(
        data_dir, "naturalearth_lowres", where="pop_est > 50000000",
        bbox=[0, 44, 6, 48], fields=["name", "iso_a3"],
    )  # fmt: skip
    # Then only the matching features come back, with only those fields
    assert names(doc) == ["France"]
    assert doc["features"][0]["properties"] == {"name": "France", "iso_a3": "FRA"}
    # And limit= caps the count
    assert len(convert(data_dir, "naturalearth_lowres", limit=5)["features"]) == 5


def test_a_bbox_across_the_antimeridian(data_dir: Path, sample: Any) -> None:
    # Given the countries and a box from 170°E to 170°W (west > east)
    sample("naturalearth_lowres")
    # When filtered by it
    found = set(names(convert(data_dir, "naturalearth_lowres", bbox=[170, -20, -170, -10])))
    # Then Fiji (which straddles ±180) is found, and nothing from the other side of the world
    assert "Fiji" in found
    assert "Brazil" not in found


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fields": ["nope"]}, "no field named 'nope'"),
        ({"fields": "name"}, "list of property names"),
        ({"where": "pop_est >>> 3"}, "cannot read features"),
        ({"where": ""}, "where="),
        ({"bbox": [0, 50, 10, 40]}, "south"),
        ({"bbox": [0, 0, 200, 10]}, "longitudes"),
        ({"bbox": [0, 0, 10]}, "west, south, east, north"),
        ({"precision": 16}, "precision="),
        ({"precision": -1}, "precision="),
        ({"limit": 0}, "limit="),
        ({"repair": "yes"}, "repair="),
        ({"strict": 1}, "strict="),
        ({"layer": 3}, "layer="),
    ],
)
def test_bad_arguments_are_input_errors(
    data_dir: Path, sample: Any, options: dict[str, Any], message: str
) -> None:
    # Given a real dataset and a bad argument
    sample("naturalearth_lowres")
    # When converted, Then the argument is refused with a message naming it
    with pytest.raises(InputError, match=message):
        convert(data_dir, "naturalearth_lowres", **options)


def test_feature_and_vertex_limits(data_dir: Path, sample: Any) -> None:
    # Given 177 countries, some with more than 50 vertices
    sample("naturalearth_lowres")
    # When converted under tighter limits, Then each limit is enforced with a clear message
    with pytest.raises(InputError, match="177 features, more than the limit of 10"):
        convert(data_dir, "naturalearth_lowres", limits=GeoLimits(max_features=10))
    with pytest.raises(InputError, match="more than 50 vertices"):
        convert(data_dir, "naturalearth_lowres", limits=GeoLimits(max_vertices=50))


def test_invalid_polygon_is_kept_and_reported_repaired_or_refused(
    data_dir: Path, make_shapefile: MakeShapefile, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a self-intersecting "bow tie" polygon
    bowtie = {"type": "Polygon", "coordinates": [[(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]]}
    make_shapefile("bowtie", "Polygon", [{"geometry": POLYGON}, {"geometry": bowtie}])
    # When converted, Then it is written as it is, and a warning (log and job) counts it
    with caplog.at_level(logging.WARNING), recording() as warnings:
        kept = convert(data_dir, "bowtie")["features"][1]["geometry"]
    assert kept == {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    assert [(w["count"], w["first_ids"], w["repaired"]) for w in warnings] == [(1, [1], False)]
    assert "bowtie: 1 invalid polygon(s) kept as they are (feature ids 1;" in caplog.text
    # And with strict=True the feature is named in the error
    with pytest.raises(InputError, match="feature 1 has an invalid polygon"):
        convert(data_dir, "bowtie", strict=True)
    with pytest.raises(InputError, match="cannot both be true"):
        convert(data_dir, "bowtie", strict=True, repair=True)
    # And with repair=True it becomes a valid MultiPolygon of the two triangles
    geometry = convert(data_dir, "bowtie", repair=True)["features"][1]["geometry"]
    assert geometry["type"] == "MultiPolygon"
    assert len(geometry["coordinates"]) == 2


@pytest.mark.parametrize("bad", [BATCH_FEATURES + 5, 3 * BATCH_FEATURES - 1])
def test_an_invalid_polygon_in_a_later_batch_is_found(
    data_dir: Path, make_shapefile: MakeShapefile, bad: int
) -> None:
    # Given three batches of squares, one of them (in the second or the last batch) a bow tie
    bowtie = {"type": "Polygon", "coordinates": [[(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]]}
    features = [{"geometry": bowtie if i == bad else POLYGON} for i in range(3 * BATCH_FEATURES)]
    make_shapefile("many", "Polygon", features)
    # When converted strictly, Then that feature is named, although earlier batches were clean
    with pytest.raises(InputError, match=f"feature {bad} has an invalid polygon"):
        convert(data_dir, "many", strict=True)
    # And with repair=True only that feature changes; the others keep their order and ids
    collection = convert(data_dir, "many", repair=True)["features"]
    assert [feature["id"] for feature in collection] == list(range(3 * BATCH_FEATURES))
    assert collection[bad]["geometry"]["type"] == "MultiPolygon"
    assert {feature["geometry"]["type"] for i, feature in enumerate(collection) if i != bad} == {
        "Polygon"
    }


def test_a_str_is_never_a_path_but_a_path_source_is_read(
    tmp_path: Path, data_dir: Path, square: Path
) -> None:
    # Given the absolute path of a shapefile, as a string
    # When converted, Then it is refused: strings are names
    with pytest.raises(InputError):
        convert(data_dir, str(square))
    # And a GeoJSON result handed over as a Path (job chaining) is read back
    chained = tmp_path / "previous.geojson"
    with (
        shapefile_to_geojson("square", data_dir=data_dir, limits=GeoLimits()) as result,
        chained.open("wb") as sink,
    ):
        result.write_to(sink)
    doc = document(shapefile_to_geojson(chained, data_dir=data_dir, limits=GeoLimits()))
    assert doc["features"][0]["properties"] == {"name": "f0"}


def test_reading_the_sample_data_changes_no_byte_of_it() -> None:
    # Given the shared sample datasets, read in place (reading is all a test may do there)
    before = {path.name: path.read_bytes() for path in SAMPLE_DATA.iterdir()}
    # When each is converted by name
    counts = {
        name: len(convert(SAMPLE_DATA, name)["features"])
        for name in ("naturalearth_lowres", "naturalearth_cities", "countries_zipped")
    }
    # Then all features are there and not one byte of the data directory changed
    assert counts == {
        "naturalearth_lowres": 177,
        "naturalearth_cities": 243,
        "countries_zipped": 177,
    }
    assert {path.name: path.read_bytes() for path in SAMPLE_DATA.iterdir()} == before


def test_rebuilding_a_shx_never_sets_the_option_globally(
    data_dir: Path, square: Path, make_shapefile: MakeShapefile
) -> None:
    # Given two shapefiles without .shx
    other = make_shapefile("other", "Polygon", [{"geometry": POLYGON}])
    square.with_suffix(".shx").unlink()
    other.with_suffix(".shx").unlink()
    # When one is converted (its index rebuilt on a private copy)
    convert(data_dir, "square")
    # Then the option is not left set, and GDAL still refuses to open the other one
    assert fiona.env.get_gdal_config("SHAPE_RESTORE_SHX") is None
    with pytest.raises(fiona.errors.DriverError):
        fiona.open(other)
    assert not other.with_suffix(".shx").exists()


def test_bbox_filter_on_projected_data(data_dir: Path, make_shapefile: MakeShapefile) -> None:
    # Given Paris and Marseille in Lambert-93
    make_shapefile(
        "cities", "Point",
        [
            {"geometry": {"type": "Point", "coordinates": (652_469.0, 6_862_035.0)},
             "properties": {"name": "Paris"}},
            {"geometry": {"type": "Point", "coordinates": (892_390.0, 6_247_035.0)},
             "properties": {"name": "Marseille"}},
        ],
        crs="EPSG:2154",
    )  # fmt: skip
    # When filtered by a lon/lat box around Paris, Then only Paris is kept
    assert names(convert(data_dir, "cities", bbox=[2.0, 48.5, 2.7, 49.1])) == ["Paris"]


def test_the_feature_limit_also_holds_while_streaming_filtered_data(
    data_dir: Path, sample: Any
) -> None:
    # Given a filter that keeps more features than allowed
    sample("naturalearth_lowres")
    # When converted, Then the limit is enforced as features stream
    with pytest.raises(InputError, match="more than 5 features"):
        convert(
            data_dir, "naturalearth_lowres", where="pop_est > 0", limits=GeoLimits(max_features=5)
        )


def test_a_polygon_that_rounding_makes_invalid_is_found_and_repaired_on_the_output_grid(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a ring whose notch comes 4e-8° from its bottom edge: valid, until rounded to 7
    # decimals, when the notch touches the edge (the star-shaped ring)
    ring = [(0.0, 0.0), (0.0, 1.0), (0.5, 4e-8), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]
    assert shapely.Polygon(ring).is_valid
    make_shapefile("notch", "Polygon", [{"geometry": {"type": "Polygon", "coordinates": [ring]}}])
    # When converted, Then the polygon is reported as invalid as it is written
    with recording() as warnings:
        convert(data_dir, "notch")
    assert [(w["count"], w["first_ids"]) for w in warnings] == [(1, [0])]
    with pytest.raises(InputError, match="feature 0 has an invalid polygon"):
        convert(data_dir, "notch", strict=True)
    # And repaired, it is valid once written
    repaired = convert(data_dir, "notch", repair=True)["features"][0]["geometry"]
    assert shapely.geometry.shape(repaired).is_valid
