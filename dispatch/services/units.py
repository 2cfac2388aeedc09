"""Unit status changes from crews and dispatchers, positions, hospitals and stations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select

from dispatch.core.errors import Conflict, DispatchError, Forbidden, InvalidInput, NotFound
from dispatch.core.lifecycle import (
    INCIDENT_EVENT_FOR_UNIT,
    INCIDENT_TRANSITIONS,
    STATUS_EVENT,
    IncidentEvent,
    apply_incident,
    apply_unit,
)
from dispatch.core.recommend import Excluded, HospitalChoice, HospitalView, rank_hospitals
from dispatch.core.types import IncidentStatus, LatLon, Role, UnitStatus, UnitType
from dispatch.db.models import Assignment, Hospital, Incident, Station, Unit
from dispatch.services.context import Actor, Ctx, unit_of_work
from dispatch.services.incidents import DISPATCHING_ROLES, require

#: the NEMSIS time a status stamps on the unit's active assignment
STAMP = {
    UnitStatus.EN_ROUTE: "en_route_at",  # eTimes.05
    UnitStatus.ON_SCENE: "on_scene_at",  # eTimes.06
    UnitStatus.TRANSPORTING: "left_scene_at",  # eTimes.09
    UnitStatus.AT_HOSPITAL: "at_destination_at",  # eTimes.11
}


def _own_unit(actor: Actor, unit_id: int, action: str) -> None:
    if actor.role is Role.CREW:
        if actor.unit_id != unit_id:
            raise Forbidden(f"a crew may {action} only its own unit ({actor.unit_id}), not unit {unit_id}")
    elif actor.role not in DISPATCHING_ROLES:
        raise Forbidden(f"a {actor.role.value} may not {action}; allowed: dispatcher, admin, the unit's crew")


def list_units(ctx: Ctx, *, status: str | None = None) -> list[Unit]:
    if status is not None and status not in UnitStatus.__members__.values():
        raise InvalidInput(f"status {status!r} is not known; allowed: {', '.join(UnitStatus)}")
    with ctx.reader() as s:
        q = select(Unit).order_by(col(Unit.callsign))
        if status:
            q = q.where(Unit.status == status)
        return list(s.exec(q))


def active_assignments(ctx: Ctx) -> dict[int, Assignment]:
    """Each busy unit's active assignment, by unit id (whether the crew acknowledged it, for the console)."""
    with ctx.reader() as s:
        return {a.unit_id: a for a in s.exec(select(Assignment).where(col(Assignment.active).is_(True)))}


def get_unit(ctx: Ctx, unit_id: int) -> Unit:
    with ctx.reader() as s:
        u = s.get(Unit, unit_id)
        if u is None:
            raise NotFound(f"unit {unit_id} does not exist")
        return u


def set_unit_status(
    ctx: Ctx,
    *,
    actor: Actor,
    unit_id: int,
    status: UnitStatus,
    hospital_id: int | None = None,
    incident_id: int | None = None,
) -> tuple[Unit, bool]:
    """Apply a status the crew (or a dispatcher) reports. Returns (unit, changed).

    Sending the status the unit already has changes nothing (a retried press is applied once). With
    ``incident_id`` (the job the crew pressed it for, e.g. a press queued on a phone with no signal), a status
    meant for another job than the unit's current one is refused with 409 rather than applied to the wrong job.
    """
    _own_unit(actor, unit_id, "change the status of")
    if status in (UnitStatus.DISPATCHED,):
        raise InvalidInput(
            "'dispatched' is set by assigning the unit to an incident, not reported; allowed: "
            + ", ".join(s.value for s in STATUS_EVENT)
        )
    # where the patient goes: worked out before the write transaction, so the write lock is held for milliseconds
    destination = _destination(ctx, unit_id, hospital_id) if status is UnitStatus.TRANSPORTING else None
    with unit_of_work(ctx, actor) as uow:
        s = uow.session
        unit = s.get(Unit, unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist")
        current = UnitStatus(unit.status)
        if current is status:
            return unit, False
        _same_job(unit, incident_id, f"status {status.value}")
        new = apply_unit(current, STATUS_EVENT[status])
        a = s.exec(select(Assignment).where(Assignment.unit_id == unit_id, col(Assignment.active).is_(True))).first()
        inc = s.get(Incident, a.incident_id) if a is not None else None
        if hospital_id is not None:
            if s.get(Hospital, hospital_id) is None:
                raise NotFound(f"hospital {hospital_id} does not exist")
            if a is None:
                raise InvalidInput("a hospital can be given only while the unit has an assignment")
            a.hospital_id = hospital_id
        inc_status_before = inc.status if inc is not None else None
        if a is not None and inc is not None:
            field = STAMP.get(new)
            if field and getattr(a, field) is None:
                setattr(a, field, uow.now)
            if new in (UnitStatus.RETURNING, UnitStatus.AVAILABLE):
                if current is UnitStatus.AT_HOSPITAL and a.transfer_of_care_at is None:
                    a.transfer_of_care_at = uow.now  # eTimes.12
                if new is UnitStatus.AVAILABLE:
                    a.back_in_service_at = uow.now  # eTimes.13
                a.active = False  # the unit's part in the incident is over
            inc_event = INCIDENT_EVENT_FOR_UNIT.get(new)
            # the incident follows its most advanced unit; a second unit lagging behind does not move it back
            if inc_event is not None and inc_event in INCIDENT_TRANSITIONS[IncidentStatus(inc.status)]:
                inc.status = apply_incident(IncidentStatus(inc.status), inc_event).value
            s.add(a)
        elif new is UnitStatus.AVAILABLE and current is UnitStatus.RETURNING:
            # a returning unit whose last assignment already ended: stamp back in service on it
            last = s.exec(
                select(Assignment).where(Assignment.unit_id == unit_id).order_by(col(Assignment.id).desc())
            ).first()
            if last is not None and last.back_in_service_at is None:
                last.back_in_service_at = uow.now
                s.add(last)
        if new in (UnitStatus.RETURNING, UnitStatus.AVAILABLE, UnitStatus.OUT_OF_SERVICE):
            unit.incident_id = None
        unit.status = new.value
        unit.version += 1
        s.add(unit)
        if inc is not None:
            others = s.exec(
                select(Assignment).where(
                    Assignment.incident_id == inc.id, Assignment.unit_id != unit_id, col(Assignment.active).is_(True)
                )
            ).first()
            closable = IncidentEvent.CLOSE in INCIDENT_TRANSITIONS[IncidentStatus(inc.status)]
            if others is None and closable and new in (UnitStatus.RETURNING, UnitStatus.AVAILABLE):
                inc.status = apply_incident(IncidentStatus(inc.status), IncidentEvent.CLOSE).value
                inc.closed_at = uow.now
            inc.version += 1
            s.add(inc)
        uow.emit(
            "unit.status",
            incident_id=inc.id if inc else None,
            unit_id=unit_id,
            status=new.value,
            previous=current.value,
            hospital_id=hospital_id,
            incident_status=inc.status if inc is not None else None,
            incident_status_before=inc_status_before,
            hospital=destination,
        )
    return unit, True


def _destination(ctx: Ctx, unit_id: int, hospital_id: int | None) -> dict[str, Any] | None:
    """The hospital a transporting unit drives to (the one given, else the best-ranked for the incident) with
    its drive time and route from the unit's position, as the crew's phone shows it; None when there is none."""
    with ctx.reader() as s:
        unit = s.get(Unit, unit_id)
        if unit is None or unit.incident_id is None:
            return None
        inc = s.get(Incident, unit.incident_id)
        if inc is None:
            return None
    choices, _ = hospitals_for_incident(ctx, inc.id or 0)
    pick = next((c for c in choices if c.hospital_id == hospital_id), None) if hospital_id else None
    if pick is None and hospital_id is None and choices:
        pick = choices[0]
    if pick is None:
        return None
    with ctx.reader() as s:
        h = s.get(Hospital, pick.hospital_id)
    router = ctx.routers.get(UnitType(unit.type).vehicle)
    if h is None or router is None:
        return None
    start = LatLon(unit.lat, unit.lon) if unit.lat is not None and unit.lon is not None else LatLon(inc.lat, inc.lon)
    try:
        route: dict[str, Any] | None = router.route(start, LatLon(h.lat, h.lon)).as_dict()
    except DispatchError:
        route = None
    return {**pick.as_dict(), "chosen_by": "crew" if hospital_id else "recommended", "route": route}


def _same_job(unit: Unit, incident_id: int | None, what: str) -> None:
    if incident_id is not None and unit.incident_id != incident_id:
        now = f"is now on incident {unit.incident_id}" if unit.incident_id else "has no incident now"
        raise Conflict(f"{what} was sent for incident {incident_id}, but unit {unit.callsign} {now}: not applied")


def acknowledge(ctx: Ctx, *, actor: Actor, unit_id: int, incident_id: int | None = None) -> Assignment:
    """The crew confirms it has the assignment (eTimes.04). A repeated acknowledgement changes nothing.
    With ``incident_id``, an acknowledgement meant for another job than the current one is refused (409)."""
    _own_unit(actor, unit_id, "acknowledge assignments of")
    with unit_of_work(ctx, actor) as uow:
        s = uow.session
        unit = s.get(Unit, unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist")
        _same_job(unit, incident_id, "the acknowledgement")
        a = s.exec(select(Assignment).where(Assignment.unit_id == unit_id, col(Assignment.active).is_(True))).first()
        if a is None:
            raise InvalidInput(f"unit {unit_id} has no assignment to acknowledge")
        if a.acknowledged_at is None:
            a.acknowledged_at = uow.now
            s.add(a)
            uow.emit("unit.acknowledged", incident_id=a.incident_id, unit_id=unit_id, assignment_id=a.id)
    return a


def update_position(
    ctx: Ctx, *, actor: Actor, unit_id: int, lat: float, lon: float, at: datetime | None = None
) -> Unit:
    """A position reported over HTTP: checked, thinned and stored by ``positions.report_fix``. Returns the unit
    with its newest position, also when thinning did not store this one."""
    from dispatch.services.positions import Fix, report_fix  # positions builds on this module

    report_fix(ctx, actor=actor, unit_id=unit_id, fix=Fix(lat, lon, at), source="http")
    unit = get_unit(ctx, unit_id)
    live = ctx.live_positions.get(unit_id)
    if live is not None and (unit.position_at is None or live[2] > unit.position_at):
        unit.lat, unit.lon, unit.position_at = live
    return unit


def list_hospitals(ctx: Ctx) -> list[Hospital]:
    with ctx.reader() as s:
        return list(s.exec(select(Hospital).order_by(col(Hospital.name))))


def hospitals_for_incident(ctx: Ctx, incident_id: int) -> tuple[list[HospitalChoice], list[Excluded]]:
    with ctx.reader() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        views = [
            HospitalView(h.id or 0, h.name, LatLon(h.lat, h.lon), frozenset(h.capabilities), h.emergency, h.diversion)
            for h in s.exec(select(Hospital))
        ]
    return rank_hospitals(views, LatLon(inc.lat, inc.lon), inc.hospital_capability, ctx.ambulance)


def set_diversion(ctx: Ctx, *, actor: Actor, hospital_id: int, diversion: bool) -> Hospital:
    require(actor, *DISPATCHING_ROLES, action="set hospital diversion")
    with unit_of_work(ctx, actor) as uow:
        h = uow.session.get(Hospital, hospital_id)
        if h is None:
            raise NotFound(f"hospital {hospital_id} does not exist")
        h.diversion = diversion
        uow.session.add(h)
        uow.emit("hospital.diversion", hospital_id=hospital_id, diversion=diversion, name=h.name)
    return h


def list_stations(ctx: Ctx) -> list[Station]:
    with ctx.reader() as s:
        return list(s.exec(select(Station).order_by(col(Station.name))))


def unit_dict(u: Unit) -> dict[str, Any]:
    return {
        "id": u.id,
        "callsign": u.callsign,
        "type": u.type,
        "capability": UnitType(u.type).capability.value,
        "station_id": u.station_id,
        "status": u.status,
        "incident_id": u.incident_id,
        "position": None
        if u.lat is None
        else {"lat": u.lat, "lon": u.lon, "at": u.position_at.isoformat() if u.position_at else None},
        "connected": u.connected,
        "last_seen_at": u.last_seen_at.isoformat() if u.last_seen_at else None,
    }
