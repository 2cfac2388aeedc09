"""SQLModel tables. Times are timezone-aware UTC; incident and assignment times carry NEMSIS eTimes names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Dialect, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, also on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the database stores timezone-aware UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        out: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return out


def _ts(nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(UTCDateTime(), nullable=nullable)


class Station(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    lat: float
    lon: float


class Hospital(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    name_en: str = ""
    lat: float
    lon: float
    osm_id: str = ""
    capabilities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    emergency: bool = False
    diversion: bool = False


class Unit(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    callsign: str = Field(unique=True, index=True)
    type: str
    station_id: int | None = Field(default=None, foreign_key="station.id")
    status: str = "available"
    lat: float | None = None
    lon: float | None = None
    position_at: datetime | None = Field(default=None, sa_column=_ts())
    incident_id: int | None = Field(default=None, foreign_key="incident.id")
    version: int = 0  # bumped by every change: the compare-and-set guard against concurrent edits
    #: the id a phone app (OsmAnd / Traccar Client) reports positions under
    device_id: str | None = Field(default=None, unique=True, index=True)
    #: when the crew's phone was last heard from (socket, heartbeat or position), and whether it counts as
    #: connected (cleared when it has been silent longer than the heartbeat timeout)
    last_seen_at: datetime | None = Field(default=None, sa_column=_ts())
    connected: bool = False


class Incident(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    status: str = "received"
    caller_number: str = ""
    lat: float
    lon: float
    address: str = ""
    snap_lat: float
    snap_lon: float
    snap_distance_m: float
    complaint: str
    priority: str
    capability: str
    hospital_capability: str | None = None
    notes: str = ""
    created_by: str
    psap_call_at: datetime = Field(sa_column=_ts(False))  # eTimes.01
    cancelled_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.14
    cancel_reason: str = ""
    closed_at: datetime | None = Field(default=None, sa_column=_ts())
    version: int = 0


class Assignment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    assigned_by: str
    active: bool = True
    eta_s_at_assignment: float | None = None
    hospital_id: int | None = Field(default=None, foreign_key="hospital.id")
    unit_notified_at: datetime = Field(sa_column=_ts(False))  # eTimes.03
    acknowledged_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.04
    en_route_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.05
    on_scene_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.06
    left_scene_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.09
    at_destination_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.11
    transfer_of_care_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.12
    back_in_service_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.13
    cancelled_at: datetime | None = Field(default=None, sa_column=_ts())  # eTimes.14
    #: when the consoles were told the crew had not acknowledged (once per assignment)
    unack_alerted_at: datetime | None = Field(default=None, sa_column=_ts())


class Position(SQLModel, table=True):
    """Stored position fixes, thinned (see dispatch.services.positions); every fix while on an incident."""

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    incident_id: int | None = Field(default=None, index=True)
    at: datetime = Field(sa_column=_ts(False))
    received_at: datetime = Field(sa_column=_ts(False))
    lat: float
    lon: float
    speed_mps: float | None = None
    bearing: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    battery: float | None = None
    source: str = "socket"
    flag: str | None = None  # why the fix looks wrong (an implausible jump), kept for review


class Event(SQLModel, table=True):
    """The append-only event log. ``seq`` comes from :class:`EventCounter`, so it follows commit order."""

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=_ts(False))
    actor: str
    kind: str = Field(index=True)
    incident_id: int | None = Field(default=None, index=True)
    unit_id: int | None = Field(default=None, index=True)
    data: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class EventCounter(SQLModel, table=True):
    """One row; incrementing it inside the use case's transaction serialises writers in commit order."""

    id: int = Field(default=1, primary_key=True)
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    role: str
    unit_id: int | None = Field(default=None, foreign_key="unit.id")
    password_hash: str
    active: bool = True


class Token(SQLModel, table=True):
    token_hash: str = Field(primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    expires_at: datetime = Field(sa_column=_ts(False))


class IdempotencyKey(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id")
    key: str
    request_hash: str
    incident_id: int = Field(foreign_key="incident.id")
    created_at: datetime = Field(sa_column=_ts(False))


class RoadClosure(SQLModel, table=True):
    """A road segment or area an operator closed (flooding, an accident); applied to every vehicle's graph."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # "segment" (the road nearest to lat/lon) or "area" (a GeoJSON polygon)
    reason: str
    lat: float | None = None
    lon: float | None = None
    area: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_by: str
    created_at: datetime = Field(sa_column=_ts(False))
    reopened_at: datetime | None = Field(default=None, sa_column=_ts())
    reopened_by: str | None = None
