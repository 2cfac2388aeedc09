"""Every endpoint of /api/v1 on a real SQLite file and a real PostgreSQL database: the happy paths, the bad
inputs (404 unknown ids, 422 naming the field, 422 outside road coverage with the distance, 409 illegal
transitions) and the whole life of an incident from the call to the unit back in service."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dispatch.core.replay import rebuild_incident
from dispatch.core.triage import CARDS
from tests.api.conftest import BA_DINH, BACH_MAI, HOAN_KIEM, Api

MISSING = 987_654


# ---- helpers ------------------------------------------------------------------------------------------------
def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body: dict[str, Any] = r.json()
    return body


def assert_422_names(r: httpx.Response, field: str) -> None:
    """422, and the answer names the field: in a validation error's ``loc`` or in the problem's detail."""
    body = problem(r, 422)
    detail = body["detail"]
    if isinstance(detail, list):
        locs = [[str(p) for p in e["loc"]] for e in detail]
        assert any(field in loc for loc in locs), f"{field!r} not named in {locs}"
    else:
        assert field in detail, f"{field!r} not named in {detail!r}"


def assert_404_names(r: httpx.Response, what: str, ident: int) -> None:
    body = problem(r, 404)
    assert what in body["detail"] and str(ident) in body["detail"], body


def ts(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def events_of(api: Api, incident_id: int) -> list[dict[str, Any]]:
    evs = api.ok(api.get("/events", params={"after": 0, "limit": 5000}))
    return [e for e in evs if e["incident_id"] == incident_id]


def walk_to_closed(api: Api, incident_id: int, unit_id: int, hospital_id: int) -> None:
    for status, extra in (
        ("en_route", {}),
        ("on_scene", {}),
        ("transporting", {"hospital_id": hospital_id}),
        ("at_hospital", {}),
        ("available", {}),
    ):
        body = api.ok(api.status(unit_id, status, **extra))
        assert body["changed"] is True and body["unit"]["status"] == status
    assert api.ok(api.get(f"/incidents/{incident_id}"))["status"] == "closed"


# ---- health and login ---------------------------------------------------------------------------------------
def test_healthz_answers_without_a_token(shared_api: Api) -> None:
    api = shared_api
    body = api.ok(api.client.get("/healthz"))
    assert body["status"] == "ok"
    assert body["database"] == api.backend
    assert set(body["graphs"]) == {"ambulance", "motorbike"} and min(body["graphs"].values()) > 1000


def test_the_server_checkpoints_sqlite_in_the_background(shared_api: Api) -> None:
    checkpointer = shared_api.app.state.checkpointer
    if shared_api.backend != "sqlite":
        assert checkpointer is None, "PostgreSQL checkpoints by itself"
        return
    runs = checkpointer.runs
    deadline = time.monotonic() + 10
    while checkpointer.runs == runs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpointer.runs > runs, "the WAL checkpoint thread is not running"


def test_login_gives_a_token_that_works(shared_api: Api) -> None:
    api = shared_api
    body = api.ok(api.client.post("/api/v1/auth/token", data={"username": "crew-a01", "password": "demo-115-hanoi"}))
    assert body["token_type"] == "bearer" and body["role"] == "crew" and body["user"] == "crew-a01"
    assert body["unit_id"] == api.unit("A01")
    assert body["expires_in"] > 8 * 3600
    r = api.client.get("/api/v1/units", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert r.status_code == 200 and len(r.json()) == len(api.db.units)


@pytest.mark.parametrize(("username", "password"), [("dispatcher", "wrong-password"), ("nobody", "demo-115-hanoi")])
def test_login_with_wrong_credentials_is_401(shared_api: Api, username: str, password: str) -> None:
    api = shared_api
    r = api.client.post("/api/v1/auth/token", data={"username": username, "password": password})
    body = problem(r, 401)
    assert "wrong user name or password" in body["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_login_without_a_password_field_is_422_naming_it(shared_api: Api) -> None:
    api = shared_api
    assert_422_names(api.client.post("/api/v1/auth/token", data={"username": "dispatcher"}), "password")


# ---- triage, intake, recommendations ------------------------------------------------------------------------
def test_triage_cards_are_the_open_card_set(shared_api: Api) -> None:
    api = shared_api
    cards = api.ok(api.get("/triage/cards"))
    assert [c["code"] for c in cards] == [c.code for c in CARDS]
    assert {c["priority"] for c in cards} <= {"echo", "delta", "charlie", "bravo", "alpha", "omega"}


def test_create_incident_echoes_the_call_and_ranks_units(api: Api) -> None:
    body = api.create_incident(
        lat=HOAN_KIEM[0], lon=HOAN_KIEM[1], complaint="cardiac_arrest", caller_number="0912345678",
        address="Đinh Tiên Hoàng, Hoàn Kiếm", notes="collapsed at the lake",
    )  # fmt: skip
    inc = body["incident"]
    assert inc["status"] == "received"
    assert (inc["complaint"], inc["priority"], inc["capability"], inc["hospital_capability"]) == (
        "cardiac_arrest",
        "echo",
        "als",
        "cardiac",
    )
    assert inc["location"]["lat"] == HOAN_KIEM[0] and inc["location"]["lon"] == HOAN_KIEM[1]
    assert inc["location"]["address"] == "Đinh Tiên Hoàng, Hoàn Kiếm"
    assert inc["caller_number"] == "0912345678" and inc["notes"] == "collapsed at the lake"
    assert 0 <= inc["location"]["road"]["snap_distance_m"] <= 250
    assert inc["created_by"] == "dispatcher"
    assert ts(inc["times"]["eTimes.01"]) <= datetime.now(UTC)
    assert inc["times"]["eTimes.14"] is None and inc["closed_at"] is None

    recs = body["recommendations"]
    assert len(recs) + len(body["excluded"]) == len(api.db.units)
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1))
    capable = [r for r in recs if r["meets_capability"]]
    below = [r for r in recs if not r["meets_capability"]]
    assert recs == capable + below, "every unit that meets ALS comes before every one that does not"
    assert {r["type"] for r in capable} == {"als_ambulance"}
    assert {r["type"] for r in below} == {"bls_ambulance", "motorbike"}
    excluded_als = {x["callsign"] for x in body["excluded"] if x["callsign"].startswith("A")}
    assert {r["callsign"] for r in capable} | excluded_als == {cs for cs in api.db.units if cs.startswith("A")}
    assert all(x["reason"] for x in body["excluded"])
    for group in (capable, below):
        etas = [r["eta_s"] for r in group]
        assert etas == sorted(etas), "each group is ranked by drive time"
    assert all(r["eta_s"] > 0 and r["distance_m"] > 0 for r in recs)
    assert "min by road" in recs[0]["reason"]
    # GET .../recommendations gives the same ranking
    again = api.ok(api.get(f"/incidents/{inc['id']}/recommendations"))
    assert [r["unit_id"] for r in again["recommendations"]] == [r["unit_id"] for r in recs]


def test_every_demo_unit_can_be_recommended(api: Api) -> None:
    """Every unit the demo seeds stands at a station on the road network: a call in the centre can use each."""
    body = api.create_incident(lat=HOAN_KIEM[0], lon=HOAN_KIEM[1], complaint="cardiac_arrest")
    unusable = {x["callsign"]: x["reason"] for x in body["excluded"]}
    assert unusable == {}, f"seeded units that can never be recommended: {unusable}"


@pytest.mark.parametrize(
    ("complaint", "priority", "expected_priority", "expected_capability"),
    [("fall", None, "bravo", "bls"), ("fall", "echo", "echo", "als"), ("sick_person", "delta", "delta", "als")],
)
def test_priority_override_decides_the_capability(
    api: Api, complaint: str, priority: str | None, expected_priority: str, expected_capability: str
) -> None:
    fields = {"complaint": complaint} | ({"priority": priority} if priority else {})
    inc = api.create_incident(**fields)["incident"]
    assert (inc["priority"], inc["capability"]) == (expected_priority, expected_capability)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lon": 105.85, "complaint": "fall"}, "lat"),
        ({"lat": 21.03, "complaint": "fall"}, "lon"),
        ({"lat": 21.03, "lon": 105.85}, "complaint"),
        ({"lat": 91.0, "lon": 105.85, "complaint": "fall"}, "lat"),
        ({"lat": -90.5, "lon": 105.85, "complaint": "fall"}, "lat"),
        ({"lat": 21.03, "lon": 180.01, "complaint": "fall"}, "lon"),
        ({"lat": 21.03, "lon": -181, "complaint": "fall"}, "lon"),
        ({"lat": "north", "lon": 105.85, "complaint": "fall"}, "lat"),
        ({"lat": 21.03, "lon": 105.85, "complaint": ""}, "complaint"),
        ({"lat": 21.03, "lon": 105.85, "complaint": "fall", "priority": "urgent"}, "priority"),
        ({"lat": 21.03, "lon": 105.85, "complaint": "fall", "caller_number": "1" * 41}, "caller_number"),
        ({"lat": 21.03, "lon": 105.85, "complaint": "fall", "colour": "red"}, "colour"),
    ],
)
def test_malformed_incident_is_422_naming_the_field(shared_api: Api, body: dict[str, Any], field: str) -> None:
    api = shared_api
    assert_422_names(api.post("/incidents", json=body), field)


@pytest.mark.parametrize(
    ("path", "literal"),
    [("/incidents", "NaN"), ("/incidents", "Infinity"), ("/incidents", "-Infinity"), ("/units/{unit}/position", "NaN")],
)
def test_non_finite_coordinate_is_422_naming_it(shared_api: Api, path: str, literal: str) -> None:
    api = shared_api
    content = f'{{"lat": {literal}, "lon": 105.85, "complaint": "fall"}}'
    if "position" in path:
        content = f'{{"lat": {literal}, "lon": 105.85}}'
    client = TestClient(api.app, raise_server_exceptions=False)  # a crash shows as its status, not a traceback
    try:
        r = client.post(
            "/api/v1" + path.format(unit=api.unit("M04")),
            content=content,
            headers={**api.headers("dispatcher"), "Content-Type": "application/json"},
        )
    finally:
        client.close()
    assert_422_names(r, "lat")


def test_body_that_is_not_json_is_422(shared_api: Api) -> None:
    api = shared_api
    r = api.post("/incidents", content=b"lat=21&lon=105", headers={"Content-Type": "application/json"})
    problem(r, 422)


def test_unknown_complaint_is_422_listing_the_cards(shared_api: Api) -> None:
    api = shared_api
    body = problem(api.post("/incidents", json={"lat": 21.03, "lon": 105.85, "complaint": "hiccups"}), 422)
    assert "complaint 'hiccups' is not a triage card" in body["detail"] and "cardiac_arrest" in body["detail"]


def test_location_outside_road_coverage_is_422_with_the_distance(shared_api: Api) -> None:
    api = shared_api
    before = len(api.ok(api.get("/incidents")))
    r = api.post("/incidents", json={"lat": BACH_MAI[0], "lon": BACH_MAI[1], "complaint": "stroke"})
    body = problem(r, 422)
    assert body["title"] == "outside road coverage"
    assert body["max_distance_m"] == 250
    assert 800 < body["distance_m"] < 1300, body  # Bach Mai lies about 1 km from the nearest drivable road
    assert f"{body['distance_m']:.0f} m from the nearest road" in body["detail"]
    assert len(api.ok(api.get("/incidents"))) == before, "a refused call records nothing"


# ---- idempotent intake (sequential; the concurrent case runs against a real server) -------------------------
def test_retried_idempotency_key_returns_the_same_incident(api: Api) -> None:
    body = {"lat": BA_DINH[0], "lon": BA_DINH[1], "complaint": "stroke", "caller_number": "0900000001"}
    first = api.post("/incidents", json=body, headers={"Idempotency-Key": "call-0001"})
    second = api.post("/incidents", json=body, headers={"Idempotency-Key": "call-0001"})
    a, b = problem(first, 201), problem(second, 201)
    assert a["incident"]["id"] == b["incident"]["id"]
    assert "idempotent-replayed" not in first.headers and second.headers["idempotent-replayed"] == "true"
    listed = [i for i in api.ok(api.get("/incidents")) if i["caller_number"] == "0900000001"]
    assert len(listed) == 1
    created = [e for e in events_of(api, a["incident"]["id"]) if e["kind"] == "incident.created"]
    assert len(created) == 1
    # a different user's identical key is a different call
    other = problem(api.post("/incidents", json=body, headers={"Idempotency-Key": "call-0001"}, user="admin"), 201)
    assert other["incident"]["id"] != a["incident"]["id"]


def test_idempotency_key_reused_for_another_call_is_409(api: Api) -> None:
    body = {"lat": BA_DINH[0], "lon": BA_DINH[1], "complaint": "stroke"}
    first = problem(api.post("/incidents", json=body, headers={"Idempotency-Key": "k-1"}), 201)
    r = api.post("/incidents", json={**body, "complaint": "fall"}, headers={"Idempotency-Key": "k-1"})
    conflict = problem(r, 409)
    assert conflict["current"] == {"incident_id": first["incident"]["id"]}
    assert "k-1" in conflict["detail"]


def test_idempotency_key_too_long_is_422_naming_the_header(shared_api: Api) -> None:
    api = shared_api
    body = {"lat": BA_DINH[0], "lon": BA_DINH[1], "complaint": "stroke"}
    r = api.post("/incidents", json=body, headers={"Idempotency-Key": "x" * 201})
    assert "Idempotency-Key" in problem(r, 422)["detail"]


# ---- the whole life of an incident --------------------------------------------------------------------------
def test_full_lifecycle_from_call_to_back_in_service(api: Api) -> None:
    created = api.create_incident(complaint="cardiac_arrest", notes="first note")
    inc_id = created["incident"]["id"]
    first = created["recommendations"][0]
    assert first["meets_capability"] and first["rank"] == 1
    unit_id = first["unit_id"]

    asg = problem(api.assign(inc_id, unit_id), 201)
    assert asg["unit_id"] == unit_id and asg["active"] is True and asg["assigned_by"] == "dispatcher"
    assert asg["eta_s_at_assignment"] > 0
    assert asg["times"]["eTimes.03"] is not None
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "dispatched"
    units = {u["id"]: u for u in api.ok(api.get("/units"))}
    assert units[unit_id]["status"] == "dispatched" and units[unit_id]["incident_id"] == inc_id
    # the assigned unit is no longer recommended, and says why
    recs = api.ok(api.get(f"/incidents/{inc_id}/recommendations"))
    assert unit_id not in [r["unit_id"] for r in recs["recommendations"]]
    assert {"unit_id": unit_id, "reason": "dispatched: not free to take a call"}.items() <= next(
        x for x in recs["excluded"] if x["unit_id"] == unit_id
    ).items()

    expected_incident = {"en_route": "dispatched", "on_scene": "on_scene"}
    for status in ("en_route", "on_scene"):
        api.ok(api.status(unit_id, status))
        assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == expected_incident[status]

    hospitals = api.ok(api.get("/hospitals", params={"for_incident": inc_id}))
    assert hospitals["incident_id"] == inc_id and hospitals["hospitals"]
    hospital_id = hospitals["hospitals"][0]["hospital_id"]
    api.ok(api.status(unit_id, "transporting", hospital_id=hospital_id))
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "transporting"
    api.ok(api.status(unit_id, "at_hospital"))
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "at_hospital"
    done = api.ok(api.status(unit_id, "available"))
    assert done["unit"]["status"] == "available" and done["unit"]["incident_id"] is None

    inc = api.ok(api.get(f"/incidents/{inc_id}"))
    assert inc["status"] == "closed" and inc["closed_at"] is not None
    (a,) = inc["assignments"]
    assert a["unit_id"] == unit_id and a["hospital_id"] == hospital_id and a["active"] is False
    order = ["eTimes.03", "eTimes.05", "eTimes.06", "eTimes.09", "eTimes.11", "eTimes.12", "eTimes.13"]
    times = [ts(inc["times"]["eTimes.01"])] + [ts(a["times"][k]) for k in order]
    assert times == sorted(times), dict(zip(["eTimes.01", *order], times, strict=True))
    assert a["times"]["eTimes.14"] is None
    assert ts(inc["closed_at"]) >= times[-2]

    timeline = inc["timeline"]
    seqs = [e["seq"] for e in timeline]
    assert seqs == sorted(set(seqs)), "the timeline is in strictly increasing seq"
    assert [e["kind"] for e in timeline] == ["incident.created", "unit.assigned"] + ["unit.status"] * 5
    assert [e["data"]["status"] for e in timeline[2:]] == [
        "en_route",
        "on_scene",
        "transporting",
        "at_hospital",
        "available",
    ]
    assert timeline[-1]["data"]["incident_status"] == "closed"
    # the closed incident is off the open list and the incidents layer, still on the full list
    assert inc_id not in [i["id"] for i in api.ok(api.get("/incidents", params={"open": True}))]
    assert inc_id in [i["id"] for i in api.ok(api.get("/incidents", params={"status": "closed"}))]


def test_status_sent_twice_is_applied_once(api: Api) -> None:
    inc_id = api.create_incident()["incident"]["id"]
    unit_id = api.unit("A03")
    problem(api.assign(inc_id, unit_id), 201)
    assert api.ok(api.status(unit_id, "en_route"))["changed"] is True
    assert api.ok(api.status(unit_id, "en_route"))["changed"] is False
    kinds = [e["data"].get("status") for e in events_of(api, inc_id) if e["kind"] == "unit.status"]
    assert kinds == ["en_route"]


def test_second_unit_on_scene_then_first_unit_leaves(api: Api) -> None:
    """Two units on one call: the incident follows the most advanced unit and closes with the last one."""
    inc_id = api.create_incident()["incident"]["id"]
    a, m = api.unit("A04"), api.unit("M02")
    problem(api.assign(inc_id, m), 201)
    problem(api.assign(inc_id, a), 201)
    api.ok(api.status(m, "on_scene"))
    api.ok(api.status(a, "en_route"))
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "on_scene", "a lagging unit does not move it back"
    api.ok(api.status(m, "available"))
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "on_scene", "A04 is still on its way"
    api.ok(api.status(a, "on_scene"))
    api.ok(api.status(a, "returning"))
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "closed"


def test_cancel_releases_the_unit(api: Api) -> None:
    inc_id = api.create_incident(complaint="chest_pain")["incident"]["id"]
    unit_id = api.unit("A02")
    problem(api.assign(inc_id, unit_id), 201)
    api.ok(api.status(unit_id, "en_route"))
    inc = api.ok(api.post(f"/incidents/{inc_id}/cancel", json={"reason": "  caller called back: no need  "}))
    assert inc["status"] == "cancelled" and inc["cancel_reason"] == "caller called back: no need"
    assert inc["times"]["eTimes.14"] is not None
    unit = next(u for u in api.ok(api.get("/units")) if u["id"] == unit_id)
    assert unit["status"] == "available" and unit["incident_id"] is None
    full = api.ok(api.get(f"/incidents/{inc_id}"))
    (a,) = full["assignments"]
    assert a["active"] is False and a["times"]["eTimes.14"] == inc["times"]["eTimes.14"]
    kinds = [(e["kind"], e["unit_id"]) for e in full["timeline"]][-2:]
    assert kinds == [("incident.cancelled", None), ("unit.status", unit_id)]
    assert full["timeline"][-2]["data"]["released_units"] == [unit_id]
    # the released unit is free again: it can take the next call
    nxt = api.create_incident()["incident"]["id"]
    problem(api.assign(nxt, unit_id), 201)
    # a cancelled call cannot be cancelled again, nor get a unit
    again = problem(api.post(f"/incidents/{inc_id}/cancel", json={"reason": "twice"}), 409)
    assert again["state"] == "cancelled" and again["allowed"] == []
    assert "incident is cancelled" in again["detail"]
    late = problem(api.assign(inc_id, api.unit("A05")), 409)
    assert late["state"] == "cancelled" and "cancelled" in late["detail"]


@pytest.mark.parametrize(("reason", "field"), [("", "reason"), ("   ", "reason"), (None, "reason")])
def test_cancel_without_a_reason_is_422(shared_api: Api, reason: str | None, field: str) -> None:
    api = shared_api
    inc_id = api.create_incident()["incident"]["id"]
    body = {} if reason is None else {"reason": reason}
    assert_422_names(api.post(f"/incidents/{inc_id}/cancel", json=body), field)
    assert api.ok(api.get(f"/incidents/{inc_id}"))["status"] == "received"


def test_cancel_after_arrival_is_409(api: Api) -> None:
    inc_id = api.create_incident()["incident"]["id"]
    unit_id = api.unit("A06")
    problem(api.assign(inc_id, unit_id), 201)
    api.ok(api.status(unit_id, "on_scene"))
    body = problem(api.post(f"/incidents/{inc_id}/cancel", json={"reason": "too late"}), 409)
    assert body["state"] == "on_scene" and body["event"] == "cancel"
    assert "cancel" not in body["allowed"] and "close" in body["allowed"]


# ---- transitions and conflicts ------------------------------------------------------------------------------
def test_illegal_unit_transition_is_409_naming_state_and_allowed(shared_api: Api) -> None:
    api = shared_api
    unit_id = api.unit("B01")
    body = problem(api.status(unit_id, "on_scene"), 409)
    assert body["state"] == "available" and body["event"] == "on_scene"
    assert body["allowed"] == ["assign", "out_of_service"]
    assert "unit is available" in body["detail"] and "assign, out_of_service" in body["detail"]
    problem(api.status(unit_id, "transporting"), 409)
    assert next(u for u in api.ok(api.get("/units")) if u["id"] == unit_id)["status"] == "available"


def test_out_of_service_and_back(api: Api) -> None:
    unit_id = api.unit("B02")
    assert api.ok(api.status(unit_id, "out_of_service"))["unit"]["status"] == "out_of_service"
    inc = api.create_incident(complaint="fall")
    excluded = {x["unit_id"]: x["reason"] for x in inc["excluded"]}
    assert excluded[unit_id] == "out_of_service: not free to take a call"
    busy = problem(api.assign(inc["incident"]["id"], unit_id), 409)
    assert busy["current"]["status"] == "out_of_service"
    problem(api.status(unit_id, "en_route"), 409)
    assert api.ok(api.status(unit_id, "available"))["unit"]["status"] == "available"


def test_dispatched_cannot_be_reported(shared_api: Api) -> None:
    api = shared_api
    body = problem(api.status(api.unit("B03"), "dispatched"), 422)
    assert "'dispatched' is set by assigning" in body["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"status": "flying"}, "status"), ({}, "status"), ({"status": "en_route", "hospital_id": 0}, "hospital_id")],
)
def test_malformed_status_is_422_naming_the_field(shared_api: Api, body: dict[str, Any], field: str) -> None:
    api = shared_api
    assert_422_names(api.post(f"/units/{api.unit('B04')}/status", json=body), field)


def test_hospital_without_an_assignment_is_422(api: Api) -> None:
    unit_id = api.unit("B05")
    api.ok(api.status(unit_id, "out_of_service"))
    hospital_id = api.ok(api.get("/hospitals"))[0]["id"]
    body = problem(api.status(unit_id, "available", hospital_id=hospital_id), 422)
    assert "hospital" in body["detail"] and "assignment" in body["detail"]


def test_assigning_a_busy_unit_is_409_with_its_current_assignment(api: Api) -> None:
    first = api.create_incident()["incident"]["id"]
    second = api.create_incident(complaint="stroke")["incident"]["id"]
    unit_id = api.unit("A07")
    won = problem(api.assign(first, unit_id), 201)
    body = problem(api.assign(second, unit_id, user="dispatcher-2"), 409)
    cur = body["current"]
    assert cur["unit_id"] == unit_id and cur["callsign"] == "A07" and cur["status"] == "dispatched"
    assert cur["incident_id"] == first and cur["assignment_id"] == won["id"] and cur["assigned_by"] == "dispatcher"
    assert f"on incident {first}" in body["detail"]
    assert api.ok(api.get(f"/incidents/{second}"))["status"] == "received"


def test_returning_unit_can_be_retasked(api: Api) -> None:
    first = api.create_incident()["incident"]["id"]
    unit_id = api.unit("A08")
    problem(api.assign(first, unit_id), 201)
    api.ok(api.status(unit_id, "on_scene"))
    api.ok(api.status(unit_id, "returning"))
    assert api.ok(api.get(f"/incidents/{first}"))["status"] == "closed"
    second = api.create_incident(lat=BA_DINH[0], lon=BA_DINH[1])
    rec = next(r for r in second["recommendations"] if r["unit_id"] == unit_id)
    assert rec["status"] == "returning" and "returning" in rec["reason"]
    problem(api.assign(second["incident"]["id"], unit_id), 201)
    old = api.ok(api.get(f"/incidents/{first}"))["assignments"][0]
    assert old["active"] is False
    assert old["times"]["eTimes.13"] is not None, "the first response never gets its eTimes.13 (back in service)"


@pytest.mark.parametrize(
    ("body", "field"), [({}, "unit_id"), ({"unit_id": 0}, "unit_id"), ({"unit_id": "A01"}, "unit_id")]
)
def test_malformed_assignment_is_422_naming_the_field(shared_api: Api, body: dict[str, Any], field: str) -> None:
    api = shared_api
    inc_id = api.create_incident()["incident"]["id"]
    assert_422_names(api.post(f"/incidents/{inc_id}/assignments", json=body), field)


# ---- unknown ids --------------------------------------------------------------------------------------------
def test_unknown_ids_are_404_naming_the_id(shared_api: Api) -> None:
    api = shared_api
    inc_id = api.create_incident()["incident"]["id"]
    assert_404_names(api.get(f"/incidents/{MISSING}"), "incident", MISSING)
    assert_404_names(api.get(f"/incidents/{MISSING}/recommendations"), "incident", MISSING)
    assert_404_names(api.assign(MISSING, api.unit("A01")), "incident", MISSING)
    assert_404_names(api.assign(inc_id, MISSING), "unit", MISSING)
    assert_404_names(api.post(f"/incidents/{MISSING}/cancel", json={"reason": "x"}), "incident", MISSING)
    assert_404_names(api.post(f"/incidents/{MISSING}/notes", json={"text": "x"}), "incident", MISSING)
    assert_404_names(api.status(MISSING, "en_route"), "unit", MISSING)
    assert_404_names(api.post(f"/units/{MISSING}/position", json={"lat": 21.03, "lon": 105.85}), "unit", MISSING)
    assert_404_names(api.post(f"/hospitals/{MISSING}/diversion", json={"diversion": True}), "hospital", MISSING)
    assert_404_names(api.get("/hospitals", params={"for_incident": MISSING}), "incident", MISSING)
    # a unit that exists with a hospital that does not
    unit_id = api.unit("A09")
    problem(api.assign(inc_id, unit_id), 201)
    api.ok(api.status(unit_id, "on_scene"))
    assert_404_names(api.status(unit_id, "transporting", hospital_id=MISSING), "hospital", MISSING)
    assert next(u for u in api.ok(api.get("/units")) if u["id"] == unit_id)["status"] == "on_scene"


@pytest.mark.parametrize("path", ["/incidents/abc", "/incidents/1.5/recommendations", "/hospitals?for_incident=x"])
def test_ids_that_are_not_numbers_are_422(shared_api: Api, path: str) -> None:
    api = shared_api
    field = "for_incident" if "for_incident" in path else "incident_id"
    assert_422_names(api.get(path), field)


# ---- notes, lists, positions --------------------------------------------------------------------------------
def test_notes_append_to_the_incident(api: Api) -> None:
    inc_id = api.create_incident(notes="caller on the line")["incident"]["id"]
    ev = problem(api.post(f"/incidents/{inc_id}/notes", json={"text": " patient breathing again "}), 201)
    assert (
        ev["kind"] == "incident.note"
        and ev["incident_id"] == inc_id
        and ev["data"] == {"text": "patient breathing again"}
    )
    assert api.ok(api.get(f"/incidents/{inc_id}"))["notes"] == "caller on the line\npatient breathing again"
    assert_422_names(api.post(f"/incidents/{inc_id}/notes", json={"text": ""}), "text")
    assert_422_names(api.post(f"/incidents/{inc_id}/notes", json={}), "text")
    assert "empty" in problem(api.post(f"/incidents/{inc_id}/notes", json={"text": "   "}), 422)["detail"]


def test_incident_list_filters_and_orders_by_priority(api: Api) -> None:
    low = api.create_incident(complaint="back_pain")["incident"]["id"]
    high = api.create_incident(complaint="cardiac_arrest")["incident"]["id"]
    cancelled = api.create_incident(complaint="fall")["incident"]["id"]
    api.ok(api.post(f"/incidents/{cancelled}/cancel", json={"reason": "duplicate call"}))
    listed = [i["id"] for i in api.ok(api.get("/incidents"))]
    assert listed.index(high) < listed.index(low), "echo before alpha"
    open_ids = [i["id"] for i in api.ok(api.get("/incidents", params={"open": True}))]
    assert cancelled not in open_ids and {low, high} <= set(open_ids)
    assert [i["id"] for i in api.ok(api.get("/incidents", params={"status": "cancelled"}))] == [cancelled]
    assert len(api.ok(api.get("/incidents", params={"limit": 1}))) == 1
    assert "allowed" in problem(api.get("/incidents", params={"status": "lost"}), 422)["detail"]
    assert_422_names(api.get("/incidents", params={"limit": 0}), "limit")


def test_units_list_and_filter(api: Api) -> None:
    units = api.ok(api.get("/units"))
    assert [u["callsign"] for u in units] == sorted(api.db.units)
    assert {u["capability"] for u in units} == {"als", "bls", "first_response"}
    assert all(u["status"] == "available" and u["position"] is not None for u in units)
    api.ok(api.status(api.unit("B06"), "out_of_service"))
    oos = api.ok(api.get("/units", params={"status": "out_of_service"}))
    assert [u["callsign"] for u in oos] == ["B06"]
    body = problem(api.get("/units", params={"status": "asleep"}), 422)
    assert "asleep" in body["detail"] and "available" in body["detail"]


def test_position_reports(api: Api) -> None:
    unit_id = api.unit("M03")
    now = datetime.now(UTC)
    u = api.ok(api.post(f"/units/{unit_id}/position", json={"lat": 21.03, "lon": 105.84, "at": now.isoformat()}))
    assert u["position"]["lat"] == 21.03 and u["position"]["lon"] == 105.84
    assert ts(u["position"]["at"]) == now
    # an older fix arriving late changes nothing
    old = (now - timedelta(minutes=5)).isoformat()
    late = api.ok(api.post(f"/units/{unit_id}/position", json={"lat": 21.0, "lon": 105.8, "at": old}))
    assert late["position"]["lat"] == 21.03
    # the recommendation ranks it from the new position
    inc = api.create_incident(lat=21.0301, lon=105.8401, complaint="fall")
    rec = next(r for r in inc["recommendations"] if r["unit_id"] == unit_id)
    assert rec["distance_m"] < 1000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lat": 95, "lon": 105.84}, "lat"),
        ({"lat": 21.03, "lon": 200}, "lon"),
        ({"lat": 21.03}, "lon"),
        ({"lat": 21.03, "lon": 105.84, "at": "yesterday"}, "at"),
        ({"lat": 21.03, "lon": 105.84, "at": "2026-01-01T10:00:00"}, "time zone"),
    ],
)
def test_malformed_position_is_422_naming_the_field(shared_api: Api, body: dict[str, Any], field: str) -> None:
    api = shared_api
    assert_422_names(api.post(f"/units/{api.unit('M04')}/position", json=body), field)


def test_position_from_the_future_is_422(shared_api: Api) -> None:
    api = shared_api
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = problem(
        api.post(f"/units/{api.unit('M04')}/position", json={"lat": 21.03, "lon": 105.84, "at": future}), 422
    )
    assert "future" in body["detail"]


# ---- hospitals and diversion --------------------------------------------------------------------------------
def test_hospitals_for_an_incident_and_diversion(api: Api) -> None:
    all_h = api.ok(api.get("/hospitals"))
    assert len(all_h) == 25 and all(h["diversion"] is False for h in all_h)
    inc_id = api.create_incident(complaint="stroke")["incident"]["id"]
    ranked = api.ok(api.get("/hospitals", params={"for_incident": inc_id}))
    choices = ranked["hospitals"]
    assert choices and [c["rank"] for c in choices] == list(range(1, len(choices) + 1))
    etas = [c["eta_s"] for c in choices]
    assert etas == sorted(etas)
    by_id = {h["id"]: h for h in all_h}
    assert all("stroke" in by_id[c["hospital_id"]]["capabilities"] for c in choices)
    reasons = {x["unit_id"]: x["reason"] for x in ranked["excluded"]}
    assert all(
        r in ("no emergency department", "no stroke capability") or "no drivable route" in r for r in reasons.values()
    )
    assert len(choices) + len(reasons) == 25

    best = choices[0]["hospital_id"]
    h = api.ok(api.post(f"/hospitals/{best}/diversion", json={"diversion": True}))
    assert h["id"] == best and h["diversion"] is True
    after = api.ok(api.get("/hospitals", params={"for_incident": inc_id}))
    assert best not in [c["hospital_id"] for c in after["hospitals"]]
    assert {"unit_id": best, "reason": "on diversion"}.items() <= next(
        x for x in after["excluded"] if x["unit_id"] == best
    ).items()
    assert [c["hospital_id"] for c in after["hospitals"]] == [c["hospital_id"] for c in choices[1:]]
    api.ok(api.post(f"/hospitals/{best}/diversion", json={"diversion": False}))
    back = api.ok(api.get("/hospitals", params={"for_incident": inc_id}))
    assert back["hospitals"][0]["hospital_id"] == best
    kinds = [e["kind"] for e in api.ok(api.get("/events")) if e["kind"] == "hospital.diversion"]
    assert len(kinds) == 2


@pytest.mark.parametrize("body", [{}, {"diversion": "maybe"}, {"diversion": True, "until": "noon"}])
def test_malformed_diversion_is_422(shared_api: Api, body: dict[str, Any]) -> None:
    api = shared_api
    hospital_id = api.ok(api.get("/hospitals"))[0]["id"]
    field = "until" if "until" in body else "diversion"
    assert_422_names(api.post(f"/hospitals/{hospital_id}/diversion", json=body), field)


def test_stations(shared_api: Api) -> None:
    api = shared_api
    stations = api.ok(api.get("/stations"))
    assert len(stations) == api.db.template.stations >= 2
    assert "Trung tâm Cấp cứu 115 Hà Nội" in [s["name"] for s in stations]
    assert all(21.0 < s["lat"] < 21.1 and 105.7 < s["lon"] < 105.9 for s in stations)


# ---- map ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["units", "hospitals", "stations", "incidents"])
def test_layers_are_feature_collections(api: Api, layer: str) -> None:
    api.create_incident()
    count = {"units": len(api.db.units), "hospitals": 25, "stations": api.db.template.stations, "incidents": 1}[layer]
    fc = api.ok(api.get(f"/layers/{layer}.geojson"))
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == count
    for f in fc["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        assert 21.0 < lat < 21.1 and 105.7 < lon < 105.9, "GeoJSON order is lon, lat"
        assert "id" in f["properties"]


def test_closures_layer_is_an_empty_feature_collection(shared_api: Api) -> None:
    api = shared_api
    assert api.ok(api.get("/layers/closures.geojson")) == {"type": "FeatureCollection", "features": []}


def test_unknown_layer_is_422(shared_api: Api) -> None:
    api = shared_api
    body = problem(api.get("/layers/traffic.geojson"), 422)
    assert "traffic" in body["detail"] and "units" in body["detail"]


def test_route_returns_geometry(shared_api: Api) -> None:
    api = shared_api
    params = {"from": f"{HOAN_KIEM[0]},{HOAN_KIEM[1]}", "to": f"{BA_DINH[0]},{BA_DINH[1]}", "at": "10:00"}
    r = api.ok(api.get("/route", params=params))
    assert r["geometry"]["type"] == "LineString" and len(r["geometry"]["coordinates"]) >= 2
    assert r["eta_s"] > 0 and r["distance_m"] > 1000 and r["steps"]
    lon0, lat0 = r["geometry"]["coordinates"][0]
    assert abs(lat0 - HOAN_KIEM[0]) < 0.003 and abs(lon0 - HOAN_KIEM[1]) < 0.003
    bike = api.ok(api.get("/route", params={**params, "vehicle": "motorbike"}))
    assert bike["geometry"]["type"] == "LineString"


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"from": "21.0287", "to": "21.0368,105.8342"}, 422, "not a position"),
        ({"from": "21.0287,105.8524", "to": "north,west"}, 422, "not a position"),
        ({"from": "91,105.8524", "to": "21.0368,105.8342"}, 422, "latitude 91.0 is out of range"),
        ({"from": "nan,105.8524", "to": "21.0368,105.8342"}, 422, "latitude nan is out of range"),
        ({"from": "21.0287,105.8524", "to": "21.0368,-200"}, 422, "longitude -200.0 is out of range"),
        ({"from": "21.0287,105.8524", "to": "21.0368,105.8342", "at": "25:00"}, 422, "at='25:00'"),
        ({"from": "21.0287,105.8524", "to": "21.0368,105.8342", "vehicle": "bicycle"}, 422, "bicycle"),
        ({"to": "21.0368,105.8342"}, 422, "from"),
    ],
)
def test_bad_route_queries_are_422(shared_api: Api, params: dict[str, str], status: int, words: str) -> None:
    api = shared_api
    r = api.get("/route", params=params)
    if words == "from":
        assert_422_names(r, "from")
    else:
        assert words in problem(r, status)["detail"]


def test_route_outside_coverage_is_422_with_the_distance(shared_api: Api) -> None:
    api = shared_api
    r = api.get("/route", params={"from": f"{BACH_MAI[0]},{BACH_MAI[1]}", "to": f"{BA_DINH[0]},{BA_DINH[1]}"})
    body = problem(r, 422)
    assert body["title"] == "outside road coverage" and body["distance_m"] > 250


# ---- reports, export, events, replay ------------------------------------------------------------------------
def _completed_incident(api: Api) -> tuple[int, int]:
    inc = api.create_incident(complaint="cardiac_arrest")
    inc_id, unit_id = inc["incident"]["id"], inc["recommendations"][0]["unit_id"]
    problem(api.assign(inc_id, unit_id), 201)
    hospital_id = api.ok(api.get("/hospitals", params={"for_incident": inc_id}))["hospitals"][0]["hospital_id"]
    walk_to_closed(api, inc_id, unit_id, hospital_id)
    return inc_id, unit_id


def test_response_times_reflect_a_completed_incident(api: Api) -> None:
    empty = api.ok(api.get("/reports/response-times"))
    assert all(p["incidents"] == 0 and p["arrived"] == 0 for p in empty["by_priority"])
    inc_id, _ = _completed_incident(api)
    api.create_incident(complaint="back_pain")  # alpha, never reached
    report = api.ok(api.get("/reports/response-times", params={"standard_s": 600}))
    assert report["standard_s"] == 600
    by = {p["priority"]: p for p in report["by_priority"]}
    assert list(by) == ["echo", "delta", "charlie", "bravo", "alpha", "omega"]
    assert (by["echo"]["incidents"], by["echo"]["arrived"]) == (1, 1)
    assert (by["alpha"]["incidents"], by["alpha"]["arrived"]) == (1, 0)
    inc = api.ok(api.get(f"/incidents/{inc_id}"))
    expected = (ts(inc["assignments"][0]["times"]["eTimes.06"]) - ts(inc["times"]["eTimes.01"])).total_seconds()
    resp = by["echo"]["response_s"]
    assert resp["p50"] == pytest.approx(expected, abs=1e-3) and resp["p90"] == resp["p50"]
    assert resp["mean"] == pytest.approx(expected, abs=0.1)
    assert by["echo"]["within_standard_share"] == 1.0
    for part in ("call_to_notified_s", "turnout_s", "travel_s"):
        assert by["echo"][part]["p50"] >= 0
    # a window that ends before the call holds nothing
    until = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    old = api.ok(api.get("/reports/response-times", params={"until": until}))
    assert all(p["incidents"] == 0 for p in old["by_priority"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"since": "2026-02-01T00:00:00+07:00", "until": "2026-01-01T00:00:00+07:00"}, "since"),
        ({"since": "last week"}, "since"),
        ({"standard_s": 0}, "standard_s"),
        ({"standard_s": "fast"}, "standard_s"),
    ],
)
def test_bad_report_queries_are_422_naming_the_field(shared_api: Api, params: dict[str, Any], field: str) -> None:
    api = shared_api
    assert_422_names(api.get("/reports/response-times", params=params), field)
    if field == "since":
        assert_422_names(api.get("/export/incidents.csv", params=params), field)


def test_export_has_nemsis_columns_and_the_completed_incident(api: Api) -> None:
    pending = api.create_incident(complaint="headache")["incident"]["id"]  # no unit yet: a row of its own
    inc_id, unit_id = _completed_incident(api)
    r = api.get("/export/incidents.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="incidents.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    header = next(csv.reader(io.StringIO(r.text)))
    for name in (
        "eTimes.01 PSAP Call Date/Time",
        "eTimes.03 Unit Notified by Dispatch Date/Time",
        "eTimes.05 Unit En Route Date/Time",
        "eTimes.06 Unit Arrived on Scene Date/Time",
        "eTimes.09 Unit Left Scene Date/Time",
        "eTimes.11 Patient Arrived at Destination Date/Time",
        "eTimes.12 Destination Patient Transfer of Care Date/Time",
        "eTimes.13 Unit Back in Service Date/Time",
        "eTimes.14 Unit Canceled Date/Time",
    ):
        assert name in header
    assert [int(row["incident_id"]) for row in rows] == [pending, inc_id]
    inc = api.ok(api.get(f"/incidents/{inc_id}"))
    a = inc["assignments"][0]
    callsign = next(cs for cs, i in api.db.units.items() if i == unit_id)
    done = rows[1]
    assert (done["status"], done["priority"], done["unit"], done["assignment_id"]) == (
        "closed",
        "echo",
        callsign,
        str(a["id"]),
    )
    assert ts(done["eTimes.01 PSAP Call Date/Time"]) == ts(inc["times"]["eTimes.01"])
    assert ts(done["eTimes.06 Unit Arrived on Scene Date/Time"]) == ts(a["times"]["eTimes.06"])
    assert ts(done["eTimes.13 Unit Back in Service Date/Time"]) == ts(a["times"]["eTimes.13"])
    waiting = rows[0]
    assert (waiting["status"], waiting["unit"], waiting["assignment_id"]) == ("received", "", "")
    assert waiting["eTimes.03 Unit Notified by Dispatch Date/Time"] == ""


def test_export_with_calls_but_no_assignment_yet(api: Api) -> None:
    inc_id = api.create_incident(complaint="headache")["incident"]["id"]
    r = api.get("/export/incidents.csv")
    assert r.status_code == 200, r.text
    (row,) = list(csv.DictReader(io.StringIO(r.text)))
    assert (int(row["incident_id"]), row["unit"], row["assignment_id"]) == (inc_id, "", "")


def test_events_after_are_in_seq_order(api: Api) -> None:
    a = api.create_incident()["incident"]["id"]
    b = api.create_incident(complaint="fall")["incident"]["id"]
    problem(api.post(f"/incidents/{a}/notes", json={"text": "door code 1234"}), 201)
    problem(api.assign(b, api.unit("B07")), 201)
    evs = api.ok(api.get("/events", params={"after": 0}))
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "strictly increasing, no gaps"
    assert [(e["kind"], e["incident_id"]) for e in evs] == [
        ("incident.created", a),
        ("incident.created", b),
        ("incident.note", a),
        ("unit.assigned", b),
    ]
    assert all(e["actor"] == "dispatcher" for e in evs)
    assert api.ok(api.get("/events", params={"after": seqs[1]})) == evs[2:]
    assert api.ok(api.get("/events", params={"after": seqs[0], "limit": 2})) == evs[1:3]
    assert api.ok(api.get("/events", params={"after": seqs[-1]})) == []
    assert_422_names(api.get("/events", params={"after": -1}), "after")
    assert_422_names(api.get("/events", params={"limit": 0}), "limit")


def test_rebuilding_from_the_event_log_matches_the_incident(api: Api) -> None:
    closed_id, _ = _completed_incident(api)
    problem(api.post(f"/incidents/{closed_id}/notes", json={"text": "handover done"}), 201)
    cancelled = api.create_incident(complaint="fall", notes="caller confused")["incident"]["id"]
    problem(api.assign(cancelled, api.unit("B08")), 201)
    problem(api.post(f"/incidents/{cancelled}/notes", json={"text": "second line"}), 201)
    api.ok(api.post(f"/incidents/{cancelled}/cancel", json={"reason": "false alarm"}))
    open_id = api.create_incident(complaint="stroke")["incident"]["id"]
    problem(api.assign(open_id, api.unit("A10")), 201)
    api.ok(api.status(api.unit("A10"), "on_scene"))

    log = api.ok(api.get("/events", params={"after": 0, "limit": 5000}))
    for inc_id in (closed_id, cancelled, open_id):
        state = rebuild_incident(e for e in log if e["incident_id"] == inc_id)
        inc = api.ok(api.get(f"/incidents/{inc_id}"))
        assert state["id"] == inc_id
        assert (state["status"], state["notes"], state.get("cancel_reason")) == (
            inc["status"],
            inc["notes"],
            inc["cancel_reason"],
        )
        assert state["last_seq"] == inc["timeline"][-1]["seq"]
    assert rebuild_incident(e for e in log if e["incident_id"] == cancelled)["units"] == {api.unit("B08"): "available"}
