"""Turning what a planner has (a call log, a file of stations, the database's fleet) into simulation input."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dispatch.core.errors import InvalidInput
from dispatch.core.recommend import HospitalView
from dispatch.core.triage import Card, card
from dispatch.core.types import LatLon, Priority
from dispatch.geo.demand import Call
from dispatch.sim.generate import PRIORITY_MIX, check_mix
from dispatch.sim.model import SimCall, SimStation, card_for

NO_PRIORITY = "calls without a priority: one drawn from the priority mix"
UNKNOWN_CARD = "calls whose complaint is no triage card: a card of their priority drawn"


def _card(code: str | None) -> Card | None:
    if code is None:
        return None
    try:
        return card(code)
    except InvalidInput:
        return None


def start_of(calls: Sequence[Call], tz: ZoneInfo, source: str = "the call log") -> datetime:
    """Midnight (local) of the day of the first call."""
    if not calls:
        raise InvalidInput(f"{source} has no usable call")
    first = min(c.at for c in calls).astimezone(tz)
    return first.replace(hour=0, minute=0, second=0, microsecond=0)


def calls_from_log(
    calls: Sequence[Call],
    *,
    start: datetime,
    seed: int = 1,
    mix: Mapping[Priority, float] = PRIORITY_MIX,
) -> tuple[list[SimCall], dict[str, int]]:
    """Simulation calls in time order, numbered from 1, with seconds after ``start``. A call the log gives no
    priority gets one drawn from ``mix`` (counted in the notes). A call keeps its triage card where the source
    records it (the incident history); otherwise it gets a card of its priority, drawn."""
    shares = check_mix(mix)
    rng = random.Random(seed)
    prios, weights = list(shares), list(shares.values())
    out: list[SimCall] = []
    notes: dict[str, int] = {}
    before = 0
    for c in sorted(calls, key=lambda c: c.at):
        t = (c.at - start).total_seconds()
        if t < 0:
            before += 1
            continue
        p = c.priority
        if p is None:
            p = rng.choices(prios, weights)[0]
            notes[NO_PRIORITY] = notes.get(NO_PRIORITY, 0) + 1
        known = _card(c.complaint)
        if c.complaint is not None and known is None:
            notes[UNKNOWN_CARD] = notes.get(UNKNOWN_CARD, 0) + 1
        out.append(SimCall(len(out) + 1, t, c.where, p, known or card_for(p, rng)))
    if before:
        notes[f"calls before the start {start.isoformat()}: left out"] = before
    return out, notes


def stations_from_geojson(text: str, where: str) -> tuple[SimStation, ...]:
    from dispatch.geo.coverage import load_stations

    stations, skipped = load_stations(text, where)
    names = [s.name for s in stations]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"{where}: station names must be unique (units are based by name); repeated: {dupes}")
    if skipped:
        why = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
        raise InvalidInput(f"{where}: features that are not stations ({why}); a scenario needs every station")
    return tuple(SimStation(s.name, s.at) for s in stations)


def hospitals_from_geojson(text: str, where: str) -> list[HospitalView]:
    """Hospitals as the bundled ``geodata/hanoi/hospitals.geojson`` gives them: Point features with ``name`` and
    ``capabilities`` (``emergency`` among them for an emergency department)."""
    try:
        doc = json.loads(text)
        feats = doc["features"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{where} is not a GeoJSON FeatureCollection") from None
    out = []
    for i, f in enumerate(feats, start=1):
        try:
            lon, lat = (float(v) for v in f["geometry"]["coordinates"][:2])
            props = f.get("properties") or {}
            caps = frozenset(str(c) for c in props.get("capabilities") or [])
            out.append(
                HospitalView(
                    i,
                    str(props.get("name") or f"hospital {i}"),
                    LatLon(lat, lon),
                    caps,
                    "emergency" in caps,
                    bool(props.get("diversion", False)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: feature {i} is not a hospital point ({exc})") from None
    if not any(h.emergency for h in out):
        raise InvalidInput(f"{where} has no hospital with an emergency department ('emergency' in capabilities)")
    return out


def next_monday(now: datetime) -> datetime:
    """Midnight of the coming Monday (a generated week starts on a Monday)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=(7 - day.weekday()) % 7 or 7)
