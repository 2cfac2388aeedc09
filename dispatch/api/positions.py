"""Positions from phone apps (OsmAnd, Traccar Client) and the registration of their device ids.

``GET`` or ``POST /osmand`` speaks the OsmAnd protocol as the Traccar server implements it, so that an existing
phone app can report a unit's position. It takes no bearer token: the device id is the credential, as in
Traccar; register it with ``PUT /api/v1/units/{unit_id}/device`` or ``dispatch units device CALLSIGN ID``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from dispatch.api.deps import ActorDep, CtxDep
from dispatch.api.schemas import DeviceBody
from dispatch.core.errors import DispatchError, InvalidInput
from dispatch.core.types import LatLon
from dispatch.services import devices
from dispatch.services.positions import Fix, number_field, parse_time
from dispatch.services.units import unit_dict

router = APIRouter()

KNOT_MPS = 1852 / 3600


@router.api_route("/osmand", methods=["GET", "POST"], tags=["positions"], response_class=PlainTextResponse)
async def osmand(request: Request, ctx: CtxDep) -> PlainTextResponse:
    """A position fix from a phone app; **no bearer token**: the device id is the credential, as in Traccar.

    - OsmAnd protocol, in the query string (GET or POST) or a form body (POST): ``id`` (or ``deviceid``),
      ``lat``, ``lon`` (or ``location=LAT,LON``), ``timestamp`` (unix seconds, unix milliseconds or ISO 8601),
      ``speed`` (knots), ``bearing`` (or ``heading``), ``altitude`` (m), ``accuracy`` (m), ``batt`` (%).
      Other parameters (``hdop``, ``valid``, ...) are accepted and ignored.
    - Traccar Client 9, a JSON body (``Content-Type: application/json``): ``device_id``, ``location.timestamp``,
      ``location.coords.{latitude, longitude, speed (m/s), heading, altitude, accuracy}``,
      ``location.battery.level`` (0-1); negative values mean unknown.

    Answers 200 with an empty body, or 400 with a one-line reason (an unknown device id, a bad fix). The fix is
    recorded as by ``device:<id>``; docs/positions.md says what is stored and what is refused.
    """
    try:
        if request.method == "POST" and request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise InvalidInput(f"the body is not JSON ({exc})") from None
            device_id, fix = parse_traccar_json(body)
            source = "traccar"
        else:
            params = request.query_params
            if not params and request.method == "POST":  # as Traccar: no query string, so the form body
                params = QueryParams((await request.body()).decode("utf-8", errors="replace"))
            device_id, fix = parse_osmand(params)
            source = "osmand"
        result = await run_in_threadpool(devices.report_device_fix, ctx, device_id=device_id, fix=fix, source=source)
        live = getattr(request.app.state, "live", None)
        if live is not None:  # a fix from the phone app is a heartbeat of the unit's phone too
            await live.seen(result["unit_id"])
    except DispatchError as exc:
        return PlainTextResponse(" ".join(str(exc).split()), status_code=400)
    return PlainTextResponse("")


@router.put("/api/v1/units/{unit_id}/device", tags=["units"])
def set_device(ctx: CtxDep, actor: ActorDep, unit_id: int, body: DeviceBody) -> dict[str, Any]:
    """Register the phone (its OsmAnd / Traccar Client identifier) that reports this unit's position; null
    clears it. 409 when another unit has that device id."""
    unit = devices.set_device(ctx, actor=actor, unit_id=unit_id, device_id=body.device_id)
    return {**unit_dict(unit), "device_id": unit.device_id}


def parse_osmand(params: Mapping[str, str]) -> tuple[str, Fix]:
    """The device id and the fix of an OsmAnd request's parameters."""
    device_id = params.get("id") or params.get("deviceid")
    if not device_id:
        raise InvalidInput("no device id: send id=DEVICE_ID (or deviceid=DEVICE_ID)")
    lat, lon = _param(params, "lat"), _param(params, "lon")
    if lat is None or lon is None:
        if not params.get("location"):
            raise InvalidInput("no position: send lat= and lon= in decimal degrees (or location=LAT,LON)")
        p = LatLon.parse(params["location"])
        lat, lon = p.lat, p.lon
    speed_kn = _param(params, "speed")
    stamp = params.get("timestamp")
    return device_id, Fix(
        lat,
        lon,
        at=parse_time(stamp, "timestamp") if stamp else None,
        speed_mps=None if speed_kn is None else speed_kn * KNOT_MPS,
        bearing=_param(params, "bearing") if "bearing" in params else _param(params, "heading"),
        altitude_m=_param(params, "altitude"),
        accuracy_m=_param(params, "accuracy"),
        battery=_param(params, "batt"),
    )


def parse_traccar_json(body: Any) -> tuple[str, Fix]:
    """The device id and the fix of the JSON that Traccar Client 9 posts."""
    if not isinstance(body, dict):
        raise InvalidInput("the JSON body must be an object with device_id and location, as Traccar Client sends")
    device_id = body.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise InvalidInput("no device_id in the JSON body: send the identifier the app shows")
    location = body.get("location")
    coords = location.get("coords") if isinstance(location, dict) else None
    if not isinstance(location, dict) or not isinstance(coords, dict):
        raise InvalidInput("no location.coords in the JSON body: send location.coords.latitude and .longitude")

    def coord(key: str) -> float | None:
        return number_field(coords, key, "location.coords.")

    lat, lon = coord("latitude"), coord("longitude")
    if lat is None or lon is None:
        raise InvalidInput("no position: send location.coords.latitude and location.coords.longitude")
    battery = location.get("battery")
    level = number_field(battery, "level", "location.battery.") if isinstance(battery, dict) else None
    stamp = location.get("timestamp")
    return device_id, Fix(
        lat,
        lon,
        at=None if stamp is None else parse_time(stamp, "location.timestamp"),
        speed_mps=_known(coord("speed")),
        bearing=_known(coord("heading")),
        altitude_m=coord("altitude"),
        accuracy_m=_known(coord("accuracy")),
        battery=None if level is None or level < 0 else level * 100,
    )


def _param(params: Mapping[str, str], name: str) -> float | None:
    text = params.get(name)
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{name}={text!r} is not a number") from None


def _known(value: float | None) -> float | None:
    """Traccar Client sends -1 for what the phone does not know (speed, heading, accuracy)."""
    return None if value is None or value < 0 else value
