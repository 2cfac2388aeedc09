"""Hanoi scenario pieces shared by the simulator tests: the bundled hospitals, stations on the road network."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dispatch.core.errors import OutsideCoverage
from dispatch.core.recommend import HospitalView
from dispatch.core.types import LatLon
from dispatch.geo.routing import Router
from dispatch.services.seed import CENTRAL_STATION, HOSPITALS_FILE
from dispatch.sim.model import SimStation

HANOI_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
#: a Monday, 10:00 in Hanoi (the profile's base period)
START = datetime(2026, 1, 5, 10, 0, tzinfo=HANOI_TZ)


@pytest.fixture(scope="session")
def hanoi_hospitals() -> list[HospitalView]:
    out = []
    for i, f in enumerate(json.loads(HOSPITALS_FILE.read_text("utf-8"))["features"], start=1):
        caps = frozenset(f["properties"].get("capabilities") or [])
        lon, lat = f["geometry"]["coordinates"]
        out.append(HospitalView(i, f["properties"]["name"], LatLon(lat, lon), caps, "emergency" in caps, False))
    return out


@pytest.fixture(scope="session")
def hanoi_stations(hanoi_router: Router, hanoi_hospitals: list[HospitalView]) -> tuple[SimStation, ...]:
    """The demo's stations: the central 115 station and the emergency hospitals on the ambulance roads."""
    name, lat, lon = CENTRAL_STATION
    out = [SimStation(name, LatLon(lat, lon))]
    for h in hanoi_hospitals:
        serves = h.emergency and {"trauma", "cardiac", "stroke"} & h.capabilities
        if serves and not isinstance(hanoi_router.snapper.snap_many([h.position])[0], OutsideCoverage):
            out.append(SimStation(h.name, h.position))
    return tuple(out)
