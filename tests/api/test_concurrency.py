"""Races against a real server process (``dispatch serve`` over HTTP, on SQLite and on PostgreSQL): two
dispatchers assigning one unit at the same moment, and retries of one Idempotency-Key arriving together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import BACKENDS, HOAN_KIEM, Server, Templates, fresh_database

ROUNDS = 10
RETRIES = 8
WAIT_S = 120.0


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, templates: Templates, graph_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("server")
    with fresh_database(request.param, templates, request, directory) as db:
        s = Server(db, graph_cache, directory)
        try:
            yield s.start()
        finally:
            s.kill()


def together(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls in threads released by one barrier, so the requests leave at the same moment."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=WAIT_S)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, c) for c in calls]
        return [f.result(timeout=WAIT_S) for f in futures]


def _incident(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "chest_pain", **fields}
    r = client.post("/incidents", json=body)
    assert r.status_code == 201, r.text
    inc: dict[str, Any] = r.json()["incident"]
    return inc


def test_two_dispatchers_assign_one_unit_at_once(server: Server) -> None:
    users = ("dispatcher", "dispatcher-2")
    callsigns = ["A01", "A02", "A03", "A04", "A05", "A06", "B01", "B02", "B03", "B04"][:ROUNDS]
    with server.client(users[0]) as c1, server.client(users[1]) as c2:
        clients = (c1, c2)
        for round_, callsign in enumerate(callsigns):
            unit_id = server.db.units[callsign]
            incidents = [_incident(c, caller_number=f"race-{round_}-{i}")["id"] for i, c in enumerate(clients)]
            answers = together(
                [
                    lambda c=c, inc=inc, u=unit_id: c.post(f"/incidents/{inc}/assignments", json={"unit_id": u})
                    for c, inc in zip(clients, incidents, strict=True)
                ]
            )
            codes = [r.status_code for r in answers]
            assert sorted(codes) == [201, 409], f"round {round_} ({callsign}): {[r.text for r in answers]}"
            win = codes.index(201)
            lose = 1 - win
            won = answers[win].json()
            current = answers[lose].json()["current"]
            assert current["unit_id"] == unit_id and current["status"] == "dispatched", current
            assert current["incident_id"] == incidents[win], current
            assert current["assignment_id"] == won["id"] and current["assigned_by"] == users[win], current
            unit = next(u for u in c1.get("/units").json() if u["id"] == unit_id)
            assert (unit["status"], unit["incident_id"]) == ("dispatched", incidents[win])
            assert c1.get(f"/incidents/{incidents[lose]}").json()["status"] == "received"
            assert [a["unit_id"] for a in c1.get(f"/incidents/{incidents[win]}").json()["assignments"]] == [unit_id]
        log = c1.get("/events", params={"limit": 5000}).json()
        assigned = [e["unit_id"] for e in log if e["kind"] == "unit.assigned"]
        assert sorted(assigned) == sorted(server.db.units[cs] for cs in callsigns), "one assignment per unit"


def test_concurrent_retries_of_one_idempotency_key_create_one_incident(server: Server) -> None:
    with server.client("dispatcher") as c:
        for round_ in range(3):
            key = f"retry-{round_}"
            body = {"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "stroke", "caller_number": key}
            headers = {"Idempotency-Key": key}
            answers = together([lambda b=body, h=headers: c.post("/incidents", json=b, headers=h)] * RETRIES)
            assert [r.status_code for r in answers] == [201] * RETRIES, [r.text for r in answers]
            ids = {r.json()["incident"]["id"] for r in answers}
            assert len(ids) == 1, ids
            originals = [r for r in answers if r.headers.get("idempotent-replayed") != "true"]
            assert len(originals) == 1, "exactly one answer created the incident; the others replayed it"
            (inc_id,) = ids
            listed = [i["id"] for i in c.get("/incidents", params={"limit": 5000}).json() if i["caller_number"] == key]
            assert listed == [inc_id]
            created = [e for e in c.get("/events", params={"limit": 5000}).json() if e["kind"] == "incident.created"]
            assert [e["incident_id"] for e in created].count(inc_id) == 1
            assert all(e["data"]["incident"]["caller_number"] != key for e in created if e["incident_id"] != inc_id)


def test_one_key_with_two_different_calls_at_once(server: Server) -> None:
    """Half the requests say stroke, half say fall, all with one key: one incident, the other call is 409."""
    with server.client("dispatcher-2") as c:
        key = "same-key-two-calls"
        bodies = [
            {"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": complaint, "caller_number": key}
            for complaint in ("stroke", "fall")
        ]
        calls = [
            lambda b=bodies[i % 2]: c.post("/incidents", json=b, headers={"Idempotency-Key": key})
            for i in range(RETRIES)
        ]
        answers = together(calls)
        created = {r.json()["incident"]["id"] for r in answers if r.status_code == 201}
        assert len(created) == 1, [r.text for r in answers]
        (inc_id,) = created
        winner = c.get(f"/incidents/{inc_id}").json()["complaint"]
        for i, r in enumerate(answers):
            if bodies[i % 2]["complaint"] == winner:
                assert r.status_code == 201 and r.json()["incident"]["id"] == inc_id, r.text
            else:
                assert r.status_code == 409, r.text
                assert r.json()["current"] == {"incident_id": inc_id}
        listed = [i for i in c.get("/incidents", params={"limit": 5000}).json() if i["caller_number"] == key]
        assert [i["id"] for i in listed] == [inc_id]
        # later, sequentially: the same key with the other call is still 409, with the same one a replay
        other = next(b for b in bodies if b["complaint"] != winner)
        again = c.post("/incidents", json=other, headers={"Idempotency-Key": key})
        assert again.status_code == 409 and again.json()["current"] == {"incident_id": inc_id}


def _unit(client: httpx.Client, unit_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(u for u in client.get("/units").json() if u["id"] == unit_id)
    return found


def test_cancel_and_assign_at_once_leave_no_unit_on_a_cancelled_call(server: Server) -> None:
    """In either order the end is consistent: cancelled first, the assignment is refused; assigned first, the
    cancellation releases the unit. Never a unit still dispatched to a cancelled incident."""
    unit_id = server.db.units["A08"]
    with server.client("dispatcher") as c1, server.client("dispatcher-2") as c2:
        for round_ in range(ROUNDS):
            inc = _incident(c1, caller_number=f"cancel-assign-{round_}")["id"]
            cancel, assign = together(
                [
                    lambda i=inc: c1.post(f"/incidents/{i}/cancel", json={"reason": "caller hung up"}),
                    lambda i=inc: c2.post(f"/incidents/{i}/assignments", json={"unit_id": unit_id}),
                ]
            )
            assert cancel.status_code == 200, cancel.text
            assert assign.status_code in (201, 409), assign.text
            incident = c1.get(f"/incidents/{inc}").json()
            unit = _unit(c1, unit_id)
            state = (cancel.status_code, assign.status_code, incident["status"], unit["status"], unit["incident_id"])
            where = f"round {round_}: (cancel, assign, incident, unit, unit incident) = {state}"
            assert incident["status"] == "cancelled", where
            assert (unit["status"], unit["incident_id"]) == ("available", None), where
            assert all(a["active"] is False for a in incident["assignments"]), (where, incident["assignments"])


def test_cancel_and_arrival_at_once_exactly_one_wins(server: Server) -> None:
    """The dispatcher cancels as the crew reports on scene. In any order one of them is refused (a call with
    a unit on scene is not cancelled; a released unit does not arrive), and the incident and the unit agree."""
    unit_id = server.db.units["M01"]
    with server.client("dispatcher") as disp, server.client("crew-m01") as crew:
        for round_ in range(ROUNDS):
            inc = _incident(disp, caller_number=f"cancel-arrive-{round_}", complaint="fall")["id"]
            r = disp.post(f"/incidents/{inc}/assignments", json={"unit_id": unit_id})
            assert r.status_code == 201, r.text
            cancel, arrive = together(
                [
                    lambda i=inc: disp.post(f"/incidents/{i}/cancel", json={"reason": "duplicate"}),
                    lambda: crew.post(f"/units/{unit_id}/status", json={"status": "on_scene"}),
                ]
            )
            incident = disp.get(f"/incidents/{inc}").json()
            unit = _unit(disp, unit_id)
            state = (cancel.status_code, arrive.status_code, incident["status"], unit["status"], unit["incident_id"])
            where = f"round {round_}: (cancel, on_scene, incident, unit, unit incident) = {state}"
            assert sorted([cancel.status_code, arrive.status_code]) == [200, 409], where
            if cancel.status_code == 200:
                assert state[2:] == ("cancelled", "available", None), where
            else:
                assert state[2:] == ("on_scene", "on_scene", inc), where
                r = crew.post(f"/units/{unit_id}/status", json={"status": "available"})  # done: free for the next
                assert r.status_code == 200 and disp.get(f"/incidents/{inc}").json()["status"] == "closed"
