"""Nothing acknowledged is lost: SIGKILL the server during a burst of incident creations, start it again on the
same database, and find every incident that was answered 201 - and an event log without holes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.conftest import BA_DINH, HOAN_KIEM, Database, Server

THREADS = 4
MAX_PER_THREAD = 400  # a bound: the kill comes long before
KILL_AFTER_ACKS = 30
WAIT_S = 120.0


@pytest.mark.slow
def test_sigkill_during_a_burst_loses_no_acknowledged_incident(
    database: Database, start_server: Callable[[Database], Server]
) -> None:
    server = start_server(database)
    acked: dict[int, str] = {}  # incident id -> caller number, for every 201
    other: list[str] = []  # any other answer before the kill
    lock = threading.Lock()
    ended_by_kill = threading.Event()
    enough = threading.Event()

    def burst(t: int) -> None:
        try:
            _burst(t)
        except BaseException as exc:  # reported by the test, not lost in the thread
            with lock:
                other.append(f"thread {t}: {exc!r}")

    def _burst(t: int) -> None:
        with server.client("dispatcher", timeout=30.0) as c:
            for i in range(MAX_PER_THREAD):
                caller = f"crash-{t}-{i}"
                lat, lon = (HOAN_KIEM, BA_DINH)[i % 2]
                body = {"lat": lat, "lon": lon, "complaint": "fall", "caller_number": caller}
                try:
                    r = c.post("/incidents", json=body)
                except httpx.TransportError:  # the server is gone
                    ended_by_kill.set()
                    return
                with lock:
                    if r.status_code == 201:
                        acked[r.json()["incident"]["id"]] = caller
                        if len(acked) >= KILL_AFTER_ACKS:
                            enough.set()
                    else:
                        other.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=burst, args=(t,), daemon=True) for t in range(THREADS)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + WAIT_S
    while not enough.wait(timeout=0.05) and any(th.is_alive() for th in threads) and time.monotonic() < deadline:
        pass
    assert enough.is_set(), f"fewer than {KILL_AFTER_ACKS} calls acknowledged: {other[:5]}"
    server.kill()  # SIGKILL, mid-burst
    for th in threads:
        th.join(timeout=WAIT_S)
    assert not any(th.is_alive() for th in threads)
    assert ended_by_kill.is_set(), "the kill came after the burst: it proves nothing"
    assert other == [], other[:5]
    acked_at_kill = dict(acked)

    restarted = start_server(database)
    with restarted.client("admin") as c:
        incidents = {i["id"]: i for i in c.get("/incidents", params={"limit": 5000}).json()}
        missing = sorted(set(acked_at_kill) - set(incidents))
        assert missing == [], f"acknowledged with 201, gone after the crash: {missing}"
        for inc_id, caller in acked_at_kill.items():
            assert incidents[inc_id]["caller_number"] == caller and incidents[inc_id]["status"] == "received"
        # at most the requests in flight at the kill were committed without their answer
        assert len(incidents) - len(acked_at_kill) <= THREADS

        log: list[dict[str, Any]] = c.get("/events", params={"after": 0, "limit": 5000}).json()
        seqs = [e["seq"] for e in log]
        assert seqs == list(range(1, len(seqs) + 1)), "the event log runs 1, 2, 3, ... with no gap"
        created = [e["incident_id"] for e in log if e["kind"] == "incident.created"]
        assert sorted(created) == sorted(incidents), "exactly one incident.created per incident"
        assert len(created) == len(log)

        # the restarted server carries on where the log stopped
        r = c.post("/incidents", json={"lat": HOAN_KIEM[0], "lon": HOAN_KIEM[1], "complaint": "fall"})
        assert r.status_code == 201, r.text
        new_id = r.json()["incident"]["id"]
        assert new_id not in incidents
        after = c.get("/events", params={"after": seqs[-1]}).json()
        assert [(e["seq"], e["kind"], e["incident_id"]) for e in after] == [(seqs[-1] + 1, "incident.created", new_id)]
