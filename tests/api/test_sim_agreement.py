"""The simulator and the live system agree: the same calls, through the live API (a dispatcher sending the first
unit the console recommends) and through dispatch.sim, get the same units, and the same hospitals."""

from __future__ import annotations

from datetime import datetime

from dispatch.core.recommend import HospitalView
from dispatch.core.triage import card
from dispatch.core.types import LatLon, Priority, UnitType
from dispatch.services import units as unit_service
from dispatch.sim.engine import Simulation, simulate
from dispatch.sim.model import Dist, Durations, Scenario, SimCall, SimStation, SimUnit
from dispatch.sim.roads import RoadTimes
from tests.api.conftest import Api

# (place, triage card): an ALS call by the lake, BLS calls across the map, then a second call near the first
CALLS = [
    ((21.0287, 105.8524), "chest_pain"),  # Hoan Kiem lake: delta, ALS
    ((21.0368, 105.8342), "fall"),  # Ba Dinh square: bravo, BLS
    ((21.02068, 105.80909), "stroke"),  # Lang: delta, ALS (nearest station as the crow flies is 6 min slower)
    ((21.0200, 105.8400), "back_pain"),  # Van Mieu: alpha, BLS
]
SECOND_NEAR_FIRST = ((21.0295, 105.8530), "breathing_problems")  # 100 m from the first call: delta, ALS
# no turnout or processing, long jobs, no transport: the state of the fleet at each call is exact in both
DURATIONS = Durations(
    processing=Dist.parse("fixed:0"),
    turnout=Dist.parse("fixed:0"),
    on_scene=Dist.parse("fixed:3600"),
    handover=Dist.parse("fixed:600"),
    transport_share=dict.fromkeys(Priority, 0.0),
)


def _fleet(api: Api) -> tuple[tuple[SimStation, ...], tuple[SimUnit, ...], list[HospitalView]]:
    ctx = api.ctx
    stations = unit_service.list_stations(ctx)
    names = {s.id: s.name for s in stations}
    sim_stations = tuple(SimStation(s.name, LatLon(s.lat, s.lon)) for s in stations)
    sim_units = tuple(
        SimUnit(u.callsign, UnitType(u.type), names[u.station_id])
        for u in unit_service.list_units(ctx)
        if u.station_id in names and UnitType(u.type) is not UnitType.MOTORBIKE
    )
    hospitals = [
        HospitalView(h.id or 0, h.name, LatLon(h.lat, h.lon), frozenset(h.capabilities), h.emergency, h.diversion)
        for h in unit_service.list_hospitals(ctx)
    ]
    return sim_stations, sim_units, hospitals


def _call(i: int, t: float, spec: tuple[tuple[float, float], str]) -> SimCall:
    (lat, lon), code = spec
    c = card(code)
    return SimCall(i, t, LatLon(lat, lon), c.priority, c)


def test_live_and_simulated_dispatch_send_the_same_units(api: Api) -> None:
    router = api.ctx.routers["ambulance"]
    start = datetime.now(router.tz)  # both rank in the road profile's period of this moment
    stations, units, hospitals = _fleet(api)
    roads = {"ambulance": RoadTimes(router, now=start)}
    first = [_call(i + 1, 0.0 if i == 0 else 900.0 + i, spec) for i, spec in enumerate(CALLS)]
    # when does the first call's unit come free? (the others stay busy for an hour)
    probe = simulate(Scenario("probe", stations, units, start), first, roads, hospitals, durations=DURATIONS)
    done = {j.call.id: j.times["13"] for j in probe.jobs}
    t5 = done[1] + 1.0
    assert t5 < min(t for cid, t in done.items() if cid != 1)
    calls = [*first, _call(5, t5, SECOND_NEAR_FIRST)]
    run = simulate(Scenario("agreement", stations, units, start), calls, roads, hospitals, durations=DURATIONS)
    simulated = {j.call.id: j.unit for j in run.jobs}
    assert run.skipped == {} and len(simulated) == 5

    live: dict[int, str] = {}

    def dispatch(i: int, c: SimCall) -> None:
        body = api.create_incident(lat=c.at.lat, lon=c.at.lon, complaint=c.card.code)
        assert (body["incident"]["priority"], body["incident"]["capability"]) == (c.priority.value, c.needs.value)
        top = next(r for r in body["recommendations"] if r["meets_capability"])
        api.ok(api.assign(body["incident"]["id"], top["unit_id"]), 201)
        live[i] = top["callsign"]

    for c in first:
        dispatch(c.id, c)
    # the first crew: on scene (its phone reports from there), treated on scene, back in service
    u1 = api.unit(live[1])
    api.ok(api.status(u1, "en_route"))
    api.ok(api.status(u1, "on_scene"))
    api.ok(api.post(f"/units/{u1}/position", json={"lat": first[0].at.lat, "lon": first[0].at.lon}))
    api.ok(api.status(u1, "available"))
    dispatch(5, calls[4])

    assert live == simulated
    assert len(set(live.values())) == 4 and live[5] == live[1]  # the freed unit, ranked from the scene, goes again


def test_live_and_simulated_hospital_choice_agree(api: Api) -> None:
    """For a patient on scene, the simulator takes the hospital the live system ranks first."""
    router = api.ctx.routers["ambulance"]
    stations, units, hospitals = _fleet(api)
    sim = Simulation(
        Scenario("hospitals", stations, units, datetime.now(router.tz)),
        {"ambulance": RoadTimes(router, now=datetime.now(router.tz))},
        hospitals,
    )
    for i, spec in enumerate([*CALLS, SECOND_NEAR_FIRST, ((21.0200, 105.8400), "obstetric")], start=1):
        c = _call(i, 0.0, spec)
        inc = api.create_incident(lat=c.at.lat, lon=c.at.lon, complaint=c.card.code)["incident"]
        ranked = api.ok(api.get("/hospitals", params={"for_incident": inc["id"]}))
        first_live = ranked["hospitals"][0]["name"]
        chosen = sim._hospital(c)
        assert chosen is not None and chosen[0] == first_live, (c.card.code, chosen, first_live)
