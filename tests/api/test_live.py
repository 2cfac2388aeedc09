"""Live push over real websockets (the ``websockets`` library) to a real server process (uvicorn), on SQLite
and on PostgreSQL: delivery, replay after a dropped connection, acknowledgements, resends, heartbeats,
duplicate statuses, slow clients and authorisation."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from tests.api.conftest import BA_DINH, HOAN_KIEM, Database, Server

LONG_NOTES = "Bệnh nhân ngất, đã tỉnh; " * 160
FAST = {"DISPATCH_ACK_TIMEOUT_S": "2", "DISPATCH_RESEND_S": "1", "DISPATCH_HEARTBEAT_TIMEOUT_S": "3"}


def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return msg


def until(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    """The first message that matches, within ``timeout``; the ones before it are returned in ``seen``."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            kinds = [(m.get("type"), m.get("kind"), m.get("seq")) for m in seen]
            raise AssertionError(f"no matching message in {timeout} s; got {kinds}")
        try:
            m = recv(ws, left)
        except TimeoutError:
            continue
        if match(m):
            return m
        seen.append(m)


def nothing(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], seconds: float) -> None:
    """No message that matches arrives within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            m = recv(ws, left)
        except TimeoutError:
            return
        assert not match(m), m


def event(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("kind") == kind and all(m.get(k) == v for k, v in fields.items())


def hello(ws: ClientConnection) -> dict[str, Any]:
    m = recv(ws)
    assert m["type"] == "hello", m
    caught = recv(ws)
    assert caught["type"] == "caught_up", caught
    return m


def new_incident(
    c: httpx.Client, where: tuple[float, float] = HOAN_KIEM, complaint: str = "chest_pain", notes: str = ""
) -> int:
    body = {"lat": where[0], "lon": where[1], "complaint": complaint, "address": "12 Hang Bac", "notes": notes}
    r = c.post("/incidents", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["incident"]["id"])


def assign(c: httpx.Client, incident_id: int, unit_id: int) -> dict[str, Any]:
    r = c.post(f"/incidents/{incident_id}/assignments", json={"unit_id": unit_id})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


@contextlib.contextmanager
def console_and_crew(server: Server) -> Iterator[tuple[ClientConnection, ClientConnection, httpx.Client]]:
    """A dispatcher's console socket, crew A01's socket (both past their hello) and a dispatcher HTTP client."""
    with (
        connect(server.ws_url("/ws/console", "dispatcher")) as console,
        connect(server.ws_url("/ws/crew", "crew-a01")) as crew,
        server.client("dispatcher") as c,
    ):
        hello(console)
        hello(crew)
        yield console, crew, c


@pytest.fixture
def server(database: Database, start_server: Callable[..., Server]) -> Server:
    return start_server(database, **FAST)


def test_an_assignment_reaches_the_crew_with_route_and_the_console(server: Server) -> None:
    a01 = server.db.units["A01"]
    with (
        connect(server.ws_url("/ws/console", "dispatcher")) as console,
        connect(server.ws_url("/ws/crew", "crew-a01")) as crew,
        server.client("dispatcher") as c,
    ):
        h = hello(console)
        assert h["role"] == "dispatcher" and h["unit_id"] is None
        assert hello(crew)["unit_id"] == a01
        inc = new_incident(c)
        created = until(console, event("incident.created", incident_id=inc))
        assert created["type"] == "event" and created["seq"] > h["seq"]
        assign(c, inc, a01)
        got = until(crew, event("unit.assigned", unit_id=a01))
        data = got["data"]
        assert data["incident"]["location"]["address"] == "12 Hang Bac"
        assert data["incident"]["priority"] and data["incident"]["complaint"] == "chest_pain"
        route = data["route"]
        assert route["geometry"]["type"] == "LineString" and len(route["geometry"]["coordinates"]) >= 2
        assert route["steps"] and route["eta_s"] > 0
        seen = until(console, event("unit.assigned", unit_id=a01))
        assert seen["seq"] == got["seq"]
        # the crew does not see the incident creation of a call it was not sent to
        other = new_incident(c, BA_DINH)
        until(console, event("incident.created", incident_id=other))
        nothing(crew, lambda m: m.get("kind") != "unit.connected", 0.5)


def test_reconnect_replays_what_was_missed_in_order(server: Server) -> None:
    a01 = server.db.units["A01"]
    with server.client("dispatcher") as c, server.client("crew-a01") as crew_http:
        with connect(server.ws_url("/ws/crew", "crew-a01")) as crew:
            last = hello(crew)["seq"]
        # the phone is out of signal: an assignment and a note happen meanwhile
        inc = new_incident(c)
        assign(c, inc, a01)
        assert c.post(f"/incidents/{inc}/notes", json={"text": "gate code 4411"}).status_code in (200, 201)
        assert crew_http.post(f"/units/{a01}/status", json={"status": "en_route"}).status_code == 200
        with connect(server.ws_url("/ws/crew", "crew-a01", after=last)) as crew:
            h = recv(crew)
            assert h["type"] == "hello" and h["replay_from"] == last
            kinds = []
            seqs = []
            while True:
                m = recv(crew)
                if m["type"] == "caught_up":
                    break
                kinds.append(m["kind"])
                seqs.append(m["seq"])
            assert kinds == ["unit.assigned", "incident.note", "unit.status"], kinds
            assert seqs == sorted(seqs) and seqs[0] > last
            assert m["replayed"] == 3
            # then live events follow
            assert c.post(f"/incidents/{inc}/notes", json={"text": "2nd floor"}).status_code in (200, 201)
            live = until(crew, event("incident.note", incident_id=inc))
            assert live["seq"] > seqs[-1] and live["data"]["text"] == "2nd floor"


def test_acknowledge_resend_and_unacknowledged_alert(server: Server) -> None:
    a01 = server.db.units["A01"]
    with console_and_crew(server) as (console, crew, c):
        inc = new_incident(c)
        assign(c, inc, a01)
        first = until(crew, event("unit.assigned", unit_id=a01))
        assert "resent" not in first
        again = until(crew, lambda m: m.get("resent") is True, timeout=6)
        assert again["seq"] == first["seq"] and again["kind"] == "unit.assigned"
        alert = until(console, event("assignment.unacknowledged", unit_id=a01), timeout=10)
        assert alert["data"]["waiting_s"] >= 2
        crew.send(json.dumps({"type": "ack", "request_id": "r1"}))
        reply = until(crew, lambda m: m.get("type") == "reply" and m.get("request_id") == "r1")
        assert reply["ok"] is True and reply["acknowledged_at"]
        until(console, event("unit.acknowledged", unit_id=a01))
        # once acknowledged, nothing is sent again
        time.sleep(2.5)
        while True:
            try:
                m = recv(crew, 0.2)
            except TimeoutError:
                break
            assert not m.get("resent"), m


def test_a_status_sent_twice_is_applied_once(server: Server) -> None:
    a01 = server.db.units["A01"]
    with console_and_crew(server) as (console, crew, c):
        assign(c, new_incident(c), a01)
        for rid in ("s1", "s1-retry"):
            crew.send(json.dumps({"type": "status", "status": "en_route", "request_id": rid}))
        r1 = until(crew, lambda m: m.get("request_id") == "s1")
        r2 = until(crew, lambda m: m.get("request_id") == "s1-retry")
        assert (r1["ok"], r1["applied"], r2["ok"], r2["applied"]) == (True, True, True, False)
        until(console, event("unit.status", unit_id=a01))
        nothing(console, event("unit.status", unit_id=a01), 1.0)
        bad = json.dumps({"type": "status", "status": "flying", "request_id": "s2"})
        crew.send(bad)
        r3 = until(crew, lambda m: m.get("request_id") == "s2")
        assert r3["ok"] is False and "flying" in r3["error"]["detail"] and "en_route" in r3["error"]["detail"]
        # on scene, then transporting: the phone gets the recommended hospital and the route to it
        crew.send(json.dumps({"type": "status", "status": "on_scene", "request_id": "s3"}))
        assert until(crew, lambda m: m.get("request_id") == "s3")["ok"] is True
        crew.send(json.dumps({"type": "status", "status": "transporting", "request_id": "s4"}))
        got: dict[str, dict[str, Any]] = {}
        while len(got) < 2:  # the event and the reply, in either order
            m = recv(crew)
            if m.get("request_id") == "s4":
                got["reply"] = m
            elif m.get("kind") == "unit.status" and m["data"]["status"] == "transporting":
                got["event"] = m
        assert got["reply"]["ok"] is True
        hospital = got["event"]["data"]["hospital"]
        assert hospital["chosen_by"] == "recommended" and hospital["rank"] == 1 and hospital["name"]
        assert hospital["route"]["geometry"]["type"] == "LineString" and hospital["route"]["eta_s"] > 0
        crew.send("not json")
        r4 = until(crew, lambda m: m.get("type") == "reply" and m.get("ok") is False)
        assert "JSON object" in r4["error"]["detail"]


def test_a_press_meant_for_another_job_is_refused_not_applied(server: Server) -> None:
    """An ack or a status queued on a phone with no signal names its incident; when the unit has been given
    another job meanwhile (the first was cancelled), the server refuses it instead of applying it there."""
    a01 = server.db.units["A01"]
    with console_and_crew(server) as (console, crew, c):
        first = new_incident(c)
        assign(c, first, a01)
        c.post(f"/incidents/{first}/cancel", json={"reason": "caller called back"}).raise_for_status()
        second = new_incident(c, BA_DINH)
        assign(c, second, a01)
        until(console, event("unit.assigned", incident_id=second))
        for rid, msg in (("a", {"type": "ack"}), ("s", {"type": "status", "status": "en_route"})):
            crew.send(json.dumps({**msg, "incident_id": first, "request_id": rid}))
            r = until(crew, lambda m, rid=rid: m.get("request_id") == rid)
            assert r["ok"] is False and r["error"]["status"] == 409, r
            assert f"sent for incident {first}" in r["error"]["detail"] and f"incident {second}" in r["error"]["detail"]
        nothing(console, lambda m: m.get("kind") in ("unit.acknowledged", "unit.status"), 1.0)
        a01_row = next(u for u in c.get("/units").json() if u["id"] == a01)
        assert a01_row["status"] == "dispatched" and a01_row["assignment"]["acknowledged_at"] is None
        # the same messages for the current job are applied
        crew.send(json.dumps({"type": "ack", "incident_id": second, "request_id": "a2"}))
        assert until(crew, lambda m: m.get("request_id") == "a2")["ok"] is True
        crew.send(json.dumps({"type": "status", "status": "en_route", "incident_id": second, "request_id": "s2"}))
        r = until(crew, lambda m: m.get("request_id") == "s2")
        assert (r["ok"], r["applied"], r["status"]) == (True, True, "en_route")
        crew.send(json.dumps({"type": "ack", "incident_id": "two", "request_id": "bad"}))
        assert "incident_id must be" in until(crew, lambda m: m.get("request_id") == "bad")["error"]["detail"]


def test_heartbeat_timeout_marks_the_unit_disconnected_then_connected(server: Server) -> None:
    a01 = server.db.units["A01"]
    with connect(server.ws_url("/ws/console", "dispatcher")) as console:
        hello(console)
        with connect(server.ws_url("/ws/crew", "crew-a01")) as crew:
            hello(crew)
            until(console, event("unit.connected", unit_id=a01))
            # the phone goes silent (the socket stays open, nothing is sent)
            gone = until(console, event("unit.disconnected", unit_id=a01), timeout=15)
            assert gone["data"]["silent_s"] >= 3
            crew.send(json.dumps({"type": "heartbeat"}))
            until(console, event("unit.connected", unit_id=a01))


def test_sockets_need_the_right_token(server: Server) -> None:
    a01 = server.db.units["A01"]
    for path, user, code, words in (
        ("/ws/console", None, 4401, "no token"),
        ("/ws/crew", None, 4401, "no token"),
        ("/ws/console", "crew-a01", 4403, "use /ws/crew"),
        ("/ws/crew", "dispatcher", 4403, "use /ws/console"),
    ):
        with connect(server.ws_url(path, user)) as ws:
            m = recv(ws)
            assert m["type"] == "error" and words in m["error"]["detail"], m
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    with connect(f"ws://127.0.0.1:{server.port}/ws/console?token=wrong") as ws:
        assert "not valid" in recv(ws)["error"]["detail"]
    with connect(server.ws_url("/ws/console", "dispatcher") + "&after=-3") as ws:
        assert "whole number" in recv(ws)["error"]["detail"]
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{server.port}/ws/nowhere")
    # a crew only ever hears about its own unit: another unit's assignment does not reach it
    with connect(server.ws_url("/ws/crew", "crew-a01")) as crew, server.client("dispatcher") as c:
        hello(crew)
        a02 = server.db.units["A02"]
        assign(c, new_incident(c), a02)
        nothing(crew, lambda m: m.get("type") == "event" and m.get("kind") != "unit.connected", 1.5)
        assert a01 != a02


class StuckClient:
    """A websocket client that completes the handshake and then reads nothing, like a phone app that froze;
    ``read_until_closed`` later reads what was buffered for it, up to the server's close frame."""

    def __init__(self, url: str, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.proto = ClientProtocol(parse_uri(url))
        self.proto.send_request(self.proto.connect())
        self.sock.sendall(b"".join(self.proto.data_to_send()))

    def __enter__(self) -> StuckClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def read_until_closed(self, timeout: float = 30.0) -> tuple[list[dict[str, Any]], Close | None]:
        self.sock.settimeout(timeout)
        messages: list[dict[str, Any]] = []
        while True:
            data = self.sock.recv(65536)
            if not data:
                return messages, self.proto.close_rcvd
            self.proto.receive_data(data)
            for ev in self.proto.events_received():
                if isinstance(ev, Frame) and ev.opcode is Opcode.TEXT:
                    messages.append(json.loads(ev.data))
            if self.proto.close_rcvd is not None:
                return messages, self.proto.close_rcvd


def test_a_stuck_client_is_cut_off_without_delaying_a_fast_one(
    database: Database, start_server: Callable[..., Server]
) -> None:
    """A console that stops reading: the socket's buffers fill, then its queue (20 messages here), and it is
    closed with a reason (4008) that it reads when it reads again; a console that reads gets every event
    meanwhile, in order, promptly."""
    server = start_server(database, DISPATCH_WS_QUEUE="20")
    with (
        StuckClient(server.ws_url("/ws/console", "dispatcher"), server.port) as stuck,
        connect(server.ws_url("/ws/console", "dispatcher")) as fast,
        server.client("dispatcher") as c,
    ):
        first = hello(fast)["seq"]
        delays = []
        for i in range(1000):
            t0 = time.monotonic()
            # long notes (12 kB in UTF-8) fill the kernel's socket buffers (~4 MB here) in a few hundred calls
            inc = new_incident(c, (HOAN_KIEM, BA_DINH)[i % 2], notes=LONG_NOTES)
            until(fast, event("incident.created", incident_id=inc))
            delays.append(time.monotonic() - t0)
            if i % 10 == 9 and httpx.get(server.base_url + "/healthz").json()["live"]["cut_off"] >= 1:
                break
        else:
            live = httpx.get(server.base_url + "/healthz").json()["live"]
            pytest.fail(f"the stuck console was never cut off: {live}")
        messages, close = stuck.read_until_closed()
        assert close is not None and close.code == 4008 and "fell behind" in close.reason, close
        assert messages[0]["type"] == "hello" and len(messages) > 20
        assert sorted(delays)[len(delays) // 2] < 1.0, "the fast console waited for the stuck one"
        # the fast console is still served, and the stuck one, reconnecting where it stopped, catches up
        last_seen = max(m["seq"] for m in messages if m.get("type") == "event")
        with connect(server.ws_url("/ws/console", "dispatcher", after=last_seen)) as back:
            assert recv(back)["type"] == "hello"
            replay = []
            while (m := recv(back))["type"] != "caught_up":
                replay.append(m["seq"])
        latest = httpx.get(server.base_url + "/healthz").json()["live"]["last_seq"]
        assert replay == list(range(last_seen + 1, latest + 1))
        assert latest - first >= i + 1


def _redis_url() -> str:
    import redis

    url = os.environ.get("DISPATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url} ({exc}): the several-process test needs a real one")
    return url


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_two_processes_share_events_over_redis(database: Database, start_server: Callable[..., Server]) -> None:
    """Two server processes on one PostgreSQL database with Redis as the bus: a console on process A and a crew
    on process B. An assignment made through A reaches the crew on B; the crew's status sent to B reaches the
    console on A; a crew that reconnects to A replays what it missed from B."""
    bus = {"DISPATCH_REDIS_URL": _redis_url(), "DISPATCH_REDIS_CHANNEL": f"dispatch-test-{uuid.uuid4().hex}", **FAST}
    a = start_server(database, **bus)
    b = start_server(database, **bus)
    a01 = database.units["A01"]
    with (
        connect(a.ws_url("/ws/console", "dispatcher")) as console,
        connect(b.ws_url("/ws/crew", "crew-a01")) as crew,
        a.client("dispatcher") as via_a,
        b.client("dispatcher") as via_b,
    ):
        hello(console)
        hello(crew)
        inc = new_incident(via_a)
        assign(via_a, inc, a01)
        got = until(crew, event("unit.assigned", unit_id=a01))
        assert got["data"]["route"]["steps"] and got["data"]["incident"]["id"] == inc
        crew.send(json.dumps({"type": "status", "status": "en_route", "request_id": "x"}))
        seen = until(console, event("unit.status", unit_id=a01))
        assert seen["data"]["status"] == "en_route"
        # calls taken on both processes at once reach the console on A once each, in sequence order
        ids = [new_incident(via_b if i % 2 else via_a, (HOAN_KIEM, BA_DINH)[i % 2]) for i in range(10)]
        created = []
        while len(created) < len(ids):
            m = until(console, lambda m: m.get("kind") == "incident.created")
            created.append(m)
        assert sorted(m["incident_id"] for m in created) == sorted(ids)
        seqs = [m["seq"] for m in created]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        last = seen["seq"]
    # the crew's phone reconnects to the other process and misses nothing
    with connect(a.ws_url("/ws/crew", "crew-a01", after=got["seq"])) as crew_on_a:
        assert recv(crew_on_a)["type"] == "hello"
        replay = []
        while (m := recv(crew_on_a))["type"] != "caught_up":
            replay.append((m["kind"], m["seq"]))
        assert ("unit.status", last) in replay
    for s in (a, b):
        stats = httpx.get(s.base_url + "/healthz").json()["live"]
        assert stats["last_seq"] >= last
    # a road closed through A is avoided by B's next route, and reopened through A is used again
    with a.client("dispatcher") as via_a, b.client("dispatcher") as via_b:
        trip = {"from": "21.0287,105.8524", "to": "21.0368,105.8342", "at": "10:00"}
        before = via_b.get("/route", params=trip).json()
        coords = before["geometry"]["coordinates"]
        k = len(coords) // 2
        lon, lat = (coords[k][0] + coords[k + 1][0]) / 2, (coords[k][1] + coords[k + 1][1]) / 2
        closure = via_a.post("/closures", json={"reason": "flooding", "lat": lat, "lon": lon}).json()
        assert _soon(lambda: via_b.get("/route", params=trip).json()["eta_s"] > before["eta_s"])
        assert via_a.post(f"/closures/{closure['id']}/reopen").status_code == 200
        assert _soon(lambda: via_b.get("/route", params=trip).json()["eta_s"] == before["eta_s"])


def _soon(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_serve_with_two_workers_on_one_address(database: Database, start_server: Callable[..., Server]) -> None:
    """`dispatch serve --workers 2`: two processes behind one port; sockets land on either, and every one gets
    every event."""
    bus = {"DISPATCH_REDIS_URL": _redis_url(), "DISPATCH_REDIS_CHANNEL": f"dispatch-test-{uuid.uuid4().hex}"}
    server = start_server(database, "--workers", "2", **bus)
    pids, deadline = set(), time.monotonic() + 120
    while len(pids) < 2 and time.monotonic() < deadline:  # the second worker may still be loading
        with httpx.Client() as fresh:  # a new connection each time, so either worker may take it
            pids.add(fresh.get(server.base_url + "/healthz").json()["pid"])
    assert len(pids) == 2, "only one worker ever answered /healthz"
    with contextlib.ExitStack() as stack:
        consoles: dict[int, ClientConnection] = {}
        for _ in range(200):  # the kernel hands new connections to either worker
            ws = stack.enter_context(connect(server.ws_url("/ws/console", "dispatcher")))
            pid = hello(ws)["server_pid"]
            consoles.setdefault(pid, ws)
            if len(consoles) == 2:
                break
        assert len(consoles) == 2, "all 200 connections landed on one worker"
        with server.client("dispatcher") as c:
            inc = new_incident(c)
        for ws in consoles.values():
            until(ws, event("incident.created", incident_id=inc))


def test_several_workers_need_redis(tmp_path: Any) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DISPATCH_REDIS_URL"}
    env["DISPATCH_DATABASE_URL"] = f"sqlite:///{tmp_path}/w.db"
    r = subprocess.run(
        [sys.executable, "-m", "dispatch.cli", "serve", "--workers", "2"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 2 and "needs DISPATCH_REDIS_URL" in r.stderr and "Traceback" not in r.stderr
