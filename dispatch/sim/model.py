"""What a simulation is made of: calls, units, stations, and the time each step of a job takes.

Every duration is a distribution written as text, so that a planner can change it on the command line:
``fixed:60``, ``uniform:30,90``, ``triangular:600,900,1800`` (low, mode, high), ``exponential:900`` (mean),
``lognormal:900,400`` (mean, standard deviation, in seconds). The defaults (:data:`DEFAULTS`) are documented
assumptions, not measurements of any one service; a service replaces them with its own figures.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.core.errors import InvalidInput
from dispatch.core.triage import CARDS, Card, capability_for
from dispatch.core.types import Capability, LatLon, Priority, UnitType

KINDS = ("fixed", "uniform", "triangular", "exponential", "lognormal")
_ARITY = {"fixed": 1, "uniform": 2, "triangular": 3, "exponential": 1, "lognormal": 2}


@dataclass(frozen=True)
class Dist:
    """A duration in seconds drawn from a named distribution (see the module docstring)."""

    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str, what: str = "duration") -> Dist:
        kind, _, rest = text.strip().partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise InvalidInput(
                f"{what} {text!r}: distribution {kind!r} is not known; allowed: {', '.join(KINDS)} "
                "(e.g. fixed:60, lognormal:900,400)"
            )
        try:
            params = tuple(float(v) for v in rest.split(",") if v.strip())
        except ValueError:
            raise InvalidInput(f"{what} {text!r}: the parameters must be numbers of seconds") from None
        if len(params) != _ARITY[kind]:
            raise InvalidInput(f"{what} {text!r}: {kind} takes {_ARITY[kind]} number(s), got {len(params)}")
        if not all(math.isfinite(p) and p >= 0 for p in params):
            raise InvalidInput(f"{what} {text!r}: seconds must be finite and not negative")
        if kind == "uniform" and params[0] > params[1]:
            raise InvalidInput(f"{what} {text!r}: uniform needs low <= high")
        if kind == "triangular" and not params[0] <= params[1] <= params[2]:
            raise InvalidInput(f"{what} {text!r}: triangular needs low <= mode <= high")
        if kind in ("exponential", "lognormal") and params[0] <= 0:
            raise InvalidInput(f"{what} {text!r}: the mean must be more than 0")
        return cls(kind, params)

    def sample(self, rng: random.Random) -> float:
        p = self.params
        if self.kind == "fixed":
            return p[0]
        if self.kind == "uniform":
            return rng.uniform(p[0], p[1])
        if self.kind == "triangular":
            return rng.triangular(p[0], p[2], p[1])
        if self.kind == "exponential":
            return rng.expovariate(1.0 / p[0])
        mean, sd = p  # lognormal given by its own mean and standard deviation
        sigma2 = math.log(1.0 + (sd / mean) ** 2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2))

    @property
    def mean(self) -> float:
        p = self.params
        return {
            "fixed": lambda: p[0],
            "uniform": lambda: (p[0] + p[1]) / 2,
            "triangular": lambda: sum(p) / 3,
            "exponential": lambda: p[0],
            "lognormal": lambda: p[0],
        }[self.kind]()

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{v:g}' for v in self.params)}"


#: documented default assumptions (seconds); see docs/simulation.md
DEFAULTS = {
    # call answered -> unit notified (eTimes.01 -> .03): address, triage card, choosing the unit
    "processing": "lognormal:90,45",
    # unit notified -> en route (eTimes.03 -> .05) for a crew at its station; a unit already driving has none
    "turnout": "lognormal:60,20",
    "on_scene": "lognormal:900,400",  # eTimes.06 -> .09
    "handover": "lognormal:1200,600",  # at the hospital until back in service (eTimes.11 -> .13)
}
#: share of patients taken to hospital, by priority (the rest are treated and left on scene)
TRANSPORT_SHARE = {
    Priority.ECHO: 0.9,
    Priority.DELTA: 0.8,
    Priority.CHARLIE: 0.7,
    Priority.BRAVO: 0.6,
    Priority.ALPHA: 0.5,
    Priority.OMEGA: 0.3,
}


@dataclass(frozen=True)
class Durations:
    processing: Dist = field(default_factory=lambda: Dist.parse(DEFAULTS["processing"]))
    turnout: Dist = field(default_factory=lambda: Dist.parse(DEFAULTS["turnout"]))
    on_scene: Dist = field(default_factory=lambda: Dist.parse(DEFAULTS["on_scene"]))
    handover: Dist = field(default_factory=lambda: Dist.parse(DEFAULTS["handover"]))
    transport_share: dict[Priority, float] = field(default_factory=lambda: dict(TRANSPORT_SHARE))

    def as_dict(self) -> dict[str, object]:
        return {
            "processing": str(self.processing),
            "turnout": str(self.turnout),
            "on_scene": str(self.on_scene),
            "handover": str(self.handover),
            "transport_share": {p.value: s for p, s in self.transport_share.items()},
        }


@dataclass(frozen=True)
class SimCall:
    """One emergency call: when (seconds after the simulation's start), where, and its triage card."""

    id: int
    t_s: float
    at: LatLon
    priority: Priority
    card: Card

    @property
    def needs(self) -> Capability:
        return capability_for(self.priority, self.card)


@dataclass(frozen=True)
class SimStation:
    name: str
    at: LatLon


@dataclass(frozen=True)
class SimUnit:
    callsign: str
    type: UnitType
    station: str


def card_for(priority: Priority, rng: random.Random) -> Card:
    """A triage card of this priority, for calls whose log gives a priority but no complaint."""
    return rng.choice([c for c in CARDS if c.priority is priority])


@dataclass(frozen=True)
class Scenario:
    """Who answers the calls: stations and the units based at them, and the moment the clock starts."""

    name: str
    stations: tuple[SimStation, ...]
    units: tuple[SimUnit, ...]
    start: datetime

    def __post_init__(self) -> None:
        if not self.units:
            raise InvalidInput(f"scenario {self.name!r} has no units")
        names = {s.name for s in self.stations}
        lost = sorted({u.station for u in self.units} - names)
        if lost:
            raise InvalidInput(f"scenario {self.name!r}: units are based at unknown stations {lost}")
        if self.start.tzinfo is None:
            raise InvalidInput("the simulation start must be a timezone-aware time")


def spread_units(stations: tuple[SimStation, ...], n: int, *, als_share: float = 0.5) -> tuple[SimUnit, ...]:
    """``n`` ambulances shared round-robin over the stations, the first ``als_share`` of each round ALS."""
    if n < 1:
        raise InvalidInput(f"units = {n}: give at least 1")
    if not stations:
        raise InvalidInput("no stations to base the units at")
    if not 0.0 <= als_share <= 1.0:
        raise InvalidInput(f"als_share = {als_share}: give a share from 0 to 1")
    n_als = round(n * als_share)
    out = []
    for i in range(n):
        kind = UnitType.ALS_AMBULANCE if i < n_als else UnitType.BLS_AMBULANCE
        prefix = "A" if kind is UnitType.ALS_AMBULANCE else "B"
        number = i + 1 if kind is UnitType.ALS_AMBULANCE else i - n_als + 1
        out.append(SimUnit(f"{prefix}{number:02d}", kind, stations[i % len(stations)].name))
    return tuple(out)


def resize_fleet(units: tuple[SimUnit, ...], stations: tuple[SimStation, ...], n: int) -> tuple[SimUnit, ...]:
    """The same fleet grown or shrunk to ``n`` ambulances, keeping its layout and its share of ALS: units are
    added at the stations that have the fewest, and taken from those that have the most (the type in surplus
    first), so that a comparison changes the number of units and nothing else."""
    if n < 1:
        raise InvalidInput(f"units = {n}: give at least 1")
    if not units or not stations:
        raise InvalidInput("no fleet to resize")
    als = UnitType.ALS_AMBULANCE
    share = sum(u.type is als for u in units) / len(units)
    order = {s.name: i for i, s in enumerate(stations)}
    out = list(units)
    taken = {u.callsign for u in out}

    def counts() -> dict[str, int]:
        c = dict.fromkeys(order, 0)
        for u in out:
            c[u.station] = c.get(u.station, 0) + 1
        return c

    while len(out) < n:
        c = counts()
        st = min(order, key=lambda s: (c[s], order[s]))
        kind = als if sum(u.type is als for u in out) < round(share * (len(out) + 1)) else UnitType.BLS_AMBULANCE
        prefix = "A" if kind is als else "B"
        k = 1
        while f"{prefix}{k:02d}" in taken:
            k += 1
        taken.add(f"{prefix}{k:02d}")
        out.append(SimUnit(f"{prefix}{k:02d}", kind, st))
    while len(out) > n:
        c = counts()
        st = max(order, key=lambda s: (c[s], -order[s]))
        surplus = als if sum(u.type is als for u in out) > round(share * (len(out) - 1)) else UnitType.BLS_AMBULANCE
        here = [i for i, u in enumerate(out) if u.station == st]
        pick = next((i for i in reversed(here) if out[i].type is surplus), here[-1])
        del out[pick]
    return tuple(out)
