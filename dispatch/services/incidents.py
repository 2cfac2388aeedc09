"""Call intake, recommendations, assignment and cancellation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from dispatch.core.errors import Conflict, DispatchError, Forbidden, InvalidInput, NotFound
from dispatch.core.lifecycle import (
    ASSIGNABLE,
    IncidentEvent,
    UnitEvent,
    apply_incident,
    apply_unit,
)
from dispatch.core.recommend import Excluded, Recommendation, UnitView, rank_units
from dispatch.core.triage import capability_for, card
from dispatch.core.types import Capability, IncidentStatus, LatLon, Priority, Role, UnitStatus, UnitType
from dispatch.db.models import Assignment, Event, IdempotencyKey, Incident, Station, Unit
from dispatch.services.context import Actor, Ctx, NewEvent, client_time, insert_row, row_values, unit_of_work

DISPATCHING_ROLES = (Role.DISPATCHER, Role.ADMIN)


def require(actor: Actor, *roles: Role, action: str) -> None:
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role.value} may not {action}; allowed roles: {', '.join(r.value for r in roles)}")


@dataclass(frozen=True)
class NewIncident:
    lat: float
    lon: float
    complaint: str
    priority: Priority | None = None
    caller_number: str = ""
    address: str = ""
    notes: str = ""
    #: when the phone call reached the centre (eTimes.01); None: when the call is written
    call_received_at: datetime | None = None

    def fingerprint(self) -> str:
        data: dict[str, Any] = {k: (v.value if isinstance(v, Priority) else v) for k, v in self.__dict__.items()}
        if self.call_received_at is None:
            del data["call_received_at"]  # as before the field existed: stored keys keep their hashes
        else:
            data["call_received_at"] = self.call_received_at.astimezone(UTC).isoformat()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def create_incident(
    ctx: Ctx, *, actor: Actor, new: NewIncident, idempotency_key: str | None = None
) -> tuple[Incident, bool]:
    """Record a call. Returns (incident, created); a retried Idempotency-Key returns the first incident.
    (The API takes calls through :class:`dispatch.services.intake.Intake`, many per transaction; this is the
    same use case for one call.)"""
    found = prepare_incident(ctx, actor=actor, new=new, idempotency_key=idempotency_key)
    if isinstance(found, Incident):
        return found, False
    return write_one(ctx, found)


@dataclass
class PreparedIncident:
    """A call checked and placed on the road, not yet written: its row has no id and no call time."""

    actor: Actor
    new: NewIncident
    idempotency_key: str | None
    row: Incident


def prepare_incident(
    ctx: Ctx, *, actor: Actor, new: NewIncident, idempotency_key: str | None = None, keys: UsedKeys | None = None
) -> Incident | PreparedIncident:
    """Everything about a call that needs no write: the role, the card, the key (a retried key returns the
    incident it made; ``keys``: the keys a batch read together, else this one is read) and the snap onto the
    road (:class:`OutsideCoverage` -> 422 with the distance)."""
    require(actor, *DISPATCHING_ROLES, action="take calls")
    complaint = card(new.complaint)
    priority = new.priority or complaint.priority
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 200:
            raise InvalidInput("the Idempotency-Key header must be 1 to 200 characters")
        if keys is None:
            keys = used_keys(ctx, [key_of(actor, idempotency_key)])
        found = keys.replay(actor, idempotency_key, new)
        if found is not None:
            return found
    received = _call_received(ctx, new.call_received_at)
    snap = ctx.ambulance.snap(LatLon(new.lat, new.lon))
    row = Incident(
        status=IncidentStatus.RECEIVED.value,
        caller_number=new.caller_number,
        lat=new.lat,
        lon=new.lon,
        address=new.address,
        snap_lat=snap.lat,
        snap_lon=snap.lon,
        snap_distance_m=snap.distance_m,
        complaint=complaint.code,
        priority=priority.value,
        capability=capability_for(priority, complaint).value,
        hospital_capability=complaint.hospital_capability,
        notes=new.notes,
        created_by=actor.name,
        psap_call_at=received or ctx.clock(),  # without a given time: stamped again when written
    )
    return PreparedIncident(actor, new, idempotency_key, row)


#: the oldest call time a new call may carry (a call is recorded while it is on the line, or soon after)
MAX_CALL_AGE = timedelta(hours=24)


def _call_received(ctx: Ctx, at: datetime | None) -> datetime | None:
    """The call time a dispatcher's console sent, checked against the server's clock."""
    if at is None:
        return None
    checked = client_time(at, ctx.clock(), what="call_received_at", max_age=MAX_CALL_AGE, late=": record it otherwise")
    return checked.astimezone(UTC)


_INSERT_INCIDENTS = insert_row(Incident).returning(col(Incident.id), sort_by_parameter_order=True)


def write_incidents(ctx: Ctx, calls: list[PreparedIncident]) -> list[Incident]:
    """Write calls in one transaction (one fsync): the rows, their Idempotency-Keys and an
    ``incident.created`` event each, in order. Either all are written or none (an ``IntegrityError`` when a
    key was taken meanwhile)."""
    try:
        return _write_incidents(ctx, calls)
    except BaseException:
        for c in calls:  # rolled back: the ids handed out are not theirs (a second try gets its own)
            c.row.id = None
        raise


def _write_incidents(ctx: Ctx, calls: list[PreparedIncident]) -> list[Incident]:
    with unit_of_work(ctx, calls[0].actor) as uow:
        s = uow.session
        rows = []
        for c in calls:
            if c.new.call_received_at is None:  # stamped under the write lock: call times follow the log's order
                c.row.psap_call_at = uow.now
            rows.append(row_values(c.row))
        ids = [int(i) for i in s.execute(_INSERT_INCIDENTS, rows).scalars().all()]
        for c, new_id in zip(calls, ids, strict=True):
            c.row.id = new_id
        keys = [
            {
                "user_id": c.actor.id or 0,
                "key": c.idempotency_key,
                "request_hash": c.new.fingerprint(),
                "incident_id": new_id,
                "created_at": uow.now,
            }
            for c, new_id in zip(calls, ids, strict=True)
            if c.idempotency_key is not None
        ]
        if keys:
            s.execute(insert_row(IdempotencyKey), keys)
        uow.emit_many(
            [
                NewEvent("incident.created", c.actor.name, c.row.id, None, {"incident": incident_dict(c.row)})
                for c in calls
            ]
        )
    return [c.row for c in calls]


def write_one(ctx: Ctx, call: PreparedIncident) -> tuple[Incident, bool]:
    """One call in its own transaction; a key committed by a concurrent retry meanwhile answers with the
    incident that retry made."""
    try:
        return write_incidents(ctx, [call])[0], True
    except IntegrityError:
        if call.idempotency_key is None:
            raise
        found = _replay(ctx, call.actor, call.idempotency_key, call.new)
        if found is None:
            raise
        return found, False


def _replay(ctx: Ctx, actor: Actor, key: str, new: NewIncident) -> Incident | None:
    return used_keys(ctx, [key_of(actor, key)]).replay(actor, key, new)


def key_of(actor: Actor, key: str) -> tuple[int, str]:
    """An Idempotency-Key as it is stored: per user (the system actor, with no user, as user 0)."""
    return actor.id or 0, key


@dataclass(frozen=True)
class UsedKeys:
    """Idempotency-Keys already used, read in one query, and the incidents they made."""

    #: (user id, key) -> (request hash, the id of the incident it made, that incident)
    found: dict[tuple[int, str], tuple[str, int, Incident | None]]

    def replay(self, actor: Actor, key: str, new: NewIncident) -> Incident | None:
        """The incident a retried key made, None for a new key; :class:`Conflict` when the key was used for a
        different call."""
        row = self.found.get(key_of(actor, key))
        if row is None:
            return None
        request_hash, incident_id, incident = row
        if request_hash != new.fingerprint():
            raise Conflict(
                f"Idempotency-Key {key!r} was already used for a different call (incident {incident_id}); use a "
                "new key for a new call",
                current={"incident_id": incident_id},
            )
        return incident


def used_keys(ctx: Ctx, keys: list[tuple[int, str]]) -> UsedKeys:
    """Which of ``keys`` ((user id, key) pairs) were used, with their incidents: two queries for any number."""
    if not keys:
        return UsedKeys({})
    with ctx.reader() as s:
        rows = s.execute(
            sa_select(
                IdempotencyKey.user_id, IdempotencyKey.key, IdempotencyKey.request_hash, IdempotencyKey.incident_id
            ).where(tuple_(col(IdempotencyKey.user_id), col(IdempotencyKey.key)).in_(sorted(set(keys))))  # type: ignore[call-overload]
        ).all()
        ids = sorted({r[3] for r in rows})
        incidents = {i.id: i for i in s.exec(select(Incident).where(col(Incident.id).in_(ids)))} if ids else {}
    return UsedKeys({(uid, key): (h, inc_id, incidents.get(inc_id)) for uid, key, h, inc_id in rows})


def get_incident(ctx: Ctx, incident_id: int) -> Incident:
    with ctx.reader() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        return inc


def list_incidents(ctx: Ctx, *, status: str | None = None, open_only: bool = False, limit: int = 200) -> list[Incident]:
    if status is not None and status not in IncidentStatus.__members__.values():
        raise InvalidInput(f"status {status!r} is not known; allowed: {', '.join(IncidentStatus)}")
    with ctx.reader() as s:
        q = select(Incident)
        if status:
            q = q.where(Incident.status == status)
        if open_only:
            q = q.where(col(Incident.status).notin_([IncidentStatus.CLOSED.value, IncidentStatus.CANCELLED.value]))
        rows = list(s.exec(q.order_by(col(Incident.id).desc()).limit(limit)))
    rows.sort(key=lambda i: (Priority(i.priority).rank, i.psap_call_at))
    return rows


def timeline(ctx: Ctx, incident_id: int) -> tuple[list[Assignment], list[Event]]:
    with ctx.reader() as s:
        assignments = list(
            s.exec(select(Assignment).where(Assignment.incident_id == incident_id).order_by(col(Assignment.id)))
        )
        events = list(s.exec(select(Event).where(Event.incident_id == incident_id).order_by(col(Event.seq))))
    return assignments, events


def events_after(ctx: Ctx, *, after: int, limit: int) -> list[Event]:
    """The event log after sequence number ``after``, in order."""
    with ctx.reader() as s:
        return list(s.exec(select(Event).where(col(Event.seq) > after).order_by(col(Event.seq)).limit(limit)))


_UNIT_VIEWS = (
    sa_select(Unit.id, Unit.callsign, Unit.type, Unit.status, Unit.lat, Unit.lon, Unit.position_at, Station.name)  # type: ignore[call-overload]
    .outerjoin(Station, col(Unit.station_id) == col(Station.id))
    .order_by(col(Unit.callsign))
)


def unit_views(s: Session) -> list[UnitView]:
    """Every unit as the ranking sees it. It runs on every call: one prebuilt Core query, no ORM objects."""
    return [
        UnitView(
            uid,
            callsign,
            UnitType(utype),
            UnitStatus(status),
            LatLon(lat, lon) if lat is not None and lon is not None else None,
            position_at,
            station,
        )
        for uid, callsign, utype, status, lat, lon, position_at, station in s.connection().execute(_UNIT_VIEWS)
    ]


def _newest_position(u: UnitView, live: tuple[float, float, datetime] | None) -> UnitView:
    """The unit with its live position fix when that is newer than the stored one."""
    if live is None or (u.position_at is not None and live[2] <= u.position_at):
        return u
    return replace(u, position=LatLon(live[0], live[1]), position_at=live[2])


def recommendations(ctx: Ctx, incident: int | Incident) -> tuple[Incident, list[Recommendation], list[Excluded]]:
    """Rank the units for an incident, given by id or as the row just written."""
    if isinstance(incident, Incident):
        inc = incident
    else:
        with ctx.reader() as s:
            found = s.get(Incident, incident)
        if found is None:
            raise NotFound(f"incident {incident} does not exist")
        inc = found
    recs, excluded = ranker(ctx)(inc)
    return inc, recs, excluded


def ranker(ctx: Ctx) -> Callable[[Incident], tuple[list[Recommendation], list[Excluded]]]:
    """A function that ranks the units for an incident, over one read of the units (the newest live fix of
    each preferred): a batch of calls shares the read."""
    with ctx.reader() as s:
        units = [_newest_position(u, ctx.live_positions.get(u.id)) for u in unit_views(s)]
    now, travel = ctx.clock(), dict(ctx.routers)

    def rank(inc: Incident) -> tuple[list[Recommendation], list[Excluded]]:
        return rank_units(units, LatLon(inc.lat, inc.lon), Capability(inc.capability), travel, now=now)

    return rank


def assign_unit(ctx: Ctx, *, actor: Actor, incident_id: int, unit_id: int) -> Assignment:
    """Assign a free unit. Of two dispatchers assigning one unit at once, exactly one succeeds; the other
    gets :class:`Conflict` with the unit's current assignment."""
    require(actor, *DISPATCHING_ROLES, action="assign units")
    # the drive time is worked out before the write transaction, so the write lock is held for milliseconds
    with ctx.reader() as r:
        inc0, unit0 = r.get(Incident, incident_id), r.get(Unit, unit_id)
        before = (unit0.lat, unit0.lon) if unit0 is not None else None
        route = _route(ctx, unit0, inc0) if inc0 is not None and unit0 is not None else None
        eta_before = route["eta_s"] if route is not None else None
    with unit_of_work(ctx, actor) as uow:
        s = uow.session
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        unit = s.get(Unit, unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist")
        if UnitStatus(unit.status) not in ASSIGNABLE:
            raise _busy(s, unit)
        new_inc_status = apply_incident(IncidentStatus(inc.status), IncidentEvent.ASSIGN)
        apply_unit(UnitStatus(unit.status), UnitEvent.ASSIGN)
        eta_s = eta_before if (unit.lat, unit.lon) == before else None
        # compare-and-set on the version read above: a concurrent assignment changed it -> 409
        done = s.execute(
            update(Unit)
            .where(col(Unit.id) == unit_id, col(Unit.version) == unit.version)
            .values(status=UnitStatus.DISPATCHED.value, incident_id=incident_id, version=unit.version + 1)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            s.rollback()
            with ctx.reader() as fresh:
                current = fresh.get(Unit, unit_id)
                assert current is not None
                raise _busy(fresh, current)
        _close_open_assignment(s, unit_id, uow.now)
        a = Assignment(
            incident_id=incident_id,
            unit_id=unit_id,
            assigned_by=actor.name,
            eta_s_at_assignment=eta_s,
            unit_notified_at=uow.now,
        )
        s.add(a)
        inc.status = new_inc_status.value
        inc.version += 1
        s.add(inc)
        s.flush()
        uow.emit(
            "unit.assigned",
            incident_id=incident_id,
            unit_id=unit_id,
            assignment_id=a.id,
            callsign=unit.callsign,
            eta_s=eta_s,
            unit_status=UnitStatus.DISPATCHED.value,
            incident_status=new_inc_status.value,
            # what the crew's phone shows: the address, priority and complaint, and the route to drive
            incident=incident_dict(inc),
            route=route if eta_s is not None else None,
        )
    return a


def _route(ctx: Ctx, unit: Unit, inc: Incident) -> dict[str, Any] | None:
    """The unit's route to the incident (drive time, GeoJSON line, turn list), or None when it has none."""
    if unit.lat is None or unit.lon is None:
        return None
    router = ctx.routers.get(UnitType(unit.type).vehicle)
    if router is None:
        return None
    try:
        return router.route(LatLon(unit.lat, unit.lon), LatLon(inc.lat, inc.lon)).as_dict()
    except DispatchError:  # outside coverage, no route: assigned all the same, without a route
        return None


def _close_open_assignment(s: Session, unit_id: int, now: Any) -> None:
    """A returning unit re-tasked: its previous assignment ends (back in service, eTimes.13) now."""
    q = select(Assignment).where(
        Assignment.unit_id == unit_id,
        col(Assignment.back_in_service_at).is_(None),
        col(Assignment.cancelled_at).is_(None),
    )
    for old in s.exec(q):
        old.active = False
        old.back_in_service_at = now
        s.add(old)


def _busy(s: Session, unit: Unit) -> Conflict:
    current: dict[str, object] = {
        "unit_id": unit.id,
        "callsign": unit.callsign,
        "status": unit.status,
        "incident_id": unit.incident_id,
    }
    if unit.incident_id is not None:
        a = s.exec(
            select(Assignment)
            .where(Assignment.unit_id == unit.id, Assignment.incident_id == unit.incident_id)
            .order_by(col(Assignment.id).desc())
        ).first()
        if a is not None:
            current.update(
                assignment_id=a.id, assigned_by=a.assigned_by, unit_notified_at=a.unit_notified_at.isoformat()
            )
    where = f" on incident {unit.incident_id}" if unit.incident_id else ""
    return Conflict(
        f"unit {unit.callsign} is {unit.status}{where}: it cannot be assigned; "
        f"units can be assigned when {' or '.join(sorted(ASSIGNABLE))}",
        current=current,
    )


def cancel_incident(ctx: Ctx, *, actor: Actor, incident_id: int, reason: str) -> Incident:
    """Cancel a call before a unit reaches it; every assigned unit is released to available."""
    require(actor, *DISPATCHING_ROLES, action="cancel incidents")
    if not reason.strip():
        raise InvalidInput("give a reason for the cancellation (reason must not be empty)")
    with unit_of_work(ctx, actor) as uow:
        s = uow.session
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        new_status = apply_incident(IncidentStatus(inc.status), IncidentEvent.CANCEL)
        released = []
        for a in s.exec(
            select(Assignment).where(Assignment.incident_id == incident_id, col(Assignment.active).is_(True))
        ):
            unit = s.get(Unit, a.unit_id)
            assert unit is not None
            unit.status = apply_unit(UnitStatus(unit.status), UnitEvent.RELEASE).value
            unit.incident_id = None
            unit.version += 1
            a.active = False
            a.cancelled_at = uow.now
            s.add(unit)
            s.add(a)
            released.append(unit.id)
        inc.status = new_status.value
        inc.cancelled_at = uow.now
        inc.cancel_reason = reason.strip()
        inc.version += 1
        s.add(inc)
        uow.emit("incident.cancelled", incident_id=incident_id, reason=inc.cancel_reason, released_units=released)
        for uid in released:
            uow.emit(
                "unit.status",
                incident_id=incident_id,
                unit_id=uid,
                status=UnitStatus.AVAILABLE.value,
                cause="incident cancelled",
            )
    return inc


def add_note(ctx: Ctx, *, actor: Actor, incident_id: int, text_: str) -> Event:
    require(actor, *DISPATCHING_ROLES, Role.CREW, action="add notes")
    if not text_.strip():
        raise InvalidInput("the note is empty")
    with unit_of_work(ctx, actor) as uow:
        inc = uow.session.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        inc.notes = (inc.notes + "\n" if inc.notes else "") + text_.strip()
        uow.session.add(inc)
        ev = uow.emit("incident.note", incident_id=incident_id, text=text_.strip())
    return ev


def incident_dict(inc: Incident) -> dict[str, Any]:
    return {
        "id": inc.id,
        "status": inc.status,
        "caller_number": inc.caller_number,
        "location": {
            "lat": inc.lat,
            "lon": inc.lon,
            "address": inc.address,
            "road": {"lat": inc.snap_lat, "lon": inc.snap_lon, "snap_distance_m": round(inc.snap_distance_m, 1)},
        },
        "complaint": inc.complaint,
        "priority": inc.priority,
        "capability": inc.capability,
        "hospital_capability": inc.hospital_capability,
        "notes": inc.notes,
        "created_by": inc.created_by,
        "times": {
            "eTimes.01": inc.psap_call_at.isoformat() if inc.psap_call_at else None,
            "eTimes.14": inc.cancelled_at.isoformat() if inc.cancelled_at else None,
        },
        "cancel_reason": inc.cancel_reason or None,
        "closed_at": inc.closed_at.isoformat() if inc.closed_at else None,
    }
