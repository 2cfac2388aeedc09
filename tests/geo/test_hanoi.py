"""The road engine on real data: the bundled central-Hanoi OpenStreetMap extract (geodata/hanoi)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import UTC, datetime, time
from pathlib import Path

import numpy as np
import pytest
import shapely
import shapely.geometry

from dispatch.core.errors import InvalidInput, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.isochrone import isochrones
from dispatch.geo.profile import load_profile
from dispatch.geo.routing import Leg, Router
from dispatch.geo.store import LoadedGraph, cache_key, load_or_build
from tests.conftest import HANOI_PBF, HOSPITALS

# the extract's bounding box (geodata/hanoi/README.md)
EXTRACT_BBOX = (21.0082, 105.7751, 21.0848, 105.8796)

TRANG_TIEN = LatLon(21.0253, 105.8539)  # Phố Tràng Tiền, by the Opera House end of Hoàn Kiếm
ON_TRANG_TIEN = LatLon(21.02530, 105.85386)  # a few metres off the middle of one Tràng Tiền segment
VAN_MIEU = LatLon(21.0276, 105.8355)  # the Temple of Literature gate on Phố Quốc Tử Giám
BACH_MAI = LatLon(21.0018, 105.8394)  # Bach Mai Hospital, ~0.7 km south of the extract
ALLEY = LatLon(21.0369576, 105.823698)  # inside Ngõ 158 Ngọc Hà, a service=alley
YEN_HOA = LatLon(21.0542322, 105.8357027)  # Phố Yên Hoa: oneway=yes, oneway:motorcycle=no, a dead end for cars
TAY_HO = LatLon(21.0600, 105.8300)  # a street in Tây Hồ, kilometres north of the central routes

VIETNAMESE = re.compile(r"[ăâđêôơưáàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ]", re.IGNORECASE)


def _hav_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def _street(router: Router, edge: int) -> str:
    g = router.graph
    return g.names[g.edge_name[edge]] if g.edge_name[edge] >= 0 else ""


def _hospitals() -> list[tuple[str, LatLon]]:
    data = json.loads(HOSPITALS.read_text("utf-8"))
    return [
        (f["properties"]["name"], LatLon(f["geometry"]["coordinates"][1], f["geometry"]["coordinates"][0]))
        for f in data["features"]
    ]


def _edge_midpoint(router: Router, edge: int) -> LatLon:
    """A point on the edge's polyline, halfway along it, away from both junctions."""
    line = router.snapper.lines[edge]
    mid = shapely.line_interpolate_point(line, 0.5, normalized=True)
    lat, lon = router.snapper.proj.inverse(np.array(shapely.get_x(mid)), np.array(shapely.get_y(mid)))
    return LatLon(float(lat), float(lon))


# ---- the compiled graph ------------------------------------------------------------------------------------
def test_graph_stats_are_consistent(hanoi: LoadedGraph) -> None:
    g, s = hanoi.graph, hanoi.graph.stats
    assert s["nodes"] == g.n_nodes > 3000
    assert s["edges"] == g.n_edges and s["arcs"] == g.n_arcs
    assert g.n_edges <= g.n_arcs <= 2 * g.n_edges
    assert s["highway_ways_read"] == 13_348  # every way of the extract (README)
    assert s["ways_kept"] + sum(s["ways_dropped"].values()) == s["highway_ways_read"]
    assert s["ways_dropped"]["service=alley"] > 1000  # Hanoi's ngo: the ambulance stays out
    assert s["ways_dropped"]["highway=footway not in profile"] > 1000
    assert s["dropped_components"] >= 1 and s["dropped_nodes"] >= s["dropped_components"]
    assert s["largest_dropped_component_nodes"] < g.n_nodes / 10  # the kept part is the city, not a fragment
    lat0, lon0, lat1, lon1 = s["bbox"]
    tol = 1e-4  # the README rounds the bbox to 4 decimals
    assert EXTRACT_BBOX[0] - tol <= lat0 < lat1 <= EXTRACT_BBOX[2] + tol
    assert EXTRACT_BBOX[1] - tol <= lon0 < lon1 <= EXTRACT_BBOX[3] + tol
    assert s["missing_node_locations"] == 0
    # arcs join kept nodes and run along their edges; times are positive and finite in the base period
    assert g.arc_tail.min() >= 0 and g.arc_head.max() < g.n_nodes
    assert (g.arc_time_ms[0] > 0).all()
    assert (g.arc_length_m >= 0).all()


def test_street_names_are_vietnamese(hanoi: LoadedGraph) -> None:
    names = hanoi.graph.names
    assert "Phố Tràng Tiền" in names and "Phố Quốc Tử Giám" in names
    assert sum(bool(VIETNAMESE.search(n)) for n in names) > len(names) / 2


# ---- snapping and coverage ---------------------------------------------------------------------------------
def test_snap_lands_inside_an_edge_of_the_right_street(hanoi_router: Router) -> None:
    s = hanoi_router.snap(ON_TRANG_TIEN, at=time(10, 0))
    assert _street(hanoi_router, s.edge) == "Phố Tràng Tiền"
    assert 0.0 < s.fraction < 1.0
    assert s.distance_m < 5.0
    assert _hav_m((s.lat, s.lon), (ON_TRANG_TIEN.lat, ON_TRANG_TIEN.lon)) == pytest.approx(s.distance_m, abs=0.1)
    d = s.as_dict()
    assert d["edge"] == s.edge and 0 < d["fraction"] < 1 and d["snap_distance_m"] < 5


def test_bach_mai_is_outside_coverage_with_its_distance(hanoi_router: Router) -> None:
    with pytest.raises(OutsideCoverage) as info:
        hanoi_router.snap(BACH_MAI, at=time(10, 0))
    err = info.value
    # 0.7 km south of the extract's edge, so at least that far from any road in it
    assert 700 <= err.distance_m <= 2000
    assert err.max_distance_m == 250
    msg = str(err)
    m = re.search(r"is (\d+) m from the nearest road the ambulance profile may drive", msg)
    assert m is not None, msg
    assert int(m.group(1)) == round(err.distance_m)
    assert "21.001800,105.839400" in msg
    assert "outside this map's road coverage" in msg
    assert "\n" not in msg
    with pytest.raises(OutsideCoverage):
        hanoi_router.route(BACH_MAI, VAN_MIEU, at=time(10, 0))
    with pytest.raises(OutsideCoverage):
        hanoi_router.eta_to([VAN_MIEU], BACH_MAI, at=time(10, 0))
    legs = hanoi_router.eta_to([BACH_MAI, TRANG_TIEN], VAN_MIEU, at=time(10, 0))
    assert isinstance(legs[0], OutsideCoverage) and isinstance(legs[1], Leg)


def test_a_larger_snap_limit_reaches_bach_mai(hanoi: LoadedGraph) -> None:
    wide = Router(hanoi.graph, hanoi.chs, max_snap_m=3000)
    s = wide.snap(BACH_MAI, at=time(10, 0))
    assert 700 <= s.distance_m <= 2000
    with pytest.raises(InvalidInput, match="max_snap_m"):
        Router(hanoi.graph, hanoi.chs, max_snap_m=0)


# ---- routes ---------------------------------------------------------------------------------------------------
def test_route_between_two_central_places(hanoi_router: Router) -> None:
    r = hanoi_router.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert r.engine == "ch" and r.period == "base"
    coords = r.geometry["coordinates"]
    assert r.geometry["type"] == "LineString" and len(coords) >= 10
    # starts where the origin was snapped, near the origin; ends near the destination
    assert coords[0] == pytest.approx([r.origin.lon, r.origin.lat], abs=1e-6)
    assert coords[-1] == pytest.approx([r.destination.lon, r.destination.lat], abs=1e-6)
    assert _hav_m((coords[0][1], coords[0][0]), (TRANG_TIEN.lat, TRANG_TIEN.lon)) <= r.origin.distance_m + 1
    assert _hav_m((coords[-1][1], coords[-1][0]), (VAN_MIEU.lat, VAN_MIEU.lon)) <= r.destination.distance_m + 1
    assert r.origin.distance_m < 50 and r.destination.distance_m < 50
    straight = _hav_m((TRANG_TIEN.lat, TRANG_TIEN.lon), (VAN_MIEU.lat, VAN_MIEU.lon))
    assert straight < r.distance_m < 2.5 * straight
    assert 60 < r.eta_s < 1800
    line_m = sum(_hav_m((a[1], a[0]), (b[1], b[0])) for a, b in zip(coords, coords[1:], strict=False))
    assert line_m == pytest.approx(r.distance_m, rel=0.01)
    # turn-by-turn: depart on Tràng Tiền, arrive from Quốc Tử Giám, real street names on the way
    assert r.steps[0]["maneuver"]["type"] == "depart" and r.steps[-1]["maneuver"]["type"] == "arrive"
    assert r.steps[0]["name"] == "Phố Tràng Tiền"
    assert r.steps[-2]["name"] == "Phố Quốc Tử Giám"
    named = [s["name"] for s in r.steps if s["name"]]
    assert len(set(named)) >= 3 and all(VIETNAMESE.search(n) for n in named)
    assert sum(s["distance_m"] for s in r.steps) == pytest.approx(r.distance_m, abs=0.1 * len(r.steps))
    assert sum(s["duration_s"] for s in r.steps) == pytest.approx(r.eta_s, abs=0.1 * len(r.steps))
    d = r.as_dict()
    assert set(d) >= {"eta_s", "distance_m", "geometry", "steps", "origin", "destination", "period"}
    json.dumps(d)  # serialisable as is


def test_route_and_eta_to_agree(hanoi_router: Router) -> None:
    r = hanoi_router.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    (leg,) = hanoi_router.eta_to([TRANG_TIEN], VAN_MIEU, at=time(10, 0))
    assert isinstance(leg, Leg)
    assert leg.eta_s == pytest.approx(r.eta_s, rel=1e-12)
    assert leg.distance_m == pytest.approx(r.distance_m, rel=1e-9)


def test_time_of_day_morning_peak_slower_than_base_slower_than_night(hanoi_router: Router) -> None:
    routes = {h: hanoi_router.route(TRANG_TIEN, VAN_MIEU, at=time(h, 0)) for h in (8, 10, 2, 17)}
    assert [routes[h].period for h in (8, 10, 2, 17)] == ["morning_peak", "base", "night", "evening_peak"]
    assert routes[8].eta_s > routes[10].eta_s > routes[2].eta_s
    assert routes[17].eta_s > routes[10].eta_s
    # on the same path every speed scales by the period's factor, so the ETA does too (to rounding and caps)
    factor = {p.name: p.speed_factor for p in hanoi_router.graph.profile.periods}
    assert factor["morning_peak"] < 1 < factor["night"]
    for h, name in ((8, "morning_peak"), (2, "night")):
        if routes[h].arcs == routes[10].arcs:
            assert routes[h].eta_s == pytest.approx(routes[10].eta_s / factor[name], rel=0.01)
    for h in (8, 2):
        (leg,) = hanoi_router.eta_to([TRANG_TIEN], VAN_MIEU, at=time(h, 0))
        assert isinstance(leg, Leg) and leg.eta_s == pytest.approx(routes[h].eta_s, rel=1e-12)


def test_aware_datetimes_use_the_region_clock(hanoi_router: Router) -> None:
    # 01:00 UTC is 08:00 in Hanoi (UTC+7): the morning peak
    utc = datetime(2024, 9, 2, 1, 0, tzinfo=UTC)
    assert hanoi_router.graph.profile.periods[hanoi_router.period(utc)].name == "morning_peak"
    assert hanoi_router.period(utc) == hanoi_router.period(time(8, 0))
    naive = datetime(2024, 9, 2, 1, 0)
    assert hanoi_router.graph.profile.periods[hanoi_router.period(naive)].name == "night"


def test_eta_to_twenty_units_one_result_each_same_with_both_engines(hanoi_router: Router) -> None:
    units = [p for _, p in _hospitals()]
    assert len(units) >= 20
    incident = TRANG_TIEN
    ch = hanoi_router.eta_to(units, incident, at=time(10, 0), engine="ch")
    dj = hanoi_router.eta_to(units, incident, at=time(10, 0), engine="dijkstra")
    assert len(ch) == len(dj) == len(units)
    reached = 0
    for (name, unit), a, b in zip(_hospitals(), ch, dj, strict=True):
        if isinstance(a, Leg):
            reached += 1
            assert isinstance(b, Leg), name
            assert a.eta_s == b.eta_s, name
            assert a.distance_m == pytest.approx(b.distance_m, rel=1e-9), name
            assert a.eta_s > 0 and a.distance_m > _hav_m((unit.lat, unit.lon), (incident.lat, incident.lon)) - 300
        else:
            assert isinstance(a, OutsideCoverage) and isinstance(b, OutsideCoverage), name
            assert str(a) == str(b)
            assert a.distance_m > 250
    assert reached >= 15


def test_matrix_matches_eta_to(hanoi_router: Router) -> None:
    sources = [TRANG_TIEN, VAN_MIEU, ON_TRANG_TIEN]
    targets = [VAN_MIEU, TRANG_TIEN]
    secs, metres = hanoi_router.matrix(sources, targets, at=time(10, 0))
    assert secs.shape == metres.shape == (3, 2)
    for j, t in enumerate(targets):
        for i, leg in enumerate(hanoi_router.eta_to(sources, t, at=time(10, 0))):
            assert isinstance(leg, Leg)
            assert secs[i, j] == pytest.approx(leg.eta_s, rel=1e-9, abs=1e-9)
            assert metres[i, j] == pytest.approx(leg.distance_m, rel=1e-6, abs=1e-6)
    with pytest.raises(OutsideCoverage, match="target 1"):
        hanoi_router.matrix(sources, [VAN_MIEU, BACH_MAI], at=time(10, 0))


# ---- vehicle profiles ----------------------------------------------------------------------------------------
def test_motorbike_reaches_places_the_ambulance_cannot(hanoi: LoadedGraph, hanoi_motorbike: LoadedGraph) -> None:
    amb, moto = hanoi.graph, hanoi_motorbike.graph
    assert moto.n_nodes > 1.5 * amb.n_nodes
    assert moto.arc_length_m.sum() > amb.arc_length_m.sum()
    ra, rm = Router(amb, hanoi.chs), Router(moto, hanoi_motorbike.chs)
    # inside an ngo alley: the motorbike is on it, the ambulance only on another street 150 m away
    sm = rm.snap(ALLEY, at=time(10, 0))
    assert _street(rm, sm.edge) == "Ngõ 158 Ngọc Hà" and sm.distance_m < 1
    sa = ra.snap(ALLEY, at=time(10, 0))
    assert sa.distance_m > 100 and _street(ra, sa.edge) != "Ngõ 158 Ngọc Hà"
    # Phố Yên Hoa is one-way for cars but not for motorbikes: only the motorbike graph keeps it
    assert _street(rm, rm.snap(YEN_HOA, at=time(10, 0)).edge) == "Phố Yên Hoa"
    with pytest.raises(OutsideCoverage):
        ra.snap(YEN_HOA, at=time(10, 0))
    trip = rm.route(TRANG_TIEN, YEN_HOA, at=time(10, 0))
    assert trip.eta_s > 0 and trip.steps[-2]["name"] == "Phố Yên Hoa"


def test_motorbike_has_no_motorway(hanoi_motorbike: LoadedGraph) -> None:
    assert "motorway" not in hanoi_motorbike.graph.classes
    assert hanoi_motorbike.graph.stats["ways_dropped"].get("highway=motorway not in profile", 0) > 0


# ---- closures -------------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_router(hanoi: LoadedGraph) -> Router:
    return Router(hanoi.graph, hanoi.chs)


def test_segment_closure_on_the_route_is_avoided_and_reopen_restores(fresh_router: Router) -> None:
    r = fresh_router
    g = r.graph
    before = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert len(before.arcs) > 4
    edge = int(g.arc_edge[before.arcs[len(before.arcs) // 2]])
    closure = r.close_near(_edge_midpoint(r, edge), reason="burst water main")
    assert closure.edges == [edge] and closure.kind == "segment"
    after = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert edge not in {int(g.arc_edge[a]) for a in after.arcs}
    assert edge not in (after.origin.edge, after.destination.edge)
    assert after.engine == "dijkstra"  # the hierarchy's path crossed the closure
    assert after.eta_s >= before.eta_s and after.arcs != before.arcs
    for eng in ("ch", "dijkstra"):
        (leg,) = r.eta_to([TRANG_TIEN], VAN_MIEU, at=time(10, 0), engine=eng)
        assert isinstance(leg, Leg) and leg.eta_s == pytest.approx(after.eta_s, rel=1e-12)
    assert [c.id for c in r.closures()] == [closure.id]
    r.reopen(closure.id)
    again = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert again.engine == "ch"
    assert again.eta_s == before.eta_s and again.arcs == before.arcs
    assert again.geometry == before.geometry


def test_area_closure_on_the_route(fresh_router: Router) -> None:
    r = fresh_router
    g = r.graph
    before = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    edge = int(g.arc_edge[before.arcs[len(before.arcs) // 2]])
    mid = _edge_midpoint(r, edge)
    d = 0.0012  # about 130 m each way
    square = {
        "type": "Polygon",
        "coordinates": [
            [
                [mid.lon - d, mid.lat - d],
                [mid.lon + d, mid.lat - d],
                [mid.lon + d, mid.lat + d],
                [mid.lon - d, mid.lat + d],
                [mid.lon - d, mid.lat - d],
            ]
        ],
    }
    closure = r.close_area(square, reason="parade")
    assert closure.kind == "area" and edge in closure.edges and len(closure.edges) > 3
    after = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert not {int(g.arc_edge[a]) for a in after.arcs} & set(closure.edges)
    assert after.eta_s > before.eta_s
    coords = after.geometry["coordinates"]
    inside = shapely.geometry.shape(square).buffer(-0.0002)  # clear of roads that only touch the border
    assert not shapely.geometry.LineString(coords).intersects(inside)
    r.reopen(closure.id)
    assert r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0)).eta_s == before.eta_s


def test_closure_elsewhere_keeps_the_fast_path_and_the_answer(fresh_router: Router) -> None:
    r = fresh_router
    before = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    r.close_near(TAY_HO, reason="far away")  # in Tây Hồ, kilometres from the route
    after = r.route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert after.engine == "ch"
    assert after.eta_s == before.eta_s and after.arcs == before.arcs


# ---- isochrones -----------------------------------------------------------------------------------------------
def test_isochrones_are_nested_and_hold_the_origin(hanoi_router: Router) -> None:
    fc = isochrones(hanoi_router, TRANG_TIEN, [4 * 60, 8 * 60, 15 * 60], at=time(10, 0))
    feats = fc["features"]
    assert [f["properties"]["minutes"] for f in feats] == [15, 8, 4]  # largest first, to draw
    shapes = {f["properties"]["minutes"]: shapely.geometry.shape(f["geometry"]) for f in feats}
    assert not any(s.is_empty for s in shapes.values())
    assert shapes[4].area < shapes[8].area < shapes[15].area
    areas = {f["properties"]["minutes"]: f["properties"]["area_km2"] for f in feats}
    assert 0 < areas[4] < areas[8] < areas[15]
    reached = {f["properties"]["minutes"]: f["properties"]["reached_nodes"] for f in feats}
    assert 0 < reached[4] < reached[8] < reached[15]
    # nested up to the raster cell (buffer_m / 3 = 20 m, about 0.0002 degrees)
    cell = 0.0002
    assert shapes[4].difference(shapes[8].buffer(cell)).area == pytest.approx(0.0, abs=1e-12)
    assert shapes[8].difference(shapes[15].buffer(cell)).area == pytest.approx(0.0, abs=1e-12)
    assert shapely.geometry.Point(TRANG_TIEN.lon, TRANG_TIEN.lat).within(shapes[4])
    # reached_nodes counts the graph nodes within the time, as node_times_from sees them
    secs = hanoi_router.node_times_from(TRANG_TIEN, at=time(10, 0))
    assert reached[8] == int((secs < 8 * 60).sum())


def test_isochrone_polygons_are_valid_and_in_one_piece(hanoi_router: Router) -> None:
    """The roads reached from one origin are connected, so is the area around them: one valid polygon."""
    fc = isochrones(hanoi_router, TRANG_TIEN, [4 * 60, 8 * 60], at=time(10, 0))
    for f in fc["features"]:
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.is_valid, (f["properties"]["minutes"], shapely.is_valid_reason(geom))
        assert shapely.get_num_geometries(geom) <= 3, f["properties"]["minutes"]
        assert geom.area == pytest.approx(shapely.make_valid(geom).area, rel=1e-9)


def test_isochrone_morning_peak_is_smaller(hanoi_router: Router) -> None:
    base = isochrones(hanoi_router, TRANG_TIEN, [8 * 60], at=time(10, 0))["features"][0]["properties"]
    peak = isochrones(hanoi_router, TRANG_TIEN, [8 * 60], at=time(8, 0))["features"][0]["properties"]
    assert peak["period"] == "morning_peak" and base["period"] == "base"
    assert peak["area_km2"] < base["area_km2"]
    assert peak["reached_nodes"] < base["reached_nodes"]


def test_isochrone_in_the_west_of_the_map(hanoi_router: Router) -> None:
    """From Hoàng Quốc Việt the 15-minute area covers a road between two OSM nodes at the same place."""
    origin = LatLon(21.0460, 105.8000)
    fc = isochrones(hanoi_router, origin, [4 * 60, 15 * 60], at=time(10, 0))
    big = shapely.geometry.shape(fc["features"][0]["geometry"])
    assert shapely.geometry.Point(origin.lon, origin.lat).within(big)
    assert fc["features"][0]["properties"]["area_km2"] > fc["features"][1]["properties"]["area_km2"] > 0


# ---- cache ----------------------------------------------------------------------------------------------------
def test_second_load_is_warm_and_equal(hanoi: LoadedGraph, geo_cache: Path) -> None:
    again = load_or_build(HANOI_PBF, "ambulance", cache_dir=geo_cache)
    assert again.warm
    assert again.cache_path == hanoi.cache_path
    a, b = hanoi.graph.arrays(), again.graph.arrays()
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert np.array_equal(a[k], b[k]), k
    assert again.graph.names == hanoi.graph.names and again.graph.names_en == hanoi.graph.names_en
    assert again.graph.stats == hanoi.graph.stats
    rng = np.random.default_rng(7)
    for p in range(len(hanoi.chs)):
        for s, t in rng.integers(hanoi.graph.n_nodes, size=(20, 2)):
            assert again.chs[p].distance_ms(int(s), int(t)) == hanoi.chs[p].distance_ms(int(s), int(t))
    r1 = Router(hanoi.graph, hanoi.chs).route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    r2 = Router(again.graph, again.chs).route(TRANG_TIEN, VAN_MIEU, at=time(10, 0))
    assert r1.as_dict() == r2.as_dict()


def test_a_different_profile_gets_a_different_cache_entry(
    hanoi: LoadedGraph, hanoi_motorbike: LoadedGraph, geo_cache: Path
) -> None:
    amb = load_profile("ambulance")
    moto = load_profile("motorbike")
    assert cache_key(HANOI_PBF, amb) != cache_key(HANOI_PBF, moto)
    assert hanoi.cache_path != hanoi_motorbike.cache_path
    assert hanoi.cache_path is not None and hanoi_motorbike.cache_path is not None
    assert hanoi.cache_path.parent == hanoi_motorbike.cache_path.parent == geo_cache
    # the same name with one speed changed is a different profile too
    faster = dataclasses.replace(amb, speeds_kph={**amb.speeds_kph, "primary": 35.0})
    assert faster.name == amb.name
    assert cache_key(HANOI_PBF, faster) != cache_key(HANOI_PBF, amb)
    assert cache_key(HANOI_PBF, load_profile("ambulance")) == cache_key(HANOI_PBF, amb)
