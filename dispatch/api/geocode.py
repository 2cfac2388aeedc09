"""GET /api/v1/geocode: the local gazetteer for call intake (streets, intersections, hospitals, stations, places).

Streets and named places come from the road graph with the most edges and its OSM file, indexed once per
process on the first query (dispatch.geo.gazetteer); hospitals and stations come from the database, read again
after a few seconds so that a new station is found.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from dispatch.api.deps import CtxDep, ReaderDep
from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.gazetteer import Gazetteer, Place
from dispatch.services import units
from dispatch.services.context import Ctx

router = APIRouter(prefix="/api/v1", tags=["map"])

MAX_QUERY_CHARS = 200
MAX_LIMIT = 50


def _database_places(ctx: Ctx) -> list[Place]:
    hospitals = [
        Place("hospital", h.name, h.lat, h.lon, h.name_en, h.id, "hospital" + (", emergency department" * h.emergency))
        for h in units.list_hospitals(ctx)
    ]
    stations = [Place("station", s.name, s.lat, s.lon, "", s.id, "ambulance station") for s in units.list_stations(ctx)]
    return hospitals + stations


@router.get("/geocode")
def geocode(
    ctx: CtxDep,
    _actor: ReaderDep,
    q: Annotated[str | None, Query(description="what the caller said: a street, 'A x B', a hospital, a place")] = None,
    limit: Annotated[int, Query(description=f"answers wanted, 1..{MAX_LIMIT}")] = 10,
    near: Annotated[str | None, Query(description="LAT,LON: prefer answers near this point")] = None,
) -> dict[str, Any]:
    """Find a place in the bundled map without any online service: street names ("pho hue", "Huế"),
    intersections ("le duan x kham thien", also ``&``, `` / ``, ``và``, ``and``, ``giao``), hospitals,
    ambulance stations and named places. Diacritics, case and street-type words (đường, phố, ngõ, ...) are
    optional; the last word may be unfinished. Each answer has a point on the road (``lat``, ``lon``), streets
    also their ``bbox`` [south, west, north, east], hospitals and stations their ``id``."""
    text = (q or "").strip()
    if not text:
        raise InvalidInput("q is empty: give a street, an intersection 'A x B', a hospital, a station or a place")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q has {len(text)} characters; at most {MAX_QUERY_CHARS} are allowed")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit={limit} is out of range: it must be between 1 and {MAX_LIMIT}")
    point = LatLon.parse(near) if near is not None else None
    gazetteer = gazetteer_of(ctx)
    hits = gazetteer.search(
        text,
        limit=limit,
        near=(point.lat, point.lon) if point else None,
        extra=ctx.gazetteer.points(lambda: _database_places(ctx)),
    )
    return {"query": q, "results": [h.as_dict() for h in hits]}


def gazetteer_of(ctx: Ctx) -> Gazetteer:
    """The process's gazetteer, built on first use (or by the warm-up at start: dispatch.app)."""
    return ctx.gazetteer.gazetteer(lambda: Gazetteer.from_graphs(r.graph for r in ctx.routers.values()))
