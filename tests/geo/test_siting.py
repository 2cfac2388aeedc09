"""Station siting: exact optima on the hand-made tiny network, and the real Hanoi graph.

On tests/data/tiny.osm (tiny-profile.toml, at noon) the drive times between the junctions used here are
(seconds, from test_tiny's hand computation: primary 10 m/s, residential 5 m/s, maxspeed 60 taken as is):

    from 1:  3 in 20.8 (1-2-3 primary), 5 in 22.2 (1-5 residential)
    from 3:  1 in 20.8, 21 in 22.2 (3-21)
    from 9:  5 in 22.2, 12 in 18.7 (9-10-12 at 60 km/h)
    from 12: 9 in 18.7, 14 in 43.0 (12-8-14)
    from 14: 12 in 43.0, 9 in 61.7
    every other pair among 1, 3, 5, 9, 12, 14, 21 takes more than 40 s.

So within 30 s: site 1 covers {1, 3, 5}, site 3 {1, 3, 21}, site 9 {5, 9, 12}, site 12 {9, 12}, site 14 {14}.
With demand 1:4, 3:1, 5:1, 9:3, 12:3, 14:5, 21:3 (20 in all) the sites cover 6, 8, 7, 6 and 5: the best single
site is 3 (8), the best pair {3, 9} (15: disjoint), the best three {3, 9, 14} (all 20), and that is also the
fewest sites covering everything (14 is covered by 14 alone, 21 by 3 alone, 9 and 5 together by 9 alone).
With 12 locked in, the best pair is {12, 3} (6 + 8 = 14).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math

import numpy as np
import pytest

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.coverage import Station, road_length_demand
from dispatch.geo.graph import F64
from dispatch.geo.profile import load_profile
from dispatch.geo.routing import Router
from dispatch.geo.siting import NotSolved, Siting, cost_matrix, demand_cells, site
from dispatch.geo.store import LoadedGraph, load_or_build
from tests.conftest import TINY_OSM, TINY_PROFILE
from tests.geo.test_tiny import NODES, metres, ms

NOON = 12
HALF_MINUTE = 0.5
WEIGHTS = {1: 4.0, 3: 1.0, 5: 1.0, 9: 3.0, 12: 3.0, 14: 5.0, 21: 3.0}


@pytest.fixture(scope="module")
def tiny() -> LoadedGraph:
    return load_or_build(TINY_OSM, load_profile(TINY_PROFILE), use_cache=False)


@pytest.fixture
def router(tiny: LoadedGraph) -> Router:
    return Router(tiny.graph, tiny.chs)


def at(osm_id: int) -> Station:
    return Station(f"n{osm_id}", LatLon(*NODES[osm_id]))


def demand_on(router: Router, weights: dict[int, float]) -> F64:
    """Demand at the junctions with these OSM ids, nothing anywhere else."""
    g = router.graph
    index = {int(o): i for i, o in enumerate(g.node_osm)}
    out = np.zeros(g.n_nodes)
    for osm_id, w in weights.items():
        out[index[osm_id]] = w
    return out


def tiny_site(router: Router, model: str, **kw: object) -> Siting:
    kw.setdefault("candidates", [at(n) for n in (1, 3, 9, 12, 14)])
    kw.setdefault("demand", demand_on(router, WEIGHTS))
    kw.setdefault("cell_m", 50)
    return site(router, model, HALF_MINUTE, at=NOON, **kw)  # type: ignore[arg-type]


def names(result: Siting) -> list[str]:
    return [s.name for s in result.sites]


# ---- exact optima on the tiny network ------------------------------------------------------------------------
def test_every_junction_is_its_own_demand_cell(router: Router) -> None:
    cells = demand_cells(router.graph, demand_on(router, WEIGHTS), 50)
    g = router.graph
    assert sorted(int(g.node_osm[v]) for v in cells.node) == sorted(WEIGHTS)
    assert sorted(cells.demand.tolist()) == sorted(WEIGHTS.values())


@pytest.mark.parametrize(
    ("p", "chosen", "covered"),
    [(1, ["n3"], 8), (2, ["n3", "n9"], 15), (3, ["n3", "n9", "n14"], 20), (5, None, 20)],
)
def test_mclp_finds_the_hand_optimum(router: Router, p: int, chosen: list[str] | None, covered: float) -> None:
    result = tiny_site(router, "mclp", p=p)
    assert result.status == "Optimal" and result.mip_gap == 0
    assert result.objective == pytest.approx(covered)
    assert result.covered_after == pytest.approx(covered / 20)
    assert len(result.sites) == p
    if chosen is not None:
        assert names(result) == chosen  # in the order of greatest gain
    assert result.covered_before == 0 and result.not_coverable == 0


def test_marginal_gains_decrease_and_add_up(router: Router) -> None:
    result = tiny_site(router, "mclp", p=3)
    assert [s.order for s in result.sites] == [1, 2, 3]
    assert [s.gain for s in result.sites] == pytest.approx([8 / 20, 7 / 20, 5 / 20])
    assert [s.covered_after for s in result.sites] == pytest.approx([0.4, 0.75, 1.0])


def test_locked_stations_stay_in_the_plan(router: Router) -> None:
    free = tiny_site(router, "mclp", p=2)
    kept = tiny_site(router, "mclp", p=2, stations=[Station("old 12", LatLon(*NODES[12]))], keep_existing=True)
    assert names(free) == ["n3", "n9"] and free.objective == pytest.approx(15)
    assert names(kept) == ["old 12", "n3"] and kept.objective == pytest.approx(14)
    old = kept.sites[0]
    assert old.existing and old.locked and old.order == 0 and old.gain is None
    assert kept.covered_before == pytest.approx(6 / 20) and old.covered_after == pytest.approx(6 / 20)
    assert kept.sites[1].gain == pytest.approx(8 / 20) and kept.covered_after == pytest.approx(14 / 20)
    # not locked, the existing station is only a candidate: the free optimum again
    moved = tiny_site(router, "mclp", p=2, stations=[Station("old 12", LatLon(*NODES[12]))])
    assert names(moved) == ["n3", "n9"] and moved.covered_before == pytest.approx(6 / 20)


def test_lscp_finds_the_fewest_sites(router: Router) -> None:
    result = tiny_site(router, "lscp")
    assert result.objective == 3 and sorted(names(result)) == ["n14", "n3", "n9"]
    assert result.covered_after == 1.0 and result.p is None
    kept = tiny_site(router, "lscp", stations=[Station("old 12", LatLon(*NODES[12]))], keep_existing=True)
    # 12 covers neither 5 nor anything 9 does not: one more site than without it
    assert kept.objective == 4 and names(kept)[0] == "old 12" and kept.covered_after == 1.0


def test_lscp_with_unreachable_demand_says_how_much_and_can_drop_it(router: Router) -> None:
    with pytest.raises(InvalidInput, match=r"1 of 7 demand cells \(15\.0% of the demand.*drop_unreachable"):
        tiny_site(router, "lscp", candidates=[at(n) for n in (1, 9, 14)])  # none reaches 21 within 30 s
    dropped = tiny_site(router, "lscp", candidates=[at(n) for n in (1, 9, 14)], drop_unreachable=True)
    assert dropped.dropped == pytest.approx(3 / 20)
    assert sorted(names(dropped)) == ["n1", "n14", "n9"] and dropped.covered_after == pytest.approx(17 / 20)


def test_pmedian_finds_the_least_weighted_drive_time(router: Router) -> None:
    demand = demand_on(router, {9: 1.0, 12: 1.0, 14: 3.0})
    # by hand: from 14, 12 is 14-8-12 and 9 is then 12-10 (60 km/h) and 10-9 (60 km/h)
    to_12 = (ms(metres(14, 8), 18) + ms(metres(8, 12), 18)) / 1000
    to_9 = to_12 + (ms(metres(10, 11, 12), 60) + ms(metres(9, 10), 60)) / 1000
    result = tiny_site(router, "pmedian", p=1, demand=demand, candidates=[at(9), at(12), at(14)])
    assert names(result) == ["n14"]
    assert result.objective == pytest.approx(1 * to_9 + 1 * to_12, abs=1e-6)
    assert result.mean_time_s_after == pytest.approx((to_9 + to_12) / 5, abs=1e-6)
    # the other sites cost more: 12 is 18.7 s from 9 and 43 s from 14 (x 3)
    assert 18.681 + 3 * to_12 > result.objective
    kept = tiny_site(
        router, "pmedian", p=2, demand=demand, candidates=[at(12), at(14)], stations=[at(9)], keep_existing=True
    )
    assert names(kept) == ["n9", "n14"]
    assert kept.objective == pytest.approx((ms(metres(9, 10), 60) + ms(metres(10, 11, 12), 60)) / 1000, abs=1e-6)
    assert kept.mean_time_s_before is not None and kept.mean_time_s_before > kept.mean_time_s_after


def test_outputs(router: Router) -> None:
    result = tiny_site(router, "mclp", p=2, stations=[Station("old 12", LatLon(*NODES[12]))], keep_existing=True)
    d = result.as_dict()
    json.dumps(d)
    assert d["solver"] == {"name": "HiGHS", "status": "Optimal", "mip_gap": 0.0}
    assert d["objective_unit"] == "covered demand" and d["new_sites"] == 1 and d["minutes"] == 0.5
    rows = list(csv.DictReader(io.StringIO(result.csv())))
    assert [r["name"] for r in rows] == ["old 12", "n3"] and rows[0]["gain"] == "" and rows[1]["gain"] == "0.4"
    fc = result.geojson()
    assert [f["geometry"]["coordinates"] for f in fc["features"]] == [[105.853, 21.032], [105.852, 21.03]]
    assert fc["features"][0]["properties"]["locked"] is True


# ---- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "kw", "words"),
    [
        ("mcl", {"p": 1}, "model 'mcl' is not known; allowed: mclp, lscp, pmedian"),
        ("mclp", {}, "mclp needs p"),
        ("pmedian", {"p": 0}, "give at least 1 site"),
        ("lscp", {"p": 2}, "lscp finds the smallest number of sites itself"),
        ("mclp", {"p": 6}, "p = 6 is more than the 5 candidate sites"),
        ("mclp", {"p": 1, "stations": [at(1), at(3)], "keep_existing": True}, "fewer than the 2 existing stations"),
        ("mclp", {"p": 1, "keep_existing": True}, "keep_existing needs the existing stations"),
        ("mclp", {"p": 1, "candidates": []}, "the candidate file holds no site"),
        ("mclp", {"p": 1, "cell_m": 10}, "50 to 20000 metres"),
        ("mclp", {"p": 1, "demand": np.ones(3)}, "demand must give every junction"),
        ("mclp", {"p": 1, "demand": np.zeros(12)}, "there is no demand"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    router: Router, model: str, kw: dict[str, object], words: str
) -> None:
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(")):
        tiny_site(router, model, **kw)


@pytest.mark.parametrize("minutes", [0, -1, 180.5, math.nan])
def test_bad_thresholds_are_refused(router: Router, minutes: float) -> None:
    with pytest.raises(InvalidInput, match="above 0 and at most 180 minutes"):
        site(router, "mclp", minutes, p=1, candidates=[at(1)], demand=demand_on(router, WEIGHTS), cell_m=50)


# ---- the real Hanoi graph -----------------------------------------------------------------------------------
CENTRE = Station("Trung tâm 115", LatLon(21.0236, 105.8566))
VIET_DUC = Station("Việt Đức", LatLon(21.0286, 105.8470))


def test_hanoi_mclp_is_the_exhaustive_optimum(hanoi_router: Router) -> None:
    """Every pair of the 1 km cells' centres, tried one by one: the solver's pair is the best."""
    result = site(hanoi_router, "mclp", 4, p=2, cell_m=1000, at=10)
    g = hanoi_router.graph
    cells = demand_cells(g, road_length_demand(g), 1000)
    nodes = cells.node.tolist()
    cands = [
        Station(f"cell {r}:{c}", LatLon(float(g.node_lat[v]), float(g.node_lon[v])))
        for r, c, v in zip(cells.row.tolist(), cells.col.tolist(), nodes, strict=True)
    ]
    covers = cost_matrix(hanoi_router, cells, cands, limit_s=240, at=10, nodes=nodes) <= 240
    best = max(
        float(cells.demand[covers[:, a] | covers[:, b]].sum()) for a, b in itertools.combinations(range(len(nodes)), 2)
    )
    assert len(nodes) > 40 and result.candidates == len(nodes)
    assert result.objective == pytest.approx(best)
    assert result.covered_after == pytest.approx(best / cells.demand.sum())
    assert result.status == "Optimal"


def test_hanoi_plan_around_the_existing_stations(hanoi_router: Router) -> None:
    result = site(hanoi_router, "mclp", 8, p=6, stations=[CENTRE, VIET_DUC], keep_existing=True, at=10)
    assert [s.name for s in result.sites[:2]] == [CENTRE.name, VIET_DUC.name]
    assert all(s.locked for s in result.sites[:2]) and not any(s.existing for s in result.sites[2:])
    gains = [s.gain for s in result.sites[2:]]
    assert all(g is not None and g > 0 for g in gains)
    assert gains == sorted(gains, reverse=True)  # type: ignore[type-var]
    assert result.covered_before + sum(gains) == pytest.approx(result.covered_after)  # type: ignore[arg-type]
    assert result.covered_before < 0.5 < result.covered_after <= 1
    assert result.objective == pytest.approx(result.covered_after * result.total_demand)
    assert result.demand_source.startswith("proxy")
    # no worse than adding, one by one, whichever cell centre adds the most
    g = hanoi_router.graph
    cells = demand_cells(g, road_length_demand(g), 500)
    nodes = cells.node.tolist()
    cands = [Station("c", LatLon(float(g.node_lat[v]), float(g.node_lon[v]))) for v in nodes]
    covers = cost_matrix(hanoi_router, cells, cands, limit_s=480, at=10, nodes=nodes) <= 480
    done = (cost_matrix(hanoi_router, cells, [CENTRE, VIET_DUC], limit_s=480, at=10) <= 480).any(axis=1)
    for _ in range(4):
        done |= covers[:, int(np.argmax([cells.demand[c & ~done].sum() for c in covers.T]))]
    assert result.objective >= float(cells.demand[done].sum()) - 1e-6


def test_hanoi_lscp_and_pmedian(hanoi_router: Router) -> None:
    lscp = site(hanoi_router, "lscp", 8, cell_m=1000, at=10)
    assert lscp.covered_after == 1.0 and lscp.objective == len(lscp.sites) >= 2
    fewer = site(hanoi_router, "mclp", 8, p=len(lscp.sites) - 1, cell_m=1000, at=10)
    assert fewer.covered_after < 1.0  # one site fewer cannot cover everything: the count is the least
    pmed = site(hanoi_router, "pmedian", 8, p=3, cell_m=1000, at=10)
    one = site(hanoi_router, "pmedian", 8, p=1, cell_m=1000, at=10)
    assert pmed.mean_time_s_after is not None and one.mean_time_s_after is not None
    assert pmed.mean_time_s_after < one.mean_time_s_after
    assert pmed.objective == pytest.approx(pmed.mean_time_s_after * pmed.total_demand, rel=1e-9)


def test_a_solve_that_proves_nothing_is_an_error(hanoi_router: Router) -> None:
    with pytest.raises(NotSolved, match="without proving an optimum"):
        site(hanoi_router, "pmedian", 8, p=10, cell_m=500, at=10, time_limit_s=1e-6)
