"""Coverage on the real Hanoi graph: shares from the router's own drive times, per cell and overall."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.coverage import PROXY, Station, coverage, load_stations, road_length_demand
from dispatch.geo.routing import Router

CENTRE = Station("Trung tâm 115", LatLon(21.0236, 105.8566))
VIET_DUC = Station("Việt Đức", LatLon(21.0286, 105.8470))
CAU_GIAY = Station("Cầu Giấy", LatLon(21.0330, 105.7950))


def test_the_proxy_demand_is_the_road_length(hanoi_router: Router) -> None:
    g = hanoi_router.graph
    demand = road_length_demand(g)
    assert demand.shape == (g.n_nodes,) and np.all(demand >= 0)
    # each road segment counted once, half at each end: the total is the network's length
    edges = np.unique(g.arc_edge)
    length = sum(
        float(g.arc_length_m[g.edge_fwd_arc[e] if g.edge_fwd_arc[e] >= 0 else g.edge_bwd_arc[e]]) for e in edges
    )
    assert demand.sum() == pytest.approx(length, rel=1e-9)


def test_shares_grow_with_the_threshold_and_with_stations(hanoi_router: Router) -> None:
    one = coverage(hanoi_router, [CENTRE], [4, 8, 15])
    three = coverage(hanoi_router, [CENTRE, VIET_DUC, CAU_GIAY], [4, 8, 15])
    for report in (one, three):
        shares = [report.covered[t] for t in report.thresholds_s]
        assert shares == sorted(shares) and 0 < shares[0] < shares[-1] <= 1
        assert all(report.backup[t] <= report.covered[t] for t in report.thresholds_s)
        assert report.demand_source == PROXY
        # the cells add up to the whole
        assert sum(c.demand for c in report.cells) == pytest.approx(report.total_demand)
        for t in report.thresholds_s:
            assert sum(c.demand * c.covered[t] for c in report.cells) / report.total_demand == pytest.approx(
                report.covered[t]
            )
    assert all(three.covered[t] > one.covered[t] for t in one.thresholds_s)
    assert all(one.backup[t] == 0 for t in one.thresholds_s)  # one station is never a backup for itself
    assert three.backup[15 * 60] > 0


def test_a_junction_counts_as_covered_exactly_when_its_drive_time_is_within(hanoi_router: Router) -> None:
    g = hanoi_router.graph
    times = hanoi_router.node_times_from(CENTRE.at, limit_s=8 * 60)
    demand = np.zeros(g.n_nodes)
    inside, outside = int(np.argmax(times <= 4 * 60)), int(np.argmax(np.isinf(times)))
    demand[inside], demand[outside] = 3.0, 1.0  # all the demand at two junctions, one reached in 4 min
    report = coverage(hanoi_router, [CENTRE], [4, 8], demand=demand, demand_source="two junctions")
    assert report.covered == {240.0: 0.75, 480.0: 0.75}
    assert report.not_reached == 1.0 and report.demand_source == "two junctions"
    assert report.worst(480.0, 1)[0].demand == 1.0


def test_cells_and_geojson(hanoi_router: Router) -> None:
    report = coverage(hanoi_router, [CENTRE, VIET_DUC], [8], cell_m=1000)
    fc = report.geojson()
    assert len(fc["features"]) == len(report.cells) > 20
    props = fc["features"][0]["properties"]
    assert set(props) == {"cell", "demand", "median_s", "covered_8min", "backup_8min"}
    ring = fc["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    near = min(report.cells, key=lambda c: abs(c.lat - CENTRE.at.lat) + abs(c.lon - CENTRE.at.lon))
    assert near.covered[480.0] > 0.9 and near.median_s < 240  # the station's own cell
    d = report.as_dict(worst=3)
    assert d["covered"]["8"] == round(report.covered[480.0], 4) and len(d["worst_cells"]["8"]) == 3
    json.dumps(d)  # serialisable as it is


@pytest.mark.parametrize(
    ("minutes", "words"),
    [([], "at least one threshold"), ([0], "above 0"), ([-4], "above 0"), ([300], "at most 180")],
)
def test_bad_thresholds_are_refused(hanoi_router: Router, minutes: list[float], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        coverage(hanoi_router, [CENTRE], minutes)


def test_no_station_and_bad_cells_are_refused(hanoi_router: Router) -> None:
    with pytest.raises(InvalidInput, match="no stations"):
        coverage(hanoi_router, [], [8])
    with pytest.raises(InvalidInput, match="50 to 20000 metres"):
        coverage(hanoi_router, [CENTRE], [8], cell_m=10)


def test_station_files_report_what_they_skip() -> None:
    text = json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [105.8566, 21.0236]},
                    "properties": {"name": "A"},
                },
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [105.8, 95.0]}, "properties": {}},
                {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [105.8470, 21.0286]}},
            ],
        }
    )
    stations, skipped = load_stations(text)
    assert [s.name for s in stations] == ["A", "station 4"]
    assert skipped == {"bad coordinates": 1, "not a Point": 1}
    with pytest.raises(InvalidInput, match="not JSON"):
        load_stations("{nope")
    with pytest.raises(InvalidInput, match="no usable station \\(1 not a Point\\)"):
        load_stations(json.dumps({"type": "FeatureCollection", "features": [{"geometry": None}]}))
