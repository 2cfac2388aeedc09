"""Road closures an operator marks (flooding, an accident): stored, applied to every vehicle's road graph."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from dispatch.core.errors import InvalidInput, NotFound
from dispatch.core.types import LatLon
from dispatch.db.models import RoadClosure
from dispatch.geo.routing import Router
from dispatch.services.context import Actor, Ctx, unit_of_work
from dispatch.services.incidents import DISPATCHING_ROLES, require


def _apply(ctx: Ctx, c: RoadClosure) -> dict[str, int]:
    """Close it on every graph (once: the creating process and its own bus may both ask); returns the number
    of road segments closed per vehicle."""
    assert c.id is not None
    closed: dict[str, int] = {}
    with ctx.state_lock:
        for vehicle, router in ctx.routers.items():
            done = next((rc for rc in router.closures() if rc.id == c.id), None)
            if done is not None:
                closed[vehicle] = len(done.edges)
                continue
            n = _close(router, c)
            if n is not None:
                closed[vehicle] = n
    return closed


def _close(router: Router, c: RoadClosure) -> int | None:
    """Close ``c`` on one graph; the number of road segments closed, None when that graph has no road there."""
    try:
        if c.kind == "segment":
            assert c.lat is not None and c.lon is not None
            rc = router.close_near(LatLon(c.lat, c.lon), reason=c.reason, closure_id=c.id)
        else:
            assert c.area is not None
            rc = router.close_area(c.area, reason=c.reason, closure_id=c.id)
    except InvalidInput:
        return None
    return len(rc.edges)


def create_closure(
    ctx: Ctx,
    *,
    actor: Actor,
    reason: str,
    lat: float | None = None,
    lon: float | None = None,
    area: dict[str, Any] | None = None,
) -> tuple[RoadClosure, dict[str, int]]:
    require(actor, *DISPATCHING_ROLES, action="close roads")
    if not reason.strip():
        raise InvalidInput("give a reason for the closure (reason must not be empty)")
    if (area is None) == (lat is None or lon is None):
        raise InvalidInput("give either lat and lon (the road segment nearest to them) or area (a GeoJSON Polygon)")
    # check on the ambulance graph before anything is stored: a bad polygon or a point off the roads is refused
    if area is not None:
        ctx.ambulance.edges_in(area)
    else:
        assert lat is not None and lon is not None
        ctx.ambulance.edge_near(LatLon(lat, lon))
    with unit_of_work(ctx, actor) as uow:
        c = RoadClosure(
            kind="area" if area is not None else "segment",
            reason=reason.strip(),
            lat=lat,
            lon=lon,
            area=area,
            created_by=actor.name,
            created_at=uow.now,
        )
        uow.session.add(c)
        uow.session.flush()
        uow.emit("road.closed", closure_id=c.id, closure_kind=c.kind, reason=c.reason, lat=lat, lon=lon, area=area)
    return c, _apply(ctx, c)


def reopen_closure(ctx: Ctx, *, actor: Actor, closure_id: int) -> RoadClosure:
    require(actor, *DISPATCHING_ROLES, action="reopen roads")
    with unit_of_work(ctx, actor) as uow:
        c = uow.session.get(RoadClosure, closure_id)
        if c is None:
            raise NotFound(f"road closure {closure_id} does not exist")
        if c.reopened_at is not None:
            raise InvalidInput(f"road closure {closure_id} was reopened at {c.reopened_at.isoformat()} already")
        c.reopened_at, c.reopened_by = uow.now, actor.name
        uow.session.add(c)
        uow.emit("road.reopened", closure_id=closure_id)
    _lift(ctx, closure_id)
    return c


def _lift(ctx: Ctx, closure_id: int) -> None:
    with ctx.state_lock:
        for router in ctx.routers.values():
            if any(rc.id == closure_id for rc in router.closures()):
                router.reopen(closure_id)


def follow(ctx: Ctx, event: dict[str, Any]) -> None:
    """Apply a closure that another server process made or lifted: its event came over the bus."""
    data = event.get("data") or {}
    closure_id = data.get("closure_id")
    if not isinstance(closure_id, int):
        return
    if event.get("kind") == "road.closed":
        c = RoadClosure(
            id=closure_id,
            kind=data.get("closure_kind", "segment"),
            reason=data.get("reason", ""),
            lat=data.get("lat"),
            lon=data.get("lon"),
            area=data.get("area"),
            created_by=event.get("actor", ""),
            created_at=ctx.clock(),
        )
        _apply(ctx, c)
    elif event.get("kind") == "road.reopened":
        _lift(ctx, closure_id)


def list_closures(ctx: Ctx, *, active_only: bool = True) -> list[RoadClosure]:
    with ctx.reader() as s:
        q = select(RoadClosure).order_by(col(RoadClosure.id))
        if active_only:
            q = q.where(col(RoadClosure.reopened_at).is_(None))
        return list(s.exec(q))


def restore_closures(ctx: Ctx) -> int:
    """On start: close again every road that was closed and not reopened."""
    active = list_closures(ctx)
    for c in active:
        _apply(ctx, c)
    return len(active)


def closure_dict(c: RoadClosure, closed: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "kind": c.kind,
        "reason": c.reason,
        "lat": c.lat,
        "lon": c.lon,
        "area": c.area,
        "created_by": c.created_by,
        "created_at": c.created_at.isoformat(),
        "reopened_at": c.reopened_at.isoformat() if c.reopened_at else None,
    }
    if closed is not None:
        out["segments_closed"] = closed
    return out
