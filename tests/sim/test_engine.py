"""The simulator on the real Hanoi graph: exact small cases, queues, capabilities, seeds, both policies."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from dispatch.core.errors import InvalidInput, InvalidTransition
from dispatch.core.recommend import rank_hospitals
from dispatch.core.triage import card
from dispatch.core.types import LatLon, Priority, UnitType
from dispatch.geo.coverage import road_length_demand
from dispatch.geo.routing import Leg, Router
from dispatch.sim.engine import Job, Simulation, simulate
from dispatch.sim.generate import generate_calls
from dispatch.sim.model import Dist, Durations, Scenario, SimCall, SimStation, SimUnit, spread_units
from dispatch.sim.results import summarize
from dispatch.sim.roads import RoadTimes
from tests.sim.conftest import START

FIXED = Durations(
    processing=Dist.parse("fixed:60"),
    turnout=Dist.parse("fixed:45"),
    on_scene=Dist.parse("fixed:600"),
    handover=Dist.parse("fixed:900"),
    transport_share=dict.fromkeys(Priority, 1.0),
)
# two streets of the Old Quarter / Ba Dinh, both on the ambulance graph
HANG_BAI = LatLon(21.0220, 105.8530)
KIM_MA = LatLon(21.0318, 105.8220)


def _roads(router: Router) -> dict[str, RoadTimes]:
    return {"ambulance": RoadTimes(router, now=START)}


def _eta(router: Router, a: LatLon, b: LatLon) -> float:
    leg = router.eta_to([a], b, at=START)[0]
    assert isinstance(leg, Leg)
    return leg.eta_s


class _RouterAtStart:
    """The live router, asked at the scenario's start (core's ranking asks without a time: the wall clock)."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def eta_to(self, origins, destination, *, at=None):
        return self.router.eta_to(origins, destination, at=START if at is None else at)


def _scenario(stations: tuple[SimStation, ...], units: tuple[SimUnit, ...]) -> Scenario:
    return Scenario("test", stations, units, START)


def test_one_call_takes_exactly_the_drive_times(hanoi_router: Router, hanoi_stations, hanoi_hospitals) -> None:
    st = hanoi_stations[0]
    sc = _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),))
    call = SimCall(1, 0.0, KIM_MA, Priority.DELTA, card("chest_pain"))
    run = simulate(sc, [call], _roads(hanoi_router), hanoi_hospitals, durations=FIXED)
    (job,) = run.jobs
    eta = _eta(hanoi_router, st.at, KIM_MA)
    assert job.unit == "A01"
    assert job.times["03"] == 60.0
    assert job.times["05"] == 105.0
    assert job.times["06"] == pytest.approx(105.0 + eta, abs=1e-6)
    assert job.response_s == pytest.approx(105.0 + eta, abs=1e-6)
    # the hospital core picks for a cardiac patient, at the drive time from the scene
    best = rank_hospitals(hanoi_hospitals, KIM_MA, "cardiac", _RouterAtStart(hanoi_router))[0][0]
    assert job.hospital == best.name
    assert job.times["11"] == pytest.approx(job.times["06"] + 600.0 + best.eta_s, abs=1e-3)
    assert job.times["13"] == pytest.approx(job.times["11"] + 900.0, abs=1e-6)
    busy, jobs = run.units["A01"]
    assert jobs == 1 and busy == pytest.approx(job.times["13"] - job.times["03"], abs=1e-6)


def test_a_second_call_waits_and_the_returning_unit_takes_it(hanoi_router, hanoi_stations, hanoi_hospitals):
    st = hanoi_stations[0]
    sc = _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),))
    d = dataclasses.replace(FIXED, transport_share=dict.fromkeys(Priority, 0.0))
    calls = [
        SimCall(1, 0.0, KIM_MA, Priority.ALPHA, card("back_pain")),
        SimCall(2, 10.0, HANG_BAI, Priority.ALPHA, card("back_pain")),
    ]
    run = simulate(sc, calls, _roads(hanoi_router), hanoi_hospitals, durations=d)
    first, second = sorted(run.jobs, key=lambda j: j.call.id)
    assert not first.waited and second.waited
    # treated on scene, back in service at once, and sent on from where it stands: no turnout
    assert second.times["03"] == first.times["13"] == first.times["06"] + 600.0
    assert second.times["05"] == second.times["03"]
    assert second.times["06"] == pytest.approx(second.times["05"] + _eta(hanoi_router, KIM_MA, HANG_BAI), abs=1e-6)


def test_the_most_urgent_waiting_call_goes_first(hanoi_router, hanoi_stations, hanoi_hospitals):
    st = hanoi_stations[0]
    sc = _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),))
    calls = [
        SimCall(1, 0.0, KIM_MA, Priority.ALPHA, card("back_pain")),
        SimCall(2, 5.0, HANG_BAI, Priority.ALPHA, card("back_pain")),
        SimCall(3, 30.0, HANG_BAI, Priority.ECHO, card("cardiac_arrest")),
    ]
    run = simulate(sc, calls, _roads(hanoi_router), hanoi_hospitals, durations=FIXED)
    order = [j.call.id for j in sorted(run.jobs, key=lambda j: j.times["03"])]
    assert order == [1, 3, 2]


def test_capability_order_and_waiting_for_als(hanoi_router, hanoi_stations, hanoi_hospitals):
    st = hanoi_stations[0]
    units = (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name), SimUnit("B01", UnitType.BLS_AMBULANCE, st.name))
    sc = _scenario((st,), units)
    calls = [
        SimCall(1, 0.0, KIM_MA, Priority.ALPHA, card("back_pain")),  # BLS: the BLS unit, keeping ALS free
        SimCall(2, 0.0, HANG_BAI, Priority.ECHO, card("cardiac_arrest")),  # ALS
        SimCall(3, 1.0, KIM_MA, Priority.DELTA, card("stroke")),  # ALS again: must wait for A01
    ]
    run = simulate(sc, calls, _roads(hanoi_router), hanoi_hospitals, durations=FIXED)
    by_id = {j.call.id: j for j in run.jobs}
    assert by_id[1].unit == "B01" and by_id[2].unit == "A01" and by_id[3].unit == "A01"
    assert by_id[3].waited and by_id[3].times["03"] >= by_id[2].times["13"]


def test_the_nearest_by_road_not_by_crow(hanoi_router, hanoi_stations, hanoi_hospitals):
    """Across the stations, drive-time dispatch sends the unit with the least drive time; straight-line
    dispatch sends the one nearest as the crow flies. Where the two differ, the road graph wins time."""
    stations = hanoi_stations
    units = tuple(SimUnit(f"A{i + 1:02d}", UnitType.ALS_AMBULANCE, s.name) for i, s in enumerate(stations))
    sc = _scenario(stations, units)
    g = hanoi_router.graph
    calls = [
        SimCall(i + 1, i * 86400.0, LatLon(float(g.node_lat[n]), float(g.node_lon[n])), Priority.DELTA, card("stroke"))
        for i, n in enumerate(range(0, g.n_nodes, 97))
    ]
    roads = _roads(hanoi_router)
    drive = simulate(sc, calls, roads, hanoi_hospitals, durations=FIXED, policy="drive_time")
    crow = simulate(sc, calls, roads, hanoi_hospitals, durations=FIXED, policy="straight_line")
    d = {j.call.id: j for j in drive.jobs}
    c = {j.call.id: j for j in crow.jobs}
    assert d.keys() == c.keys() and len(d) == len(calls)
    home = {u.callsign: next(s.at for s in stations if s.name == u.station) for u in units}
    differ = 0
    for i, call in enumerate(calls):
        # a day apart: every unit is home again; the drive-time pick is the least drive time of all
        times = {cs: _eta(hanoi_router, at, call.at) for cs, at in home.items()}
        assert d[i + 1].travel_s == pytest.approx(min(times.values()), abs=1e-6)
        assert c[i + 1].travel_s >= d[i + 1].travel_s - 1e-6
        differ += d[i + 1].unit != c[i + 1].unit
    assert differ > 0
    assert summarize(drive)["response"]["mean_s"] < summarize(crow)["response"]["mean_s"]


def test_seeded_runs_repeat_and_seeds_differ(hanoi_router, hanoi_stations, hanoi_hospitals):
    g = hanoi_router.graph
    pts = [LatLon(float(a), float(b)) for a, b in zip(g.node_lat, g.node_lon, strict=True)]
    calls = generate_calls(pts, road_length_demand(g), calls_per_day=300, days=2, seed=11)
    sc = _scenario(hanoi_stations, spread_units(hanoi_stations, 10))
    runs = [simulate(sc, calls, _roads(hanoi_router), hanoi_hospitals, seed=s) for s in (5, 5, 6)]
    a, b, c = (summarize(r) for r in runs)
    assert a == b
    assert [(j.call.id, j.unit, j.times) for j in runs[0].jobs] == [(j.call.id, j.unit, j.times) for j in runs[1].jobs]
    assert a != c
    assert a["calls"] == len(calls) and 0 < a["waited_share"] < 1 and 0 < a["utilisation_mean"] < 1
    for j in runs[0].jobs:  # NEMSIS times in the order of a job
        t = j.times
        seq = [t["01"], t["03"], t["05"], t["06"], t["09"]] + ([t["11"], t["12"]] if j.hospital else []) + [t["13"]]
        assert seq == sorted(seq), j


def test_more_units_answer_sooner_on_the_same_calls(hanoi_router, hanoi_stations, hanoi_hospitals):
    g = hanoi_router.graph
    pts = [LatLon(float(a), float(b)) for a, b in zip(g.node_lat, g.node_lon, strict=True)]
    calls = generate_calls(pts, road_length_demand(g), calls_per_day=400, days=2, seed=3)
    few = simulate(
        _scenario(hanoi_stations, spread_units(hanoi_stations, 8)), calls, _roads(hanoi_router), hanoi_hospitals
    )
    many = simulate(
        _scenario(hanoi_stations, spread_units(hanoi_stations, 20)), calls, _roads(hanoi_router), hanoi_hospitals
    )
    f, m = summarize(few), summarize(many)
    assert m["response"]["p90_s"] < f["response"]["p90_s"]
    assert m["waited_share"] < f["waited_share"]


def test_bad_input(hanoi_router, hanoi_stations, hanoi_hospitals):
    st = hanoi_stations[0]
    unit = (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),)
    roads = _roads(hanoi_router)
    call = SimCall(1, 0.0, KIM_MA, Priority.DELTA, card("stroke"))
    with pytest.raises(InvalidInput, match="no calls"):
        simulate(_scenario((st,), unit), [], roads, hanoi_hospitals)
    with pytest.raises(InvalidInput, match="policy 'nearest' is not known; allowed: drive_time, straight_line"):
        simulate(_scenario((st,), unit), [call], roads, hanoi_hospitals, policy="nearest")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="unique"):
        simulate(_scenario((st,), unit), [call, call], roads, hanoi_hospitals)
    with pytest.raises(InvalidInput, match="unknown stations"):
        _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, "nowhere"),))
    with pytest.raises(InvalidInput, match="no units"):
        _scenario((st,), ())
    with pytest.raises(InvalidInput, match="timezone-aware"):
        Scenario("x", (st,), unit, START.replace(tzinfo=None))
    far = SimStation("in the river", LatLon(21.0480, 105.8700))
    with pytest.raises(InvalidInput, match="station 'in the river' cannot be driven from"):
        simulate(_scenario((far,), (SimUnit("A01", UnitType.ALS_AMBULANCE, far.name),)), [call], roads, hanoi_hospitals)
    with pytest.raises(InvalidInput, match="not a time after the start"):
        simulate(_scenario((st,), unit), [dataclasses.replace(call, t_s=-5.0)], roads, hanoi_hospitals)


def test_unreachable_calls_are_counted_not_lost(hanoi_router, hanoi_stations, hanoi_hospitals):
    st = hanoi_stations[0]
    sc = _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),))
    calls = [
        SimCall(1, 0.0, KIM_MA, Priority.DELTA, card("stroke")),
        SimCall(2, 0.0, LatLon(21.0480, 105.8700), Priority.DELTA, card("stroke")),  # the Red River
    ]
    run = simulate(sc, calls, _roads(hanoi_router), hanoi_hospitals, durations=FIXED)
    assert [j.call.id for j in run.jobs] == [1]
    assert run.skipped == {"no drivable route from any station to the call": 1}


def test_the_state_machines_are_the_core_ones(hanoi_router, hanoi_stations, hanoi_hospitals):
    """A step the live server would refuse is refused in the simulation too."""
    st = hanoi_stations[0]
    sim = Simulation(
        _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),)), _roads(hanoi_router), hanoi_hospitals
    )
    unit = sim.units[0]
    unit.job = Job(SimCall(1, 0.0, KIM_MA, Priority.DELTA, card("stroke")))  # a job, but never assigned
    with pytest.raises(InvalidTransition, match="available"):
        sim._on_on_scene(0.0, unit)


def test_dist_parse() -> None:
    assert Dist.parse("fixed:60").sample(None) == 60.0  # type: ignore[arg-type]
    assert Dist.parse("lognormal:900,400").mean == 900
    assert str(Dist.parse(" triangular:1,2,3 ")) == "triangular:1,2,3"
    for bad, msg in [
        ("gamma:1", "not known; allowed: fixed, uniform, triangular, exponential, lognormal"),
        ("fixed:a", "must be numbers"),
        ("uniform:5", "takes 2"),
        ("uniform:9,5", "low <= high"),
        ("fixed:-1", "not negative"),
        ("exponential:0", "more than 0"),
        ("triangular:1,5,3", "low <= mode <= high"),
    ]:
        with pytest.raises(InvalidInput, match=msg):
            Dist.parse(bad)


def test_lognormal_draws_have_the_asked_mean() -> None:
    import random
    from statistics import fmean, stdev

    rng = random.Random(1)
    d = Dist.parse("lognormal:900,400")
    xs = [d.sample(rng) for _ in range(40_000)]
    assert fmean(xs) == pytest.approx(900, rel=0.02) and stdev(xs) == pytest.approx(400, rel=0.05)


def test_start_period_is_the_scenario_clock(hanoi_router, hanoi_stations, hanoi_hospitals):
    """The same call at 08:00 (morning peak) takes longer than at 23:00 (night)."""
    st = hanoi_stations[0]
    unit = (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),)
    call = [SimCall(1, 0.0, KIM_MA, Priority.DELTA, card("stroke"))]
    peak = Scenario("peak", (st,), unit, START.replace(hour=8) - timedelta(minutes=5))
    night = Scenario("night", (st,), unit, START.replace(hour=23))
    t_peak = simulate(peak, call, _roads(hanoi_router), hanoi_hospitals, durations=FIXED).jobs[0].travel_s
    t_night = simulate(night, call, _roads(hanoi_router), hanoi_hospitals, durations=FIXED).jobs[0].travel_s
    assert t_peak > t_night * 1.5


def test_calls_no_unit_can_answer_are_counted_and_fail_the_standard(hanoi_router, hanoi_stations, hanoi_hospitals):
    from dispatch.sim.results import ARP, summarize

    st = hanoi_stations[0]
    sc = _scenario((st,), (SimUnit("B01", UnitType.BLS_AMBULANCE, st.name),))
    calls = [
        SimCall(1, 0.0, KIM_MA, Priority.ALPHA, card("back_pain")),
        SimCall(2, 0.0, HANG_BAI, Priority.ECHO, card("cardiac_arrest")),  # needs ALS: nobody can go
    ]
    run = simulate(sc, calls, _roads(hanoi_router), hanoi_hospitals, durations=FIXED)
    assert [j.call.id for j in run.jobs] == [1] and [j.call.id for j in run.unanswered] == [2]
    assert run.skipped == {"no unit of the fleet meets the ALS needed: never answered": 1}
    s = summarize(run, ARP)
    assert s["never_answered"] == 1
    echo_mean = s["standard"]["checks"][0]
    assert echo_mean["met"] is False and echo_mean["never_answered"] == 1 and echo_mean["value_s"] is None


def test_resize_fleet_keeps_layout_and_als_share(hanoi_stations):
    from collections import Counter

    from dispatch.sim.model import resize_fleet

    base = spread_units(hanoi_stations, 14, als_share=0.5)
    grown = resize_fleet(base, hanoi_stations, 21)
    assert grown[:14] == base and len({u.callsign for u in grown}) == 21
    assert sum(u.type is UnitType.ALS_AMBULANCE for u in grown) in (10, 11)
    per = Counter(u.station for u in grown)
    assert max(per.values()) - min(per.values()) <= 1
    shrunk = resize_fleet(base, hanoi_stations, 7)
    assert set(shrunk) <= set(base) and len(shrunk) == 7
    assert sum(u.type is UnitType.ALS_AMBULANCE for u in shrunk) in (3, 4)
    with pytest.raises(InvalidInput, match="at least 1"):
        resize_fleet(base, hanoi_stations, 0)


def test_generated_calls_follow_the_clock_from_a_midday_start():
    """A start at noon begins with the noon rate: the hourly profile is by the clock, not by the hours run."""
    from dispatch.sim.generate import HOURLY

    pts = [LatLon(21.03, 105.85)]
    calls = generate_calls(pts, [1.0], calls_per_day=20_000, days=1, seed=2, start_s_of_day=12 * 3600)
    by_clock = [0] * 24
    for c in calls:
        by_clock[int((c.t_s + 12 * 3600) // 3600) % 24] += 1
    for hour in (4, 12):
        assert by_clock[hour] == pytest.approx(20_000 * HOURLY[hour], rel=0.15)
    assert by_clock[12] > 2 * by_clock[4] and all(0 <= c.t_s < 86400 for c in calls)
    with pytest.raises(InvalidInput, match="seconds after midnight"):
        generate_calls(pts, [1.0], calls_per_day=10, days=1, start_s_of_day=90_000)


def test_the_history_keeps_each_call_s_triage_card():
    from datetime import UTC, datetime

    from dispatch.geo.demand import Call
    from dispatch.sim.build import UNKNOWN_CARD, calls_from_log

    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    log = [
        Call(t0, KIM_MA, Priority.CHARLIE, "diabetic"),  # a BLS charlie card: must stay BLS
        Call(t0, HANG_BAI, Priority.DELTA, "obstetric"),
        Call(t0, HANG_BAI, Priority.ALPHA, "not_a_card"),
        Call(t0, HANG_BAI, Priority.ALPHA),
    ]
    calls, notes = calls_from_log(log, start=t0)
    assert [c.card.code for c in calls[:2]] == ["diabetic", "obstetric"]
    assert calls[0].needs.value == "bls" and calls[1].card.hospital_capability == "obstetric"
    assert all(c.card.priority is Priority.ALPHA for c in calls[2:]) and notes == {UNKNOWN_CARD: 1}


def test_turnout_counts_only_crews_that_set_out_from_standstill(hanoi_router, hanoi_stations, hanoi_hospitals):
    from dispatch.sim.results import NFPA1710, summarize

    st = hanoi_stations[0]
    sc = _scenario((st,), (SimUnit("A01", UnitType.ALS_AMBULANCE, st.name),))
    zero = dataclasses.replace(FIXED, turnout=Dist.parse("fixed:0"))
    run = simulate(sc, [SimCall(1, 0.0, KIM_MA, Priority.DELTA, card("stroke"))], _roads(hanoi_router),
                   hanoi_hospitals, durations=zero)  # fmt: skip
    turnout = summarize(run, NFPA1710)["standard"]["checks"][0]
    assert run.jobs[0].turned_out and turnout["calls"] == 1 and turnout["value_s"] == 0.0 and turnout["met"]
