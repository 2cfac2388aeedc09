"""GET /api/v1/coverage: the share of demand within T minutes of the stations (dispatch.geo.coverage)."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from dispatch.api.deps import AtDep, CtxDep, StaffDep
from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo import report as outputs
from dispatch.geo.coverage import Coverage, Station, check_thresholds, coverage
from dispatch.geo.demand import demand_from_calls
from dispatch.geo.routing import Router
from dispatch.services import units
from dispatch.services.context import Ctx
from dispatch.services.demand import incident_history

router = APIRouter(prefix="/api/v1", tags=["planning"])


#: format -> media type of the files /coverage gives to download
DOWNLOADS = {"csv": "text/csv; charset=utf-8", "png": "image/png", "html": "text/html; charset=utf-8"}


def _minutes(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"minutes={text!r} is not a list of numbers: write e.g. 4,8,15") from None


@router.get("/coverage")
def get_coverage(
    ctx: CtxDep,
    _actor: StaffDep,
    at: AtDep,
    minutes: Annotated[str, Query(description="thresholds in minutes, comma-separated")] = "4,8,15",
    cell_m: Annotated[float, Query(description="cell size in metres, 50..20000")] = 500.0,
    vehicle: str = "ambulance",
    format: Annotated[
        str, Query(description="json (shares, worst cells), geojson (every cell), csv, png or html")
    ] = "json",
    map_minutes: Annotated[float | None, Query(description="the threshold a png or html map shows")] = None,
    demand: Annotated[str, Query(description="proxy (road length) or history (the database's incidents)")] = "proxy",
    cells: Annotated[str, Query(description="grid (squares of cell_m) or h3 (hexagons)")] = "grid",
    h3_resolution: Annotated[int | None, Query(description="H3 resolution (default: nearest cell_m)")] = None,
) -> Any:
    """Coverage of the region by the stations in the database, on the same road graph and drive times that
    rank units for the dispatcher. Demand is a labelled proxy (road length per junction) unless
    ``demand=history``: one unit per incident in the database, at the junction it snaps to."""
    if format not in ("json", "geojson", *DOWNLOADS):
        raise InvalidInput(f"format={format!r} is not known; allowed: json, geojson, {', '.join(DOWNLOADS)}")
    road = ctx.routers.get(vehicle)
    if road is None:
        raise InvalidInput(f"vehicle {vehicle!r} is not known; allowed: {', '.join(ctx.routers)}")
    stations = [Station(s.name, LatLon(s.lat, s.lon)) for s in units.list_stations(ctx)]
    found = _demand(ctx, road, demand)
    report = coverage(
        road, stations, _minutes(minutes), cell_m=cell_m, cells=cells, h3_resolution=h3_resolution, at=at, **found
    )
    if format in DOWNLOADS:
        return _download(road, report, format, map_minutes, at)
    return report.geojson() if format == "geojson" else report.as_dict()


def _demand(ctx: Ctx, road: Router, demand: str) -> dict[str, Any]:
    """coverage()'s demand arguments for ``demand=`` (none: the proxy)."""
    if demand == "proxy":
        return {}
    if demand != "history":
        raise InvalidInput(f"demand={demand!r} is not known; allowed: proxy, history")
    found = demand_from_calls(road.graph, incident_history(ctx, router=road))
    return {"demand": found.per_junction, "demand_source": found.source}


def _download(road: Router, report: Coverage, format: str, map_minutes: float | None, at: time | None) -> Response:
    if format == "csv":
        body = outputs.cells_csv(report).encode("utf-8")
    else:
        threshold_s = outputs.check_map_threshold(report, map_minutes)
        iso = outputs.isochrone_layer(road, report.stations, [threshold_s], at=at)
        body = outputs.coverage_png(report, road, threshold_s=threshold_s, isochrone_fc=iso)
        if format == "html":
            region = outputs.region_name(road)
            body = outputs.html_report(report, body, region=region, threshold_s=threshold_s).encode("utf-8")
    headers = {"Content-Disposition": f'attachment; filename="coverage.{format}"', "X-Content-Type-Options": "nosniff"}
    return Response(content=body, media_type=DOWNLOADS[format], headers=headers)


@router.get("/coverage/isochrones")
def get_isochrones(
    ctx: CtxDep,
    _actor: StaffDep,
    at: AtDep,
    minutes: Annotated[str, Query(description="thresholds in minutes, comma-separated")] = "4,8,15",
    vehicle: str = "ambulance",
) -> dict[str, Any]:
    """The area each station in the database reaches within each threshold: a GeoJSON FeatureCollection, one
    (Multi)Polygon per station and threshold (properties: station, minutes, area_km2), largest first."""
    seconds = check_thresholds(_minutes(minutes))
    road = ctx.routers.get(vehicle)
    if road is None:
        raise InvalidInput(f"vehicle {vehicle!r} is not known; allowed: {', '.join(ctx.routers)}")
    stations = [Station(s.name, LatLon(s.lat, s.lon)) for s in units.list_stations(ctx)]
    return outputs.isochrone_layer(road, stations, seconds, at=at)
