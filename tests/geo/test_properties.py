"""Property tests on the Hanoi graph: the fast path (contraction hierarchies) against independent answers.

Derandomized with a fixed example budget, so every run (and CI) checks the same cases.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dispatch.core.errors import DispatchError, NoRoute, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.graph import CLOSED_MS, RoadGraph
from dispatch.geo.routing import Leg, Route, Router
from dispatch.geo.store import LoadedGraph

pytestmark = pytest.mark.slow

# the extract's bounding box (geodata/hanoi/README.md)
LAT0, LON0, LAT1, LON1 = 21.0082, 105.7751, 21.0848, 105.8796

PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def nx_graphs(hanoi: LoadedGraph) -> list[nx.DiGraph]:
    """One networkx DiGraph per period from the same arcs; parallel arcs keep the smallest integer weight."""
    g = hanoi.graph
    out = []
    for period in range(len(g.profile.periods)):
        w = g.arc_time_ms[period]
        dg = nx.DiGraph()
        dg.add_nodes_from(range(g.n_nodes))
        for a in np.nonzero(w != CLOSED_MS)[0].tolist():
            u, v, wt = int(g.arc_tail[a]), int(g.arc_head[a]), int(w[a])
            if not dg.has_edge(u, v) or dg[u][v]["weight"] > wt:
                dg.add_edge(u, v, weight=wt)
        out.append(dg)
    return out


def _position(data: st.DataObject, g: RoadGraph, label: str) -> LatLon:
    """Anywhere in the extract's bbox, or (half the time) within ~200 m of a junction, where roads are."""
    if data.draw(st.booleans(), label=f"{label} near a junction"):
        n = data.draw(st.integers(0, g.n_nodes - 1), label=f"{label} junction")
        dlat = data.draw(st.floats(-0.0015, 0.0015), label=f"{label} dlat")
        dlon = data.draw(st.floats(-0.0015, 0.0015), label=f"{label} dlon")
        return LatLon(float(g.node_lat[n]) + dlat, float(g.node_lon[n]) + dlon)
    # a 100 x 100 grid over the bbox (floats would favour its corners, which are off the map)
    i = data.draw(st.integers(0, 100), label=f"{label} row")
    j = data.draw(st.integers(0, 100), label=f"{label} column")
    return LatLon(LAT0 + (LAT1 - LAT0) * i / 100, LON0 + (LON1 - LON0) * j / 100)


def _route_or_error(router: Router, o: LatLon, d: LatLon, hour: int, engine: Any) -> Route | DispatchError:
    try:
        return router.route(o, d, at=hour, engine=engine)
    except (OutsideCoverage, NoRoute) as exc:
        return exc


def _chain_ok(g: RoadGraph, arcs: list[int]) -> bool:
    return all(int(g.arc_head[a]) == int(g.arc_tail[b]) for a, b in zip(arcs, arcs[1:], strict=False))


@PROPERTY
@given(data=st.data())
def test_ch_distance_equals_networkx_dijkstra(hanoi: LoadedGraph, nx_graphs: list[nx.DiGraph], data: Any) -> None:
    g = hanoi.graph
    period = data.draw(st.integers(0, len(hanoi.chs) - 1), label="period")
    s = data.draw(st.integers(0, g.n_nodes - 1), label="source")
    t = data.draw(st.integers(0, g.n_nodes - 1), label="target")
    try:
        expected: int | None = nx.dijkstra_path_length(nx_graphs[period], s, t)
    except nx.NetworkXNoPath:
        expected = None
    ch = hanoi.chs[period]
    assert ch.distance_ms(s, t) == expected
    found = ch.path(s, t)
    if expected is None:
        assert found is None
        return
    assert found is not None
    ms, arcs = found
    assert ms == expected
    # the unpacked path is a chain of real arcs from s to t whose weights add up to the distance
    if s == t:
        assert arcs == []
        return
    assert int(g.arc_tail[arcs[0]]) == s and int(g.arc_head[arcs[-1]]) == t
    assert _chain_ok(g, arcs)
    assert int(g.arc_time_ms[period][arcs].astype(np.int64).sum()) == expected


@PROPERTY
@given(data=st.data())
def test_eta_to_same_with_ch_and_dijkstra(hanoi_router: Router, data: Any) -> None:
    g = hanoi_router.graph
    hour = data.draw(st.integers(0, 23), label="hour")
    dest = _position(data, g, "incident")
    n_units = data.draw(st.integers(1, 6), label="units")
    units = [_position(data, g, f"unit {i}") for i in range(n_units)]
    try:
        hanoi_router.snap(dest, at=hour)
    except OutsideCoverage:
        event("incident outside coverage")
        for engine in ("ch", "dijkstra"):
            with pytest.raises(OutsideCoverage):
                hanoi_router.eta_to(units, dest, at=hour, engine=engine)
        return
    ch = hanoi_router.eta_to(units, dest, at=hour, engine="ch")
    dj = hanoi_router.eta_to(units, dest, at=hour, engine="dijkstra")
    assert len(ch) == len(dj) == n_units
    for a, b in zip(ch, dj, strict=True):
        if isinstance(a, Leg):
            assert isinstance(b, Leg)
            assert a.eta_s == pytest.approx(b.eta_s, rel=1e-12, abs=1e-9)
            assert a.distance_m == pytest.approx(b.distance_m, rel=1e-9, abs=1e-6)
            assert a.eta_s >= 0 and a.distance_m >= 0
        else:
            assert type(a) is type(b) and str(a) == str(b)


@PROPERTY
@given(data=st.data())
def test_route_same_with_ch_and_dijkstra_and_consistent(hanoi_router: Router, data: Any) -> None:
    g = hanoi_router.graph
    hour = data.draw(st.integers(0, 23), label="hour")
    o = _position(data, g, "origin")
    d = _position(data, g, "destination")
    a = _route_or_error(hanoi_router, o, d, hour, "ch")
    b = _route_or_error(hanoi_router, o, d, hour, "dijkstra")
    if isinstance(a, DispatchError):
        event(f"route: {type(a).__name__}")
        assert type(a) is type(b) and str(a) == str(b)
        return
    event("route: found")
    assert isinstance(b, Route)
    assert a.engine == "ch" and b.engine == "dijkstra"
    assert a.eta_s == pytest.approx(b.eta_s, rel=1e-12, abs=1e-9)
    assert a.distance_m == pytest.approx(b.distance_m, rel=1e-9, abs=1e-6)
    # the one-to-many query gives the same answer as the route
    (leg,) = hanoi_router.eta_to([o], d, at=hour)
    assert isinstance(leg, Leg) and leg.eta_s == pytest.approx(a.eta_s, rel=1e-12, abs=1e-9)
    for r in (a, b):
        coords = r.geometry["coordinates"]
        assert coords[0] == pytest.approx([r.origin.lon, r.origin.lat], abs=1e-6)
        assert coords[-1] == pytest.approx([r.destination.lon, r.destination.lat], abs=1e-6)
        assert _chain_ok(g, r.arcs)
        assert r.steps[0]["maneuver"]["type"] == "depart" and r.steps[-1]["maneuver"]["type"] == "arrive"
        assert sum(s["distance_m"] for s in r.steps) == pytest.approx(r.distance_m, abs=0.05 * len(r.steps) + 0.01)


@settings(derandomize=True, database=None, deadline=None, max_examples=80)
@given(data=st.data())
def test_closing_a_road_never_makes_a_trip_faster_and_engines_still_agree(hanoi: LoadedGraph, data: Any) -> None:
    router = Router(hanoi.graph, hanoi.chs)
    g = router.graph
    hour = data.draw(st.integers(0, 23), label="hour")
    o = _position(data, g, "origin")
    d = _position(data, g, "destination")
    open_route = _route_or_error(router, o, d, hour, "auto")
    if isinstance(open_route, OutsideCoverage):
        event("outside coverage")
        return
    assert isinstance(open_route, Route)
    on_path = [int(g.arc_edge[x]) for x in open_route.arcs]
    pick_on_path = bool(on_path) and data.draw(st.booleans(), label="close an edge of the route")
    if pick_on_path:
        edge = data.draw(st.sampled_from(on_path), label="closed edge")
    else:
        edge = data.draw(st.integers(0, g.n_edges - 1), label="closed edge")
    router.close_edges([edge], reason="property test")
    closed_routes = [_route_or_error(router, o, d, hour, e) for e in ("auto", "ch", "dijkstra")]
    first = closed_routes[0]
    for other in closed_routes[1:]:
        if isinstance(first, DispatchError):
            assert type(other) is type(first)
        else:
            assert isinstance(other, Route)
            assert other.eta_s == pytest.approx(first.eta_s, rel=1e-12, abs=1e-9)
    event(f"closed {'route' if pick_on_path else 'any'} edge: {type(first).__name__}")
    if isinstance(first, Route):
        assert edge not in {int(g.arc_edge[x]) for x in first.arcs}
        if first.origin.edge == open_route.origin.edge and first.destination.edge == open_route.destination.edge:
            assert first.eta_s >= open_route.eta_s - 1e-9
        legs = {e: router.eta_to([o], d, at=hour, engine=e)[0] for e in ("ch", "dijkstra")}
        for leg in legs.values():
            assert isinstance(leg, Leg) and leg.eta_s == pytest.approx(first.eta_s, rel=1e-12, abs=1e-9)
