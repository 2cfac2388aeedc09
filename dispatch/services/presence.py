"""Crew phones' presence (heartbeats) and assignments the crew has not acknowledged.

Every server process runs :func:`sweep` every few seconds. Its changes are made in one transaction guarded by
the rows' own state (``connected``, ``unack_alerted_at``), so with several processes each change is made and
announced once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select

from dispatch.db.models import Assignment, Event, Unit
from dispatch.services.context import SYSTEM, Ctx, unit_of_work


def mark_seen(ctx: Ctx, unit_ids: Iterable[int]) -> list[int]:
    """The units' phones were heard from now: one transaction and two statements for all of them (a few
    hundred phones must cost neither a few hundred commits nor a few hundred ORM rows while the server's other
    threads wait for the interpreter). Returns the units this made connected again (one event each)."""
    ids = sorted(set(unit_ids))
    if not ids:
        return []
    table = Unit.__table__  # type: ignore[attr-defined]
    with unit_of_work(ctx, SYSTEM) as uow:
        s = uow.session
        again = s.execute(
            select(Unit.id, Unit.callsign).where(col(Unit.id).in_(ids), col(Unit.connected).is_(False))
        ).all()
        s.execute(update(table).where(table.c.id.in_(ids)).values(last_seen_at=uow.now, connected=True))
        for unit_id, callsign in again:
            uow.emit("unit.connected", unit_id=unit_id, callsign=callsign)
    return [unit_id for unit_id, _ in again]


def sweep(ctx: Ctx, *, heartbeat_timeout_s: float, ack_timeout_s: float) -> int:
    """Mark silent phones disconnected and tell the consoles about overdue acknowledgements. Returns the
    number of events written."""
    now = ctx.clock()
    silent_before = now - timedelta(seconds=heartbeat_timeout_s)
    overdue_before = now - timedelta(seconds=ack_timeout_s)
    silent = select(Unit.id).where(col(Unit.connected).is_(True), col(Unit.last_seen_at) < silent_before)
    overdue = select(Assignment.id).where(
        col(Assignment.active).is_(True),
        col(Assignment.acknowledged_at).is_(None),
        col(Assignment.unack_alerted_at).is_(None),
        col(Assignment.unit_notified_at) < overdue_before,
    )
    with ctx.reader() as r:  # the common case, nothing to do, takes no write lock
        if r.exec(silent).first() is None and r.exec(overdue).first() is None:
            return 0
    written = 0
    with unit_of_work(ctx, SYSTEM) as uow:
        s = uow.session
        for unit in s.exec(select(Unit).where(col(Unit.id).in_(silent))):
            unit.connected = False
            s.add(unit)
            last = unit.last_seen_at
            uow.emit(
                "unit.disconnected",
                unit_id=unit.id,
                callsign=unit.callsign,
                last_seen_at=last,
                silent_s=round((uow.now - last).total_seconds(), 1) if last else None,
            )
            written += 1
        for a in s.exec(select(Assignment).where(col(Assignment.id).in_(overdue))):
            a.unack_alerted_at = uow.now
            s.add(a)
            uow.emit(
                "assignment.unacknowledged",
                incident_id=a.incident_id,
                unit_id=a.unit_id,
                assignment_id=a.id,
                waiting_s=round((uow.now - a.unit_notified_at).total_seconds(), 1),
            )
            written += 1
    return written


@dataclass(frozen=True)
class Unacknowledged:
    unit_id: int
    assignment_id: int
    event: Event  # the unit.assigned event, to send again


def unacknowledged(ctx: Ctx) -> list[Unacknowledged]:
    """Active assignments the crew has not acknowledged, each with the event that announced it."""
    out = []
    with ctx.reader() as s:
        for a in s.exec(
            select(Assignment).where(col(Assignment.active).is_(True), col(Assignment.acknowledged_at).is_(None))
        ):
            ev = s.exec(
                select(Event)
                .where(Event.kind == "unit.assigned", Event.unit_id == a.unit_id, Event.incident_id == a.incident_id)
                .order_by(col(Event.seq).desc())
            ).first()
            if ev is not None and a.id is not None:
                out.append(Unacknowledged(a.unit_id, a.id, ev))
    return out
