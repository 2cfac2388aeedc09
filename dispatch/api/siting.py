"""GET /api/v1/coverage/siting: where stations should go (dispatch.geo.siting), over the database's stations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from dispatch.api.deps import AtDep, CtxDep, StaffDep
from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.coverage import Station
from dispatch.geo.siting import MODELS, site
from dispatch.services import units

router = APIRouter(prefix="/api/v1", tags=["planning"])

#: a request holds a server thread while HiGHS works: past this, the answer is an error that says so
SOLVE_LIMIT_S = 60.0
FORMATS = ("json", "geojson", "csv")


@router.get("/coverage/siting")
def get_siting(
    ctx: CtxDep,
    _actor: StaffDep,
    at: AtDep,
    model: Annotated[str, Query(description=f"siting model: {', '.join(MODELS)}")] = "mclp",
    minutes: Annotated[float, Query(description="the covering threshold in minutes")] = 8.0,
    p: Annotated[int | None, Query(description="sites in the plan, kept stations included (mclp, pmedian)")] = None,
    cell_m: Annotated[float, Query(description="demand cell size in metres, 50..20000")] = 500.0,
    keep_existing: Annotated[bool, Query(description="lock the database's stations into the plan")] = False,
    drop_unreachable: Annotated[bool, Query(description="leave out demand no candidate can reach")] = False,
    vehicle: str = "ambulance",
    format: Annotated[str, Query(description="json, geojson (the chosen sites) or csv")] = "json",
) -> Any:
    """Station siting over every demand cell's centre as a candidate, the database's stations as the
    existing ones, on the same road graph and drive times that rank units for the dispatcher. Demand is a
    labelled proxy (road length per junction). The optimum is proven by HiGHS, or the answer is an error."""
    if format not in FORMATS:
        raise InvalidInput(f"format={format!r} is not known; allowed: {', '.join(FORMATS)}")
    road = ctx.routers.get(vehicle)
    if road is None:
        raise InvalidInput(f"vehicle {vehicle!r} is not known; allowed: {', '.join(ctx.routers)}")
    stations = [Station(s.name, LatLon(s.lat, s.lon)) for s in units.list_stations(ctx)]
    result = site(
        road,
        model,
        minutes,
        p=p,
        stations=stations,
        keep_existing=keep_existing,
        cell_m=cell_m,
        drop_unreachable=drop_unreachable,
        time_limit_s=SOLVE_LIMIT_S,
        at=at,
    )
    if format == "csv":
        return Response(result.csv(), media_type="text/csv; charset=utf-8")
    return result.geojson() if format == "geojson" else result.as_dict()
