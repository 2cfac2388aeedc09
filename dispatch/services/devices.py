"""Phones registered to units by device id, and the fixes they report in the OsmAnd / Traccar Client protocol.

The device id is the phone's credential, as in Traccar: whoever knows it can report that unit's position (and
nothing else). It is therefore kept out of the event log and of the unit lists that crews read.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import col, select

from dispatch.core.errors import Conflict, InvalidInput, NotFound
from dispatch.core.types import Role
from dispatch.db.models import Unit
from dispatch.services.context import Actor, Ctx, unit_of_work
from dispatch.services.incidents import DISPATCHING_ROLES, require
from dispatch.services.positions import Fix, report_fix

DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")


def set_device(ctx: Ctx, *, actor: Actor, unit_id: int, device_id: str | None) -> Unit:
    """Register the phone that reports the unit's position (None: the unit has none). One device, one unit."""
    require(actor, *DISPATCHING_ROLES, action="register phones to units")
    if device_id is not None and not DEVICE_ID.fullmatch(device_id):
        raise InvalidInput(
            f"device id {device_id!r} is not allowed: use 1 to 64 letters, digits and . _ : @ - "
            "(the identifier shown in the phone app)"
        )
    with unit_of_work(ctx, actor) as uow:
        s = uow.session
        unit = s.get(Unit, unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist")
        if unit.device_id == device_id:
            return unit
        if device_id is not None:
            other = s.exec(select(Unit).where(Unit.device_id == device_id, col(Unit.id) != unit_id)).first()
            if other is not None:
                raise Conflict(
                    f"device id {device_id!r} is registered to unit {other.callsign} ({other.id}): "
                    f"clear it there first (PUT /api/v1/units/{other.id}/device with null)",
                    current={"unit_id": other.id, "callsign": other.callsign},
                )
        unit.device_id = device_id
        s.add(unit)
        uow.emit("unit.device", unit_id=unit_id, registered=device_id is not None)
    return unit


def unit_id_for_callsign(ctx: Ctx, callsign: str) -> int:
    with ctx.reader() as s:
        unit_id = s.exec(select(Unit.id).where(Unit.callsign == callsign)).first()
        if unit_id is None:
            known = ", ".join(s.exec(select(Unit.callsign).order_by(col(Unit.callsign))))
            raise NotFound(f"unit {callsign!r} does not exist; known units: {known or 'none'}")
    return unit_id


def report_device_fix(ctx: Ctx, *, device_id: str, fix: Fix, source: str) -> dict[str, Any]:
    """A fix from a registered phone, recorded as by ``device:<id>``, the crew of its unit."""
    with ctx.reader() as s:
        unit_id = s.exec(select(Unit.id).where(Unit.device_id == device_id)).first()
    if unit_id is None:
        raise NotFound(
            f"unknown device id {device_id!r}: register it with `dispatch units device CALLSIGN {device_id}`"
        )
    actor = Actor(None, f"device:{device_id}", Role.CREW, unit_id)
    return report_fix(ctx, actor=actor, unit_id=unit_id, fix=fix, source=source)
