"""Isochrones: the area reachable within T seconds from a point, as GeoJSON polygons.

One bounded Dijkstra from the origin gives the times of the junctions reached; only the arcs leaving those
junctions are looked at (through a CSR of the arcs by tail, built once per graph). Each reached arc adds its
edge (or the first part of it) to a raster of cells; the cells within ``buffer_m`` of a reached stretch, traced
back into rings, are the area.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely
import shapely.geometry
from scipy import ndimage
from scipy.sparse.csgraph import dijkstra

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.graph import CLOSED_MS, F64, I32, I64, RoadGraph
from dispatch.geo.routing import When

if TYPE_CHECKING:
    from dispatch.geo.routing import Router

#: a place counts as reached when it lies this close to a reached stretch of road (the last metres on foot)
DEFAULT_BUFFER_M = 60.0
#: holes smaller than this (a city block ringed by reached streets) are filled
FILL_HOLES_M2 = 40_000.0
#: the raster has at most about this many cells across (cells grow beyond buffer_m / 3 for large areas)
MAX_CELLS_ACROSS = 250

Bool = npt.NDArray[np.bool_]

#: per graph (keyed by id, dropped when the graph is collected): arc ids sorted by tail, and where each
#: node's arcs start in that order (the graph's own arcs are not sorted by tail)
_BY_TAIL: dict[int, tuple[I32, I64]] = {}
_BY_TAIL_LOCK = threading.Lock()


def _arcs_by_tail(g: RoadGraph) -> tuple[I32, I64]:
    csr = _BY_TAIL.get(id(g))
    if csr is None:
        order = np.argsort(g.arc_tail, kind="stable").astype(np.int32)  # int32 arc ids, as arc_edge holds them
        first_out = np.zeros(g.n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(g.arc_tail, minlength=g.n_nodes), out=first_out[1:])
        with _BY_TAIL_LOCK:
            csr = _BY_TAIL.get(id(g))
            if csr is None:
                csr = _BY_TAIL[id(g)] = (order, first_out)
                weakref.finalize(g, _BY_TAIL.pop, id(g), None)
    return csr


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
    # times only (no predecessor rows): the graph's own forward CSR, searched as DijkstraGraph.search does
    dist = dijkstra(router.dijkstra_graph(period).forward, directed=True, indices=[a.node for a in starts], limit=t_max)
    nodes, node_ms = _reached(dist, [a.cost_ms for a in starts], t_max)
    # the open arcs leaving the reached junctions, with the time at their tail
    order, first_out = _arcs_by_tail(g)
    count = first_out[nodes + 1] - first_out[nodes]
    owner = np.repeat(np.arange(len(nodes)), count)
    arcs = order[np.repeat(first_out[nodes], count) + _ranks(count)]
    arc_w = w[arcs]
    is_open = arc_w != CLOSED_MS
    arcs, arc_w, tail_ms = arcs[is_open], arc_w[is_open], node_ms[owner[is_open]]
    stretches = []
    for limit in limits:
        lim_ms = limit * 1000.0
        reach = tail_ms < lim_ms
        a_r, w_r = arcs[reach], arc_w[reach]
        frac = np.minimum(1.0, (lim_ms - tail_ms[reach]) / np.maximum(w_r, 1))
        edges = g.arc_edge[a_r].astype(np.int64)
        full = frac >= 1.0
        part = ~full
        # a whole edge counts once, whichever way it was reached; a part runs from the arc's tail
        full_edges = _distinct(edges[full])
        p_rev, p_frac = g.arc_reversed[a_r[part]], frac[part]
        e_list = [full_edges, edges[part]]
        lo_list = [np.zeros(len(full_edges)), np.where(p_rev, 1.0 - p_frac, 0.0)]
        hi_list = [np.ones(len(full_edges)), np.where(p_rev, 1.0, p_frac)]
        for a in starts:  # the stretch from the origin itself
            if a.cost_ms <= 0:
                continue
            k = min(1.0, lim_ms / a.cost_ms)
            f_end = o.fraction - k * o.fraction if a.reversed else o.fraction + k * (1 - o.fraction)
            e_list.append(np.array([o.edge], dtype=np.int64))
            lo_list.append(np.array([min(o.fraction, f_end)]))
            hi_list.append(np.array([max(o.fraction, f_end)]))
        stretches.append(_stretches(router, np.concatenate(e_list), np.concatenate(lo_list), np.concatenate(hi_list)))
    origin_xy = np.column_stack(router.snapper.proj.forward(np.array([o.lat]), np.array([o.lon])))
    features = []
    for limit, area in zip(limits, _rasterize(stretches, origin_xy, buffer_m), strict=True):
        lim_ms = limit * 1000.0
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


def _reached(dist: F64, costs: list[float], t_max: float) -> tuple[I64, F64]:
    """The nodes reached in under ``t_max`` ms from any start (its search time plus its cost to get on), and
    their times: the same sums and minimum as over every node, done on the few reached only."""
    found = dist[0] < np.inf
    for row in dist[1:]:
        found |= row < np.inf
    nodes = np.flatnonzero(found)
    node_ms = dist[0, nodes] + costs[0]
    for row, cost in zip(dist[1:], costs[1:], strict=True):
        node_ms = np.minimum(node_ms, row[nodes] + cost)
    keep = node_ms < t_max
    return nodes[keep].astype(np.int64), node_ms[keep]


def _distinct(a: I64) -> I64:
    """np.unique of a few thousand ids, by sorting (numpy's hash-based unique is several times slower)."""
    a = np.sort(a)
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    out: I64 = a[keep]
    return out


def _ranks(count: I64) -> I64:
    """0, 1, .., count[0] - 1, 0, 1, .., count[1] - 1, ...: each element's place in its group."""
    bounds = np.zeros(len(count) + 1, dtype=np.int64)
    np.cumsum(count, out=bounds[1:])
    return np.arange(int(bounds[-1]), dtype=np.int64) - np.repeat(bounds[:-1], count)


def _stretches(router: Router, edges: I64, lo: F64, hi: F64) -> tuple[F64, F64, F64, F64]:
    """The straight segments (x0, y0, x1, y1 in local metres) of each edge's polyline between the fractions
    ``lo`` and ``hi`` of its length, as shapely's normalized substring would cut them, all at once."""
    g = router.graph
    first = g.geom_offsets[edges]
    n_seg = g.geom_offsets[edges + 1] - first - 1
    owner = np.repeat(np.arange(len(edges)), n_seg)
    p = first[owner] + _ranks(n_seg)
    x, y = router.snapper.x, router.snapper.y
    ax, ay, bx, by = x[p], y[p], x[p + 1], y[p + 1]
    seg = np.hypot(bx - ax, by - ay)
    # distance along its edge to each segment's start, and each edge's length
    ends = np.cumsum(seg)
    before = np.concatenate([[0.0], ends])
    bounds = np.zeros(len(edges) + 1, dtype=np.int64)
    np.cumsum(n_seg, out=bounds[1:])
    base = before[bounds[:-1]]
    length = before[bounds[1:]] - base
    start = before[:-1] - base[owner]
    t0 = np.maximum(start, (lo * length)[owner])
    t1 = np.minimum(start + seg, (hi * length)[owner])
    inside = t1 > t0
    ax, ay, bx, by = ax[inside], ay[inside], bx[inside], by[inside]
    dx, dy = bx - ax, by - ay
    s = seg[inside]
    u0 = (t0[inside] - start[inside]) / s
    u1 = (t1[inside] - start[inside]) / s
    return ax + dx * u0, ay + dy * u0, ax + dx * u1, ay + dy * u1


Segments = tuple[F64, F64, F64, F64]


def _rasterize(stretches: list[Segments], origin_xy: F64, buffer_m: float) -> list[shapely.Geometry]:
    """Cells within ``buffer_m`` of the reached road stretches, as one (Multi)Polygon per time limit (the
    stretches of the largest first, each holding the next).

    Buffering thousands of lines in GEOS takes seconds; a grid of cells (buffer_m / 3, larger when the largest
    area is more than MAX_CELLS_ACROSS such cells across), dilated by a disk of buffer_m and traced back into
    rings, takes milliseconds and differs by under one cell. Every limit uses the same grid, and a smaller
    area is kept inside the larger one, so the polygons nest exactly.
    """
    x0s, y0s, x1s, y1s = stretches[0]
    xs = np.concatenate([x0s, x1s, origin_xy[:, 0]])
    ys = np.concatenate([y0s, y1s, origin_xy[:, 1]])
    extent = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()))
    cell = max(buffer_m / 3.0, extent / MAX_CELLS_ACROSS)
    rho = max(buffer_m / cell, 1.0)  # the dilation radius in cells
    r = math.ceil(rho - 1e-9)
    # at least one empty cell beyond the dilation on every side (two before it, for rounding)
    x0 = float(xs.min()) - (r + 2) * cell
    y0 = float(ys.min()) - (r + 2) * cell
    shape = (int((float(ys.max()) - y0) / cell) + r + 3, int((float(xs.max()) - x0) / cell) + r + 3)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (xx**2 + yy**2) <= rho * rho + 1e-9
    o_ix = ((origin_xy[:, 0] - x0) / cell).astype(np.int64)
    o_iy = ((origin_xy[:, 1] - y0) / cell).astype(np.int64)
    out = []
    outer: Bool | None = None
    for x0s, y0s, x1s, y1s in stretches:
        # points along every segment, no more than a cell apart, in cell units
        cx, cy = (x0s - x0) / cell, (y0s - y0) / cell
        cdx, cdy = (x1s - x0s) / cell, (y1s - y0s) / cell
        steps = np.maximum(np.ceil(np.hypot(cdx, cdy)), 1.0).astype(np.int64)
        owner = np.repeat(np.arange(len(steps)), steps + 1)
        u = _ranks(steps + 1) / steps[owner]
        ix = np.concatenate([(cx[owner] + cdx[owner] * u).astype(np.int64), o_ix])
        iy = np.concatenate([(cy[owner] + cdy[owner] * u).astype(np.int64), o_iy])
        np.clip(ix, 0, shape[1] - 1, out=ix)
        np.clip(iy, 0, shape[0] - 1, out=iy)
        grid = np.zeros(shape, dtype=bool)
        grid[iy, ix] = True
        grid = ndimage.binary_dilation(grid, structure=disk)
        if outer is not None:
            grid &= outer
        _join_diagonals(grid, outer)
        holes, n = ndimage.label(~grid)
        if n:
            sizes = np.bincount(holes.ravel())
            border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
            small = sizes * cell * cell < FILL_HOLES_M2
            small[border] = False
            small[0] = False
            # filling a whole 4-connected hole makes no new corner-only touch; a hole of the smaller area
            # holds no cell outside the larger one (that one's hole there, smaller still, was filled)
            grid |= small[holes]
        out.append(_trace(grid, x0, y0, cell))
        outer = grid
    return out


def _join_diagonals(grid: Bool, outer: Bool | None) -> None:
    """Fill one more cell wherever two filled cells touch only at a corner, until none do (a cell that
    ``outer`` holds, when given: it has no corner-only touches, so it holds one of the two).

    Then every corner of the grid has at most one boundary edge coming in and one going out, so the traced
    rings are simple and never touch one another: the polygons are valid by construction, and an area that
    is connected through a corner comes out in one piece.
    """
    while True:
        a, b = grid[:-1, :-1], grid[:-1, 1:]
        c, d = grid[1:, :-1], grid[1:, 1:]
        down = a & d & ~b & ~c  # filled (i, j) and (i + 1, j + 1)
        up = b & c & ~a & ~d  # filled (i, j + 1) and (i + 1, j)
        if not (down.any() or up.any()):
            return
        i, j = np.nonzero(down)
        if outer is None:
            grid[i, j + 1] = True
        else:
            use_b = outer[i, j + 1]
            grid[i[use_b], j[use_b] + 1] = True
            grid[i[~use_b] + 1, j[~use_b]] = True
        i, j = np.nonzero(up & ~grid[:-1, :-1] & ~grid[1:, 1:])
        if outer is None:
            grid[i, j] = True
        else:
            use_a = outer[i, j]
            grid[i[use_a], j[use_a]] = True
            grid[i[~use_a] + 1, j[~use_a] + 1] = True


def _trace(grid: Bool, x0: float, y0: float, cell: float) -> shapely.Geometry:
    """The filled cells of ``grid`` (row i at y0 + i * cell; an empty border; no corner-only touches) as a
    (Multi)Polygon: the cell edges between filled and empty cells, linked into rings with the filled side on
    the left (shells counter-clockwise, holes clockwise), corners only."""
    h, w = grid.shape
    # boundary edges, as (start vertex, end vertex, direction 0 east 1 north 2 west 3 south, row, col of the
    # filled cell); vertex (i, j) is the corner at x0 + j * cell, y0 + i * cell, numbered i * (w + 1) + j
    up, down = grid[1:, :], grid[:-1, :]  # the cells above and below vertex rows 1 .. h - 1
    right, left = grid[:, 1:], grid[:, :-1]  # the cells east and west of vertex columns 1 .. w - 1
    wv = w + 1
    parts = []
    i, j = np.nonzero(up & ~down)
    parts.append(((i + 1) * wv + j, (i + 1) * wv + j + 1, 0, i + 1, j))
    i, j = np.nonzero(down & ~up)
    parts.append(((i + 1) * wv + j + 1, (i + 1) * wv + j, 2, i, j))
    i, j = np.nonzero(right & ~left)
    parts.append(((i + 1) * wv + j + 1, i * wv + j + 1, 3, i, j + 1))
    i, j = np.nonzero(left & ~right)
    parts.append((i * wv + j + 1, (i + 1) * wv + j + 1, 1, i, j))
    sv = np.concatenate([p[0] for p in parts])
    ev = np.concatenate([p[1] for p in parts])
    direction = np.concatenate([np.full(len(p[0]), p[2], dtype=np.int8) for p in parts])
    cell_i = np.concatenate([p[3] for p in parts])
    cell_j = np.concatenate([p[4] for p in parts])
    n = len(sv)
    edge_at = np.full((h + 1) * wv, -1, dtype=np.int64)
    edge_at[sv] = np.arange(n)
    nxt = edge_at[ev]
    # rings: the cycles of nxt, each labelled by its lowest edge id (pointer jumping)
    ring = np.arange(n)
    jump = nxt.copy()
    span = 1
    while span < n:
        ring = np.minimum(ring, ring[jump])
        jump = jump[jump]
        span *= 2
    # each edge's place along its ring: steps to the ring's last edge (the one before its lowest edge)
    last = ring[nxt] == nxt
    to_end = (~last).astype(np.int64)
    jump = np.where(last, np.arange(n), nxt)
    span = 1
    while span < n:
        to_end = to_end + to_end[jump]
        jump = jump[jump]
        span *= 2
    walk = np.lexsort((-to_end, ring))
    ring, direction, sv = ring[walk], direction[walk], sv[walk]
    cell_i, cell_j = cell_i[walk], cell_j[walk]
    ring_start = np.flatnonzero(np.concatenate([[True], ring[1:] != ring[:-1]]))
    ring_size = np.diff(np.append(ring_start, n))
    prev = np.arange(n) - 1
    prev[ring_start] = ring_start + ring_size - 1
    corner = direction != direction[prev]
    ring_id = np.repeat(np.arange(len(ring_start)), ring_size)[corner]
    vj, vi = sv[corner] % wv, sv[corner] // wv
    # shells run counter-clockwise (positive area), holes clockwise (the shoelace sum, exact on the corner
    # numbers); each belongs to the part of filled cells on its left
    c_start = np.flatnonzero(np.concatenate([[True], ring_id[1:] != ring_id[:-1]]))
    c_next = np.arange(1, len(vj) + 1)
    c_end = np.append(c_start[1:], len(vj))
    c_next[c_end - 1] = c_start
    signed = np.add.reduceat(vj * vi[c_next] - vj[c_next] * vi, c_start)
    if (signed > 0).sum() == 1:  # one part: every hole is its hole
        part = np.zeros(len(c_start), dtype=np.int64)
    else:
        labels, _ = ndimage.label(grid)
        part = labels[cell_i[ring_start], cell_j[ring_start]]
    xy = np.column_stack([x0 + vj * cell, y0 + vi * cell])
    shells: dict[int, F64] = {}
    holes: dict[int, list[F64]] = {}
    for k, (s, e) in enumerate(zip(c_start.tolist(), c_end.tolist(), strict=True)):
        coords = np.concatenate([xy[s:e], xy[s : s + 1]])
        if signed[k] > 0:
            shells[int(part[k])] = coords
        else:
            holes.setdefault(int(part[k]), []).append(coords)
    polygons = [shapely.Polygon(shell, holes.get(p, [])) for p, shell in sorted(shells.items())]
    if len(polygons) == 1:
        return polygons[0]
    return shapely.MultiPolygon(polygons)


def _to_geojson(router: Router, geom: shapely.Geometry) -> dict[str, Any]:
    def transform(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lat, lon = router.snapper.proj.inverse(xy[:, 0], xy[:, 1])
        return np.column_stack([np.round(lon, 7), np.round(lat, 7)])

    mapped = shapely.transform(geom, transform)
    out: dict[str, Any] = shapely.geometry.mapping(mapped)
    return out
