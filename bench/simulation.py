"""Part (1) of bench/planning.py: simulate 100,000 calls with 50 units on the Hanoi graph (target <= 60 s).

Ours: ``dispatch.sim`` with :class:`dispatch.sim.roads.RoadTimes` (the router's contraction hierarchy, snaps kept
per place and period, trees toward hospitals and stations). Two baselines run the very same simulation (same
calls, same core ranking and state machines) on a slice of the calls, and their calls per second are compared:

- ``router per query``: every drive time asked of ``Router.eta_to``, as a simulator written on our live API
  would do (the junctions passed on the way home are ours: it must send the same units, and does);
- ``networkx``: what a planner's notebook does with osmnx: each position to its nearest junction (a KD-tree),
  one ``single_source_dijkstra_path_length`` on the reversed graph per ranking, ``dijkstra_path`` home (on the
  first 500 calls: it runs about 10 calls a second).

    .venv/bin/python bench/planning.py --part 1
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree

from dispatch.core.errors import DispatchError, NoRoute, OutsideCoverage
from dispatch.core.recommend import HospitalView
from dispatch.core.types import LatLon
from dispatch.geo.coverage import road_length_demand
from dispatch.geo.routing import Router, When
from dispatch.services.seed import CENTRAL_STATION, HOSPITALS_FILE
from dispatch.sim.build import hospitals_from_geojson
from dispatch.sim.engine import Run, simulate
from dispatch.sim.generate import generate_calls
from dispatch.sim.model import Scenario, SimCall, SimStation, spread_units
from dispatch.sim.results import summarize
from dispatch.sim.roads import RoadTimes, SimLeg, Trip

START = datetime(2026, 1, 5, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


class RouterRoads:
    """Every question asked of the live router as it is (snapping each position on each call)."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.now = START
        self._paths = RoadTimes(router, now=START)

    def period(self, at: When = None) -> int:
        return self.router.period(self.now if at is None else at)

    def eta_to(self, origins: Sequence[LatLon], destination: LatLon, *, at: When = None) -> list[Any]:
        return list(self.router.eta_to(origins, destination, at=self.now if at is None else at))

    def path(self, origin: LatLon, destination: LatLon) -> Trip:
        # the junctions passed, as ours finds them (``Router.route`` gives a shape, not a time per junction):
        # the baseline pays only for its drive times, so both send the same units and the ratio is conservative
        self._paths.now = self.now
        return self._paths.path(origin, destination)


class NxRoads:
    """The osmnx-notebook way: nearest junction, networkx Dijkstra per question, nothing kept."""

    def __init__(self, router: Router) -> None:
        g = router.graph
        self.router, self.now = router, START
        period = router.period(START)
        w = g.arc_time_ms[period]
        G = nx.DiGraph()
        for t, h, ms in zip(g.arc_tail.tolist(), g.arc_head.tolist(), (w / 1000.0).tolist(), strict=True):
            if not G.has_edge(t, h) or G[t][h]["travel_time"] > ms:
                G.add_edge(t, h, travel_time=ms)
        self.G, self.R = G, G.reverse(copy=True)
        self.lat, self.lon = g.node_lat, g.node_lon
        self.tree = cKDTree(np.c_[g.node_lat, g.node_lon * math.cos(math.radians(float(np.mean(g.node_lat))))])
        self.cos = math.cos(math.radians(float(np.mean(g.node_lat))))

    def period(self, at: When = None) -> int:
        del at
        return 0

    def _node(self, p: LatLon) -> int:
        dist, i = self.tree.query([p.lat, p.lon * self.cos])
        if dist * 111_320 > 250:
            raise OutsideCoverage(f"{p} is off the roads", distance_m=dist * 111_320, max_distance_m=250)
        return int(i)

    def eta_to(self, origins: Sequence[LatLon], destination: LatLon, *, at: When = None) -> list[Any]:
        del at  # one period: the notebook's graph has one weight per road
        times = nx.single_source_dijkstra_path_length(self.R, self._node(destination), weight="travel_time")
        out: list[Any] = []
        for o in origins:
            try:
                t = times.get(self._node(o))
            except DispatchError as exc:
                out.append(exc)
                continue
            out.append(NoRoute("no route") if t is None else SimLeg(t, math.nan))
        return out

    def path(self, origin: LatLon, destination: LatLon) -> Trip:
        nodes = nx.dijkstra_path(self.G, self._node(origin), self._node(destination), weight="travel_time")
        times = [0.0]
        for a, b in zip(nodes, nodes[1:], strict=False):
            times.append(times[-1] + self.G[a][b]["travel_time"])
        return Trip(times, self.lat[nodes].tolist(), self.lon[nodes].tolist())


def hanoi_fleet(router: Router, units: int) -> tuple[Scenario, list[HospitalView]]:
    """The demo's stations (the 115 centre and the emergency hospitals on the ambulance roads), ``units``
    ambulances spread over them, the bundled hospitals."""
    hospitals = hospitals_from_geojson(HOSPITALS_FILE.read_text("utf-8"), str(HOSPITALS_FILE))
    on_roads = [
        h
        for h in hospitals
        if h.emergency
        and {"trauma", "cardiac", "stroke"} & h.capabilities
        and not isinstance(router.snapper.snap_many([h.position])[0], OutsideCoverage)
    ]
    name, lat, lon = CENTRAL_STATION
    stations = (SimStation(name, LatLon(lat, lon)), *(SimStation(h.name, h.position) for h in on_roads))
    return Scenario(f"{units} units", stations, spread_units(stations, units), START), hospitals


def _timed(scenario: Scenario, calls: list[SimCall], roads: Any, hospitals: list[HospitalView]) -> tuple[Run, float]:
    t0 = time.perf_counter()
    run = simulate(scenario, calls, {"ambulance": roads}, hospitals)
    return run, time.perf_counter() - t0


def part1(router: Router, *, calls: int, units: int, baseline_calls: int, seed: int) -> dict[str, Any]:
    g = router.graph
    points = [LatLon(float(a), float(b)) for a, b in zip(g.node_lat, g.node_lon, strict=True)]
    per_day = 800.0
    made = generate_calls(points, road_length_demand(g), calls_per_day=per_day, days=calls / per_day * 1.02, seed=seed)
    made = made[:calls]
    scenario, hospitals = hanoi_fleet(router, units)
    days = made[-1].t_s / 86400
    print(f"{len(made):,} calls over {days:.0f} days, {units} units at {len(scenario.stations)} stations")
    roads = RoadTimes(router, now=START)
    run, secs = _timed(scenario, made, roads, hospitals)
    ours = summarize(run)
    out: dict[str, Any] = {
        "calls": len(made),
        "units": units,
        "ours_s": round(secs, 1),
        "ours_calls_per_s": round(len(made) / secs),
        "ours_searches": roads.searches,
        "ours_response_mean_s": ours["response"]["mean_s"],
        "ours_waited_share": ours["waited_share"],
        "ours_utilisation": ours["utilisation_mean"],
        "target_met": secs <= 60.0 if len(made) >= 100_000 and units == 50 else None,
    }
    print(
        f"ours: {len(made):,} calls in {secs:.1f} s = {len(made) / secs:,.0f} calls/s (target <= 60 s); mean response "
        f"{ours['response']['mean_s'] / 60:.1f} min, waited {ours['waited_share']:.1%}, "
        f"utilisation {ours['utilisation_mean']:.0%}",
        flush=True,
    )
    if baseline_calls:
        head = made[:baseline_calls]
        same, s_ours = _timed(scenario, head, RoadTimes(router, now=START), hospitals)
        mine = {j.call.id: j.unit for j in same.jobs}
        for name, roads_b in (("router_per_query", RouterRoads(router)), ("networkx", NxRoads(router))):
            if name == "networkx":  # about 10 calls a second: a quarter of the slice
                head = head[: max(1, baseline_calls // 4)]
                same, s_ours = _timed(scenario, head, RoadTimes(router, now=START), hospitals)
                mine = {j.call.id: j.unit for j in same.jobs}
            run_b, s_b = _timed(scenario, head, roads_b, hospitals)
            agree = sum(mine.get(j.call.id) == j.unit for j in run_b.jobs) / len(head)
            out[f"{name}_calls_per_s"] = round(len(head) / s_b)
            out[f"{name}_ratio"] = round((len(head) / s_ours) / (len(head) / s_b), 1)
            out[f"{name}_same_unit_share"] = round(agree, 4)
            print(
                f"{name}: {len(head):,} calls in {s_b:.1f} s = {len(head) / s_b:,.0f} calls/s; ours on the same "
                f"calls {s_ours:.1f} s: {s_b / s_ours:.1f}x faster; same unit sent in {agree:.1%} of the calls",
                flush=True,
            )
    return out
