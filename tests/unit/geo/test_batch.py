"""Vectorised polygon validity on flat coordinate batches."""

from __future__ import annotations

import math
from typing import Any

import fiona
import pytest

from geotasks.geo.batch import BatchBuilder, GeometryBatch, polygon_validity


def _ring(x: float, y: float, radius: float, corners: int) -> list[tuple[float, float]]:
    positions = [
        (
            x + radius * math.cos(-2 * math.pi * i / corners),
            y + radius * math.sin(-2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]
    return [*positions, positions[0]]


def _bowtie(x: float, y: float) -> list[tuple[float, float]]:
    return [(x, y), (x + 1, y + 1), (x + 1, y), (x, y + 1), (x, y)]


def _batch(geometries: list[dict[str, Any] | None]) -> GeometryBatch:
    builder = BatchBuilder("test")
    builder.dims = 2
    for geometry in geometries:
        builder.add(None if geometry is None else fiona.Geometry.from_dict(geometry))
    return builder.build()


def _mixed() -> tuple[list[dict[str, Any] | None], set[int]]:
    """Polygons, polygons with holes, multipolygons, lines and nulls; which are invalid."""
    geometries: list[dict[str, Any] | None] = []
    invalid: set[int] = set()
    for i in range(60):
        x, y = float(i * 3 % 170), float(i % 80)
        kind = i % 6
        if kind == 0:
            geometries.append({"type": "Polygon", "coordinates": [_ring(x, y, 1, 3 + i % 7)]})
        elif kind == 1:
            rings = [_ring(x, y, 1, 8), _ring(x, y, 0.3, 5)[::-1]]
            geometries.append({"type": "Polygon", "coordinates": rings})
        elif kind == 2:
            parts = [[_ring(x, y, 1, 6)], [_ring(x + 1.5, y, 0.5, 4)]]
            if i % 4 == 0:
                parts.append([_bowtie(x - 3, y)])
                invalid.add(i)
            geometries.append({"type": "MultiPolygon", "coordinates": parts})
        elif kind == 3:
            geometries.append({"type": "LineString", "coordinates": [(x, y), (x + 1, y)]})
        elif kind == 4:
            geometries.append({"type": "Polygon", "coordinates": [_bowtie(x, y)]})
            invalid.add(i)
        else:
            geometries.append(None)
    return geometries, invalid


@pytest.mark.parametrize("every", [1, 2, 5])
def test_polygon_validity_finds_exactly_the_invalid_polygons(every: int) -> None:
    # Given a batch mixing valid and self-intersecting polygons with other types and nulls
    geometries, invalid = _mixed()
    batch = _batch(geometries)
    polygonal = [
        i for i, g in enumerate(geometries) if g and g["type"] in ("Polygon", "MultiPolygon")
    ]
    # When every polygon, or only some of them, are checked
    candidates = polygonal[::every]
    found = polygon_validity(batch, candidates)
    # Then exactly the invalid ones among them are reported, each with GEOS's reason
    assert set(found) == invalid & set(candidates)
    assert all("Self-intersection" in reason for reason in found.values())


def test_a_degenerate_ring_is_reported_and_the_rest_still_checked() -> None:
    # Given a ring of three positions (shapely cannot build it) beside a bow tie
    degenerate = {"type": "Polygon", "coordinates": [[(0, 0), (1, 1), (0, 0)]]}
    bowtie = {"type": "Polygon", "coordinates": [_bowtie(5, 5)]}
    square = {"type": "Polygon", "coordinates": [_ring(9, 9, 1, 4)]}
    batch = _batch([square, degenerate, bowtie])
    # When checked, Then both bad ones are reported and the square is not
    assert set(polygon_validity(batch, [0, 1, 2])) == {1, 2}
