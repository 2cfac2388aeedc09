"""Rank units for an incident and hospitals for a patient, by drive time on the road graph.

The road graph enters through the :class:`TravelTimes` protocol (``dispatch.geo.routing.Router`` implements
it), so the live server and the simulator rank with this same code. Nothing here measures straight-line
distance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dispatch.core.errors import DispatchError, OutsideCoverage
from dispatch.core.lifecycle import ASSIGNABLE
from dispatch.core.types import Capability, LatLon, UnitStatus, UnitType


class LegLike(Protocol):
    @property
    def eta_s(self) -> float: ...
    @property
    def distance_m(self) -> float: ...


class TravelTimes(Protocol):
    """Drive time from each origin to one destination; an error in place of a leg that has no route."""

    def eta_to(
        self, origins: Sequence[LatLon], destination: LatLon, *, at: datetime | None = None
    ) -> Sequence[LegLike | DispatchError]: ...


@dataclass(frozen=True)
class UnitView:
    id: int
    callsign: str
    type: UnitType
    status: UnitStatus
    position: LatLon | None
    position_at: datetime | None
    station_name: str | None = None


@dataclass(frozen=True)
class Recommendation:
    unit_id: int
    callsign: str
    type: UnitType
    status: UnitStatus
    rank: int
    eta_s: float
    distance_m: float
    meets_capability: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "unit_id": self.unit_id,
            "callsign": self.callsign,
            "type": self.type.value,
            "status": self.status.value,
            "rank": self.rank,
            "eta_s": round(self.eta_s, 1),
            "distance_m": round(self.distance_m, 1),
            "meets_capability": self.meets_capability,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Excluded:
    unit_id: int
    callsign: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"unit_id": self.unit_id, "callsign": self.callsign, "reason": self.reason}


def rank_units(
    units: Sequence[UnitView],
    incident_at: LatLon,
    needed: Capability,
    travel: Mapping[str, TravelTimes],
    *,
    now: datetime,
    explain: bool = True,
    limit: int | None = None,
) -> tuple[list[Recommendation], list[Excluded]]:
    """Every unit that could go, best first; and every unit left out, with the reason.

    Three groups, each by drive time: units with exactly the needed capability; then units above it (an ALS
    ambulance for a BLS call: it can go, but keeps the region's few ALS units free if a BLS one can); then
    units below it (a BLS ambulance or a motorbike first responder for an ALS call), as a first response
    while the right unit comes. Available units are ranked from their last reported position, returning
    units from where they are on the road. ``explain=False`` leaves each recommendation's ``reason`` empty and
    ``limit`` returns only the first ones (the simulator ranks a hundred thousand calls, sends the first unit
    and shows no one the words); the order is the same.
    """
    excluded: list[Excluded] = []
    candidates: dict[str, list[UnitView]] = {}
    for u in units:
        if u.status not in ASSIGNABLE:
            excluded.append(Excluded(u.id, u.callsign, f"{u.status.value}: not free to take a call"))
        elif u.position is None:
            excluded.append(Excluded(u.id, u.callsign, "no known position"))
        elif u.type.vehicle not in travel:
            excluded.append(Excluded(u.id, u.callsign, f"no road graph for {u.type.vehicle} units"))
        else:
            candidates.setdefault(u.type.vehicle, []).append(u)
    scored: list[tuple[int, float, UnitView, float]] = []
    for vehicle, group in candidates.items():
        try:
            legs = travel[vehicle].eta_to([u.position for u in group if u.position is not None], incident_at)
        except OutsideCoverage as exc:  # the call is off this vehicle's roads (a motorbike ban): the others go
            excluded += [Excluded(u.id, u.callsign, f"the call is off the {vehicle} roads: {exc}") for u in group]
            continue
        for u, leg in zip(group, legs, strict=True):
            if isinstance(leg, DispatchError):
                excluded.append(Excluded(u.id, u.callsign, f"no drivable route: {leg}"))
            else:
                have = u.type.capability
                tier = 0 if have is needed else (1 if have.meets(needed) else 2)
                scored.append((tier, leg.eta_s, u, leg.distance_m))
    scored.sort(key=lambda s: (s[0], s[1], s[2].callsign))
    out = []
    for rank, (tier, eta, u, dist) in enumerate(scored[:limit], start=1):
        reason = _reason(u, tier, needed, eta, now) if explain else ""
        out.append(Recommendation(u.id, u.callsign, u.type, u.status, rank, eta, dist, tier < 2, reason))
    return out, excluded


def _reason(u: UnitView, tier: int, needed: Capability, eta_s: float, now: datetime) -> str:
    where = (
        "returning, ranked from its position on the road"
        if u.status is UnitStatus.RETURNING
        else (f"available at {u.station_name}" if u.station_name else "available at its last position")
    )
    age = ""
    if u.position_at is not None:
        minutes = max(0.0, (now - u.position_at).total_seconds() / 60)
        age = f", position {minutes:.0f} min old" if minutes >= 1 else ", position current"
    have = u.type.capability.value.upper().replace("_", " ")
    if tier == 0:
        fit = f"{have} as needed"
    elif tier == 1:
        fit = f"{have} above the {needed.value.upper()} needed: kept for calls that need it"
    else:
        fit = f"{have} below the {needed.value.upper()} needed: first response only"
    return f"{eta_s / 60:.1f} min by road; {fit}; {where}{age}"


@dataclass(frozen=True)
class HospitalView:
    id: int
    name: str
    position: LatLon
    capabilities: frozenset[str]
    emergency: bool
    diversion: bool


@dataclass(frozen=True)
class HospitalChoice:
    hospital_id: int
    name: str
    rank: int
    eta_s: float
    distance_m: float
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "hospital_id": self.hospital_id,
            "name": self.name,
            "rank": self.rank,
            "eta_s": round(self.eta_s, 1),
            "distance_m": round(self.distance_m, 1),
            "reason": self.reason,
        }


def rank_hospitals(
    hospitals: Sequence[HospitalView], patient_at: LatLon, needed: str | None, travel: TravelTimes
) -> tuple[list[HospitalChoice], list[Excluded]]:
    """Hospitals with an emergency department and the needed capability, not on diversion, by drive time."""
    excluded: list[Excluded] = []
    ok: list[HospitalView] = []
    for h in hospitals:
        if not h.emergency:
            excluded.append(Excluded(h.id, h.name, "no emergency department"))
        elif h.diversion:
            excluded.append(Excluded(h.id, h.name, "on diversion"))
        elif needed and needed not in h.capabilities:
            excluded.append(Excluded(h.id, h.name, f"no {needed} capability"))
        else:
            ok.append(h)
    scored = []
    for h in ok:  # from the scene to each hospital: one query each (a handful of hospitals)
        try:
            leg = travel.eta_to([patient_at], h.position)[0]
        except DispatchError as exc:  # the hospital itself lies off the road coverage
            leg = exc
        if isinstance(leg, DispatchError):
            excluded.append(Excluded(h.id, h.name, f"no drivable route: {leg}"))
        else:
            scored.append((leg.eta_s, leg.distance_m, h))
    scored.sort(key=lambda s: (s[0], s[2].name))
    out = [
        HospitalChoice(
            h.id,
            h.name,
            i,
            eta,
            dist,
            f"{eta / 60:.1f} min by road; " + (f"has {needed}" if needed else "emergency department"),
        )
        for i, (eta, dist, h) in enumerate(scored, start=1)
    ]
    return out, excluded
