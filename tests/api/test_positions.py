"""Unit positions from phones: the OsmAnd protocol (GET, POST form) and Traccar Client's JSON on ``/osmand``,
device registration, validation with the reason, implausible jumps, thinning, live-only pushes, the ranking
from the newest fix and the ETA of a unit driving to its call. On SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from dispatch.api.positions import KNOT_MPS
from dispatch.db.models import Position
from dispatch.services.context import SYSTEM
from dispatch.services.positions import Fix, remember_fix, report_fix
from tests.api.conftest import API, BA_DINH, HOAN_KIEM, Api

METRE_LAT = 1 / 111_320  # degrees of latitude in a metre


# ---- helpers ------------------------------------------------------------------------------------------------
def north(p: tuple[float, float], metres: float) -> tuple[float, float]:
    return p[0] + metres * METRE_LAT, p[1]


def register(api: Api, callsign: str, device_id: str | None, *, user: str = "dispatcher") -> httpx.Response:
    return api.client.put(
        f"{API}/units/{api.unit(callsign)}/device", json={"device_id": device_id}, headers=api.headers(user)
    )


def osmand(api: Api, device: str, p: tuple[float, float], at: datetime, **extra: Any) -> httpx.Response:
    params = {"id": device, "lat": p[0], "lon": p[1], "timestamp": int(at.timestamp()), **extra}
    return api.client.get("/osmand", params=params)


def accepted(r: httpx.Response) -> None:
    assert r.status_code == 200 and r.text == "", f"{r.status_code}: {r.text}"


def refused(r: httpx.Response, *needles: str) -> str:
    assert r.status_code == 400, f"{r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("text/plain")
    assert "\n" not in r.text.strip(), r.text
    for needle in needles:
        assert needle in r.text, f"{needle!r} not in {r.text!r}"
    return r.text


def stored(api: Api, unit_id: int) -> list[Position]:
    with Session(api.ctx.engine) as s:
        return list(s.exec(select(Position).where(Position.unit_id == unit_id).order_by(col(Position.id))))


def unit_position(api: Api, unit_id: int) -> dict[str, Any]:
    unit = next(u for u in api.ok(api.get("/units")) if u["id"] == unit_id)
    position: dict[str, Any] = unit["position"]
    return position


def events(api: Api, kind: str) -> list[dict[str, Any]]:
    return [e for e in api.ok(api.get("/events", params={"limit": 5000})) if e["kind"] == kind]


@contextlib.contextmanager
def bus_messages(api: Api) -> Iterator[list[dict[str, Any]]]:
    """What the bus carries meanwhile, but the phone's presence (a fix also says the phone is connected)."""
    got: list[dict[str, Any]] = []

    def keep(m: dict[str, Any]) -> None:
        if m["kind"] not in ("unit.connected", "unit.disconnected"):
            got.append(m)

    unsubscribe = api.ctx.bus.subscribe(keep)
    try:
        yield got
    finally:
        unsubscribe()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ---- the OsmAnd protocol and Traccar Client -----------------------------------------------------------------
def test_osmand_get_post_form_and_post_query_are_stored(api: Api) -> None:
    unit_id = api.unit("A02")
    body = api.ok(register(api, "A02", "358240051111110"))
    assert body["device_id"] == "358240051111110" and body["callsign"] == "A02"
    t0 = now()
    extra = {"speed": 10, "bearing": 90, "altitude": 12.5, "accuracy": 6, "batt": 87, "hdop": 0.9}
    accepted(osmand(api, "358240051111110", HOAN_KIEM, t0, **extra))
    p1 = north(HOAN_KIEM, 100)
    form = {"deviceid": "358240051111110", "lat": p1[0], "lon": p1[1], "timestamp": int(t0.timestamp()) + 15}
    accepted(api.client.post("/osmand", data=form))
    p2 = north(HOAN_KIEM, 200)
    query = {"id": "358240051111110", "location": f"{p2[0]},{p2[1]}", "timestamp": int(t0.timestamp()) + 30}
    accepted(api.client.post("/osmand", params=query))

    rows = stored(api, unit_id)
    assert [(r.lat, r.lon) for r in rows] == [HOAN_KIEM, p1, p2]
    first = rows[0]
    assert first.at == t0 and first.source == "osmand" and first.flag is None
    assert first.speed_mps == pytest.approx(10 * KNOT_MPS) and first.bearing == 90 and first.altitude_m == 12.5
    assert first.accuracy_m == 6 and first.battery == 87
    position = unit_position(api, unit_id)
    assert (position["lat"], position["lon"]) == p2
    assert datetime.fromisoformat(position["at"]) == t0 + timedelta(seconds=30)
    logged = [e for e in events(api, "unit.position") if e["unit_id"] == unit_id]
    assert len(logged) == 3 and {e["actor"] for e in logged} == {"device:358240051111110"}
    assert logged[0]["data"]["speed_mps"] == pytest.approx(10 * KNOT_MPS) and logged[0]["data"]["source"] == "osmand"
    # the phone app's fixes count as its heartbeat: the unit is shown connected
    connected = [e for e in events(api, "unit.connected") if e["unit_id"] == unit_id]
    assert len(connected) == 1 and connected[0]["actor"] == "system"


def traccar_body(device: str, p: tuple[float, float], stamp: Any, **coords: Any) -> dict[str, Any]:
    """What Traccar Client 9 posts (transistorsoft background geolocation's location object)."""
    return {
        "location": {
            "timestamp": stamp,
            "coords": {
                "latitude": p[0],
                "longitude": p[1],
                "accuracy": 4.8,
                "speed": 8.3,
                "heading": 271.5,
                "altitude": 18.2,
                **coords,
            },
            "is_moving": True,
            "odometer": 1520,
            "event": "motionchange",
            "battery": {"level": 0.42, "is_charging": False},
            "activity": {"type": "in_vehicle"},
            "extras": {},
        },
        "device_id": device,
    }


def test_traccar_client_json_is_stored(api: Api) -> None:
    unit_id = api.unit("B03")
    api.ok(register(api, "B03", "traccar-b03"))
    t0 = now()
    stamp = t0.isoformat().replace("+00:00", ".000Z")
    accepted(api.client.post("/osmand", json=traccar_body("traccar-b03", HOAN_KIEM, stamp)))
    # -1 is the client's "unknown"
    later = (t0 + timedelta(seconds=20)).isoformat()
    p = north(HOAN_KIEM, 80)
    accepted(api.client.post("/osmand", json=traccar_body("traccar-b03", p, later, speed=-1, heading=-1)))
    first, second = stored(api, unit_id)
    assert (first.lat, first.lon, first.at, first.source) == (*HOAN_KIEM, t0, "traccar")
    assert (first.speed_mps, first.bearing, first.accuracy_m, first.altitude_m) == (8.3, 271.5, 4.8, 18.2)
    assert first.battery == pytest.approx(42)
    assert (second.speed_mps, second.bearing) == (None, None)
    assert (unit_position(api, unit_id)["lat"], unit_position(api, unit_id)["lon"]) == p
    refused(api.client.post("/osmand", json=traccar_body("nobody", HOAN_KIEM, stamp)), "unknown device id 'nobody'")


def test_timestamps_in_seconds_milliseconds_and_iso(api: Api) -> None:
    unit_id = api.unit("B04")
    api.ok(register(api, "B04", "b04"))
    t0 = now()
    t1, t2 = t0 + timedelta(seconds=15, milliseconds=250), t0 + timedelta(seconds=30)
    accepted(osmand(api, "b04", HOAN_KIEM, t0))  # unix seconds
    accepted(osmand(api, "b04", HOAN_KIEM, t0, timestamp=int(t1.timestamp() * 1000)))  # unix milliseconds
    accepted(osmand(api, "b04", HOAN_KIEM, t0, timestamp=t2.astimezone(UTC).isoformat().replace("+00:00", "Z")))
    t3 = (t0 + timedelta(seconds=45)).astimezone(timezone(timedelta(hours=7)))  # Hanoi time, with its offset
    accepted(osmand(api, "b04", HOAN_KIEM, t0, timestamp=t3.isoformat()))
    assert [r.at for r in stored(api, unit_id)] == [t0, t1, t2, t3]


def test_unknown_device_is_400_with_how_to_register_it(shared_api: Api) -> None:
    api = shared_api
    text = refused(osmand(api, "nobody-42", HOAN_KIEM, now()), "unknown device id 'nobody-42'")
    assert "dispatch units device CALLSIGN nobody-42" in text
    refused(api.client.post("/osmand", data={"id": "nobody-42", "lat": 21, "lon": 105}), "unknown device id")


@pytest.mark.parametrize(
    ("params", "needles"),
    [
        ({"lat": 95}, ["lat 95.0 is not allowed", "-90 to 90"]),
        ({"lon": -200}, ["lon -200.0 is not allowed", "-180 to 180"]),
        ({"lat": "north"}, ["lat='north' is not a number"]),
        ({"lat": "nan"}, ["lat nan is not allowed"]),
        ({"lat": "", "lon": ""}, ["no position", "lat= and lon="]),
        ({"location": "21.03;105.85", "lat": None, "lon": None}, ["'21.03;105.85' is not a position"]),
        ({"timestamp": "yesterday"}, ["timestamp 'yesterday' is not a time", "unix seconds"]),
        ({"timestamp": "2026-01-01 10:00:00"}, ["no time zone"]),
        ({"future_s": 3600}, ["in the future", "allowed skew 120 s"]),
        ({"future_s": -2 * 86400}, ["more than 24 h old"]),
        ({"accuracy": -5}, ["accuracy_m -5.0 is not allowed", "0 to 10000 m"]),
        ({"bearing": 400}, ["bearing 400.0 is not allowed", "0 to 360"]),
        ({"batt": 150}, ["battery 150.0 is not allowed", "0 to 100"]),
        ({"speed": 1000}, ["speed_mps", "0 to 150 m/s"]),
        ({"id": None}, ["no device id", "id=DEVICE_ID"]),
    ],
)
def test_bad_osmand_fix_is_400_with_the_reason(shared_api: Api, params: dict[str, Any], needles: list[str]) -> None:
    api = shared_api
    api.ok(register(api, "B05", "b05-phone"))
    before = stored(api, api.unit("B05"))
    params = dict(params)  # shared by both backends' runs
    at = now() + timedelta(seconds=params.pop("future_s", 0))
    query = {"id": "b05-phone", "lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "timestamp": int(at.timestamp()), **params}
    refused(api.client.get("/osmand", params={k: v for k, v in query.items() if v is not None}), *needles)
    assert stored(api, api.unit("B05")) == before


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (b"{not json", ["the body is not JSON"]),
        (b"[1, 2]", ["must be an object with device_id and location"]),
        (b'{"location": {"coords": {"latitude": 21, "longitude": 105}}}', ["no device_id"]),
        (b'{"device_id": "b05-phone", "location": {}}', ["no location.coords"]),
        (b'{"device_id": "b05-phone", "location": {"coords": {"latitude": "21", "longitude": 105}}}',
         ["location.coords.latitude '21' is not a number"]),
        (b'{"device_id": "b05-phone", "location": {"timestamp": "soon", "coords": {"latitude": 21, "longitude": 105}}}',
         ["location.timestamp 'soon' is not a time"]),
    ],
)  # fmt: skip
def test_bad_traccar_json_is_400_with_the_reason(shared_api: Api, body: bytes, needles: list[str]) -> None:
    api = shared_api
    api.ok(register(api, "B05", "b05-phone"))
    refused(api.client.post("/osmand", content=body, headers={"Content-Type": "application/json"}), *needles)


def test_http_position_report_is_checked_thinned_and_stored(api: Api) -> None:
    unit_id = api.unit("M02")
    t0 = now()
    u = api.ok(api.post(f"/units/{unit_id}/position", json={"lat": 21.03, "lon": 105.84, "at": t0.isoformat()}))
    assert (u["position"]["lat"], u["position"]["lon"]) == (21.03, 105.84)
    # 2 s and 10 m later: not stored, but the answer (and the ranking) has the newest position
    near = north((21.03, 105.84), 10)
    at = (t0 + timedelta(seconds=2)).isoformat()
    u = api.ok(api.post(f"/units/{unit_id}/position", json={"lat": near[0], "lon": near[1], "at": at}))
    assert (u["position"]["lat"], u["position"]["lon"]) == near
    assert [(r.lat, r.source) for r in stored(api, unit_id)] == [(21.03, "http")]
    body = api.post(f"/units/{unit_id}/position", json={"lat": 21.03, "lon": 105.84, "at": "2026-01-01T10:00:00"})
    assert body.status_code == 422 and "time zone" in body.json()["detail"]


# ---- validation over the service, jumps, thinning -----------------------------------------------------------
def test_implausible_jump_is_flagged_stored_for_review_and_does_not_move_the_unit(api: Api) -> None:
    unit_id = api.unit("A03")
    api.ok(register(api, "A03", "a03"))
    t0 = now()
    accepted(osmand(api, "a03", HOAN_KIEM, t0))
    # Ba Dinh Square is about 2 km away: 10 s later means about 750 km/h
    accepted(osmand(api, "a03", BA_DINH, t0 + timedelta(seconds=10)))
    position = unit_position(api, unit_id)
    assert (position["lat"], position["lon"]) == HOAN_KIEM
    assert api.ctx.live_positions[unit_id][:2] == HOAN_KIEM
    good, jump = stored(api, unit_id)
    assert good.flag is None
    assert jump.flag is not None and jump.flag.startswith("implausible jump: 2.") and "at most 250 km/h" in jump.flag
    flagged = events(api, "unit.position_flagged")
    assert [(e["unit_id"], e["data"]["lat"], e["data"]["flag"]) for e in flagged] == [(unit_id, BA_DINH[0], jump.flag)]
    # the unit drives on normally afterwards
    accepted(osmand(api, "a03", north(HOAN_KIEM, 30), t0 + timedelta(seconds=20)))
    assert unit_position(api, unit_id)["lat"] == north(HOAN_KIEM, 30)[0]
    # the service answers what became of a fix; an older fix than the stored one changes nothing
    result = report_fix(api.ctx, actor=SYSTEM, unit_id=unit_id, fix=Fix(*BA_DINH, at=t0), source="test")
    assert result == {"unit_id": unit_id, "stored": False, "flag": None, "seq": None}
    assert len(stored(api, unit_id)) == 3


def test_the_first_fix_far_from_the_station_is_not_a_jump(api: Api) -> None:
    """A seeded unit stands at its station; its first fix is compared with no earlier fix."""
    unit_id = api.unit("A04")
    result = report_fix(api.ctx, actor=SYSTEM, unit_id=unit_id, fix=Fix(*BA_DINH), source="test")
    assert result["stored"] is True and result["flag"] is None and isinstance(result["seq"], int)


def test_thinning_and_live_only_messages(api: Api) -> None:
    unit_id = api.unit("B02")
    api.ok(register(api, "B02", "b02"))
    t0 = now()
    with bus_messages(api) as got:
        accepted(osmand(api, "b02", HOAN_KIEM, t0))
        assert len(stored(api, unit_id)) == 1
        assert [(m["kind"], m["seq"] is not None) for m in got] == [("unit.position", True)]
        # 2 s and 10 m later: not stored, pushed live only, and kept for the ranking
        p10 = north(HOAN_KIEM, 10)
        accepted(osmand(api, "b02", p10, t0 + timedelta(seconds=2), speed=3))
        assert len(stored(api, unit_id)) == 1
        live = got[-1]
        assert live["seq"] is None and live["kind"] == "unit.position" and live["unit_id"] == unit_id
        assert live["incident_id"] is None and live["actor"] == "device:b02"
        assert (live["data"]["lat"], live["data"]["lon"]) == p10
        assert live["data"]["speed_mps"] == pytest.approx(3 * KNOT_MPS)
        assert datetime.fromisoformat(live["data"]["position_at"]) == t0 + timedelta(seconds=2)
        assert api.ctx.live_positions[unit_id] == (*p10, t0 + timedelta(seconds=2))
        assert (unit_position(api, unit_id)["lat"], unit_position(api, unit_id)["lon"]) == HOAN_KIEM
        # 4 s later but 60 m from the last stored fix: stored
        p60 = north(HOAN_KIEM, 60)
        accepted(osmand(api, "b02", p60, t0 + timedelta(seconds=4)))
        assert [r.lat for r in stored(api, unit_id)] == [HOAN_KIEM[0], p60[0]]
        assert got[-1]["seq"] is not None
        # 6 s later and 5 m away: not stored; 12 s after the last stored one, standing still: stored
        accepted(osmand(api, "b02", north(p60, 5), t0 + timedelta(seconds=10)))
        accepted(osmand(api, "b02", north(p60, 5), t0 + timedelta(seconds=16)))
        assert len(stored(api, unit_id)) == 3
    # with an incident, every fix is stored (with the incident's id)
    inc_id = api.create_incident(complaint="fall")["incident"]["id"]
    api.ok(api.assign(inc_id, unit_id), 201)
    for k in range(1, 4):
        accepted(osmand(api, "b02", north(p60, 5 + k), t0 + timedelta(seconds=16 + k)))
    rows = stored(api, unit_id)
    assert len(rows) == 6 and [r.incident_id for r in rows[3:]] == [inc_id] * 3


def test_the_next_recommendation_uses_the_newest_fix(api: Api) -> None:
    inc = api.create_incident(complaint="fall")
    far = next(r for r in inc["recommendations"] if r["distance_m"] > 2000)
    unit_id = far["unit_id"]
    near = north(HOAN_KIEM, 40)
    message = {
        "seq": None,
        "kind": "unit.position",
        "unit_id": unit_id,
        "incident_id": None,
        "data": {"lat": near[0], "lon": near[1], "position_at": now().isoformat()},
    }
    # a fix another server process heard (it reaches this one on the bus)
    assert remember_fix(api.ctx, message) is True
    assert remember_fix(api.ctx, message) is False  # not newer
    assert remember_fix(api.ctx, {**message, "kind": "unit.status"}) is False
    recs = api.ok(api.get(f"/incidents/{inc['incident']['id']}/recommendations"))["recommendations"]
    again = next(r for r in recs if r["unit_id"] == unit_id)
    assert again["distance_m"] < 500 < far["distance_m"]


def test_eta_is_recomputed_and_pushed_while_driving_to_the_call(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    unit_id = api.unit("A05")
    api.ok(register(api, "A05", "a05"))
    inc_id = api.create_incident()["incident"]["id"]
    t0 = now()
    accepted(osmand(api, "a05", BA_DINH, t0))  # not on a call yet: no ETA
    api.ok(api.assign(inc_id, unit_id), 201)
    with bus_messages(api) as got:

        def etas() -> list[dict[str, Any]]:
            return [m for m in got if m["kind"] == "unit.eta"]

        accepted(osmand(api, "a05", BA_DINH, t0 + timedelta(seconds=1)))
        (first,) = etas()
        assert first["seq"] is None and first["unit_id"] == unit_id and first["incident_id"] == inc_id
        assert first["data"]["eta_s"] > 60 and first["data"]["distance_m"] > 1500
        # within 5 s of the last push: the fix is stored (on a call), the ETA is not recomputed
        accepted(osmand(api, "a05", north(BA_DINH, 20), t0 + timedelta(seconds=2)))
        assert len(etas()) == 1
        real = api.ctx.clock
        monkeypatch.setattr(api.ctx, "clock", lambda: real() + timedelta(seconds=6))
        api.ok(api.status(unit_id, "en_route"))
        closer = (21.0320, 105.8450)  # 1.3 km on, a minute later
        accepted(osmand(api, "a05", closer, t0 + timedelta(seconds=60)))
        assert len(etas()) == 2 and etas()[1]["data"]["eta_s"] < first["data"]["eta_s"]
        monkeypatch.setattr(api.ctx, "clock", lambda: real() + timedelta(seconds=12))
        api.ok(api.status(unit_id, "on_scene"))
        accepted(osmand(api, "a05", HOAN_KIEM, t0 + timedelta(seconds=100)))
        assert len(etas()) == 2  # on scene: no drive time to push


# ---- device registration ------------------------------------------------------------------------------------
def test_device_registration(api: Api) -> None:
    body = api.ok(register(api, "A06", "pixel-7:a06"))
    assert body["device_id"] == "pixel-7:a06"
    assert api.ok(register(api, "A06", "pixel-7:a06"))["device_id"] == "pixel-7:a06"  # again: no change
    # one device, one unit
    taken = register(api, "A07", "pixel-7:a06")
    assert taken.status_code == 409 and "A06" in taken.json()["detail"]
    assert taken.json()["current"]["callsign"] == "A06"
    for user in ("planner", "crew-a01"):
        r = register(api, "A01", "mine", user=user)
        assert r.status_code == 403, r.text
    bad = register(api, "A07", "has space")
    assert bad.status_code == 422 and "letters, digits" in bad.json()["detail"]
    assert register(api, "A07", "").status_code == 422
    missing = api.client.put(f"{API}/units/987654/device", json={"device_id": "x"}, headers=api.headers("dispatcher"))
    assert missing.status_code == 404
    # the device id is the phone's credential: neither the event log nor the unit list shows it
    logged = events(api, "unit.device")
    assert [e["data"] for e in logged] == [{"registered": True}]
    assert "pixel-7:a06" not in str(api.ok(api.get("/units", user="crew-a01")))
    # cleared: the phone is unknown again
    assert api.ok(register(api, "A06", None))["device_id"] is None
    refused(osmand(api, "pixel-7:a06", HOAN_KIEM, now()), "unknown device id")
    assert api.ok(register(api, "A07", "pixel-7:a06"))["device_id"] == "pixel-7:a06"


def test_osmand_takes_no_bearer_token(shared_api: Api) -> None:
    api = shared_api
    api.ok(register(api, "B06", "b06"))
    bad_token = {"Authorization": "Bearer not-a-token"}
    r = api.client.get("/osmand", params={"id": "b06", "lat": 21.03, "lon": 105.85}, headers=bad_token)
    accepted(r)
