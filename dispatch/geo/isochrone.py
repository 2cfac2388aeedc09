"""Isochrones: the area reachable within T seconds from a point, as GeoJSON polygons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
import shapely.geometry
import shapely.ops
from scipy import ndimage

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.routing import When

if TYPE_CHECKING:
    from dispatch.geo.routing import Router

#: a place counts as reached when it lies this close to a reached stretch of road (the last metres on foot)
DEFAULT_BUFFER_M = 60.0
#: holes smaller than this (a city block ringed by reached streets) are filled
FILL_HOLES_M2 = 40_000.0


def isochrones(
    router: Router,
    origin: LatLon,
    seconds: Sequence[float],
    *,
    at: When = None,
    buffer_m: float = DEFAULT_BUFFER_M,
) -> dict[str, Any]:
    """A FeatureCollection with one (Multi)Polygon per threshold, largest first (draw order)."""
    limits = sorted({float(s) for s in seconds}, reverse=True)
    if not limits or any(not (0 < s <= 4 * 3600) for s in limits):
        raise InvalidInput(
            f"isochrone times {list(seconds)} are not allowed: give one or more times "
            "of more than 0 and at most 240 minutes"
        )
    if not 0 < buffer_m <= 500:
        raise InvalidInput(f"buffer_m = {buffer_m} is not allowed: it must be more than 0 and at most 500")
    g = router.graph
    period = router.period(at)
    w = router.weights(period)
    o = router.snapper.snap(origin, usable=router.usable_edges(period))
    starts = router.starts(o, w)
    t_max = limits[0] * 1000.0
    dist, _ = router.dijkstra_graph(period).search([a.node for a in starts], limit_ms=t_max)
    node_ms = np.min(dist + np.array([[a.cost_ms] for a in starts]), axis=0)
    open_arc = w != 2**31 - 1
    tail_ms = node_ms[g.arc_tail]
    features = []
    for limit in limits:
        lim_ms = limit * 1000.0
        reach = open_arc & (tail_ms < lim_ms)
        frac = np.where(reach, np.minimum(1.0, (lim_ms - tail_ms) / np.maximum(w, 1)), 0.0)
        full = reach & (frac >= 1.0)
        # a whole edge counts once, whichever way it was reached
        full_edges = np.unique(g.arc_edge[full])
        parts = [router.snapper.lines[full_edges]]
        partial = np.nonzero(reach & (frac < 1.0))[0]
        if len(partial):
            parts.append(np.array([_partial(router, int(a), float(frac[a])) for a in partial]))
        for a in starts:  # the stretch from the origin itself
            if a.cost_ms <= 0:
                continue
            k = min(1.0, lim_ms / a.cost_ms)
            f_end = o.fraction - k * o.fraction if a.reversed else o.fraction + k * (1 - o.fraction)
            parts.append(np.array([_line_between(router, o.edge, o.fraction, f_end)]))
        lines = np.concatenate(parts)
        lines = lines[~shapely.is_empty(lines)]
        origin_xy = router.snapper.proj.forward(np.array([o.lat]), np.array([o.lon]))
        area = _rasterize(lines, np.column_stack(origin_xy), buffer_m)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "seconds": limit,
                    "minutes": round(limit / 60, 2),
                    "area_km2": round(float(shapely.area(area)) / 1e6, 3),
                    "reached_nodes": int((node_ms < lim_ms).sum()),
                    "period": g.profile.periods[period].name,
                    "profile": g.profile.name,
                },
                "geometry": _to_geojson(router, area),
            }
        )
    return {"type": "FeatureCollection", "features": features, "origin": o.as_dict(), "buffer_m": buffer_m}


def _partial(router: Router, arc: int, frac: float) -> shapely.LineString:
    g = router.graph
    e = int(g.arc_edge[arc])
    if g.arc_reversed[arc]:
        return _line_between(router, e, 1.0, 1.0 - frac)
    return _line_between(router, e, 0.0, frac)


def _line_between(router: Router, edge: int, f1: float, f2: float) -> shapely.LineString:
    lo, hi = sorted((f1, f2))
    return shapely.ops.substring(router.snapper.lines[edge], lo, hi, normalized=True)


def _rasterize(lines: np.ndarray, origin_xy: np.ndarray, buffer_m: float) -> shapely.Geometry:
    """Cells within ``buffer_m`` of the reached road stretches, as one (Multi)Polygon.

    Buffering thousands of lines in GEOS takes seconds; a grid of buffer_m/3 cells, dilated by a disk
    of buffer_m and traced back into rectangles, takes milliseconds and differs by under one cell.
    """
    cell = buffer_m / 3.0
    lines = lines[shapely.length(lines) > 0]  # two OSM nodes at one spot make a zero-length road
    pts = shapely.get_coordinates(shapely.segmentize(lines, cell)) if len(lines) else np.empty((0, 2))
    pts = np.concatenate([pts, origin_xy])
    r = int(np.ceil(buffer_m / cell))
    x0, y0 = pts.min(axis=0) - (r + 1) * cell
    ix = ((pts[:, 0] - x0) / cell).astype(np.int64)
    iy = ((pts[:, 1] - y0) / cell).astype(np.int64)
    grid = np.zeros((int(iy.max()) + r + 2, int(ix.max()) + r + 2), dtype=bool)
    grid[iy, ix] = True
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    grid = ndimage.binary_dilation(grid, structure=(xx**2 + yy**2) <= r * r)
    holes, n = ndimage.label(~grid)
    if n:
        sizes = np.bincount(holes.ravel())
        border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        small = sizes * cell * cell < FILL_HOLES_M2
        small[border] = False
        small[0] = False
        grid |= small[holes]
    # runs of filled cells along each row become rectangles; a run repeated in the next row extends its
    # rectangle downwards; the union of the rectangles is the area
    padded = np.zeros((grid.shape[0], grid.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = grid
    edges = np.diff(padded, axis=1)
    row_s, col_s = np.nonzero(edges == 1)
    _, col_e = np.nonzero(edges == -1)
    rects: list[list[int]] = []  # [col_start, col_end, row_start, row_end]
    open_runs: dict[tuple[int, int], int] = {}
    for r_, c0, c1 in zip(row_s.tolist(), col_s.tolist(), col_e.tolist(), strict=True):
        k = open_runs.get((c0, c1))
        if k is not None and rects[k][3] == r_:
            rects[k][3] = r_ + 1
        else:
            open_runs[(c0, c1)] = len(rects)
            rects.append([c0, c1, r_, r_ + 1])
    a = np.asarray(rects, dtype=np.float64)
    boxes = shapely.box(x0 + a[:, 0] * cell, y0 + a[:, 2] * cell, x0 + a[:, 1] * cell, y0 + a[:, 3] * cell)
    return shapely.union_all(boxes)


def _to_geojson(router: Router, geom: shapely.Geometry) -> dict[str, Any]:
    def transform(xy: np.ndarray) -> np.ndarray:
        lat, lon = router.snapper.proj.inverse(xy[:, 0], xy[:, 1])
        return np.column_stack([np.round(lon, 7), np.round(lat, 7)])

    mapped = shapely.transform(geom, transform)
    out: dict[str, Any] = shapely.geometry.mapping(mapped)
    return out
