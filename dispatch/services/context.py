"""What every use case needs: the database, the road graphs, the bus and a clock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Insert, insert, text
from sqlmodel import Session, SQLModel

from dispatch.core.errors import InvalidInput
from dispatch.core.types import Role
from dispatch.db.models import Event
from dispatch.geo.basemap import LazyBasemap
from dispatch.geo.gazetteer import GazetteerCache
from dispatch.geo.routing import Router
from dispatch.live.bus import Bus, InProcessBus

#: how far a time a client sends (a position fix, the time a call came in) may lie ahead of the server's
#: clock: phones and consoles are not all on time
MAX_CLOCK_SKEW = timedelta(minutes=2)


def client_time(
    at: datetime, now: datetime, *, what: str, max_age: timedelta, zone: str = "", late: str = ""
) -> datetime:
    """A time a client sent (a phone's fix, a console's call), checked against the server's clock ``now``: with a
    time zone, at most MAX_CLOCK_SKEW ahead and ``max_age`` old. ``what`` names it in the messages; ``zone`` and
    ``late`` add to the messages about a missing zone and an old time."""
    if at.tzinfo is None:
        raise InvalidInput(f"{what} {at.isoformat()} has no time zone: send one (e.g. 2026-11-23T10:00:00+07:00){zone}")
    if at > now + MAX_CLOCK_SKEW:
        raise InvalidInput(
            f"{what} {at.isoformat()} is in the future (clock now {now.isoformat()}); allowed skew "
            f"{MAX_CLOCK_SKEW.total_seconds():.0f} s: check the device's clock"
        )
    hours = max_age.total_seconds() / 3600
    if at < now - max_age:
        raise InvalidInput(
            f"{what} {at.isoformat()} is more than {hours:.0f} h old (clock now {now.isoformat()}){late}"
        )
    return at


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a logged-in user (``system`` for the command line and the seeders)."""

    id: int | None
    name: str
    role: Role
    unit_id: int | None = None


SYSTEM = Actor(None, "system", Role.ADMIN)


@dataclass
class Ctx:
    engine: Engine
    routers: dict[str, Router]
    bus: Bus = field(default_factory=InProcessBus)
    clock: Callable[[], datetime] = utcnow
    #: the console's offline basemap (vector tiles of the road graph), built on its first tile
    basemap: LazyBasemap = field(default_factory=LazyBasemap)
    #: SQLite admits one writer at a time; writers of this process queue here, in order, instead of
    #: sleeping and retrying on the database lock
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    #: bearer-token digest -> (actor, time until which the entry may be used); see services.auth
    token_cache: dict[str, tuple[Actor, datetime]] = field(default_factory=dict)
    #: the newest position fix of each unit heard by any process (through the bus), also the fixes that were
    #: not stored: unit id -> (lat, lon, fix time). The ranking prefers it to the stored position when newer.
    live_positions: dict[int, tuple[float, float, datetime]] = field(default_factory=dict)
    #: when each unit's recomputed ETA was last pushed (dispatch.services.positions)
    eta_pushed_at: dict[int, datetime] = field(default_factory=dict)
    #: guards the small per-process dicts above against the worker threads
    state_lock: threading.Lock = field(default_factory=threading.Lock)
    #: the place-name index of GET /api/v1/geocode, built on its first query (dispatch.geo.gazetteer)
    gazetteer: GazetteerCache = field(default_factory=GazetteerCache)
    #: stores position fixes many per transaction (dispatch.services.positions.FixWriter), made on first use
    fix_writer: Any = None
    #: takes calls many per transaction (dispatch.services.intake.Intake), made on first use
    intake: Any = None

    def __post_init__(self) -> None:
        options: dict[str, Any] = {"dispatch_readonly": True}
        if self.engine.dialect.name == "postgresql":
            # each statement on its own (PostgreSQL's READ COMMITTED gives every statement its own snapshot
            # anyway): no BEGIN and ROLLBACK round trips around a read
            options["isolation_level"] = "AUTOCOMMIT"
        #: the engine for reads only (Ctx.reader's sessions, and plain connections where a session costs too much)
        self.read_engine = self.engine.execution_options(**options)

    def reader(self) -> Session:
        """A session for reads only: on SQLite it does not take the write lock, so reads run beside writes."""
        return Session(self.read_engine, expire_on_commit=False)

    @property
    def ambulance(self) -> Router:
        return self.routers["ambulance"]


class UnitOfWork:
    """One transaction. Events appended here get their sequence numbers inside it and are published after it
    commits; a rolled-back transaction publishes nothing."""

    def __init__(self, ctx: Ctx, actor: Actor) -> None:
        self.ctx = ctx
        self.actor = actor
        self.now = ctx.clock()
        self.session = Session(ctx.engine, expire_on_commit=False)
        self._events: list[Event] = []

    def emit(self, kind: str, *, incident_id: int | None = None, unit_id: int | None = None, **data: Any) -> Event:
        seq = self.session.execute(
            text("UPDATE eventcounter SET value = value + 1 WHERE id = 1 RETURNING value")
        ).scalar_one()
        ev = Event(
            seq=int(seq),
            at=self.now,
            actor=self.actor.name,
            kind=kind,
            incident_id=incident_id,
            unit_id=unit_id,
            data=_jsonable(data),
        )
        # a plain INSERT: the log is append-only, so the ORM's change tracking would only cost time
        self.session.execute(insert_row(Event), row_values(ev))
        self._events.append(ev)
        return ev

    def emit_many(self, new: list[NewEvent]) -> list[Event]:
        """Several events in order, for one counter update and one multi-row INSERT (a batch of position
        fixes); the same sequence numbers and log rows as that many :meth:`emit` calls."""
        if not new:
            return []
        last = self.session.execute(
            text("UPDATE eventcounter SET value = value + :n WHERE id = 1 RETURNING value"), {"n": len(new)}
        ).scalar_one()
        first = int(last) - len(new) + 1
        events = [
            Event(
                seq=first + i,
                at=self.now,
                actor=e.actor,
                kind=e.kind,
                incident_id=e.incident_id,
                unit_id=e.unit_id,
                data=_jsonable(e.data),
            )
            for i, e in enumerate(new)
        ]
        self.session.execute(insert_row(Event), [row_values(ev) for ev in events])
        self._events.extend(events)
        return events


@dataclass(frozen=True)
class NewEvent:
    """An event for :meth:`UnitOfWork.emit_many`, with the actor it is recorded under."""

    kind: str
    actor: str
    incident_id: int | None
    unit_id: int | None
    data: dict[str, Any]


def insert_row(model: type[SQLModel]) -> Insert:
    """A Core INSERT into a model's table, for rows written once and never changed in the same transaction."""
    return insert(model.__table__)  # type: ignore[attr-defined]


def row_values(obj: SQLModel) -> dict[str, Any]:
    """The column values of a new ORM object, defaults included; a primary key not yet set is left out."""
    table = obj.__table__  # type: ignore[attr-defined]
    values = {c.name: getattr(obj, c.name) for c in table.columns}
    return {k: v for k, v in values.items() if v is not None or not table.columns[k].primary_key}


def event_message(ev: Event) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "at": ev.at.isoformat(),
        "actor": ev.actor,
        "kind": ev.kind,
        "incident_id": ev.incident_id,
        "unit_id": ev.unit_id,
        "data": ev.data,
    }


def started(ctx: Ctx, attr: str, make: Callable[[Ctx], Any]) -> Any:
    """The context's helper thread kept in ``attr`` (the fix writer, the intake), made on first use."""
    with ctx.state_lock:
        if getattr(ctx, attr) is None:
            setattr(ctx, attr, make(ctx))
        return getattr(ctx, attr)


@contextmanager
def unit_of_work(ctx: Ctx, actor: Actor) -> Iterator[UnitOfWork]:
    uow = UnitOfWork(ctx, actor)
    serial = ctx.write_lock if ctx.engine.dialect.name == "sqlite" else contextlib.nullcontext()
    try:
        with serial, uow.session.begin():
            if ctx.engine.dialect.name == "postgresql":
                # writers queue on the event-log counter row before they read what they change, so each use
                # case sees the state it changes (SQLite gets the same from BEGIN IMMEDIATE)
                uow.session.execute(text("SELECT value FROM eventcounter WHERE id = 1 FOR UPDATE"))
            uow.now = ctx.clock()  # stamped once the transaction holds the write lock: times follow seq order
            yield uow
    finally:
        uow.session.close()
    for ev in uow._events:
        ctx.bus.publish(event_message(ev))


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat()
        elif isinstance(v, dict):
            out[k] = _jsonable(v)
        elif hasattr(v, "value"):  # enums
            out[k] = v.value
        else:
            out[k] = v
    return out
