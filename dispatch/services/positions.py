"""Position fixes from the crews' phones: checked, thinned, stored, pushed to the consoles, and the drive time of
a unit on its way to a call recomputed from them.

Every entry point reports through :func:`report_fix`: ``POST /api/v1/units/{id}/position``, the OsmAnd/Traccar
endpoint (``dispatch.services.devices``) and the crew socket.

Thinning: a fix is stored (a ``position`` row, the unit's position, a ``unit.position`` event with a sequence
number) while the unit has an incident, or when it is at least ``STORE_EVERY`` later or ``STORE_DISTANCE_M``
away from the unit's last stored fix, as the unit row says inside the transaction (so every server process
decides alike). Any other fix is pushed as a live-only bus message (``seq`` None) and kept in
``ctx.live_positions`` for the ranking; it is decided on a read and never waits for the write lock.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlmodel import Session, col, select

from dispatch.core.errors import DispatchError, InvalidInput, NotFound
from dispatch.core.types import LatLon, UnitStatus, UnitType
from dispatch.db.models import Incident, Position, Unit
from dispatch.services.context import (
    Actor,
    Ctx,
    NewEvent,
    client_time,
    insert_row,
    row_values,
    started,
    unit_of_work,
)
from dispatch.services.units import _own_unit

#: a fix older than this is refused (a phone flushing a day-old buffer, or a clock far off)
MAX_FIX_AGE = timedelta(hours=24)
#: thinning: outside an incident, a fix is stored when this much later or this far from the last stored one
STORE_EVERY = timedelta(seconds=10)
STORE_DISTANCE_M = 50.0
#: a fix implying more than this speed from the last stored fix, over at least the distance below, is flagged
MAX_SPEED_KPH = 250.0
JUMP_MIN_DISTANCE_M = 500.0
#: the ETA of a unit driving to a call is recomputed at most this often per unit (per server process)
ETA_EVERY = timedelta(seconds=5)
DRIVING_TO_CALL = (UnitStatus.DISPATCHED, UnitStatus.EN_ROUTE)
EARTH_RADIUS_M = 6_371_008.8
#: as in Traccar: a unix timestamp below this is in seconds, from it on in milliseconds
UNIX_MS_FROM = 2**31 - 1
_TIME_FORMATS = "send unix seconds, unix milliseconds or ISO 8601 with a time zone"

#: field, lowest, highest allowed value, unit; lat and lon are required, the others optional
_RANGES = (
    ("lat", -90.0, 90.0, "degrees"),
    ("lon", -180.0, 180.0, "degrees"),
    ("speed_mps", 0.0, 150.0, "m/s"),
    ("bearing", 0.0, 360.0, "degrees"),
    ("altitude_m", -1000.0, 20000.0, "m"),
    ("accuracy_m", 0.0, 10000.0, "m"),
    ("battery", 0.0, 100.0, "%"),
)


@dataclass(frozen=True)
class Fix:
    """One position fix as a phone reports it. ``at`` is timezone-aware; None means now (the server's clock)."""

    lat: float
    lon: float
    at: datetime | None = None
    speed_mps: float | None = None
    bearing: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    battery: float | None = None  # percent, 0-100


def parse_time(value: str | float, name: str = "at") -> datetime:
    """A fix time given as unix seconds, unix milliseconds or ISO 8601 (one without a zone is refused later,
    by :func:`check_fix`, with that reason)."""
    number: float | None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
        if number is None:
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise InvalidInput(f"{name} {value!r} is not a time: {_TIME_FORMATS}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise InvalidInput(f"{name} {value!r} is not a time: {_TIME_FORMATS}")
    if math.isfinite(number):
        try:
            return datetime.fromtimestamp(number / 1000 if abs(number) >= UNIX_MS_FROM else number, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    raise InvalidInput(f"{name} {value!r} is out of range: {_TIME_FORMATS}")


def number_field(obj: Mapping[str, Any], key: str, where: str = "") -> float | None:
    """A JSON number of an object (None when absent or null); InvalidInput naming the field otherwise."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}{key} {value!r} is not a number")
    return float(value)


def fix_from_socket(msg: Mapping[str, Any]) -> Fix:
    """The fix of a crew-socket ``position`` message: ``lat``, ``lon`` (decimal degrees) and, optional or null,
    ``at`` (ISO 8601 or unix seconds/milliseconds; default now), ``speed_mps``, ``bearing`` (degrees),
    ``altitude_m``, ``accuracy_m``, ``battery`` (percent)."""
    lat, lon = number_field(msg, "lat"), number_field(msg, "lon")
    if lat is None or lon is None:
        raise InvalidInput("a position needs lat and lon in decimal degrees")
    at = msg.get("at")
    return Fix(
        lat,
        lon,
        at=None if at is None else parse_time(at),
        speed_mps=number_field(msg, "speed_mps"),
        bearing=number_field(msg, "bearing"),
        altitude_m=number_field(msg, "altitude_m"),
        accuracy_m=number_field(msg, "accuracy_m"),
        battery=number_field(msg, "battery"),
    )


@dataclass(frozen=True)
class _Verdict:
    store: bool
    flag: str | None = None


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def check_fix(fix: Fix, now: datetime) -> datetime:
    """The fix's time (``now`` when it has none); InvalidInput naming the field and what is allowed."""
    for name, lo, hi, unit in _RANGES:
        value = getattr(fix, name)
        if value is None and name not in ("lat", "lon"):
            continue
        if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
            raise InvalidInput(f"{name} {value!r} is not allowed: it must be a number from {lo:g} to {hi:g} {unit}")
    hours = MAX_FIX_AGE.total_seconds() / 3600
    return client_time(
        fix.at or now,
        now,
        what="the fix time",
        max_age=MAX_FIX_AGE,
        zone=" or unix seconds",
        late=f": send fixes of the last {hours:.0f} h",
    )


def report_fix(ctx: Ctx, *, actor: Actor, unit_id: int, fix: Fix, source: str) -> dict[str, Any]:
    """Take one position fix of a unit (a crew only of its own unit). Returns ``stored``, ``flag`` (why the fix
    looks wrong, or None), ``seq`` (of its event, when stored) and ``unit_id``.

    A fix not newer than the unit's stored one changes nothing. A flagged fix (an implausible jump) is stored for
    review and announced as ``unit.position_flagged``, but moves nothing.
    """
    _own_unit(actor, unit_id, "report the position of")
    at = check_fix(fix, ctx.clock())
    out: dict[str, Any] = {"unit_id": unit_id, "stored": False, "flag": None, "seq": None}
    # most fixes are only pushed live: they are judged on one plain row read (no ORM session: this runs for
    # every fix of every unit); the ones to store are judged again inside their transaction
    with ctx.read_engine.connect() as c:
        row = c.execute(_UNITS_NOW, {"ids": [unit_id]}).first()
        if row is None:
            raise NotFound(f"unit {unit_id} does not exist")
        unit = _UnitNow(*row)
        verdict = _judge(c, unit, fix, at)
    if verdict is None:
        return out
    target: LatLon | None = None
    if verdict.store:
        verdict, out["seq"], target = _writer(ctx).store(_Pending(actor, unit_id, fix, at, source))
        if verdict is None:
            return out
        out.update(stored=verdict.store, flag=verdict.flag)
    if verdict.flag is not None:
        return out
    newest = _remember(ctx, unit_id, fix.lat, fix.lon, at)
    if not verdict.store and newest:
        ctx.bus.publish(_live(ctx, actor, "unit.position", unit, _fix_data(fix, at, source)))
    if target is not None:
        _push_eta(ctx, actor, unit, LatLon(fix.lat, fix.lon), target, at)
    return out


@dataclass(frozen=True)
class _Pending:
    """A fix that thinning keeps, on its way to the database."""

    actor: Actor
    unit_id: int
    fix: Fix
    at: datetime
    source: str


_Stored = tuple[_Verdict | None, int | None, LatLon | None]  # verdict on the row, event seq, ETA target


class FixWriter:
    """Stores the fixes thinning keeps, many per transaction (group commit).

    With SQLite's full fsync on every commit, one transaction per fix made the write lock the bottleneck at a
    few hundred units reporting every second: each fix waited for the commits of the fixes before it. Here one
    thread takes every fix that has queued up meanwhile (up to ``MAX_BATCH``) and writes them in one
    transaction, each judged again on its unit's row as the transaction holds it. The callers (worker threads)
    wait for the commit, so a stored fix is answered only once it is durable. A batch that fails is retried one
    fix per transaction, so that one bad fix cannot fail the others.
    """

    MAX_BATCH = 200

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.batches = 0
        self._queue: queue.SimpleQueue[tuple[_Pending, Future[_Stored]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="fix-writer", daemon=True).start()

    def store(self, pending: _Pending) -> _Stored:
        done: Future[_Stored] = Future()
        self._queue.put((pending, done))
        return done.result()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.batches += 1
            try:
                results = self._write([p for p, _ in batch])
            except Exception:  # noqa: BLE001 - each fix alone: the others must not fail with the bad one
                for p, done in batch:
                    try:
                        done.set_result(self._write([p])[0])
                    except Exception as exc:  # noqa: BLE001 - handed to the caller, which answers with it
                        done.set_exception(exc)
                continue
            for (_, done), result in zip(batch, results, strict=True):
                done.set_result(result)

    def _write(self, batch: list[_Pending]) -> list[_Stored]:
        """One transaction for the batch, set-wise: one read of the units, then one INSERT of the positions,
        one UPDATE of the units that moved and one counter update + INSERT for the events (a few statements
        instead of a handful per fix: the batch holds the interpreter, which the sockets wait for)."""
        out: list[tuple[_Verdict | None, int | None, int | None]] = []  # verdict, event index, unit to target
        with unit_of_work(self.ctx, batch[0].actor) as uow:
            s = uow.session
            units = {row[0]: _UnitNow(*row) for row in s.execute(_UNITS_NOW, {"ids": [p.unit_id for p in batch]})}
            positions: list[dict[str, Any]] = []
            moved: set[int] = set()  # units whose position this batch changes (their new one is in ``units``)
            heard: set[int] = set()  # ... of them, the ones whose own phone reported (last_seen_at)
            events: list[NewEvent] = []
            for p in batch:
                unit = units.get(p.unit_id)
                if unit is None:
                    raise NotFound(f"unit {p.unit_id} does not exist")
                verdict = _judge(s, unit, p.fix, p.at)  # again, on the row as this transaction holds it
                if verdict is None or not verdict.store:
                    out.append((verdict, None, None))
                    continue
                row = Position(
                    **_measured(p.fix),
                    unit_id=unit.id,
                    incident_id=unit.incident_id,
                    at=p.at,
                    received_at=uow.now,
                    source=p.source,
                    flag=verdict.flag,
                )
                positions.append(row_values(row))
                data = _fix_data(p.fix, p.at, p.source)
                if verdict.flag is not None:  # kept for review; the unit does not move
                    data = {"flag": verdict.flag, **data}
                    events.append(NewEvent("unit.position_flagged", p.actor.name, unit.incident_id, unit.id, data))
                    out.append((verdict, len(events) - 1, None))
                    continue
                units[unit.id] = unit = replace(unit, lat=p.fix.lat, lon=p.fix.lon, position_at=p.at)
                moved.add(unit.id)
                if p.actor.unit_id == unit.id:  # the phone itself, not a dispatcher placing the unit
                    heard.add(unit.id)
                events.append(NewEvent("unit.position", p.actor.name, unit.incident_id, unit.id, data))
                out.append((verdict, len(events) - 1, unit.id))
            if positions:
                s.execute(insert_row(Position), positions)
            for seen, move in ((True, _MOVE_SEEN), (False, _MOVE)):
                rows = [
                    {"uid": u, "lat": units[u].lat, "lon": units[u].lon, "at": units[u].position_at}
                    | ({"now": uow.now} if seen else {})
                    for u in moved
                    if (u in heard) is seen
                ]
                if rows:
                    s.execute(move, rows)
            logged = uow.emit_many(events)
            driving = [
                units[u] for u in moved if units[u].incident_id and UnitStatus(units[u].status) in DRIVING_TO_CALL
            ]
            targets: dict[int, LatLon | None] = {}
            if driving:
                q = select(Incident.id, Incident.lat, Incident.lon).where(
                    col(Incident.id).in_({u.incident_id for u in driving})
                )
                at_incident = {i: LatLon(lat, lon) for i, lat, lon in s.execute(q)}
                targets = {u.id: at_incident.get(u.incident_id or 0) for u in driving}
        return [
            (verdict, None if i is None else logged[i].seq, None if uid is None else targets.get(uid))
            for verdict, i, uid in out
        ]


def _writer(ctx: Ctx) -> FixWriter:
    writer: FixWriter = started(ctx, "fix_writer", FixWriter)
    return writer


def remember_fix(ctx: Ctx, message: dict[str, Any]) -> bool:
    """Keep a ``unit.position`` bus message's fix (from this or another server process) for the ranking.
    Returns whether it was newer than the fix known for the unit; other messages are ignored."""
    data = message.get("data") or {}
    if message.get("kind") != "unit.position" or not isinstance(message.get("unit_id"), int):
        return False
    try:
        at = datetime.fromisoformat(data["position_at"])
        lat, lon = float(data["lat"]), float(data["lon"])
    except (KeyError, TypeError, ValueError):
        return False
    return at.tzinfo is not None and _remember(ctx, message["unit_id"], lat, lon, at)


@dataclass(frozen=True)
class _UnitNow:
    """What judging a fix needs of a unit's row."""

    id: int
    lat: float | None
    lon: float | None
    position_at: datetime | None
    incident_id: int | None
    status: str
    type: str


_UNIT_TABLE = Unit.__table__  # type: ignore[attr-defined]
_UNIT_COLUMNS = ("id", "lat", "lon", "position_at", "incident_id", "status", "type")
_UNITS_NOW = sa_select(*(_UNIT_TABLE.c[name] for name in _UNIT_COLUMNS)).where(
    _UNIT_TABLE.c.id.in_(bindparam("ids", expanding=True))
)
_MOVE = (
    sa_update(_UNIT_TABLE)
    .where(_UNIT_TABLE.c.id == bindparam("uid"))
    .values(lat=bindparam("lat"), lon=bindparam("lon"), position_at=bindparam("at"))
)
_MOVE_SEEN = _MOVE.values(last_seen_at=bindparam("now"))


def _judge(s: Session | Connection, unit: _UnitNow, fix: Fix, at: datetime) -> _Verdict | None:
    """Whether to store the fix and why it looks wrong; None for a fix not newer than the stored one."""
    if unit.position_at is None or unit.lat is None or unit.lon is None:
        return _Verdict(store=True)
    if at <= unit.position_at:
        return None
    distance_m = haversine_m(unit.lat, unit.lon, fix.lat, fix.lon)
    dt_s = (at - unit.position_at).total_seconds()
    speed_kph = distance_m / dt_s * 3.6
    if distance_m >= JUMP_MIN_DISTANCE_M and speed_kph > MAX_SPEED_KPH and _has_fix(s, unit.id):
        return _Verdict(
            store=True,
            flag=f"implausible jump: {distance_m / 1000:.1f} km in {dt_s:.0f} s from the fix of "
            f"{unit.position_at.isoformat()} ({speed_kph:.0f} km/h; at most {MAX_SPEED_KPH:.0f} km/h)",
        )
    store = unit.incident_id is not None or dt_s >= STORE_EVERY.total_seconds() or distance_m >= STORE_DISTANCE_M
    return _Verdict(store=store)


def _has_fix(s: Session | Connection, unit_id: int) -> bool:
    """Whether the unit's stored position came from a fix (and not from its station, where it was seeded)."""
    q = select(Position.id).where(Position.unit_id == unit_id, col(Position.flag).is_(None)).limit(1)
    return s.execute(q).first() is not None


def _measured(fix: Fix) -> dict[str, Any]:
    """What the phone measured: position, speed, bearing, altitude, accuracy, battery (not the time)."""
    return {k: v for k, v in asdict(fix).items() if k != "at"}


def _fix_data(fix: Fix, at: datetime, source: str) -> dict[str, Any]:
    return {**_measured(fix), "position_at": at.isoformat(), "source": source}


def _remember(ctx: Ctx, unit_id: int, lat: float, lon: float, at: datetime) -> bool:
    known = ctx.live_positions.get(unit_id)
    if known is not None and known[2] >= at:
        return False
    ctx.live_positions[unit_id] = (lat, lon, at)
    return True


def _live(ctx: Ctx, actor: Actor, kind: str, unit: _UnitNow, data: dict[str, Any]) -> dict[str, Any]:
    """A live-only bus message: the shape of an event, without a sequence number (never stored, never replayed)."""
    return {
        "seq": None,
        "at": ctx.clock().isoformat(),
        "actor": actor.name,
        "kind": kind,
        "incident_id": unit.incident_id,
        "unit_id": unit.id,
        "data": data,
    }


def _push_eta(ctx: Ctx, actor: Actor, unit: _UnitNow, origin: LatLon, target: LatLon, at: datetime) -> None:
    """Publish the unit's drive time to its incident (``unit.eta``), at most every ETA_EVERY per unit."""
    router = ctx.routers.get(UnitType(unit.type).vehicle)
    if router is None or not _eta_due(ctx, unit.id or 0):
        return
    try:
        leg = router.eta_to([origin], target)[0]
    except DispatchError:  # the incident off this vehicle's roads
        return
    if isinstance(leg, DispatchError):  # the unit off the road coverage, or no route
        return
    data = {"eta_s": round(leg.eta_s, 1), "distance_m": round(leg.distance_m, 1), "position_at": at.isoformat()}
    ctx.bus.publish(_live(ctx, actor, "unit.eta", unit, data))


def _eta_due(ctx: Ctx, unit_id: int) -> bool:
    now = ctx.clock()
    with ctx.state_lock:
        last = ctx.eta_pushed_at.get(unit_id)
        if last is not None and now - last < ETA_EVERY:
            return False
        ctx.eta_pushed_at[unit_id] = now
        return True
