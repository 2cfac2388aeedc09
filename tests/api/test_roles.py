"""Who may do what: the role matrix (dispatcher, planner, admin, the crew of unit A01) over every kind of
action, and tokens: none, wrong, expired or of a disabled user is 401 on every /api/v1 endpoint."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlmodel import Session

from dispatch.db.models import Token, User
from dispatch.services.auth import TOKEN_CACHE_TTL
from tests.api.conftest import API, HOAN_KIEM, Api, api_routes

OK, FORBIDDEN = "2xx", 403
ROLES = {"dispatcher": "dispatcher", "planner": "planner", "admin": "admin", "crew": "crew-a01"}
STAFF = {"dispatcher": OK, "planner": OK, "admin": OK, "crew": FORBIDDEN}
EVERYONE = {"dispatcher": OK, "planner": OK, "admin": OK, "crew": OK}
DISPATCHING = {"dispatcher": OK, "planner": FORBIDDEN, "admin": OK, "crew": FORBIDDEN}
#: action -> role -> expected answer
MATRIX: dict[str, dict[str, object]] = {
    "create incident": DISPATCHING,
    "assign a unit": DISPATCHING,
    "cancel an incident": DISPATCHING,
    "add a note": {"dispatcher": OK, "planner": FORBIDDEN, "admin": OK, "crew": OK},
    "status of own unit (A01)": {"dispatcher": OK, "planner": FORBIDDEN, "admin": OK, "crew": OK},
    "status of another unit (A02)": DISPATCHING,
    "position of own unit (A01)": {"dispatcher": OK, "planner": FORBIDDEN, "admin": OK, "crew": OK},
    "position of another unit (A02)": DISPATCHING,
    "set hospital diversion": DISPATCHING,
    "read incidents": EVERYONE,
    "read one incident": EVERYONE,
    "read units": EVERYONE,
    "read hospitals": EVERYONE,
    "read hospitals for an incident": EVERYONE,
    "read stations": EVERYONE,
    "read map layers": EVERYONE,
    "read triage cards": EVERYONE,
    "route": EVERYONE,
    "read recommendations": STAFF,
    "read the event log": STAFF,
    "report response times": STAFF,
    "export incidents.csv": STAFF,
}


def _outcome(r: httpx.Response) -> object:
    if 200 <= r.status_code < 300:
        return OK
    if r.status_code == 403:
        body = r.json()
        assert body["title"] == "forbidden" and body["detail"], body
        return FORBIDDEN
    return f"{r.status_code}: {r.text[:200]}"


@pytest.mark.parametrize("role", list(ROLES))
def test_role_matrix(api: Api, role: str) -> None:
    user = ROLES[role]
    a01, a02 = api.unit("A01"), api.unit("A02")
    # the scene, set up by the dispatcher: a call with a unit on it (so the export has an assignment) and
    # a second call waiting for one
    busy = api.create_incident()["incident"]["id"]
    assert api.assign(busy, api.unit("A03")).status_code == 201
    waiting = api.create_incident(complaint="stroke")["incident"]["id"]
    hospital_id = api.ok(api.get("/hospitals"))[0]["id"]

    def units() -> dict[int, str]:
        return {u["id"]: u["status"] for u in api.ok(api.get("/units"))}

    got: dict[str, object] = {}
    body = {"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "fall"}
    got["create incident"] = _outcome(api.post("/incidents", json=body, user=user))
    got["assign a unit"] = _outcome(api.assign(waiting, api.unit("A04"), user=user))
    got["cancel an incident"] = _outcome(api.post(f"/incidents/{busy}/cancel", json={"reason": "test"}, user=user))
    got["add a note"] = _outcome(api.post(f"/incidents/{waiting}/notes", json={"text": "from " + user}, user=user))
    got["status of own unit (A01)"] = _outcome(api.status(a01, "out_of_service", user=user))
    got["status of another unit (A02)"] = _outcome(api.status(a02, "out_of_service", user=user))
    pos = {"lat": 21.03, "lon": 105.85}
    got["position of own unit (A01)"] = _outcome(api.post(f"/units/{a01}/position", json=pos, user=user))
    got["position of another unit (A02)"] = _outcome(api.post(f"/units/{a02}/position", json=pos, user=user))
    got["set hospital diversion"] = _outcome(
        api.post(f"/hospitals/{hospital_id}/diversion", json={"diversion": True}, user=user)
    )
    got["read incidents"] = _outcome(api.get("/incidents", user=user))
    got["read one incident"] = _outcome(api.get(f"/incidents/{waiting}", user=user))
    got["read units"] = _outcome(api.get("/units", user=user))
    got["read hospitals"] = _outcome(api.get("/hospitals", user=user))
    got["read hospitals for an incident"] = _outcome(api.get("/hospitals", params={"for_incident": busy}, user=user))
    got["read stations"] = _outcome(api.get("/stations", user=user))
    got["read map layers"] = _outcome(api.get("/layers/units.geojson", user=user))
    got["read triage cards"] = _outcome(api.get("/triage/cards", user=user))
    got["route"] = _outcome(api.get("/route", params={"from": "21.0287,105.8524", "to": "21.0368,105.8342"}, user=user))
    got["read recommendations"] = _outcome(api.get(f"/incidents/{waiting}/recommendations", user=user))
    got["read the event log"] = _outcome(api.get("/events", user=user))
    got["report response times"] = _outcome(api.get("/reports/response-times", user=user))
    got["export incidents.csv"] = _outcome(api.get("/export/incidents.csv", user=user))

    expected = {action: by_role[role] for action, by_role in MATRIX.items()}
    assert got == expected

    # what a refused action did: nothing
    after = units()
    if got["status of own unit (A01)"] == FORBIDDEN:
        assert after[a01] == "available"
    if got["status of another unit (A02)"] == FORBIDDEN:
        assert after[a02] == "available"
    if got["assign a unit"] == FORBIDDEN:
        assert after[api.unit("A04")] == "available"
        assert api.ok(api.get(f"/incidents/{waiting}"))["status"] == "received"
    if got["cancel an incident"] == FORBIDDEN:
        assert api.ok(api.get(f"/incidents/{busy}"))["status"] == "dispatched"
    if got["create incident"] == FORBIDDEN:
        assert len(api.ok(api.get("/incidents"))) == 2
    if got["set hospital diversion"] == FORBIDDEN:
        assert api.ok(api.get("/hospitals"))[0]["diversion"] is False
    if got["position of another unit (A02)"] == FORBIDDEN:
        a02_now = next(u for u in api.ok(api.get("/units")) if u["id"] == a02)
        assert a02_now["position"]["lat"] != 21.03


def test_crew_of_another_unit_is_told_which_unit_is_its_own(api: Api) -> None:
    r = api.status(api.unit("A01"), "out_of_service", user="crew-m01")
    body = r.json()
    assert r.status_code == 403
    assert f"only its own unit ({api.unit('M01')})" in body["detail"] and str(api.unit("A01")) in body["detail"]
    assert api.status(api.unit("M01"), "out_of_service", user="crew-m01").status_code == 200


def test_crew_drives_its_own_call(api: Api) -> None:
    """The crew of A01 reports every status of its own response; the dispatcher sees the incident follow."""
    inc_id = api.create_incident()["incident"]["id"]
    a01 = api.unit("A01")
    assert api.assign(inc_id, a01).status_code == 201
    hospital_id = api.ok(api.get("/hospitals", params={"for_incident": inc_id}, user="crew-a01"))["hospitals"][0][
        "hospital_id"
    ]
    for status, extra in (
        ("en_route", {}),
        ("on_scene", {}),
        ("transporting", {"hospital_id": hospital_id}),
        ("at_hospital", {}),
        ("available", {}),
    ):
        assert api.ok(api.status(a01, status, user="crew-a01", **extra))["unit"]["status"] == status
    inc = api.ok(api.get(f"/incidents/{inc_id}"))
    assert inc["status"] == "closed"
    assert {e["actor"] for e in inc["timeline"] if e["kind"] == "unit.status"} == {"crew-a01"}


# ---- tokens -------------------------------------------------------------------------------------------------
def _concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "1", path).replace("/1.geojson", "/units.geojson")


def _protected_routes(api: Api) -> list[tuple[str, str]]:
    public = {f"{API}/auth/token", f"{API}/region", f"{API}/basemap/{{z}}/{{x}}/{{y}}.json"}  # login, map data
    routes = [(m, p) for m, p in api_routes(api.app) if p.startswith(API) and p not in public]
    assert len(routes) >= 19, routes  # every endpoint of the API, found by walking the app's routes
    return routes


def _assert_401(r: httpx.Response, words: str) -> None:
    assert r.status_code == 401, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    assert r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["title"] == "unauthorized" and words in body["detail"], body


def test_no_token_is_401_on_every_endpoint(shared_api: Api) -> None:
    api = shared_api
    for method, path in _protected_routes(api):
        r = api.client.request(method, _concrete(path), json={} if method == "POST" else None)
        _assert_401(r, "no bearer token")
    # only /healthz, the login and the public road map (basemap tiles, region) answer without a token
    assert api.client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("authorization", "words"),
    [
        ("Bearer not-a-token", "not valid"),
        ("Bearer " + "x" * 43, "not valid"),
        ("Basic ZGlzcGF0Y2hlcjpkZW1vLTExNS1oYW5vaQ==", "no bearer token"),
        ("Bearer", "no bearer token"),
    ],
)
def test_wrong_token_is_401_on_every_endpoint(shared_api: Api, authorization: str, words: str) -> None:
    api = shared_api
    for method, path in _protected_routes(api):
        r = api.client.request(
            method, _concrete(path), json={} if method == "POST" else None, headers={"Authorization": authorization}
        )
        _assert_401(r, words)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _later(api: Api, by: timedelta) -> None:
    """Move the server's clock forward."""
    clock = api.ctx.clock
    api.ctx.clock = lambda: clock() + by


def test_checked_tokens_are_trusted_for_the_cache_ttl_then_checked_again(api: Api) -> None:
    assert api.get("/units", user="planner").status_code == 200
    with Session(api.ctx.engine) as s, s.begin():
        user = s.get(User, api.db.template.user_ids["planner"])
        assert user is not None
        user.active = False
        s.add(user)
    assert api.get("/units", user="planner").status_code == 200, "within the TTL the cached check stands"
    _later(api, TOKEN_CACHE_TTL - timedelta(seconds=1))
    assert api.get("/units", user="planner").status_code == 200
    _later(api, timedelta(seconds=1))
    _assert_401(api.get("/units", user="planner"), "disabled")


def test_expired_token_is_401(api: Api) -> None:
    token = api.db.tokens["dispatcher"]
    assert api.get("/units").status_code == 200
    with Session(api.ctx.engine) as s, s.begin():
        row = s.get(Token, _digest(token))
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(row)
    # the expiry of a token that was in use is seen once the process's token cache entry lapses
    _later(api, TOKEN_CACHE_TTL)
    _assert_401(api.get("/units"), "expired")
    r = api.post("/incidents", json={"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "fall"})
    _assert_401(r, "expired")
    assert api.get("/incidents", user="planner").status_code == 200, "other users' tokens still work"
    # logging in again gives a fresh token that works
    login = api.client.post(f"{API}/auth/token", data={"username": "dispatcher", "password": "demo-115-hanoi"})
    fresh = login.json()["access_token"]
    assert api.client.get(f"{API}/units", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_token_of_a_disabled_user_is_401(api: Api) -> None:
    with Session(api.ctx.engine) as s, s.begin():
        user = s.get(User, api.db.template.user_ids["planner"])
        assert user is not None
        user.active = False
        s.add(user)
    _later(api, TOKEN_CACHE_TTL)
    _assert_401(api.get("/units", user="planner"), "disabled")
    login = api.client.post(f"{API}/auth/token", data={"username": "planner", "password": "demo-115-hanoi"})
    _assert_401(login, "wrong user name or password")
