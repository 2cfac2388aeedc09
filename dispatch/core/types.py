"""Small value types shared by every layer."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
