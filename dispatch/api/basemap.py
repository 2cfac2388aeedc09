"""The offline basemap: vector tiles of the project's own road data, and the region they cover.

Both answer without a token: they hold public OpenStreetMap road data only, and the browser must be able to
cache the tiles (``Cache-Control: public``, one day; an ETag of the road graph answers ``If-None-Match`` with
304). The app has no GZipMiddleware, so a tile is gzipped here when the client accepts it.
"""

from __future__ import annotations

import gzip
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from dispatch.api.deps import CtxDep
from dispatch.core.errors import InvalidInput
from dispatch.geo.basemap import MAX_ZOOM, Basemap, encode
from dispatch.services.context import Ctx

router = APIRouter(prefix="/api/v1", tags=["map"])

ATTRIBUTION = "© OpenStreetMap contributors (ODbL)"
TILE_CACHE_CONTROL = "public, max-age=86400"
#: below this a tile is sent as it is: gzip would save a few bytes and cost a header
GZIP_MIN_BYTES = 512


def basemap_of(ctx: Ctx) -> Basemap:
    """The process's basemap index, built on first use (or by the warm-up at start: dispatch.app)."""
    return ctx.basemap.get(r.graph for r in ctx.routers.values())


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, as RFC 9110 asks for this header)."""
    if not if_none_match:
        return False
    bare = etag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.replace(" ", "").lower().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return False
    return False


@router.get("/basemap/{z}/{x}/{y}.json")
def basemap_tile(
    ctx: CtxDep,
    z: int,
    x: int,
    y: int,
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """One tile of the basemap in the slippy-map scheme (format: dispatch.geo.basemap)."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"tile zoom z={z} is out of range: z must be from 0 to {MAX_ZOOM}")
    last = 2**z - 1
    for axis, value in (("x", x), ("y", y)):
        if not 0 <= value <= last:
            raise InvalidInput(f"tile {axis}={value} is out of range at zoom {z}: {axis} must be from 0 to {last}")
    basemap = basemap_of(ctx)
    headers = {"Cache-Control": TILE_CACHE_CONTROL, "ETag": basemap.etag, "Vary": "Accept-Encoding"}
    if _matches(if_none_match, basemap.etag):
        return Response(status_code=304, headers=headers)
    body = encode(basemap.tile(z, x, y))
    if len(body) >= GZIP_MIN_BYTES and _accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return Response(content=body, media_type="application/json", headers=headers)


@router.get("/region")
def region(ctx: CtxDep, request: Request) -> dict[str, Any]:
    """What the console's map shows: bounds [south, west, north, east] and centre [lat, lon] of the road graph,
    the zooms worth showing, the attribution, and the online tile URL template when one is configured."""
    settings = getattr(request.app.state, "settings", None)
    return {
        **basemap_of(ctx).region(),
        "attribution": ATTRIBUTION,
        "online_tiles": getattr(settings, "online_tile_url", None),
    }
