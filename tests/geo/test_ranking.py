"""Ranking units for an incident as arrays: the vectorised eta_to against the one-unit-at-a-time answers, and
the segment grid that snaps every position against the STRtree it stands in for (real Hanoi data)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from dispatch.core.errors import DispatchError, NoRoute, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo import _chkernels as K
from dispatch.geo import ch as ch_module
from dispatch.geo.ch import Seed, Seeds
from dispatch.geo.routing import Leg, Router
from dispatch.geo.snap import NEAR_M, Snapper
from dispatch.geo.store import LoadedGraph

EXTRACT_BBOX = (21.0082, 105.7751, 21.0848, 105.8796)  # geodata/hanoi/README.md


def _near_junctions(
    g_lat: np.ndarray, g_lon: np.ndarray, rng: np.random.Generator, k: int, spread: float
) -> list[LatLon]:
    nodes = rng.integers(0, len(g_lat), k)
    d = rng.uniform(-spread, spread, (k, 2))
    return [LatLon(float(g_lat[n] + a), float(g_lon[n] + b)) for n, (a, b) in zip(nodes, d, strict=True)]


def _on_edge(router: Router, edge: int, fraction: float) -> LatLon:
    on = shapely.line_interpolate_point(router.snapper.lines[edge], fraction, normalized=True)
    lat, lon = router.snapper.proj.inverse(np.array(shapely.get_x(on)), np.array(shapely.get_y(on)))
    return LatLon(float(lat), float(lon))


def _positions(router: Router, rng: np.random.Generator) -> list[LatLon]:
    """Everywhere a unit can be: near junctions, on them (where edges tie), on edges, in the bbox, off the map."""
    g = router.graph
    lat0, lon0, lat1, lon1 = EXTRACT_BBOX
    edges, fractions = rng.integers(0, g.n_edges, 100), rng.random(100)
    lat, lon = rng.uniform(lat0 - 0.01, lat1 + 0.01, 200), rng.uniform(lon0 - 0.01, lon1 + 0.01, 200)
    return (
        _near_junctions(g.node_lat, g.node_lon, rng, 400, 1.5e-4)
        + _near_junctions(g.node_lat, g.node_lon, rng, 200, 2.5e-3)
        + _near_junctions(g.node_lat, g.node_lon, rng, 100, 0.0)
        + [_on_edge(router, int(e), float(f)) for e, f in zip(edges, fractions, strict=True)]
        + [LatLon(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]
    )


def _seeds(rng: np.random.Generator, n_nodes: int, k: int) -> list[Seed]:
    """k ways onto the graph at random nodes, part way along an arc (ms, and metres at ~10 m/s)."""
    cost = rng.random(k) * 800
    return [Seed(int(v), float(c), float(c) / 100.0) for v, c in zip(rng.integers(0, n_nodes, k), cost, strict=True)]


def _one_by_one(router: Router, origin: LatLon, destination: LatLon, hour: int) -> Leg | DispatchError:
    """The answer of a single route (one unit, its own searches with paths), as eta_to gives it."""
    try:
        route = router.route(origin, destination, at=hour, engine="ch")
    except (OutsideCoverage, NoRoute) as exc:
        return exc
    return Leg(eta_s=route.eta_s, distance_m=route.distance_m)


@pytest.mark.slow
def test_vectorised_ranking_equals_one_route_per_unit_bit_for_bit(hanoi_router: Router) -> None:
    router = hanoi_router
    rng = np.random.default_rng(20261123)
    g = router.graph
    cases = 0
    for case in range(40):
        hour = int(rng.integers(0, 24))
        (incident,) = _near_junctions(g.node_lat, g.node_lon, rng, 1, 1.5e-3)
        try:
            snap = router.snap(incident, at=hour)
        except OutsideCoverage:
            continue
        units = _near_junctions(g.node_lat, g.node_lon, rng, 12, 2e-3)
        if case % 4 == 0:  # units on the incident's own road, before and after it, and at the incident
            units += [_on_edge(router, snap.edge, float(f)) for f in rng.random(4)] + [incident]
        if case % 5 == 0:  # units off the map
            units += [LatLon(20.9, 105.6), LatLon(21.2, 106.0)]
        legs = router.eta_to(units, incident, at=hour, engine="ch")
        expected = [_one_by_one(router, u, incident, hour) for u in units]
        assert len(legs) == len(units)
        for got, want in zip(legs, expected, strict=True):
            if isinstance(want, Leg):
                assert got == want  # eta_s and distance_m bit for bit
            else:
                assert type(got) is type(want) and str(got) == str(want)
        cases += 1
    assert cases >= 30


def test_units_off_the_map_keep_their_place_among_the_legs(hanoi_router: Router) -> None:
    incident = LatLon(21.0253, 105.8539)  # Phố Tràng Tiền
    units = [LatLon(20.9, 105.6), incident, LatLon(21.0276, 105.8355), LatLon(21.2, 106.0)]
    legs = hanoi_router.eta_to(units, incident, at=10)
    assert [type(x) for x in legs] == [OutsideCoverage, Leg, Leg, OutsideCoverage]
    assert isinstance(legs[1], Leg) and legs[1].eta_s == 0.0 and legs[1].distance_m == 0.0
    assert "outside this map's road coverage" in str(legs[0])
    with pytest.raises(OutsideCoverage):
        hanoi_router.eta_to(units, LatLon(20.9, 105.6), at=10)
    assert hanoi_router.eta_to([], incident, at=10) == []


def test_many_to_one_times_equals_the_searches_with_paths(hanoi: LoadedGraph) -> None:
    ch = hanoi.chs[0]
    rng = np.random.default_rng(7)
    n = hanoi.graph.n_nodes
    for _ in range(30):
        target = _seeds(rng, n, 2)
        # some sources have no way onto the graph at all
        sources = [_seeds(rng, n, int(k)) for k in rng.integers(0, 3, 25)]
        offsets = np.cumsum([0] + [len(s) for s in sources])
        time_ms, metres, meet = ch.many_to_one_times(
            Seeds.of([s for ss in sources for s in ss]), offsets, Seeds.of(target)
        )
        with_paths = ch.many_to_one(sources, target, with_paths=True)
        for t, m, v, found in zip(time_ms.tolist(), metres.tolist(), meet.tolist(), with_paths, strict=True):
            if found is None:
                assert t == np.inf and v == -1
            else:
                assert (t, m, v) == (found.time_ms, found.length_m, found.meet)
        assert all(f is None for f in ch.many_to_one(sources, []))


def test_grid_snapping_picks_what_the_strtree_picks(hanoi_router: Router) -> None:
    snapper = hanoi_router.snapper
    points = _positions(hanoi_router, np.random.default_rng(11))
    x, y = snapper.proj.forward(np.array([p.lat for p in points]), np.array([p.lon for p in points]))
    geoms = shapely.points(x, y)
    (pi, ei), dist = snapper.tree.query_nearest(
        geoms, max_distance=snapper.max_distance_m, return_distance=True, all_matches=False
    )
    want_edge = np.full(len(points), -1)
    want_edge[pi] = ei
    assert (snapper.locate(points).edge == want_edge).all()
    snaps = snapper.snap_many(points)
    assert [s.edge if not isinstance(s, OutsideCoverage) else -1 for s in snaps] == want_edge.tolist()
    assert [s.distance_m for s in snaps if not isinstance(s, OutsideCoverage)] == dist.tolist()
    assert 0 < len(pi) < len(points)  # both kinds were asked


def test_grid_snapping_at_the_limit_distance_is_the_strtrees(hanoi: LoadedGraph) -> None:
    """A point exactly max_distance_m from its nearest road (the grid leaves the call to the tree)."""
    base = Snapper(hanoi.graph)
    point = LatLon(21.0253 + 0.0009, 105.8539)
    s = base.snap(point)
    for limit in (s.distance_m, np.nextafter(s.distance_m, 0.0)):
        snapper = Snapper(hanoi.graph, max_distance_m=float(limit))
        geom = shapely.points(*snapper.proj.forward(np.array([point.lat]), np.array([point.lon])))
        (pi, ei) = snapper.tree.query_nearest(geom, max_distance=limit, all_matches=False)
        assert snapper.locate([point]).edge.tolist() == ([int(ei[0])] if len(pi) else [-1])
    assert Snapper(hanoi.graph, max_distance_m=s.distance_m).snap(point) == s


def test_segment_grid_lists_every_edge_within_reach_of_the_nearest(hanoi_router: Router) -> None:
    snapper = hanoi_router.snapper
    points = _positions(hanoi_router, np.random.default_rng(3))[::7]
    px, py = snapper.proj.forward(np.array([p.lat for p in points]), np.array([p.lon for p in points]))
    status, c_pt, c_edge = snapper.grid.near(px, py, snapper.max_distance_m)
    geoms = shapely.points(px, py)
    for i in range(len(points)):
        d = shapely.distance(geoms[i], snapper.lines)  # every edge, measured by GEOS
        listed = set(c_edge[c_pt == i].tolist())
        within = set(np.nonzero(d <= d.min() + NEAR_M / 2)[0].tolist())  # must be listed
        around = set(np.nonzero(d <= d.min() + 2 * NEAR_M)[0].tolist())  # may be
        if status[i] == K.SNAP_NONE:
            assert d.min() > snapper.max_distance_m and not listed
        elif status[i] == K.SNAP_ONE:
            assert listed == within == around and len(listed) == 1 and d.min() < snapper.max_distance_m
        elif status[i] == K.SNAP_MEASURE:
            assert within <= listed <= around and len(listed) <= 4
        else:
            assert status[i] == K.SNAP_TREE and len(around) > 4 and not listed
    assert set(status.tolist()) >= {K.SNAP_NONE, K.SNAP_ONE, K.SNAP_MEASURE}


def test_searches_that_outgrow_their_heaps_give_the_same_answers(
    hanoi: LoadedGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    ch = hanoi.chs[0]
    rng = np.random.default_rng(5)
    n = hanoi.graph.n_nodes
    target = _seeds(rng, n, 2)
    sources = [_seeds(rng, n, 2) for _ in range(20)]
    offsets = np.cumsum([0] + [len(s) for s in sources])
    flat, goal = Seeds.of([s for ss in sources for s in ss]), Seeds.of(target)
    roomy = ch.many_to_one_times(flat, offsets, goal), ch.many_to_one(sources, target, with_paths=True)
    monkeypatch.setattr(ch_module, "HEAP_ROOM", 1)
    monkeypatch.setattr(ch, "_pool", [])  # fresh workspaces, with one heap entry per row
    cramped = ch.many_to_one_times(flat, offsets, goal), ch.many_to_one(sources, target, with_paths=True)
    for a, b in zip(roomy[0], cramped[0], strict=True):
        assert np.array_equal(a, b)
    assert roomy[1] == cramped[1]
    assert ch._pool[0].hk.shape[1] > 1


def test_the_units_side_kept_between_calls_gives_the_answers_of_single_routes(hanoi: LoadedGraph) -> None:
    """eta_to keeps where the units lie and their ways onto the graph between calls (the same units rank every
    call): calls at several hours, then with a road closed under a unit and reopened, must all still give what
    one route per unit gives."""
    router = Router(hanoi.graph, hanoi.chs)  # its own: roads are closed here
    rng = np.random.default_rng(7)
    g = router.graph
    units = _near_junctions(g.node_lat, g.node_lon, rng, 10, 1e-3) + [LatLon(20.9, 105.6)]
    incidents = _near_junctions(g.node_lat, g.node_lon, rng, 8, 1e-3)

    def check(hour: int) -> int:
        checked = 0
        for incident in incidents:
            try:
                legs = router.eta_to(units, incident, at=hour)
            except OutsideCoverage:
                continue
            for got, want in zip(legs, [_one_by_one(router, u, incident, hour) for u in units], strict=True):
                if isinstance(want, Leg):
                    assert got == want
                else:
                    assert type(got) is type(want) and str(got) == str(want)
            checked += 1
        return checked

    assert sum(check(hour) for hour in (3, 8, 3, 17)) >= 24
    before = [repr(x) for x in router.eta_to(units, incidents[0], at=10)]
    closure = router.close_near(units[0], reason="a crash at the first unit's station")
    assert check(10) >= 6
    assert repr(router.eta_to(units, incidents[0], at=10)[0]) != before[0]  # it must leave by another way now
    router.reopen(closure.id)
    assert check(10) >= 6 and [repr(x) for x in router.eta_to(units, incidents[0], at=10)] == before
