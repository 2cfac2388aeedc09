"""The hub hands events on in event-log order: early ones wait for earlier ones, a gap is read from the log,
duplicates are dropped, and a client that stops taking messages is cut off without holding up the others."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dispatch.live.hub import GAP_WAIT_S, POSITION_BATCH_S, Hub


class Log:
    """The event log as the hub reads it: committed events by sequence number."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, seq: int) -> dict[str, Any]:
        ev = {"seq": seq, "kind": "incident.note", "unit_id": None, "incident_id": 1, "data": {"n": seq}}
        self.events.append(ev)
        return ev

    def latest(self) -> int:
        return max((e["seq"] for e in self.events), default=0)

    def after(self, after: int, limit: int) -> list[dict[str, Any]]:
        return sorted((e for e in self.events if e["seq"] > after), key=lambda e: e["seq"])[:limit]


class Socket:
    def __init__(self, *, stuck: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.stuck = asyncio.Event() if stuck else None
        self.closed: tuple[int, str | None] | None = None

    async def send_text(self, data: str) -> None:
        if self.stuck is not None:
            await self.stuck.wait()  # never set: a client that stopped reading
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)


def seqs(sock: Socket) -> list[int]:
    return [m["seq"] for m in sock.sent if m.get("seq") is not None]


async def _hub(log: Log, queue_max: int = 100) -> Hub:
    hub = Hub(latest_seq=log.latest, events_after=log.after, queue_max=queue_max)
    await hub.start()
    return hub


def test_early_events_wait_for_earlier_ones_and_duplicates_are_dropped() -> None:
    async def run() -> None:
        log = Log()
        hub = await _hub(log)
        sock = Socket()
        c = hub.client(sock, "console")
        await hub.attach(c, None, log.after)
        e1, e2, e3 = log.add(1), log.add(2), log.add(3)
        for ev in (e3, e1, e1, e2, e3):  # published by three processes, in another order, twice
            hub.receive(ev)
        await asyncio.sleep(0.05)
        assert seqs(sock) == [1, 2, 3]
        assert hub.filled_from_db == 0
        await hub.stop()

    asyncio.run(run())


def test_a_gap_the_bus_never_fills_is_read_from_the_log() -> None:
    async def run() -> None:
        log = Log()
        hub = await _hub(log)
        sock = Socket()
        await hub.attach(hub.client(sock, "console"), None, log.after)
        e1 = log.add(1)
        log.add(2)  # committed, but its bus message was lost
        e3 = log.add(3)
        hub.receive(e1)
        hub.receive(e3)
        await asyncio.sleep(0.05)
        assert seqs(sock) == [1], "3 waits for 2"
        await asyncio.sleep(GAP_WAIT_S * 3)
        assert seqs(sock) == [1, 2, 3]
        assert hub.filled_from_db == 1
        await hub.stop()

    asyncio.run(run())


def test_replay_then_live_without_a_duplicate() -> None:
    async def run() -> None:
        log = Log()
        for s in range(1, 6):
            log.add(s)
        hub = await _hub(log)
        assert hub.last_seq == 5
        sock = Socket()
        c = hub.client(sock, "console")
        hub.receive(log.add(6))  # committed while the client connects: in the replay and on the bus
        replayed = await hub.attach(c, 2, log.after)
        hub.receive(log.add(7))
        await asyncio.sleep(0.05)
        assert replayed == 4
        assert seqs(sock) == [3, 4, 5, 6, 7]
        await hub.stop()

    asyncio.run(run())


def test_a_stuck_client_is_cut_off_and_the_others_keep_getting_everything() -> None:
    async def run() -> None:
        log = Log()
        hub = await _hub(log, queue_max=5)
        fast, stuck = Socket(), Socket(stuck=True)
        await hub.attach(hub.client(fast, "fast"), None, log.after)
        slow = hub.client(stuck, "stuck")
        await hub.attach(slow, None, log.after)
        for s in range(1, 21):
            hub.receive(log.add(s))
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert seqs(fast) == list(range(1, 21))
        assert slow.closed is not None and "fell behind: 5 messages waiting" in slow.closed
        assert stuck.closed is not None and stuck.closed[0] == 4008
        assert hub.cut_offs == 1
        await hub.stop()

    asyncio.run(run())


def test_live_fixes_reach_consoles_batched_and_crews_not_at_all() -> None:
    async def run() -> None:
        log = Log()
        hub = await _hub(log)
        console, crew = Socket(), Socket()
        await hub.attach(hub.client(console, "console"), None, log.after)
        await hub.attach(hub.client(crew, "crew", unit_id=7), None, log.after)
        for k in range(5):
            data = {"lat": 21.0 + k / 1e4, "lon": 105.8, "position_at": f"2026-11-23T07:00:0{k}+00:00"}
            hub.receive({"seq": None, "kind": "unit.position", "unit_id": 7 + k % 2, "incident_id": None, "data": data})
        await asyncio.sleep(POSITION_BATCH_S * 3)
        batches = [m for m in console.sent if m.get("kind") == "unit.positions"]
        assert len(batches) == 1 and batches[0]["type"] == "live" and batches[0]["seq"] is None
        fixes = batches[0]["data"]["fixes"]
        assert [(f["unit_id"], f["position_at"][-10:-6]) for f in fixes] == [
            (7, "0:00"),
            (8, "0:01"),
            (7, "0:02"),
            (8, "0:03"),
            (7, "0:04"),
        ]
        assert [m for m in crew.sent if "position" in m.get("kind", "")] == []
        await hub.stop()

    asyncio.run(run())


class SlowSocket(Socket):
    """A socket whose sends take a while (a large frame on a busy link): messages queue up behind each."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[dict[str, Any]] = []

    async def send_text(self, data: str) -> None:
        await asyncio.sleep(0.02)
        frame = json.loads(data)
        self.frames.append(frame)
        self.sent.extend(frame["messages"] if frame.get("type") == "batch" else [frame])


def test_a_console_that_asks_for_batches_gets_the_messages_that_waited_together_in_one_frame() -> None:
    async def run() -> None:
        log = Log()
        hub = await _hub(log)
        batched, plain = SlowSocket(), SlowSocket()
        for sock, batch in ((batched, True), (plain, False)):
            await hub.attach(hub.client(sock, "console", batch=batch), None, log.after)
        hub.receive(log.add(1))
        await asyncio.sleep(0.005)  # the first is on its way (a send takes 20 ms) when the others come
        for seq in range(2, 11):
            hub.receive(log.add(seq))
        await asyncio.sleep(0.4)
        # the same events in the same order; the first goes alone, the nine that queued behind it in one frame
        assert seqs(batched) == seqs(plain) == list(range(1, 11))
        assert [len(f["messages"]) if f.get("type") == "batch" else 1 for f in batched.frames] == [1, 9]
        assert len(plain.frames) == 10
        # a replayed event is not sent twice inside a batch either
        hub.receive(log.events[4])
        await asyncio.sleep(0.1)
        assert seqs(batched) == list(range(1, 11))
        await hub.stop()

    asyncio.run(run())
