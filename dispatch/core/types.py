"""Small value types shared by every layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import time
from enum import StrEnum

from dispatch.core.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class LatLon:
    """A WGS84 position in decimal degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise InvalidInput(f"latitude {self.lat} is out of range: it must be between -90 and 90")
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            raise InvalidInput(f"longitude {self.lon} is out of range: it must be between -180 and 180")

    @classmethod
    def parse(cls, text: str) -> LatLon:
        """Parse ``"LAT,LON"`` (decimal degrees, latitude first)."""
        parts = text.replace(" ", "").split(",")
        if len(parts) != 2:
            raise InvalidInput(f"{text!r} is not a position: write LAT,LON in decimal degrees, e.g. 21.0285,105.8542")
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except ValueError:
            raise InvalidInput(
                f"{text!r} is not a position: write LAT,LON in decimal degrees, e.g. 21.0285,105.8542"
            ) from None
        return cls(lat, lon)


class Priority(StrEnum):
    """MPDS-style response levels, most urgent first."""

    ECHO = "echo"
    DELTA = "delta"
    CHARLIE = "charlie"
    BRAVO = "bravo"
    ALPHA = "alpha"
    OMEGA = "omega"

    @property
    def rank(self) -> int:
        """0 for echo (most urgent) to 5 for omega."""
        return _PRIORITY_RANK[self]


class Capability(StrEnum):
    """The level of care a unit brings: advanced or basic life support, or first response only."""

    ALS = "als"
    BLS = "bls"
    FIRST_RESPONSE = "first_response"

    def meets(self, needed: Capability) -> bool:
        return _CARE_LEVEL[self] >= _CARE_LEVEL[needed]


_PRIORITY_RANK = {p: i for i, p in enumerate(Priority)}
_CARE_LEVEL = {Capability.FIRST_RESPONSE: 0, Capability.BLS: 1, Capability.ALS: 2}


class UnitType(StrEnum):
    ALS_AMBULANCE = "als_ambulance"
    BLS_AMBULANCE = "bls_ambulance"
    MOTORBIKE = "motorbike"

    @property
    def capability(self) -> Capability:
        return _CAPABILITY[self]

    @property
    def vehicle(self) -> str:
        """The road-graph profile the unit drives with."""
        return "motorbike" if self is UnitType.MOTORBIKE else "ambulance"


_CAPABILITY = {
    UnitType.ALS_AMBULANCE: Capability.ALS,
    UnitType.BLS_AMBULANCE: Capability.BLS,
    UnitType.MOTORBIKE: Capability.FIRST_RESPONSE,
}


class UnitStatus(StrEnum):
    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    TRANSPORTING = "transporting"
    AT_HOSPITAL = "at_hospital"
    RETURNING = "returning"
    OUT_OF_SERVICE = "out_of_service"


class IncidentStatus(StrEnum):
    RECEIVED = "received"  # taken, no unit assigned yet
    DISPATCHED = "dispatched"  # a unit is assigned and on its way
    ON_SCENE = "on_scene"
    TRANSPORTING = "transporting"
    AT_HOSPITAL = "at_hospital"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    CREW = "crew"
    PLANNER = "planner"
    ADMIN = "admin"


def time_of_day(text: str, name: str = "at") -> time:
    """``HH:MM`` as a time of day (it picks the road graph's traffic period); ``name`` is the option or query
    parameter the message names."""
    try:
        hh, mm = text.split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise InvalidInput(f"{name} {text!r} is not a time of day: write HH:MM, from 00:00 to 23:59") from None
