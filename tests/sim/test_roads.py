"""The simulator's drive times are the live router's, second for second, on the real Hanoi graph."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from dispatch.core.errors import DispatchError, InvalidInput, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.routing import Leg, Router
from dispatch.sim.roads import RoadTimes
from tests.sim.conftest import START


def _points(router: Router, n: int, seed: int) -> list[LatLon]:
    """Junctions and points between them (off the junctions, on or beside the streets)."""
    g = router.graph
    rng = np.random.default_rng(seed)
    a = rng.integers(0, g.n_nodes, n)
    b = rng.integers(0, g.n_nodes, n)
    f = rng.uniform(0, 1, n)
    f[: n // 3] = 0.0  # a third exactly at junctions
    lat = g.node_lat[a] + (g.node_lat[b] - g.node_lat[a]) * f * 0.02
    lon = g.node_lon[a] + (g.node_lon[b] - g.node_lon[a]) * f * 0.02
    return [LatLon(float(y), float(x)) for y, x in zip(lat, lon, strict=True)]


@pytest.mark.parametrize("hour", [10, 7, 17, 23])  # base, morning and evening peaks, night
def test_many_origins_agree_with_the_router(hanoi_router: Router, hour: int) -> None:
    when = START.replace(hour=hour)
    roads = RoadTimes(hanoi_router, now=when)
    pts = _points(hanoi_router, 90, seed=hour)
    origins, destinations = pts[:60], pts[60:]
    compared = 0
    for d in destinations:
        try:
            want = hanoi_router.eta_to(origins, d, at=when)
        except OutsideCoverage:
            with pytest.raises(OutsideCoverage):
                roads.eta_to(origins, d)
            continue
        got = roads.eta_to(origins, d)
        assert len(got) == len(want)
        for w, g in zip(want, got, strict=True):
            if isinstance(w, Leg):
                assert not isinstance(g, DispatchError)
                assert g.eta_s == pytest.approx(w.eta_s, abs=1e-6)
                assert math.isnan(g.distance_m)
                compared += 1
            else:
                assert type(g) is type(w)
    assert compared > 1000


def test_one_origin_reads_the_destination_tree(hanoi_router: Router) -> None:
    """A single origin (a patient to a hospital) goes through the backward trees, not the hierarchy: same
    seconds, and a tree is kept per destination junction."""
    roads = RoadTimes(hanoi_router, now=START)
    pts = _points(hanoi_router, 80, seed=3)
    for o, d in zip(pts[:40], pts[40:], strict=True):
        try:
            want = hanoi_router.eta_to([o], d, at=START)[0]
        except OutsideCoverage:
            continue
        got = roads.eta_to([o], d)[0]
        if isinstance(want, Leg):
            assert not isinstance(got, DispatchError) and got.eta_s == pytest.approx(want.eta_s, abs=1e-6)
        else:
            assert isinstance(got, DispatchError)
    searched = roads.searches
    assert 0 < searched <= 80
    roads.eta_to([pts[0]], pts[41])
    assert roads.searches == searched  # read from the table


def test_path_runs_from_origin_to_destination_in_the_drive_time(hanoi_router: Router) -> None:
    g = hanoi_router.graph
    roads = RoadTimes(hanoi_router, now=START)
    a = LatLon(float(g.node_lat[10]), float(g.node_lon[10]))
    b = LatLon(float(g.node_lat[-10]), float(g.node_lon[-10]))
    path = roads.path(a, b)
    eta = hanoi_router.eta_to([a], b, at=START)[0]
    assert isinstance(eta, Leg)
    assert path.at(0.0) == a and path.at(path.duration_s + 1) == b
    assert path.duration_s == pytest.approx(eta.eta_s, abs=1e-6)
    assert path.times_s == sorted(path.times_s) and len(path.times_s) > 5
    # halfway, a junction between the two
    mid = path.at(path.duration_s / 2)
    assert mid not in (a, b) and min(a.lat, b.lat) - 0.01 < mid.lat < max(a.lat, b.lat) + 0.01


def test_period_follows_the_clock(hanoi_router: Router) -> None:
    roads = RoadTimes(hanoi_router, now=START.replace(hour=8))
    peak = roads.period()
    roads.now = roads.now + timedelta(hours=4)
    assert roads.period() != peak


def test_table_budget_must_hold_a_tree(hanoi_router: Router) -> None:
    with pytest.raises(InvalidInput, match="cannot hold"):
        RoadTimes(hanoi_router, now=START, max_bytes=100)
