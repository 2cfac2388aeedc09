"""GET /api/v1/coverage: the share of demand within T minutes of the stations (dispatch.geo.coverage)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from dispatch.api.deps import CtxDep, StaffDep
from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.coverage import Station, coverage
from dispatch.services import units

router = APIRouter(prefix="/api/v1", tags=["planning"])


def _minutes(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"minutes={text!r} is not a list of numbers: write e.g. 4,8,15") from None


@router.get("/coverage")
def get_coverage(
    ctx: CtxDep,
    _actor: StaffDep,
    minutes: Annotated[str, Query(description="thresholds in minutes, comma-separated")] = "4,8,15",
    cell_m: Annotated[float, Query(description="cell size in metres, 50..20000")] = 500.0,
    vehicle: str = "ambulance",
    format: Annotated[str, Query(description="json (shares, worst cells) or geojson (every cell)")] = "json",
) -> dict[str, Any]:
    """Coverage of the region by the stations in the database, on the same road graph and drive times that
    rank units for the dispatcher. Demand is a labelled proxy (road length per junction) for now."""
    if format not in ("json", "geojson"):
        raise InvalidInput(f"format={format!r} is not known; allowed: json, geojson")
    road = ctx.routers.get(vehicle)
    if road is None:
        raise InvalidInput(f"vehicle {vehicle!r} is not known; allowed: {', '.join(ctx.routers)}")
    stations = [Station(s.name, LatLon(s.lat, s.lon)) for s in units.list_stations(ctx)]
    report = coverage(road, stations, _minutes(minutes), cell_m=cell_m)
    return report.geojson() if format == "geojson" else report.as_dict()
