"""Request bodies. Field constraints make FastAPI answer 422 naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatch.core.types import Priority, UnitStatus


class IncidentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="latitude, decimal degrees")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="longitude, decimal degrees")
    complaint: str = Field(min_length=1, max_length=60, description="a triage card code: GET /api/v1/triage/cards")
    priority: Priority | None = Field(default=None, description="overrides the card's priority")
    caller_number: str = Field(default="", max_length=40)
    address: str = Field(default="", max_length=300)
    notes: str = Field(default="", max_length=4000)
    call_received_at: AwareDatetime | None = Field(
        default=None,
        description="when the phone call reached the centre (eTimes.01), ISO 8601 with a time zone, at most 24 h "
        "ago; default: when the call is recorded",
    )


class AssignmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: int = Field(gt=0)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: UnitStatus
    hospital_id: int | None = Field(default=None, gt=0)


class PositionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    at: datetime | None = None


class DeviceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str | None = Field(
        min_length=1, max_length=64, description="the identifier the phone app reports under; null clears it"
    )


class DiversionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    diversion: bool


class ClosureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=300)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    area: dict[str, Any] | None = Field(default=None, description="a GeoJSON Polygon or MultiPolygon (lon, lat)")
