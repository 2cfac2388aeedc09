"""Thin routes: parse, call one service, shape the answer."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from dispatch.api.deps import ActorDep, CtxDep, ReaderDep, StaffDep
from dispatch.api.schemas import (
    AssignmentCreate,
    CancelBody,
    ClosureCreate,
    DiversionBody,
    IncidentCreate,
    NoteBody,
    PositionBody,
    StatusBody,
)
from dispatch.core.errors import Forbidden, InvalidInput
from dispatch.core.recommend import Excluded, Recommendation
from dispatch.core.triage import CARDS
from dispatch.core.types import LatLon, Role
from dispatch.db.models import Assignment, Hospital, Incident, Station
from dispatch.services import auth, closures, incidents, reports, units
from dispatch.services.auth import TOKEN_LIFETIME
from dispatch.services.context import event_message
from dispatch.services.incidents import NewIncident, incident_dict
from dispatch.services.intake import intake_of
from dispatch.services.units import unit_dict

api = APIRouter(prefix="/api/v1")
health = APIRouter()


@health.get("/healthz", tags=["health"])
def healthz(ctx: CtxDep, request: Request) -> dict[str, Any]:
    from sqlalchemy import text

    with ctx.engine.connect() as c:
        c.execute(text("SELECT 1"))
    live = getattr(request.app.state, "live", None)
    return {
        "status": "ok",
        "database": ctx.engine.dialect.name,
        "graphs": {k: r.graph.n_nodes for k, r in ctx.routers.items()},
        "live": live.hub.stats() if live is not None else None,
        # calls taken by this process and the transactions they took (calls / batches: the group commit's size)
        "intake": {"calls": ctx.intake.calls, "batches": ctx.intake.batches} if ctx.intake is not None else None,
        "pid": os.getpid(),  # which server process answered (dispatch serve --workers N)
    }


@api.post("/auth/token", tags=["auth"])
def token(ctx: CtxDep, username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict[str, Any]:
    tok, user = auth.issue_token(ctx, name=username, password=password)
    return {
        "access_token": tok,
        "token_type": "bearer",
        "expires_in": int(TOKEN_LIFETIME.total_seconds()),
        "user": user.name,
        "role": user.role,
        "unit_id": user.unit_id,
    }


@api.get("/triage/cards", tags=["incidents"])
def triage_cards(_actor: ReaderDep) -> list[dict[str, str | None]]:
    return [c.as_dict() for c in CARDS]


def _assignment(a: Assignment) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "id": a.id,
        "unit_id": a.unit_id,
        "assigned_by": a.assigned_by,
        "active": a.active,
        "eta_s_at_assignment": a.eta_s_at_assignment,
        "hospital_id": a.hospital_id,
        "times": {
            "eTimes.03": iso(a.unit_notified_at),
            "eTimes.04": iso(a.acknowledged_at),
            "eTimes.05": iso(a.en_route_at),
            "eTimes.06": iso(a.on_scene_at),
            "eTimes.09": iso(a.left_scene_at),
            "eTimes.11": iso(a.at_destination_at),
            "eTimes.12": iso(a.transfer_of_care_at),
            "eTimes.13": iso(a.back_in_service_at),
            "eTimes.14": iso(a.cancelled_at),
        },
    }


def _ranked(recs: list[Recommendation], excluded: list[Excluded]) -> dict[str, Any]:
    return {"recommendations": [r.as_dict() for r in recs], "excluded": [x.as_dict() for x in excluded]}


def _recommendations(ctx: Any, incident: int | Incident) -> dict[str, Any]:
    _, recs, excluded = incidents.recommendations(ctx, incident)
    return _ranked(recs, excluded)


@api.post(
    "/incidents",
    status_code=201,
    tags=["incidents"],
    response_class=JSONResponse,
    responses={
        201: {
            "description": "the call is recorded: `incident`, `recommendations` (best first: unit_id, callsign, "
            "type, status, rank, eta_s, distance_m, meets_capability, reason) and `excluded` (unit_id, callsign, "
            "reason); `ranking_error` only when the ranking failed after the call was recorded. Header "
            "`Idempotent-Replayed: true` when a retried Idempotency-Key returned the first call's incident."
        }
    },
)
async def create_incident(
    ctx: CtxDep,
    actor: ActorDep,
    body: IncidentCreate,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Take a call: 201 with the incident and every unit that could go, ranked by drive time.

    The busiest endpoint, so it is lean: the caller is known on the event loop, and the call joins the intake
    thread's next batch (one transaction for the calls that arrived together, one read of the units for their
    rankings: dispatch.services.intake); the answer comes once the call is committed."""
    new = NewIncident(**body.model_dump())
    taken = await asyncio.wrap_future(intake_of(ctx).submit(actor, new, idempotency_key))
    answer = {"incident": incident_dict(taken.incident), **_ranked(taken.recommendations, taken.excluded)}
    if taken.ranking_error is not None:  # the call is taken; only its ranking is missing
        answer["ranking_error"] = taken.ranking_error
    headers = None if taken.created else {"Idempotent-Replayed": "true"}
    return Response(orjson.dumps(answer), status_code=201, headers=headers, media_type="application/json")


@api.get("/incidents", tags=["incidents"])
def list_incidents(
    ctx: CtxDep,
    _actor: ReaderDep,
    status: str | None = None,
    open: bool = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[dict[str, Any]]:
    return [incident_dict(i) for i in incidents.list_incidents(ctx, status=status, open_only=open, limit=limit)]


@api.get("/incidents/{incident_id}", tags=["incidents"])
def get_incident(ctx: CtxDep, _actor: ReaderDep, incident_id: int) -> dict[str, Any]:
    inc = incidents.get_incident(ctx, incident_id)
    assignments, events = incidents.timeline(ctx, incident_id)
    return {
        **incident_dict(inc),
        "assignments": [_assignment(a) for a in assignments],
        "timeline": [event_message(e) for e in events],
    }


@api.get("/incidents/{incident_id}/recommendations", tags=["incidents"])
def get_recommendations(ctx: CtxDep, _actor: StaffDep, incident_id: int) -> dict[str, Any]:
    return _recommendations(ctx, incident_id)


@api.post("/incidents/{incident_id}/assignments", status_code=201, tags=["incidents"])
def assign(ctx: CtxDep, actor: ActorDep, incident_id: int, body: AssignmentCreate) -> dict[str, Any]:
    return _assignment(incidents.assign_unit(ctx, actor=actor, incident_id=incident_id, unit_id=body.unit_id))


@api.post("/incidents/{incident_id}/cancel", tags=["incidents"])
def cancel(ctx: CtxDep, actor: ActorDep, incident_id: int, body: CancelBody) -> dict[str, Any]:
    return incident_dict(incidents.cancel_incident(ctx, actor=actor, incident_id=incident_id, reason=body.reason))


@api.post("/incidents/{incident_id}/notes", status_code=201, tags=["incidents"])
def add_note(ctx: CtxDep, actor: ActorDep, incident_id: int, body: NoteBody) -> dict[str, Any]:
    return event_message(incidents.add_note(ctx, actor=actor, incident_id=incident_id, text_=body.text))


@api.get("/units", tags=["units"])
def list_units(ctx: CtxDep, _actor: ReaderDep, status: str | None = None) -> list[dict[str, Any]]:
    """Every unit with its status, position, phone connection and active assignment (acknowledged or not)."""
    active = units.active_assignments(ctx)

    def assignment(a: Assignment | None) -> dict[str, Any] | None:
        if a is None:
            return None
        return {
            "id": a.id,
            "incident_id": a.incident_id,
            "assigned_at": a.unit_notified_at.isoformat() if a.unit_notified_at else None,
            "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
            "hospital_id": a.hospital_id,
        }

    return [
        {**unit_dict(u), "assignment": assignment(active.get(u.id or 0))} for u in units.list_units(ctx, status=status)
    ]


@api.post("/units/{unit_id}/status", tags=["units"])
def set_status(ctx: CtxDep, actor: ActorDep, unit_id: int, body: StatusBody) -> dict[str, Any]:
    unit, changed = units.set_unit_status(
        ctx, actor=actor, unit_id=unit_id, status=body.status, hospital_id=body.hospital_id
    )
    return {"unit": unit_dict(unit), "changed": changed}


@api.post("/units/{unit_id}/acknowledge", tags=["units"])
def acknowledge(ctx: CtxDep, actor: ActorDep, unit_id: int) -> dict[str, Any]:
    """The crew has the assignment (stamps eTimes.04 once)."""
    return _assignment(units.acknowledge(ctx, actor=actor, unit_id=unit_id))


@api.post("/units/{unit_id}/position", tags=["units"])
def set_position(ctx: CtxDep, actor: ActorDep, unit_id: int, body: PositionBody) -> dict[str, Any]:
    return unit_dict(units.update_position(ctx, actor=actor, unit_id=unit_id, lat=body.lat, lon=body.lon, at=body.at))


def _hospital(h: Hospital) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "name_en": h.name_en,
        "lat": h.lat,
        "lon": h.lon,
        "capabilities": h.capabilities,
        "emergency": h.emergency,
        "diversion": h.diversion,
    }


@api.get("/hospitals", tags=["hospitals"])
def hospitals(ctx: CtxDep, _actor: ReaderDep, for_incident: int | None = None) -> Any:
    if for_incident is None:
        return [_hospital(h) for h in units.list_hospitals(ctx)]
    ranked, excluded = units.hospitals_for_incident(ctx, for_incident)
    return {
        "incident_id": for_incident,
        "hospitals": [c.as_dict() for c in ranked],
        "excluded": [x.as_dict() for x in excluded],
    }


@api.post("/hospitals/{hospital_id}/diversion", tags=["hospitals"])
def diversion(ctx: CtxDep, actor: ActorDep, hospital_id: int, body: DiversionBody) -> dict[str, Any]:
    return _hospital(units.set_diversion(ctx, actor=actor, hospital_id=hospital_id, diversion=body.diversion))


def _station(s: Station) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon}


@api.get("/stations", tags=["stations"])
def stations(ctx: CtxDep, _actor: ReaderDep) -> list[dict[str, Any]]:
    return [_station(s) for s in units.list_stations(ctx)]


def _feature(lon: float | None, lat: float | None, props: dict[str, Any]) -> dict[str, Any]:
    geom = None if lat is None or lon is None else {"type": "Point", "coordinates": [lon, lat]}
    return {"type": "Feature", "geometry": geom, "properties": props}


@api.get("/layers/{layer}.geojson", tags=["map"])
def layer(ctx: CtxDep, _actor: ReaderDep, layer: str) -> dict[str, Any]:
    """Map layers as GeoJSON FeatureCollections: units, incidents (open), hospitals, stations, closures."""
    if layer == "units":
        feats = [_feature(u.lon, u.lat, unit_dict(u)) for u in units.list_units(ctx)]
    elif layer == "incidents":
        feats = [_feature(i.lon, i.lat, incident_dict(i)) for i in incidents.list_incidents(ctx, open_only=True)]
    elif layer == "hospitals":
        feats = [_feature(h.lon, h.lat, _hospital(h)) for h in units.list_hospitals(ctx)]
    elif layer == "stations":
        feats = [_feature(s.lon, s.lat, _station(s)) for s in units.list_stations(ctx)]
    elif layer == "closures":
        feats = [
            {"type": "Feature", "geometry": c.geometry, "properties": c.as_dict()} for c in ctx.ambulance.closures()
        ]
    else:
        raise InvalidInput(f"layer {layer!r} is not known; allowed: units, incidents, hospitals, stations, closures")
    return {"type": "FeatureCollection", "features": feats}


@api.post("/closures", status_code=201, tags=["map"])
def close_road(ctx: CtxDep, actor: ActorDep, body: ClosureCreate) -> dict[str, Any]:
    """Close the road segment nearest to lat/lon, or every road in an area; the next query avoids it."""
    c, closed = closures.create_closure(
        ctx, actor=actor, reason=body.reason, lat=body.lat, lon=body.lon, area=body.area
    )
    return closures.closure_dict(c, closed)


@api.get("/closures", tags=["map"])
def list_road_closures(ctx: CtxDep, _actor: ReaderDep, all: bool = False) -> list[dict[str, Any]]:
    return [closures.closure_dict(c) for c in closures.list_closures(ctx, active_only=not all)]


@api.post("/closures/{closure_id}/reopen", tags=["map"])
def reopen_road(ctx: CtxDep, actor: ActorDep, closure_id: int) -> dict[str, Any]:
    return closures.closure_dict(closures.reopen_closure(ctx, actor=actor, closure_id=closure_id))


@api.get("/route", tags=["map"])
def route(
    ctx: CtxDep,
    _actor: ReaderDep,
    from_: Annotated[str, Query(alias="from", description="LAT,LON")],
    to: Annotated[str, Query(description="LAT,LON")],
    at: Annotated[str | None, Query(description="HH:MM local time; default now")] = None,
    vehicle: str = "ambulance",
) -> dict[str, Any]:
    router = ctx.routers.get(vehicle)
    if router is None:
        raise InvalidInput(f"vehicle {vehicle!r} is not known; allowed: {', '.join(ctx.routers)}")
    when: time | None = None
    if at is not None:
        try:
            when = time.fromisoformat(at)
        except ValueError:
            raise InvalidInput(f"at={at!r} is not a time of day: write HH:MM") from None
    r = router.route(LatLon.parse(from_), LatLon.parse(to), at=when)
    return r.as_dict()


@api.get("/reports/response-times", tags=["reports"])
def response_times(
    ctx: CtxDep,
    _actor: StaffDep,
    since: datetime | None = None,
    until: datetime | None = None,
    standard_s: Annotated[float, Query(gt=0, le=7200)] = 480.0,
) -> dict[str, Any]:
    return reports.response_times(ctx, since=since, until=until, standard_s=standard_s)


@api.get("/export/incidents.csv", tags=["reports"])
def export(
    ctx: CtxDep, _actor: StaffDep, since: datetime | None = None, until: datetime | None = None
) -> StreamingResponse:
    rows = list(reports.export_csv(ctx, since=since, until=until))  # validate before the 200 goes out
    return StreamingResponse(
        iter(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="incidents.csv"'},
    )


@api.get("/events", tags=["live"])
def events(
    ctx: CtxDep,
    actor: ActorDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[dict[str, Any]]:
    """The event log after a sequence number, in order (what the live push replays)."""
    if actor.role is Role.CREW:
        raise Forbidden("a crew reads its own events on the crew socket, not the whole log")
    return [event_message(e) for e in incidents.events_after(ctx, after=after, limit=limit)]
