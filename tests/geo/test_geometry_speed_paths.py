"""The vectorised route geometry, steps and isochrone code against straightforward per-arc references.

steps.py builds the middle of a route in one gather and its steps from group ends only; isochrone.py looks only
at the arcs leaving reached junctions, cuts edges without shapely, rasterizes on a grid of at most about
250 x 250 cells and traces the cells back into rings. These tests pin each shortcut to the slow way of doing it.
"""

from __future__ import annotations

import math
from datetime import time
from typing import Any

import numpy as np
import pytest
import shapely
import shapely.geometry
import shapely.ops
from scipy import ndimage

from dispatch.core.errors import DispatchError
from dispatch.core.types import LatLon
from dispatch.geo import isochrone as iso
from dispatch.geo import steps as st
from dispatch.geo.routing import Router
from dispatch.geo.store import LoadedGraph

pytestmark = pytest.mark.slow

TRANG_TIEN = LatLon(21.0253, 105.8539)


def _random_points(g: Any, rng: np.random.Generator, n: int) -> list[LatLon]:
    nodes = rng.integers(0, g.n_nodes, n)
    d = rng.uniform(-1e-3, 1e-3, (n, 2))
    return [LatLon(float(g.node_lat[k] + a), float(g.node_lon[k] + b)) for k, (a, b) in zip(nodes, d, strict=True)]


# ---- route geometry and steps -------------------------------------------------------------------------------
def _pieces_one_by_one(router: Router, args: tuple[Any, ...]) -> list[st.Piece]:
    """route_pieces as the per-arc code did it: one ``_cut`` per arc, then the stretches of no length dropped."""
    o, d, a, arcs, b, direct, w = args
    g = router.graph
    if a is None or b is None:
        x, y = st._cut(router, o.edge, o.fraction, d.fraction)
        return [st.Piece(direct[2], x, y, direct[1], direct[0])]
    x, y = st._cut(router, o.edge, o.fraction, 0.0 if a.reversed else 1.0)
    pieces = [st.Piece(a.arc, x, y, a.length_m, a.cost_ms)]
    for arc in arcs:
        e, rev = int(g.arc_edge[arc]), bool(g.arc_reversed[arc])
        x, y = st._cut(router, e, 1.0 if rev else 0.0, 0.0 if rev else 1.0)
        pieces.append(st.Piece(arc, x, y, float(g.arc_length_m[arc]), float(w[arc])))
    x, y = st._cut(router, d.edge, 1.0 if b.reversed else 0.0, d.fraction)
    pieces.append(st.Piece(b.arc, x, y, b.length_m, b.cost_ms))
    return [p for p in pieces if p.length_m > 0.05 or p is pieces[0]]


def _groups_one_by_one(router: Router, pieces: list[st.Piece]) -> list[tuple[str, float | None, float | None]]:
    """(street, heading on, heading off) per group of pieces, piece by piece as the per-arc code did it."""
    g = router.graph

    def street(p: st.Piece) -> str:
        k = int(g.edge_name[g.arc_edge[p.arc]])
        return g.names[k] if k >= 0 else ""

    def end_bearing(p: st.Piece, first: bool) -> float | None:
        dx, dy = np.diff(p.x), np.diff(p.y)
        real = np.nonzero(np.hypot(dx, dy) > 0.01)[0]
        if len(real) == 0:
            return None
        k = int(real[0] if first else real[-1])
        return st._bearing(float(dx[k]), float(dy[k]))

    groups: list[list[st.Piece]] = []
    for p in pieces:
        if groups and street(groups[-1][-1]) == street(p):
            groups[-1].append(p)
        else:
            groups.append([p])
    out: list[tuple[str, float | None, float | None]] = []
    for grp in groups:
        on = next((b for b in (end_bearing(p, True) for p in grp) if b is not None), None)
        off = next((b for b in (end_bearing(p, False) for p in reversed(grp)) if b is not None), None)
        out.append((street(grp[0]), on, off))
    return out


def _without_repeats(x: Any, y: Any) -> tuple[Any, Any]:
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = np.hypot(np.diff(x), np.diff(y)) > 0
    return x[keep], y[keep]


def test_route_pieces_and_steps_equal_the_per_arc_way(hanoi_router: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-gather pieces hold the points one ``_cut`` per arc gave (bar repeated points of a polyline,
    which the line drops anyway); the steps turn where the per-piece headings say."""
    r = hanoi_router
    seen: list[tuple[tuple[Any, ...], list[st.Piece]]] = []
    real = st.route_pieces

    def spy(router: Router, *args: Any) -> list[st.Piece]:
        out = real(router, *args)
        seen.append((args, out))
        return out

    monkeypatch.setattr(st, "route_pieces", spy)
    rng = np.random.default_rng(11)
    checked = 0
    for o, d in zip(_random_points(r.graph, rng, 50), _random_points(r.graph, rng, 50), strict=True):
        seen.clear()
        try:
            route = r.route(o, d, at=time(10, 0))
        except DispatchError:
            continue
        (args, pieces), *_ = seen
        ref = _pieces_one_by_one(r, args)
        assert [(p.arc, p.length_m, p.time_ms) for p in pieces] == [(p.arc, p.length_m, p.time_ms) for p in ref]
        for p, q in zip(pieces, ref, strict=True):
            px, py = _without_repeats(p.x, p.y)
            qx, qy = _without_repeats(q.x, q.y)
            assert np.array_equal(px, qx) and np.array_equal(py, qy)
        groups = _groups_one_by_one(r, pieces)
        steps = route.steps[:-1]
        assert [s["name"] for s in steps] == [name for name, _, _ in groups]
        for i, (step, (_, on, _)) in enumerate(zip(steps, groups, strict=True)):
            if on is not None:
                assert step["maneuver"]["bearing_after"] == round(on)
            if i > 0 and groups[i - 1][2] is not None:
                assert step["maneuver"]["bearing_before"] == round(groups[i - 1][2])
        checked += 1
    assert checked >= 25


def test_names_spelled_alike_share_a_text_id(hanoi: LoadedGraph) -> None:
    g = hanoi.graph
    ids = st._text_ids(g)
    assert ids[0] == 0  # the unnamed road
    texts: dict[int, str] = {}
    for k, name in enumerate(g.names):
        assert texts.setdefault(int(ids[k + 1]), name) == name
    assert len(texts) == len(set(g.names))
    assert st._text_ids(g) is ids  # cached per graph


def test_round7_is_pythons_round() -> None:
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.uniform(20.9, 21.1, 20000), rng.uniform(105.7, 105.9, 20000), [0.0, -1e-9, 179.99]])
    v = np.concatenate([v, np.round(v, 7) + 5e-8, np.round(v, 7) - 5e-8])  # at or next to the halves
    assert st._round7(v).tolist() == [round(x, 7) for x in v.tolist()]


# ---- isochrones ---------------------------------------------------------------------------------------------
def test_arcs_by_tail_csr(hanoi: LoadedGraph) -> None:
    g = hanoi.graph
    order, first_out = iso._arcs_by_tail(g)
    assert iso._arcs_by_tail(g)[0] is order
    rng = np.random.default_rng(4)
    for n in rng.integers(0, g.n_nodes, 200).tolist():
        got = sorted(order[first_out[n] : first_out[n + 1]].tolist())
        assert got == np.flatnonzero(g.arc_tail == n).tolist()


def test_reached_equals_the_minimum_over_every_node() -> None:
    rng = np.random.default_rng(5)
    dist = np.full((2, 5000), np.inf)
    for row in dist:
        hit = rng.choice(5000, 700, replace=False)
        row[hit] = rng.integers(0, 100_000, 700).astype(float)
    costs = [1234.5, 0.25]
    nodes, node_ms = iso._reached(dist, costs, 90_000.0)
    full = np.min(dist + np.array([[c] for c in costs]), axis=0)
    assert nodes.tolist() == np.flatnonzero(full < 90_000.0).tolist()
    assert node_ms.tolist() == full[nodes].tolist()


def test_stretches_equal_shapely_substrings(hanoi_router: Router) -> None:
    r = hanoi_router
    g = r.graph
    rng = np.random.default_rng(6)
    edges = rng.integers(0, g.n_edges, 200).astype(np.int64)
    a, b = rng.uniform(0, 1, 200), rng.uniform(0, 1, 200)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    lo[:40], hi[:40] = 0.0, 1.0
    one_by_one = [iso._stretches(r, edges[k : k + 1], lo[k : k + 1], hi[k : k + 1]) for k in range(200)]
    together = iso._stretches(r, edges, lo, hi)
    for part, whole in zip(together, zip(*one_by_one, strict=True), strict=True):
        assert np.allclose(part, np.concatenate(whole), rtol=0, atol=1e-6)
    for k, (x0, y0, x1, y1) in enumerate(one_by_one):
        ref = shapely.ops.substring(r.snapper.lines[edges[k]], lo[k], hi[k], normalized=True)
        if ref.length == 0:
            assert len(x0) == 0
            continue
        mine = shapely.linestrings(np.stack([np.column_stack([x0, y0]), np.column_stack([x1, y1])], axis=1))
        assert float(shapely.length(mine).sum()) == pytest.approx(ref.length, abs=1e-6)
        assert shapely.hausdorff_distance(shapely.MultiLineString(list(mine)), ref) < 1e-6


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6, 0.8])
def test_traced_grid_is_valid_and_exact(density: float) -> None:
    rng = np.random.default_rng(int(density * 100))
    for _ in range(20):
        grid = np.zeros((40, 50), dtype=bool)
        grid[2:-2, 2:-2] = rng.random((36, 46)) < density
        iso._join_diagonals(grid, None)
        a, b, c, d = grid[:-1, :-1], grid[:-1, 1:], grid[1:, :-1], grid[1:, 1:]
        assert not ((a & d & ~b & ~c) | (b & c & ~a & ~d)).any()
        geom = iso._trace(grid, -100.0, 50.0, 2.5)
        assert geom.is_valid, shapely.is_valid_reason(geom)
        assert geom.area == pytest.approx(grid.sum() * 2.5 * 2.5)
        _, parts = ndimage.label(grid)
        assert shapely.get_num_geometries(geom) == parts
        # every cell centre lies inside exactly when the cell is filled
        ii, jj = np.mgrid[0:40, 0:50]
        centres = shapely.points(-100.0 + (jj.ravel() + 0.5) * 2.5, 50.0 + (ii.ravel() + 0.5) * 2.5)
        assert np.array_equal(shapely.contains(geom, centres), grid.ravel())


def test_joining_diagonals_inside_an_outer_grid_stays_inside() -> None:
    rng = np.random.default_rng(9)
    for _ in range(30):
        outer = np.zeros((30, 30), dtype=bool)
        outer[2:-2, 2:-2] = rng.random((26, 26)) < 0.7
        iso._join_diagonals(outer, None)
        inner = outer & (rng.random((30, 30)) < 0.6)
        iso._join_diagonals(inner, outer)
        assert not (inner & ~outer).any()
        assert iso._trace(inner, 0.0, 0.0, 1.0).is_valid


def test_isochrones_nest_exactly_on_one_grid_of_at_most_about_250_cells(hanoi_router: Router) -> None:
    fc = iso.isochrones(hanoi_router, TRANG_TIEN, [4 * 60, 8 * 60, 30 * 60], at=time(10, 0))
    shapes = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
    for big, small in zip(shapes, shapes[1:], strict=False):
        assert small.difference(big).area == 0.0
        assert small.area < big.area
    for s in shapes:
        assert s.is_valid and shapely.get_num_geometries(s) == 1
    # the 30-minute area spans the map: its corners lie on a lattice of no more than ~250 columns and rows
    xy = shapely.get_coordinates(shapes[0])
    assert len(np.unique(xy[:, 0])) <= 260 and len(np.unique(xy[:, 1])) <= 260


def test_isochrones_from_many_origins_are_valid_in_one_piece_and_hold_the_origin(hanoi_router: Router) -> None:
    g = hanoi_router.graph
    rng = np.random.default_rng(10)
    done = 0
    for p in _random_points(g, rng, 40):
        buffer_m = float(rng.choice([20.0, 60.0, 150.0]))
        try:
            fc = iso.isochrones(hanoi_router, p, [120, 480], at=time(17, 0), buffer_m=buffer_m)
        except DispatchError:
            continue
        origin = shapely.Point(fc["origin"]["lon"], fc["origin"]["lat"])
        for f in fc["features"]:
            s = shapely.geometry.shape(f["geometry"])
            assert s.is_valid, shapely.is_valid_reason(s)
            assert shapely.get_num_geometries(s) == 1
            assert s.contains(origin)
            lat0 = math.radians(fc["origin"]["lat"])
            km2 = s.area * (111_195.08**2) * math.cos(lat0) / 1e6
            assert f["properties"]["area_km2"] == pytest.approx(km2, rel=0.01, abs=0.002)
        done += 1
    assert done >= 20
