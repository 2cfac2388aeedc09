"""The discrete-event simulation: calls arrive, the real core ranks and assigns units, units drive and work.

Each unit and each incident moves through core's own state machines (``apply_unit``, ``apply_incident``): a
simulated step the live server would refuse raises here too. Units are chosen by a dispatch policy:

- ``drive_time`` (the product): core's :func:`rank_units` over every free unit, from where each one is (at its
  station, or on the road while returning), and the first unit that meets the call's capability, exactly the
  unit a dispatcher sees on top of the console's list;
- ``straight_line`` (the baseline that a road graph replaces): the same capability order, but the nearest unit
  as the crow flies; it then drives the road like any other.

A call that finds no free unit with the capability it needs waits in a queue (most urgent first, then oldest)
until one becomes free. A unit driving back from a job (``returning``) can take a call on the way. Times are
seconds after the scenario's start; each incident records its NEMSIS eTimes.

Durations are drawn per call from a stream seeded by (seed, call id), so two scenarios fed the same calls and
seed draw the same on-scene and handover times for the same call (common random numbers: differences between
scenarios come from the scenarios, not from luck).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from dispatch.core.errors import DispatchError, InvalidInput
from dispatch.core.lifecycle import ASSIGNABLE, IncidentEvent, UnitEvent, apply_incident, apply_unit
from dispatch.core.recommend import HospitalView, TravelTimes, UnitView, rank_hospitals, rank_units
from dispatch.core.types import IncidentStatus, LatLon, UnitStatus
from dispatch.sim.model import Durations, Scenario, SimCall, SimUnit
from dispatch.sim.roads import Trip

Policy = Literal["drive_time", "straight_line"]
POLICIES: tuple[Policy, ...] = ("drive_time", "straight_line")
EARTH_M = 6_371_008.8


class Roads(TravelTimes, Protocol):
    """Drive times on the simulated clock, and the junctions a unit passes (to know where it is)."""

    now: datetime

    def period(self, at: datetime | None = None) -> int: ...

    def path(self, origin: LatLon, destination: LatLon) -> Trip: ...


@dataclass
class Job:
    """One incident as the simulation saw it."""

    call: SimCall
    status: IncidentStatus = IncidentStatus.RECEIVED
    #: NEMSIS eTimes in seconds after the start: "01" call, "03" notified, "05" en route, "06" on scene,
    #: "09" left scene, "11" at hospital, "12" transfer of care, "13" back in service
    times: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    #: no free unit with the needed capability when the call was ready to dispatch
    waited: bool = False
    hospital: str | None = None
    #: the unit set out from a standstill (its station, a scene): the job has a turnout time
    turned_out: bool = False

    @property
    def response_s(self) -> float:
        """Call (eTimes.01) to on scene (eTimes.06)."""
        return self.times["06"] - self.times["01"]

    @property
    def travel_s(self) -> float:
        """En route (eTimes.05) to on scene (eTimes.06): what NFPA 1710's travel time measures."""
        return self.times["06"] - self.times["05"]


@dataclass
class _Unit:
    id: int
    spec: SimUnit
    home: LatLon
    status: UnitStatus = UnitStatus.AVAILABLE
    pos: LatLon = field(default=LatLon(0.0, 0.0))
    pos_t: float = 0.0
    #: while driving back: the junctions passed, from ``path_t0`` on
    path: Trip | None = None
    path_t0: float = 0.0
    gen: int = 0  # bumped when a pending arrival home is overtaken by a new assignment
    job: Job | None = None
    busy_since: float | None = None
    busy_s: float = 0.0
    jobs: int = 0
    _view: UnitView | None = None

    def view(self, t: float) -> UnitView:
        """The unit as core's ranking sees it (kept while the unit stands still)."""
        where = self.where(t)
        if self._view is None or self._view.status is not self.status or self._view.position != where:
            self._view = UnitView(self.id, self.spec.callsign, self.spec.type, self.status, where, None)
        return self._view

    def where(self, t: float) -> LatLon:
        if self.path is None:
            return self.pos
        return self.path.at(t - self.path_t0)


@dataclass(frozen=True)
class _Draws:
    processing: float
    turnout: float
    on_scene: float
    handover: float
    transport: float  # uniform 0..1, compared with the priority's transport share


@dataclass
class Run:
    """What one simulation produced (see :mod:`dispatch.sim.results` for the figures)."""

    scenario: Scenario
    policy: Policy
    jobs: list[Job]
    units: dict[str, tuple[float, int]]  # callsign -> (busy seconds, jobs)
    span_s: float
    skipped: dict[str, int]
    #: calls that were never answered (no unit of the fleet has the capability they need)
    unanswered: list[Job] = field(default_factory=list)


def _crow_m(a: LatLon, b: LatLon) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(math.sqrt(h))


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        roads: Mapping[str, Roads],
        hospitals: Sequence[HospitalView],
        *,
        durations: Durations | None = None,
        policy: Policy = "drive_time",
        seed: int = 1,
    ) -> None:
        if policy not in POLICIES:
            raise InvalidInput(f"policy {policy!r} is not known; allowed: {', '.join(POLICIES)}")
        if "ambulance" not in roads:
            raise InvalidInput("the simulation needs the ambulance road graph")
        self.scenario = scenario
        self.roads = roads
        self.hospitals = list(hospitals)
        self.d = durations or Durations()
        self.policy = policy
        self.seed = seed
        at = {s.name: s.at for s in scenario.stations}
        self.units = [_Unit(i + 1, u, at[u.station], pos=at[u.station]) for i, u in enumerate(scenario.units)]
        self.queue: list[tuple[int, float, int, Job]] = []
        self.events: list[tuple[float, int, str, object]] = []
        self._seq = 0
        self._drawn: dict[int, _Draws] = {}
        self._travel: dict[str, TravelTimes] = dict(roads)
        # answers that depend only on places and the period (the same street, hospital and station recur)
        # (keyed by coordinates: a tuple of floats hashes in C, a LatLon dataclass in Python)
        self._hospitals: dict[tuple[float, float, str | None, int], tuple[str, float, LatLon] | None] = {}
        self._homeward: dict[tuple[str, float, float, str, int], Trip | None] = {}
        self._reach: dict[tuple[float, float, int], bool] = {}
        self.skipped: dict[str, int] = {}

    # ---- the clock ---------------------------------------------------------------------------------------
    def _at(self, t: float, kind: str, obj: object) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, kind, obj))

    def _period(self, road: Roads) -> int:
        """Which time-of-day period of the road profile the clock is in (answers are kept per period)."""
        return road.period()

    def _when(self, t: float) -> datetime:
        return self.scenario.start + timedelta(seconds=t)

    def _draws(self, call: SimCall) -> _Draws:
        found = self._drawn.get(call.id)
        if found is not None:
            return found
        rng = random.Random(self.seed * 1_000_003 + call.id)
        found = self._drawn[call.id] = _Draws(
            self.d.processing.sample(rng),
            self.d.turnout.sample(rng),
            self.d.on_scene.sample(rng),
            self.d.handover.sample(rng),
            rng.random(),
        )
        return found

    def _reachable(self, c: SimCall) -> bool:
        """Whether some station's units can drive to the call (else it would wait for ever)."""
        road = self.roads["ambulance"]
        when = self._when(c.t_s)
        key = (c.at.lat, c.at.lon, road.period(when))
        found = self._reach.get(key)
        if found is None:
            try:
                legs = road.eta_to([s.at for s in self.scenario.stations], c.at, at=when)
                found = any(not isinstance(leg, DispatchError) for leg in legs)
            except DispatchError:
                found = False
            self._reach[key] = found
        return found

    def _check_stations(self) -> None:
        road = self.roads["ambulance"]
        for st in self.scenario.stations:
            try:
                road.eta_to([], st.at)
            except DispatchError as exc:
                raise InvalidInput(f"station {st.name!r} cannot be driven from: {exc}") from None

    def run(self, calls: Sequence[SimCall]) -> Run:
        jobs: list[Job] = []
        self._check_stations()
        if len({c.id for c in calls}) != len(calls):
            raise InvalidInput("call ids must be unique")
        for c in sorted(calls, key=lambda c: (c.t_s, c.id)):
            if not (math.isfinite(c.t_s) and c.t_s >= 0):
                raise InvalidInput(f"call {c.id}: time {c.t_s} s is not a time after the start")
            job = Job(c, times={"01": c.t_s})
            jobs.append(job)
            self._at(c.t_s + self._draws(c).processing, "ready", job)
        t = 0.0
        while self.events:
            t, _, kind, obj = heapq.heappop(self.events)
            for r in self.roads.values():
                r.now = self._when(t)
            getattr(self, f"_on_{kind}")(t, obj)
        span = max(t, max((c.t_s for c in calls), default=0.0))
        served = [j for j in jobs if "06" in j.times]
        # calls still waiting when nothing else can happen: no unit of the fleet has the capability they need
        never = [entry[3] for entry in self.queue]
        for job in never:
            need = job.call.needs.value.upper().replace("_", " ")
            why = f"no unit of the fleet meets the {need} needed: never answered"
            self.skipped[why] = self.skipped.get(why, 0) + 1
        return Run(
            self.scenario,
            self.policy,
            served,
            {u.spec.callsign: (u.busy_s, u.jobs) for u in self.units},
            span,
            dict(self.skipped),
            never,
        )

    # ---- dispatch ----------------------------------------------------------------------------------------
    def _on_ready(self, t: float, job: Job) -> None:
        c = job.call
        bisect.insort(self.queue, (c.priority.rank, c.t_s, c.id, job))
        self._serve(t)
        if job.status is IncidentStatus.RECEIVED and job.unit is None:
            job.waited = True

    def _serve(self, t: float) -> None:
        """Give waiting calls, most urgent first, the unit the policy picks among the free ones."""
        if not self.queue:
            return
        free = [u for u in self.units if u.status in ASSIGNABLE]
        i = 0
        while free and i < len(self.queue):
            job = self.queue[i][3]
            if not any(u.spec.type.capability.meets(job.call.needs) for u in free):
                i += 1
                continue
            try:
                pick = self._pick(job, free, t)
            except DispatchError:  # the call's place itself is off the roads
                pick = None
            if pick is None:
                if not self._reachable(job.call):  # no station's unit could ever drive there: say so, go on
                    why = "no drivable route from any station to the call"
                    self.skipped[why] = self.skipped.get(why, 0) + 1
                    del self.queue[i]
                    continue
                i += 1
                continue
            unit, eta_s = pick
            del self.queue[i]
            free.remove(unit)
            self._assign(t, job, unit, eta_s)

    def _pick(self, job: Job, free: list[_Unit], t: float) -> tuple[_Unit, float] | None:
        c = job.call
        if self.policy == "drive_time":
            # units below the capability rank after every unit that meets it and are never sent: leave them out
            views = [u.view(t) for u in free if u.spec.type.capability.meets(c.needs)]
            recs, _ = rank_units(views, c.at, c.needs, self._travel, now=self._when(t), explain=False, limit=1)
            for r in recs:
                if r.meets_capability:
                    return next(u for u in free if u.id == r.unit_id), r.eta_s
            return None
        ok = [u for u in free if u.spec.type.capability.meets(c.needs) and u.spec.type.vehicle in self.roads]
        ok.sort(key=lambda u: (u.spec.type.capability is not c.needs, _crow_m(u.where(t), c.at), u.spec.callsign))
        legs: dict[int, float] = {}
        for vehicle in {u.spec.type.vehicle for u in ok}:
            mine = [u for u in ok if u.spec.type.vehicle == vehicle]
            for u, leg in zip(mine, self.roads[vehicle].eta_to([u.where(t) for u in mine], c.at), strict=True):
                if not isinstance(leg, DispatchError):
                    legs[u.id] = leg.eta_s
        # the nearest as the crow flies that can drive there at all
        return next(((u, legs[u.id]) for u in ok if u.id in legs), None)

    def _assign(self, t: float, job: Job, u: _Unit, eta_s: float) -> None:
        draws = self._draws(job.call)
        driving = u.status is UnitStatus.RETURNING
        u.pos, u.pos_t, u.path = u.where(t), t, None
        u.gen += 1
        u.status = apply_unit(u.status, UnitEvent.ASSIGN)
        job.status = apply_incident(job.status, IncidentEvent.ASSIGN)
        job.unit, u.job = u.spec.callsign, job
        u.jobs += 1
        u.busy_since = t
        job.times["03"] = t
        en_route = t if driving else t + draws.turnout
        job.times["05"] = en_route
        job.turned_out = not driving
        self._at(en_route, "en_route", u)
        self._at(en_route + eta_s, "on_scene", u)

    # ---- a job's steps -----------------------------------------------------------------------------------
    def _on_en_route(self, _t: float, u: _Unit) -> None:
        u.status = apply_unit(u.status, UnitEvent.EN_ROUTE)

    def _on_on_scene(self, t: float, u: _Unit) -> None:
        job = u.job
        assert job is not None
        u.status = apply_unit(u.status, UnitEvent.ON_SCENE)
        job.status = apply_incident(job.status, IncidentEvent.ON_SCENE)
        u.pos, u.pos_t = job.call.at, t
        job.times["06"] = t
        self._at(t + self._draws(job.call).on_scene, "leave", u)

    def _on_leave(self, t: float, u: _Unit) -> None:
        job = u.job
        assert job is not None
        c = job.call
        job.times["09"] = t
        if self._draws(c).transport < self.d.transport_share.get(c.priority, 0.0):
            choice = self._hospital(c)
            if choice is not None:
                name, eta_s, at = choice
                u.status = apply_unit(u.status, UnitEvent.TRANSPORTING)
                job.status = apply_incident(job.status, IncidentEvent.TRANSPORTING)
                job.hospital = name
                self._at(t + eta_s, "at_hospital", (u, at))
                return
            self.skipped["no hospital reachable: patient left on scene"] = (
                self.skipped.get("no hospital reachable: patient left on scene", 0) + 1
            )
        job.status = apply_incident(job.status, IncidentEvent.CLOSE)
        self._free(t, u, UnitEvent.RETURNING)

    def _hospital(self, c: SimCall) -> tuple[str, float, LatLon] | None:
        road = self.roads["ambulance"]
        key = (c.at.lat, c.at.lon, c.card.hospital_capability, self._period(road))
        if key not in self._hospitals:
            self._hospitals[key] = self._rank_hospitals(c)
        return self._hospitals[key]

    def _rank_hospitals(self, c: SimCall) -> tuple[str, float, LatLon] | None:
        road = self.roads["ambulance"]
        for needed in (c.card.hospital_capability, None):
            ranked, _ = rank_hospitals(self.hospitals, c.at, needed, road)
            if ranked:
                h = next(h for h in self.hospitals if h.id == ranked[0].hospital_id)
                return h.name, ranked[0].eta_s, h.position
            if needed is None:
                break
        return None

    def _on_at_hospital(self, t: float, arg: tuple[_Unit, LatLon]) -> None:
        u, at = arg
        job = u.job
        assert job is not None
        u.status = apply_unit(u.status, UnitEvent.AT_HOSPITAL)
        job.status = apply_incident(job.status, IncidentEvent.AT_HOSPITAL)
        u.pos, u.pos_t = at, t
        job.times["11"] = t
        self._at(t + self._draws(job.call).handover, "handed_over", u)

    def _on_handed_over(self, t: float, u: _Unit) -> None:
        job = u.job
        assert job is not None
        job.times["12"] = t
        job.status = apply_incident(job.status, IncidentEvent.CLOSE)
        self._free(t, u, UnitEvent.RETURNING)

    def _free(self, t: float, u: _Unit, event: UnitEvent) -> None:
        """The job is done: the unit is back in service and drives home (it can take a call on the way)."""
        job = u.job
        assert job is not None
        job.times["13"] = t
        u.job = None
        if u.busy_since is not None:
            u.busy_s += t - u.busy_since
            u.busy_since = None
        u.status = apply_unit(u.status, event)
        road = self.roads[u.spec.type.vehicle]
        key = (u.spec.type.vehicle, u.pos.lat, u.pos.lon, u.spec.station, self._period(road))
        if key not in self._homeward:
            try:
                self._homeward[key] = road.path(u.pos, u.home) if u.pos != u.home else None
            except DispatchError:
                why = "no way home: unit placed back at its station"
                self.skipped[why] = self.skipped.get(why, 0) + 1
                self._homeward[key] = None
        path = self._homeward[key]
        if path is None or path.duration_s <= 0:
            u.status = apply_unit(u.status, UnitEvent.AVAILABLE)
            u.pos, u.pos_t, u.path = u.home, t, None
        else:
            u.path, u.path_t0 = path, t
            self._at(t + path.duration_s, "home", (u, u.gen))
        self._serve(t)

    def _on_home(self, t: float, arg: tuple[_Unit, int]) -> None:
        u, gen = arg
        if gen != u.gen or u.status is not UnitStatus.RETURNING:
            return  # overtaken: the unit took a call on the way
        u.status = apply_unit(u.status, UnitEvent.AVAILABLE)
        u.pos, u.pos_t, u.path = u.home, t, None
        self._serve(t)


def simulate(
    scenario: Scenario,
    calls: Sequence[SimCall],
    roads: Mapping[str, Roads],
    hospitals: Sequence[HospitalView],
    *,
    durations: Durations | None = None,
    policy: Policy = "drive_time",
    seed: int = 1,
) -> Run:
    """Run ``calls`` through ``scenario`` until every call has been answered."""
    if not calls:
        raise InvalidInput("no calls to simulate: give a call log or a number of calls to generate")
    return Simulation(scenario, roads, hospitals, durations=durations, policy=policy, seed=seed).run(calls)
