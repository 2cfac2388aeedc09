"""Exact expectations on a hand-made OSM file (tests/data/tiny.osm, drawn in its header comment).

Every travel time here is computed by hand from the node coordinates (read straight from the XML, not
through pyosmium) and the round speeds of tests/data/tiny-profile.toml: primary 36 km/h = 10 m/s,
residential 18 km/h = 5 m/s, a mapped maxspeed taken as is (maxspeed_factor = 1), twice as fast at night,
capped at 100 km/h. A time is rint(length / speed) in integer milliseconds, per edge (junction to junction).
"""

from __future__ import annotations

import bz2
import math
import re
import xml.etree.ElementTree as ET
from datetime import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import osmium
import pytest
import shapely.geometry

from dispatch.core.errors import InvalidInput, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.graph import CLOSED_MS, RoadGraph, build_graph
from dispatch.geo.isochrone import isochrones
from dispatch.geo.osm import OsmReadError, read_osm
from dispatch.geo.profile import load_profile
from dispatch.geo.routing import Leg, Router
from dispatch.geo.store import LoadedGraph, cache_key, load_or_build
from tests.conftest import FOOTWAYS_ONLY_OSM, TINY_OSM, TINY_PROFILE

# ---- hand computation --------------------------------------------------------------------------------------
EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius


def _nodes_from_xml(path: Path) -> dict[int, tuple[float, float]]:
    root = ET.parse(path).getroot()
    return {int(n.get("id")): (float(n.get("lat")), float(n.get("lon"))) for n in root.iter("node")}


NODES = _nodes_from_xml(TINY_OSM)


def _hav(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def metres(*chain: int) -> float:
    return sum(_hav(NODES[a], NODES[b]) for a, b in zip(chain, chain[1:], strict=False))


def ms(length_m: float, kph: float) -> int:
    return max(1, round(length_m / (kph / 3.6) * 1000.0))


# Every edge the tiny-test profile keeps: (from, to) -> (way, node chain, base km/h, night km/h or None when
# closed at night, directions). Night speeds are twice the base, capped at max_speed_kph = 100.
EDGES: dict[tuple[int, int], tuple[int, tuple[int, ...], float, float | None, str]] = {
    (1, 2): (101, (1, 2), 36, 72, "both"),
    (2, 3): (101, (2, 3), 36, 72, "both"),
    (3, 4): (101, (3, 4), 36, 72, "both"),
    (9, 10): (102, (9, 10), 60, 100, "both"),  # maxspeed=60; at night 120 is capped at 100
    (10, 12): (102, (10, 11, 12), 60, 100, "both"),  # node 11 is no junction: 107/113/130 are not driven
    (1, 5): (103, (1, 5), 18, 36, "both"),
    (5, 9): (103, (5, 9), 18, 36, "both"),
    (4, 8): (104, (4, 8), 18, 36, "both"),
    (8, 12): (104, (8, 12), 18, 36, "both"),
    (5, 6): (105, (5, 6), 18, 36, "forward"),  # oneway=yes
    (6, 8): (105, (6, 7, 8), 18, 36, "forward"),  # node 7 only meets a private road and a footway
    (2, 6): (106, (2, 6), 18, 36, "backward"),  # oneway=-1: only 6 -> 2
    (6, 10): (106, (6, 10), 18, 36, "backward"),  # only 10 -> 6
    (8, 14): (108, (8, 14), 18, 36, "both"),  # access=no but emergency=yes
    (3, 21): (114, (3, 21), 18, None, "both"),  # motor_vehicle:conditional = no @ (22:00-06:00)
}
T = {k: ms(metres(*v[1]), v[2]) for k, v in EDGES.items()}  # base-period ms per edge
L = {k: metres(*v[1]) for k, v in EDGES.items()}
BASE, NIGHT = 0, 1  # tiny-profile periods: the implicit base (06-22) and night (22-06)

# two places on Phố Một Chiều (oneway=yes, east from node 6 through 7 to 8): a quarter and three quarters along
A = LatLon(21.0310, 105.8515)
B = LatLon(21.0310, 105.8525)


# ---- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> LoadedGraph:
    return load_or_build(TINY_OSM, load_profile(TINY_PROFILE), use_cache=False)


@pytest.fixture(scope="module")
def tiny_ambulance() -> LoadedGraph:
    return load_or_build(TINY_OSM, "ambulance", use_cache=False)


@pytest.fixture(scope="module")
def tiny_motorbike() -> LoadedGraph:
    return load_or_build(TINY_OSM, "motorbike", use_cache=False)


@pytest.fixture
def router(tiny: LoadedGraph) -> Router:
    return Router(tiny.graph, tiny.chs)


def node(g: RoadGraph, osm_id: int) -> int:
    found = np.nonzero(g.node_osm == osm_id)[0]
    assert len(found) == 1, f"OSM node {osm_id} is not a graph node"
    return int(found[0])


def arcs(g: RoadGraph, u: int, v: int) -> list[int]:
    """Arcs from OSM node u to OSM node v."""
    return np.nonzero((g.arc_tail == node(g, u)) & (g.arc_head == node(g, v)))[0].tolist()


def edge(g: RoadGraph, u: int, v: int) -> int:
    found = {int(g.arc_edge[a]) for a in arcs(g, u, v) + arcs(g, v, u)}
    assert len(found) == 1
    return found.pop()


def all_arcs(g: RoadGraph) -> set[tuple[int, int]]:
    return {(int(g.node_osm[t]), int(g.node_osm[h])) for t, h in zip(g.arc_tail, g.arc_head, strict=True)}


# ---- what the filter keeps ---------------------------------------------------------------------------------
def test_kept_ways_nodes_edges(tiny: LoadedGraph) -> None:
    g = tiny.graph
    assert set(g.edge_way.tolist()) == {101, 102, 103, 104, 105, 106, 108, 114}
    assert sorted(g.node_osm.tolist()) == [1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 14, 21]
    assert g.n_edges == len(EDGES) == 15
    expected_arcs = set()
    for (u, v), (_, _, _, _, way_dir) in EDGES.items():
        if way_dir in ("both", "forward"):
            expected_arcs.add((u, v))
        if way_dir in ("both", "backward"):
            expected_arcs.add((v, u))
    assert all_arcs(g) == expected_arcs
    assert g.n_arcs == 26


def test_stats_count_dropped_island_and_filtered_ways(tiny: LoadedGraph) -> None:
    s = tiny.graph.stats
    assert s["highway_ways_read"] == 16  # every highway=* way, the island and the footway included
    assert s["ways_kept"] == 10  # 8 in the graph + the two island ways
    assert s["ways_dropped"] == {
        "access=private": 1,
        "access=no": 1,
        "motorcar=no": 1,
        "service=alley": 1,
        "width < 2.5 m": 1,
        "highway=footway not in profile": 1,
    }
    # the island 30-31-32: one component of 3 nodes and 4 arcs, dropped
    assert s["components_before"] == 2
    assert s["dropped_components"] == 1
    assert s["dropped_nodes"] == 3
    assert s["dropped_arcs"] == 4
    assert s["largest_dropped_component_nodes"] == 3
    assert s["conditional_restrictions_applied"] == 1
    assert s["conditional_restrictions_not_modelled"] == 0
    assert s["missing_node_locations"] == 0
    # the bbox is that of the kept roads: not the island (21.041 N), not the alley (21.033 N)
    assert s["bbox"] == pytest.approx([21.0290, 105.8500, 21.0320, 105.8540], abs=1e-9)
    assert s["nodes"] == 12 and s["edges"] == 15 and s["arcs"] == 26


def test_every_arc_time_and_length_is_exact(tiny: LoadedGraph) -> None:
    g = tiny.graph
    assert [p.name for p in g.profile.periods] == ["base", "night"]
    for (u, v), (way, chain, base_kph, night_kph, way_dir) in EDGES.items():
        pairs = ([(u, v)] if way_dir != "backward" else []) + ([(v, u)] if way_dir != "forward" else [])
        for tail, head in pairs:
            (a,) = arcs(g, tail, head)
            assert g.edge_way[g.arc_edge[a]] == way
            assert g.arc_length_m[a] == pytest.approx(metres(*chain), rel=1e-9)
            assert g.arc_time_ms[BASE, a] == ms(metres(*chain), base_kph), (tail, head)
            expected_night = CLOSED_MS if night_kph is None else ms(metres(*chain), night_kph)
            assert g.arc_time_ms[NIGHT, a] == expected_night, (tail, head)


def test_edge_geometry_is_the_node_chain(tiny: LoadedGraph) -> None:
    g = tiny.graph
    for (u, v), (_, chain, _, _, _) in EDGES.items():
        e = edge(g, u, v)
        s, t = int(g.geom_offsets[e]), int(g.geom_offsets[e + 1])
        pts = list(zip(g.geom_lat[s:t].tolist(), g.geom_lon[s:t].tolist(), strict=True))
        expected = [NODES[n] for n in chain]
        if pts[0] != pytest.approx(expected[0], abs=1e-9):
            expected.reverse()
        assert pts == [pytest.approx(p, abs=1e-9) for p in expected]


def test_maxspeed_changes_travel_time_exactly(tiny: LoadedGraph) -> None:
    g = tiny.graph
    (a,) = arcs(g, 9, 10)  # primary with maxspeed=60 and maxspeed_factor 1
    (b,) = arcs(g, 1, 2)  # primary without maxspeed: the class speed, 36 km/h
    assert metres(9, 10) == pytest.approx(metres(1, 2), rel=1e-3)  # same length, different speed
    assert g.arc_time_ms[BASE, a] == round(metres(9, 10) / (60 / 3.6) * 1000)
    assert g.arc_time_ms[BASE, b] == round(metres(1, 2) / (36 / 3.6) * 1000)
    assert g.arc_time_ms[BASE, a] < g.arc_time_ms[BASE, b]


def test_builtin_ambulance_applies_maxspeed_factor_and_period_factors(tiny_ambulance: LoadedGraph) -> None:
    g = tiny_ambulance.graph
    names = [p.name for p in g.profile.periods]
    assert names == ["base", "morning_peak", "evening_peak", "night"]
    prof = g.profile
    factors = [p.speed_factor for p in prof.periods]
    assert factors[0] == 1.0 and factors[1] < 1 and factors[2] < 1 and factors[3] > 1
    (a,) = arcs(g, 9, 10)  # maxspeed=60, scaled by the profile's maxspeed_factor
    (b,) = arcs(g, 1, 2)  # primary without maxspeed: the profile's primary speed
    for p, factor in enumerate(factors):
        kph_a = min(60 * prof.maxspeed_factor, prof.max_speed_kph) * factor
        kph_b = prof.speeds_kph["primary"] * factor
        assert g.arc_time_ms[p, a] == ms(metres(9, 10), min(kph_a, prof.max_speed_kph)), names[p]
        assert g.arc_time_ms[p, b] == ms(metres(1, 2), min(kph_b, prof.max_speed_kph)), names[p]
    (c,) = arcs(g, 3, 21)  # no motor vehicles 22:00-06:00: closed in the night period (22-5) only
    assert [g.arc_time_ms[p, c] == CLOSED_MS for p in range(4)] == [False, False, False, True]


# ---- access, oneway, footway -------------------------------------------------------------------------------
def test_private_access_and_footway_are_not_driven_and_do_not_split_roads(tiny: LoadedGraph) -> None:
    g = tiny.graph
    assert 107 not in g.edge_way  # access=private
    assert 130 not in g.edge_way  # footway
    assert 112 not in g.edge_way  # access=no without an emergency exception
    assert not np.isin([7, 11, 19, 40], g.node_osm).any()
    # Phố Một Chiều runs 6 -> 7 -> 8 as one edge: node 7 only meets ways the profile does not drive
    e = edge(g, 6, 8)
    assert int(g.geom_offsets[e + 1] - g.geom_offsets[e]) == 3


def test_emergency_yes_overrides_access_no_for_ambulance_profiles(
    tiny: LoadedGraph, tiny_ambulance: LoadedGraph, tiny_motorbike: LoadedGraph
) -> None:
    for loaded in (tiny, tiny_ambulance, tiny_motorbike):
        g = loaded.graph
        assert 108 in g.edge_way, g.profile.name
        assert len(arcs(g, 8, 14)) == 1 and len(arcs(g, 14, 8)) == 1


def test_motorbike_keeps_what_the_ambulance_may_not(tiny_ambulance: LoadedGraph, tiny_motorbike: LoadedGraph) -> None:
    amb, moto = tiny_ambulance.graph, tiny_motorbike.graph
    assert amb.stats["ways_dropped"]["motorcar=no"] == 1
    assert amb.stats["ways_dropped"]["service=alley"] == 1
    assert amb.stats["ways_dropped"]["width < 2.5 m"] == 1
    for way in (109, 110, 113):  # motorcar=no, service=alley, width=2
        assert way not in amb.edge_way
        assert way in moto.edge_way
    assert set(moto.node_osm.tolist()) - set(amb.node_osm.tolist()) == {11, 16, 17, 20}
    assert moto.n_nodes == 16 and amb.n_nodes == 12
    # still out for both: access=private, access=no, the footway
    for way in (107, 112, 130):
        assert way not in moto.edge_way
    assert moto.stats["ways_dropped"] == {
        "access=private": 1,
        "access=no": 1,
        "highway=footway not in profile": 1,
    }
    # the motorbike rides maxspeed=60 times its maxspeed_factor, a primary without maxspeed at its class speed
    prof = moto.profile
    (a,) = arcs(moto, 9, 10)
    (b,) = arcs(moto, 1, 2)
    assert moto.arc_time_ms[0, a] == ms(metres(9, 10), min(60 * prof.maxspeed_factor, prof.max_speed_kph))
    assert moto.arc_time_ms[0, b] == ms(metres(1, 2), prof.speeds_kph["primary"])


def test_oneway_yes_direct_one_way_detour_the_other(tiny: LoadedGraph) -> None:
    g = tiny.graph
    ch = tiny.chs[BASE]
    assert arcs(g, 5, 6) and arcs(g, 6, 8)
    assert not arcs(g, 6, 5) and not arcs(g, 8, 6)
    # 5 -> 8 straight along Phố Một Chiều
    assert ch.distance_ms(node(g, 5), node(g, 8)) == T[(5, 6)] + T[(6, 8)]
    # 8 -> 5 must go round: north on Ngô Quyền, west on Hàng Bài (maxspeed 60), south on Lý Thái Tổ
    # (the southern way round, 8-4-3-2-1-5 along a 36 km/h primary, is about 12 s slower)
    detour = T[(8, 12)] + T[(10, 12)] + T[(9, 10)] + T[(5, 9)]
    assert ch.distance_ms(node(g, 8), node(g, 5)) == detour
    south = T[(4, 8)] + T[(3, 4)] + T[(2, 3)] + T[(1, 2)] + T[(1, 5)]
    assert detour < south


def test_oneway_minus_one_runs_against_the_drawing(tiny: LoadedGraph) -> None:
    g = tiny.graph
    ch = tiny.chs[BASE]
    for u, v in ((2, 6), (6, 10)):  # drawn 2 -> 6 -> 10, driven 10 -> 6 -> 2
        e = edge(g, u, v)
        assert g.edge_fwd_arc[e] == -1
        assert g.edge_bwd_arc[e] >= 0
        assert g.arc_reversed[g.edge_bwd_arc[e]]
    assert ch.distance_ms(node(g, 10), node(g, 2)) == T[(6, 10)] + T[(2, 6)]
    assert ch.distance_ms(node(g, 2), node(g, 10)) == T[(1, 2)] + T[(1, 5)] + T[(5, 9)] + T[(9, 10)]


def test_conditional_restriction_closes_the_way_at_night_only(tiny: LoadedGraph) -> None:
    g = tiny.graph
    one, dem = node(g, 1), node(g, 21)
    assert tiny.chs[BASE].distance_ms(one, dem) == T[(1, 2)] + T[(2, 3)] + T[(3, 21)]
    assert tiny.chs[NIGHT].distance_ms(one, dem) is None
    router = Router(g, tiny.chs)
    on_dem = LatLon(21.0293, 105.8520)  # on Phố Đêm, 78 m south of Phố Tràng Tiền
    day = router.snap(on_dem, at=time(10, 0))
    night = router.snap(on_dem, at=time(23, 0))
    assert g.names[g.edge_name[day.edge]] == "Phố Đêm"
    assert day.distance_m == pytest.approx(0.0, abs=0.01)
    assert g.names[g.edge_name[night.edge]] == "Phố Tràng Tiền"  # the closed way is not offered at night
    assert night.distance_m == pytest.approx(_hav((21.0293, 105.8520), NODES[3]), rel=1e-3)


def test_ch_and_networkx_agree_on_every_node_pair(tiny: LoadedGraph) -> None:
    g = tiny.graph
    for period in (BASE, NIGHT):
        w = g.arc_time_ms[period]
        nxg = nx.DiGraph()
        nxg.add_nodes_from(range(g.n_nodes))
        for a in np.nonzero(w != CLOSED_MS)[0]:
            nxg.add_edge(int(g.arc_tail[a]), int(g.arc_head[a]), weight=int(w[a]))
        expected = dict(nx.all_pairs_dijkstra_path_length(nxg))
        for s in range(g.n_nodes):
            for t in range(g.n_nodes):
                assert tiny.chs[period].distance_ms(s, t) == expected[s].get(t), (period, s, t)


# ---- the three file formats --------------------------------------------------------------------------------
def _write_pbf(src: Path, dst: Path) -> None:
    writer = osmium.SimpleWriter(str(dst))
    try:
        for obj in osmium.FileProcessor(str(src)):
            writer.add(obj)
    finally:
        writer.close()


def _comparable_stats(g: RoadGraph) -> dict[str, Any]:
    return {k: v for k, v in g.stats.items() if k not in ("source", "build_s")}


def test_xml_bz2_and_pbf_give_identical_graphs(tmp_path: Path) -> None:
    profile = load_profile(TINY_PROFILE)
    bz = tmp_path / "tiny.osm.bz2"
    bz.write_bytes(bz2.compress(TINY_OSM.read_bytes()))
    pbf = tmp_path / "tiny.osm.pbf"
    _write_pbf(TINY_OSM, pbf)
    assert pbf.read_bytes()[:4] != b"<?xm"  # really a binary PBF
    graphs = [build_graph(read_osm(p), profile, source=p.name) for p in (TINY_OSM, bz, pbf)]
    ref = graphs[0]
    for g in graphs[1:]:
        ra, ga = ref.arrays(), g.arrays()
        assert ra.keys() == ga.keys()
        for k in ra:
            assert ra[k].dtype == ga[k].dtype, k
            assert np.array_equal(ra[k], ga[k]), k
        assert (g.names, g.names_en, g.classes) == (ref.names, ref.names_en, ref.classes)
        assert _comparable_stats(g) == _comparable_stats(ref)
    assert ref.n_nodes == 12


# ---- routing on the tiny graph -----------------------------------------------------------------------------
def test_snap_to_the_interior_of_an_edge(router: Router) -> None:
    g = router.graph
    s = router.snap(LatLon(21.03102, 105.8515), at=10)
    assert s.edge == edge(g, 6, 8)
    assert s.fraction == pytest.approx(0.25, abs=1e-6)
    assert s.distance_m == pytest.approx(_hav((21.03102, 105.8515), (21.0310, 105.8515)), rel=1e-3)
    assert (s.lat, s.lon) == pytest.approx((21.0310, 105.8515), abs=1e-7)


def test_route_along_the_one_way_street_is_direct(router: Router) -> None:
    for engine in ("ch", "dijkstra"):
        r = router.route(A, B, at=time(10, 0), engine=engine)
        assert r.eta_s == pytest.approx(0.5 * T[(6, 8)] / 1000, rel=1e-9)
        assert r.distance_m == pytest.approx(0.5 * L[(6, 8)], rel=1e-6)
        assert r.arcs == []
        assert r.geometry["coordinates"] == [
            pytest.approx([A.lon, A.lat], abs=1e-7),
            pytest.approx([105.8520, 21.0310], abs=1e-7),  # through node 7
            pytest.approx([B.lon, B.lat], abs=1e-7),
        ]
        assert [s["name"] for s in r.steps] == ["Phố Một Chiều", ""]


def test_route_against_the_one_way_street_detours(router: Router) -> None:
    expected_ms = 0.25 * T[(6, 8)] + T[(8, 12)] + T[(10, 12)] + T[(6, 10)] + 0.25 * T[(6, 8)]
    expected_m = 0.25 * L[(6, 8)] + L[(8, 12)] + L[(10, 12)] + L[(6, 10)] + 0.25 * L[(6, 8)]
    for engine in ("ch", "dijkstra"):
        r = router.route(B, A, at=time(10, 0), engine=engine)
        assert r.engine == engine
        assert r.period == "base"
        assert r.eta_s == pytest.approx(expected_ms / 1000, rel=1e-9)
        assert r.distance_m == pytest.approx(expected_m, rel=1e-6)
        coords = r.geometry["coordinates"]
        expected_pts = [(B.lat, B.lon), NODES[8], NODES[12], NODES[11], NODES[10], NODES[6], (A.lat, A.lon)]
        assert coords == [pytest.approx([lon, lat], abs=1e-7) for lat, lon in expected_pts]
        assert [s["name"] for s in r.steps] == [
            "Phố Một Chiều",
            "Phố Ngô Quyền",
            "Phố Hàng Bài",
            "Ngõ Ngược",
            "Phố Một Chiều",
            "",
        ]
        assert [s["maneuver"]["type"] for s in r.steps] == ["depart", "turn", "turn", "turn", "turn", "arrive"]
        assert [s["maneuver"].get("modifier") for s in r.steps[1:5]] == ["left"] * 4
        assert r.steps[0]["instruction"] == "Head east on Phố Một Chiều"
        assert sum(s["distance_m"] for s in r.steps) == pytest.approx(expected_m, abs=0.5)


def test_night_route_is_exactly_twice_as_fast_below_the_cap(router: Router) -> None:
    day = router.route(A, B, at=time(10, 0))
    night = router.route(A, B, at=time(2, 0))
    assert night.period == "night"
    assert night.eta_s == pytest.approx(0.5 * ms(L[(6, 8)], 36) / 1000, rel=1e-9)
    assert day.eta_s == pytest.approx(2 * night.eta_s, rel=1e-3)


def test_eta_to_many_units_exact_and_same_for_both_engines(router: Router) -> None:
    units = [B, LatLon(*NODES[8]), LatLon(*NODES[14]), LatLon(*NODES[1]), A, LatLon(21.0400, 105.8505)]
    expected_ms = [
        0.25 * T[(6, 8)] + T[(8, 12)] + T[(10, 12)] + T[(6, 10)] + 0.25 * T[(6, 8)],
        T[(8, 12)] + T[(10, 12)] + T[(6, 10)] + 0.25 * T[(6, 8)],
        T[(8, 14)] + T[(8, 12)] + T[(10, 12)] + T[(6, 10)] + 0.25 * T[(6, 8)],
        T[(1, 5)] + T[(5, 6)] + 0.25 * T[(6, 8)],
        0.0,
    ]
    results = {e: router.eta_to(units, A, at=time(12, 0), engine=e) for e in ("ch", "dijkstra")}
    for legs in results.values():
        assert len(legs) == len(units)
        for leg, exp in zip(legs, expected_ms, strict=False):
            assert isinstance(leg, Leg)
            assert leg.eta_s == pytest.approx(exp / 1000, rel=1e-9, abs=1e-9)
        assert isinstance(legs[-1], OutsideCoverage)  # on the dropped island
    for a, b in zip(results["ch"], results["dijkstra"], strict=True):
        if isinstance(a, Leg):
            assert isinstance(b, Leg)
            assert a.eta_s == b.eta_s
            assert a.distance_m == pytest.approx(b.distance_m, rel=1e-9, abs=1e-6)
        else:
            assert str(a) == str(b)


def test_node_times_from_and_matrix_are_exact(router: Router) -> None:
    g = router.graph
    secs = router.node_times_from(LatLon(*NODES[8]), at=time(10, 0))
    assert secs[node(g, 5)] == pytest.approx((T[(8, 12)] + T[(10, 12)] + T[(9, 10)] + T[(5, 9)]) / 1000)
    assert secs[node(g, 8)] == 0.0
    assert secs[node(g, 2)] == pytest.approx((T[(4, 8)] + T[(3, 4)] + T[(2, 3)]) / 1000)
    m_s, m_m = router.matrix([B, A], [A, B], at=time(10, 0))
    legs = router.eta_to([B, A], A, at=time(10, 0)) + router.eta_to([B, A], B, at=time(10, 0))
    flat = [m_s[0, 0], m_s[1, 0], m_s[0, 1], m_s[1, 1]]
    for value, leg in zip(flat, legs, strict=True):
        assert isinstance(leg, Leg)
        assert value == pytest.approx(leg.eta_s, rel=1e-9, abs=1e-9)
    assert m_m[1, 0] == pytest.approx(0.0, abs=1e-9)  # A to A
    assert m_m[1, 1] == pytest.approx(0.5 * L[(6, 8)], rel=1e-6)  # A to B, straight along the one-way street


def test_dropped_island_is_outside_coverage_with_the_distance(router: Router) -> None:
    on_island = LatLon(21.0400, 105.8505)  # on the island's road, which the graph dropped
    with pytest.raises(OutsideCoverage) as info:
        router.snap(on_island, at=10)
    nearest = _hav((21.0400, 105.8505), (21.0320, 105.8505))  # straight south to Phố Hàng Bài
    assert info.value.distance_m == pytest.approx(nearest, rel=2e-3)
    msg = str(info.value)
    assert f"{info.value.distance_m:.0f} m from the nearest road" in msg
    assert "21.040000,105.850500" in msg
    assert "limit is 250 m" in msg


# ---- closures ----------------------------------------------------------------------------------------------
def test_segment_closure_forces_the_southern_detour_and_reopen_restores(router: Router) -> None:
    g = router.graph
    before = router.route(B, A, at=time(10, 0))
    closure = router.close_near(LatLon(21.0315, 105.8530), reason="water main")  # on Ngô Quyền, 8-12
    assert closure.edges == [edge(g, 8, 12)]
    assert closure.kind == "segment"
    assert closure.geometry is not None and len(closure.geometry["coordinates"]) == 2
    after = router.route(B, A, at=time(10, 0))
    assert after.engine == "dijkstra"
    assert edge(g, 8, 12) not in {int(g.arc_edge[a]) for a in after.arcs}
    # 8 -> 4 -> 3 -> 2 -> 1 -> 5 -> 6 (2 -> 6 is one-way the wrong way)
    detour = T[(4, 8)] + T[(3, 4)] + T[(2, 3)] + T[(1, 2)] + T[(1, 5)] + T[(5, 6)]
    assert after.eta_s == pytest.approx((0.5 * T[(6, 8)] + detour) / 1000, rel=1e-9)
    assert after.eta_s > before.eta_s
    # asking for the hierarchy still honours the closure: its path crosses it, so Dijkstra answers
    forced = router.route(B, A, at=time(10, 0), engine="ch")
    assert forced.eta_s == after.eta_s and forced.arcs == after.arcs
    legs = router.eta_to([B], A, at=time(10, 0))
    assert isinstance(legs[0], Leg) and legs[0].eta_s == pytest.approx(after.eta_s, rel=1e-9)
    router.reopen(closure.id)
    assert router.closures() == []
    again = router.route(B, A, at=time(10, 0))
    assert again.engine == "ch"
    assert again.eta_s == before.eta_s and again.arcs == before.arcs
    with pytest.raises(InvalidInput, match="closure 1 does not exist"):
        router.reopen(closure.id)


def test_area_closure_closes_every_road_entering_the_polygon(router: Router) -> None:
    g = router.graph
    lat, lon = NODES[12]
    d = 0.0002
    square = {
        "type": "Polygon",
        "coordinates": [
            [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
        ],
    }
    closure = router.close_area(square, reason="festival")
    assert closure.kind == "area"
    assert closure.edges == sorted([edge(g, 8, 12), edge(g, 10, 12)])
    r = router.route(B, A, at=time(10, 0))
    detour = T[(4, 8)] + T[(3, 4)] + T[(2, 3)] + T[(1, 2)] + T[(1, 5)] + T[(5, 6)]
    assert r.eta_s == pytest.approx((0.5 * T[(6, 8)] + detour) / 1000, rel=1e-9)
    assert not {int(g.arc_edge[a]) for a in r.arcs} & set(closure.edges)
    empty = {
        "type": "Polygon",
        "coordinates": [[[105.86, 21.05], [105.861, 21.05], [105.861, 21.051], [105.86, 21.05]]],
    }
    with pytest.raises(InvalidInput, match="touches no road"):
        router.close_area(empty, reason="nothing there")


def test_closing_every_road_near_a_point_reports_it(tiny: LoadedGraph) -> None:
    router = Router(tiny.graph, tiny.chs, max_snap_m=50)
    assert router.snap(LatLon(*NODES[14]), at=10).edge == edge(tiny.graph, 8, 14)
    router.close_near(LatLon(*NODES[14]), reason="gate shut")  # the only road within 50 m of node 14
    with pytest.raises(OutsideCoverage, match="every road within 50 m that the tiny-test profile may drive is closed"):
        router.snap(LatLon(*NODES[14]), at=10)


# ---- bad input files ---------------------------------------------------------------------------------------
def test_file_without_drivable_road_names_the_profile_and_the_reasons() -> None:
    raw = read_osm(FOOTWAYS_ONLY_OSM)
    with pytest.raises(OsmReadError) as info:
        build_graph(raw, load_profile("ambulance"), source=str(FOOTWAYS_ONLY_OSM))
    msg = str(info.value)
    assert "footways-only.osm" in msg
    assert "holds 3 highway ways but none that the 'ambulance' profile may drive" in msg
    assert "highway=footway not in profile" in msg


def test_file_without_any_highway(tmp_path: Path) -> None:
    path = tmp_path / "buildings.osm"
    path.write_text(
        '<?xml version="1.0"?><osm version="0.6">'
        '<node id="1" lat="21.03" lon="105.85"/><node id="2" lat="21.031" lon="105.85"/>'
        '<way id="1"><nd ref="1"/><nd ref="2"/><tag k="building" v="yes"/></way></osm>',
        "utf-8",
    )
    with pytest.raises(OsmReadError, match=r"buildings\.osm: holds no road"):
        read_osm(path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.osm", b"this is not OpenStreetMap data\n", "could not be read as OpenStreetMap data"),
        ("x.osm.pbf", bytes(range(256)) * 8, "could not be read as OpenStreetMap data"),
        ("x.osm.bz2", bz2.compress(b"plain text\n"), "could not be read as OpenStreetMap data"),
        ("x.osm", b"<html><body>hello</body></html>", "could not be read as OpenStreetMap data"),
        ("x.geojson", b'{"type": "FeatureCollection", "features": []}', "not an OpenStreetMap file name"),
    ],
)
def test_not_osm_files(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(OsmReadError) as info:
        read_osm(path)
    assert expected in str(info.value)
    assert name in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(OsmReadError, match=r"nowhere\.osm\.pbf: no such file"):
        load_or_build(missing, "ambulance", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing cached


def test_way_with_a_node_missing_from_the_file_is_counted(tmp_path: Path) -> None:
    text = TINY_OSM.read_text("utf-8").replace(
        '<nd ref="8"/><nd ref="14"/>', '<nd ref="8"/><nd ref="999"/><nd ref="14"/>'
    )
    path = tmp_path / "cut.osm"
    path.write_text(text, "utf-8")
    g = build_graph(read_osm(path), load_profile(TINY_PROFILE))
    assert g.stats["missing_node_locations"] == 1
    assert 108 in g.edge_way  # still drawn from its located nodes


# ---- cache -------------------------------------------------------------------------------------------------
def test_cache_cold_then_warm_gives_equal_arrays(tmp_path: Path) -> None:
    profile = load_profile(TINY_PROFILE)
    cold = load_or_build(TINY_OSM, profile, cache_dir=tmp_path)
    warm = load_or_build(TINY_OSM, profile, cache_dir=tmp_path)
    assert not cold.warm and warm.warm
    assert cold.cache_path == warm.cache_path == tmp_path / cache_key(TINY_OSM, profile)
    a, b = cold.graph.arrays(), warm.graph.arrays()
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert (warm.graph.names, warm.graph.classes) == (cold.graph.names, cold.graph.classes)
    for p in range(len(profile.periods)):
        for s in range(cold.graph.n_nodes):
            for t in range(cold.graph.n_nodes):
                assert warm.chs[p].distance_ms(s, t) == cold.chs[p].distance_ms(s, t)
    assert [p.name for p in tmp_path.iterdir()] == [cold.cache_path.name]  # no temporary directory left


def test_use_cache_false_writes_nothing(tmp_path: Path) -> None:
    loaded = load_or_build(TINY_OSM, load_profile(TINY_PROFILE), cache_dir=tmp_path, use_cache=False)
    assert loaded.cache_path is None and not loaded.warm
    assert list(tmp_path.iterdir()) == []


def test_changed_osm_file_gets_a_new_cache_entry(tmp_path: Path) -> None:
    profile = load_profile(TINY_PROFILE)
    copy = tmp_path / "tiny.osm"
    copy.write_text(TINY_OSM.read_text("utf-8"), "utf-8")
    first = load_or_build(copy, profile, cache_dir=tmp_path / "cache")
    copy.write_text(TINY_OSM.read_text("utf-8").replace('v="60"', 'v="30"'), "utf-8")
    second = load_or_build(copy, profile, cache_dir=tmp_path / "cache")
    assert not second.warm
    assert second.cache_path != first.cache_path
    (a,) = arcs(second.graph, 9, 10)
    assert second.graph.arc_time_ms[BASE, a] == ms(metres(9, 10), 30)


# ---- isochrones --------------------------------------------------------------------------------------------
def test_isochrones_on_tiny_are_nested_and_hold_the_origin(router: Router) -> None:
    fc = isochrones(router, A, [40, 80, 160], at=time(10, 0))
    assert fc["type"] == "FeatureCollection"
    assert [f["properties"]["seconds"] for f in fc["features"]] == [160.0, 80.0, 40.0]
    shapes = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
    assert shapes[0].area > shapes[1].area > shapes[2].area > 0
    assert shapely.geometry.Point(A.lon, A.lat).within(shapes[2])
    # in 40 s at 5 m/s: node 8 (155 m east along the one-way street) but not node 5 (52 m west, against it)
    reached_40 = fc["features"][2]["properties"]["reached_nodes"]
    secs = router.node_times_from(A, at=time(10, 0))
    assert reached_40 == int((secs < 40).sum()) > 0
    assert secs[node(router.graph, 8)] < 40 < secs[node(router.graph, 5)]


def test_isochrone_over_two_nodes_at_the_same_place(tmp_path: Path) -> None:
    """OSM data often holds two nodes at one location; the road between them has zero length."""
    path = tmp_path / "twin.osm"
    path.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
  <node id="1" lat="21.0300" lon="105.8500"/>
  <node id="2" lat="21.0300" lon="105.8510"/>
  <node id="3" lat="21.0310" lon="105.8510"/>
  <node id="4" lat="21.0310" lon="105.8500"/>
  <node id="5" lat="21.0310" lon="105.8500"/>
  <way id="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><tag k="highway" v="residential"/></way>
  <way id="2"><nd ref="4"/><nd ref="5"/><tag k="highway" v="residential"/></way>
  <way id="3"><nd ref="5"/><nd ref="1"/><tag k="highway" v="residential"/></way>
</osm>
""",
        "utf-8",
    )
    loaded = load_or_build(path, load_profile(TINY_PROFILE), use_cache=False)
    assert loaded.graph.n_edges == 3
    assert sorted(loaded.graph.arc_length_m.tolist())[:2] == [0.0, 0.0]
    router = Router(loaded.graph, loaded.chs)
    origin = LatLon(21.0300, 105.8505)
    fc = isochrones(router, origin, [120], at=time(10, 0))
    shape = shapely.geometry.shape(fc["features"][0]["geometry"])
    assert shapely.geometry.Point(origin.lon, origin.lat).within(shape)
    assert fc["features"][0]["properties"]["reached_nodes"] == 3


def test_isochrone_rejects_bad_times(router: Router) -> None:
    for bad in ([0], [-60], [], [5 * 3600]):
        with pytest.raises(InvalidInput, match=re.escape("are not allowed")):
            isochrones(router, A, bad)
