"""Operations a batch at a time: the same frames, results and errors as one feature at a time."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod

from geotasks.geo import operations, parallel
from geotasks.geo.frames import LocalFrames, fits_local_frame, tangent_plane
from geotasks.geo.limits import GeoLimits
from geotasks.geo.metres import LocalMetres
from geotasks.geo.operations import buffer_features, measure_features, simplify_features
from geotasks.geo.options import ReadingOptions
from geotasks.geo.union import union_polygons

from .conftest import MakeShapefile

GEOD = Geod(ellps="WGS84")


def polygons(count: int, seed: int = 7) -> list[shapely.Polygon]:
    """Small star-shaped polygons (about 20 vertices, 200-800 m across), anywhere but the poles."""
    rng = np.random.default_rng(seed)
    shapes = []
    for lon, lat in zip(rng.uniform(-179, 179, count), rng.uniform(-80, 80, count), strict=True):
        angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        radius = rng.uniform(0.002, 0.004) * (0.75 + 0.25 * rng.random(20))
        ring = np.column_stack(
            [lon + radius * np.cos(angles) / np.cos(np.radians(lat)), lat + radius * np.sin(angles)]
        )
        shapes.append(shapely.Polygon(ring))
    return shapes


def test_a_batch_is_projected_as_each_geometry_alone() -> None:
    # Given polygons all over the Earth
    shapes = np.array(polygons(200), dtype=object)
    assert fits_local_frame(shapes).all()
    # When projected to their frames in one call, and one at a time as LocalMetres does
    frames = LocalFrames(shapes)
    batched = frames.to_metres(shapes)
    for shape, metric in zip(shapes, batched, strict=True):
        alone = LocalMetres(shape).to_metres(shape)
        # Then the coordinates agree to a few centimetres (LocalMetres rounds its centre to
        # 0.001°, which moves the frame by up to ~100 m; distances within it stay true)
        assert metric.area == pytest.approx(alone.area, rel=1e-7)
        assert metric.length == pytest.approx(alone.length, rel=1e-7)
    # And the way back lands on the original vertices
    back = frames.to_lonlat(batched)
    assert np.abs(shapely.get_coordinates(back) - shapely.get_coordinates(shapes)).max() < 1e-9


def test_a_buffer_crossing_the_antimeridian_from_the_batch_path_is_split_and_true(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given a small square touching 180° from the west, and the same square at 0°
    for name, west in [("east", 179.995), ("zero", -0.005)]:
        square = shapely.box(west, 10.0, west + 0.005, 10.005)
        make_shapefile(name, "Polygon", [{"geometry": shapely.geometry.mapping(square)}])
    # When each is buffered by 2 km
    areas = []
    for name in ("east", "zero"):
        result = buffer_features(name, 2000.0, data_dir=data_dir, limits=GeoLimits())
        feature = json.loads(result.open().read())["features"][0]
        geometry = shapely.geometry.shape(feature["geometry"])
        assert geometry.is_valid and -180.0 <= geometry.bounds[0] <= geometry.bounds[2] <= 180.0
        areas.append(abs(GEOD.geometry_area_perimeter(geometry)[0]))
    # Then the one across ±180 is split there, and has the same area as the other
    assert areas[0] == pytest.approx(areas[1], rel=1e-4)


def test_fiji_buffered_by_10_km_keeps_its_area(data_dir: Path, sample: Any) -> None:
    # Given Fiji, stored split at ±180
    sample("naturalearth_lowres")
    reading = ReadingOptions(where="name='Fiji'")
    # When buffered by 10 km
    result = buffer_features(
        "naturalearth_lowres", 10_000.0, data_dir=data_dir, limits=GeoLimits(), reading=reading
    )
    geometry = shapely.geometry.shape(json.loads(result.open().read())["features"][0]["geometry"])
    # Then it is buffered where it lies: 28,560 km², as one feature at a time gave
    assert abs(GEOD.geometry_area_perimeter(geometry)[0]) / 1e6 == pytest.approx(28_560, rel=1e-3)
    assert geometry.bounds[0] >= -180.0 and geometry.bounds[2] <= 180.0


def test_measures_in_the_frame_are_the_geodesic_ones(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given small polygons all over the Earth
    shapes = polygons(50, seed=3)
    features = [{"geometry": shapely.geometry.mapping(shape)} for shape in shapes]
    make_shapefile("small", "Polygon", features)
    # When measured
    result = measure_features("small", data_dir=data_dir, limits=GeoLimits())
    measured = [f["properties"] for f in json.loads(result.open().read())["features"]]
    # Then area and perimeter are pyproj's exact geodesic ones, to 1e-7
    for shape, properties in zip(shapes, measured, strict=True):
        area, perimeter = GEOD.geometry_area_perimeter(shapely.orient_polygons(shape))
        assert properties["area_m2"] == pytest.approx(abs(area), rel=1e-7)
        assert properties["perimeter_m"] == pytest.approx(perimeter, rel=1e-7)
        assert properties["length_m"] is None


def test_an_operation_split_between_processes_writes_what_one_process_writes(
    data_dir: Path,
    make_shapefile: MakeShapefile,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given 300 polygons, and operations split from 100 features a process
    features = [
        {"geometry": shapely.geometry.mapping(shape), "properties": {"n": index}}
        for index, shape in enumerate(polygons(300, seed=5))
    ]
    make_shapefile("many", "Polygon", features, properties={"n": "int"})
    monkeypatch.setattr(operations, "MIN_FEATURES_PER_OPERATION_PROCESS", 100)
    # When simplified in one process, then in three
    texts = []
    for processes in (1, 3):
        limits = GeoLimits(max_read_processes=processes)
        with caplog.at_level(logging.INFO, logger=parallel.__name__):
            result = simplify_features("many", 100.0, data_dir=data_dir, limits=limits)
        texts.append(result.open().read())
    # Then two helper processes did their share, and the documents are the same
    helpers = [r for r in caplog.records if "a helper process wrote features" in r.getMessage()]
    assert len(helpers) == 2
    assert texts[0] == texts[1]


def test_a_union_by_clusters_is_the_union_of_everything() -> None:
    # Given polygons, some overlapping in chains, some touching, most alone
    rng = np.random.default_rng(11)
    centres = rng.uniform(0, 10, (400, 2))
    discs = shapely.buffer(shapely.points(centres), rng.uniform(0.05, 0.3, 400), quad_segs=4)
    touching = [shapely.box(20, 0, 21, 1), shapely.box(21, 0, 22, 1), shapely.box(22, 1, 23, 2)]
    polygons = np.concatenate([discs, np.array(touching, dtype=object)])
    # When unioned cluster by cluster
    parts = union_polygons(polygons)
    merged = shapely.multipolygons(parts)
    # Then the parts meet nowhere, and cover what GEOS's union of them all covers
    assert merged.is_valid
    reference = shapely.union_all(polygons)
    assert shapely.symmetric_difference(merged, reference).area < 1e-9
    assert len(parts) == len(shapely.get_parts(reference))


def test_small_polygons_simplified_on_their_tangent_planes_keep_their_vertices(
    data_dir: Path, make_shapefile: MakeShapefile
) -> None:
    # Given small polygons all over the Earth
    shapes = polygons(100, seed=9)
    features = [{"geometry": shapely.geometry.mapping(shape)} for shape in shapes]
    make_shapefile("small", "Polygon", features)
    # When simplified by 30 m
    result = simplify_features("small", 30.0, data_dir=data_dir, limits=GeoLimits())
    simplified = [
        shapely.geometry.shape(f["geometry"]) for f in json.loads(result.open().read())["features"]
    ]
    for shape, simpler in zip(shapes, simplified, strict=True):
        # Then every vertex left is one of the polygon's own, as written (7 decimals)
        own = {tuple(xy) for xy in np.round(shapely.get_coordinates(shape), 7)}
        assert {tuple(xy) for xy in shapely.get_coordinates(simpler)} <= own
        assert simpler.is_valid and len(simpler.exterior.coords) < len(shape.exterior.coords)
    # And the tangent plane's metres are the AEQD's (true from the centre), to (s/R)²/2
    lonlat = shapely.get_coordinates(np.array(shapes[:10], dtype=object))
    counts = shapely.get_num_coordinates(np.array(shapes[:10], dtype=object))
    centre_lon, centre_lat = lonlat[::21, 0], lonlat[::21, 1]
    metric = tangent_plane(lonlat[:, 0], lonlat[:, 1], centre_lon, centre_lat, counts)
    _, _, distance = GEOD.inv(
        np.repeat(centre_lon, counts), np.repeat(centre_lat, counts), lonlat[:, 0], lonlat[:, 1]
    )
    assert np.hypot(metric[:, 0], metric[:, 1]) == pytest.approx(distance, rel=5e-8)
