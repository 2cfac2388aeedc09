"""Live push: one hub per server process fans committed events out to its websocket clients.

Events reach the hub from the bus (in-process, or Redis between processes) in whatever order their commits
were published. The hub hands them on strictly in event-log order: an event that arrives early waits for the
ones before it, and a gap that is not filled within ``GAP_WAIT_S`` (a message Redis dropped, a process that died
between commit and publish) is read from the database. So a client sees every logged event once, in order,
whichever process it is connected to.

Each client has a bounded queue and a task of its own that writes to its socket: a slow or stuck client never
holds up the others; one whose queue fills is cut off with a reason and catches up when it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dispatch.core.types import UnitStatus

log = logging.getLogger(__name__)

GAP_WAIT_S = 0.3  # how long an event waits for earlier ones before the hub reads them from the database
POLL_S = 1.0  # how often the hub checks the database for events the bus did not bring
#: live position fixes are sent to the consoles together, one message per this many seconds: 300 units
#: reporting every second to 50 consoles is 15,000 messages a second one by one, 500 batched
POSITION_BATCH_S = 0.1
CLOSE_TOO_SLOW = 4008  # websocket close code: the client fell behind
#: how long a cut-off client's socket gets to take the close frame (behind what is still buffered for it);
#: a socket that stays stuck is dropped by the server's websocket pings
CLOSE_WAIT_S = 10.0


class Socket(Protocol):
    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


#: unit statuses after which a crew's unit has no incident any more
_FREE = {UnitStatus.AVAILABLE.value, UnitStatus.RETURNING.value, UnitStatus.OUT_OF_SERVICE.value}


@dataclass(eq=False)
class Client:
    """One websocket: a console (``unit_id`` None) sees everything; a crew sees what concerns its unit."""

    socket: Socket
    name: str
    unit_id: int | None = None
    incident_id: int | None = None  # a crew's current incident: its notes and cancellation reach the crew
    queue_max: int = 1000
    #: several waiting messages go out as one ``batch`` frame (a console that asked for it with ?batch=1)
    batch: bool = False
    sent_seq: int = 0  # the newest logged event sent to this client
    closed: str | None = None
    on_cut_off: Callable[[Client], None] | None = None
    _queue: asyncio.Queue[tuple[int | None, str]] = field(init=False)
    _writer: asyncio.Task[None] | None = field(default=None, init=False)
    _closing: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.queue_max)

    @property
    def is_crew(self) -> bool:
        return self.unit_id is not None

    def wants(self, msg: dict[str, Any]) -> bool:
        if self.unit_id is None:
            return True
        if msg.get("unit_id") == self.unit_id:
            return True
        kind = msg.get("kind", "")
        if kind == "incident.cancelled":
            return self.unit_id in msg.get("data", {}).get("released_units", [])
        return (
            kind.startswith("incident.")
            and msg.get("incident_id") is not None
            and msg["incident_id"] == (self.incident_id)
        )

    def follow(self, msg: dict[str, Any]) -> None:
        """Keep a crew's current incident up to date from the events it is sent."""
        if self.unit_id is None or msg.get("unit_id") != self.unit_id:
            if msg.get("kind") == "incident.cancelled" and msg.get("incident_id") == self.incident_id:
                self.incident_id = None
            return
        if msg.get("kind") == "unit.assigned":
            self.incident_id = msg.get("incident_id")
        elif msg.get("kind") == "unit.status" and msg.get("data", {}).get("status") in _FREE:
            self.incident_id = None

    def offer(self, seq: int | None, text: str) -> None:
        if self.closed is not None:
            return
        try:
            self._queue.put_nowait((seq, text))
        except asyncio.QueueFull:
            self.cut_off(f"fell behind: {self.queue_max} messages waiting; reconnect with after={self.sent_seq}")

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"ws-writer-{self.name}")

    async def _write(self) -> None:
        while True:
            first = self._fresh(*await self._queue.get())
            texts = [] if first is None else [first]
            # what queued up while the last frame was going out leaves in one frame: under a burst (300 phones
            # reconnecting, a fan-out of 1,000 sockets) the cost per frame, not per message, is paid
            while self.batch and len(texts) < BATCH_MAX and not self._queue.empty():
                text = self._fresh(*self._queue.get_nowait())
                if text is not None:
                    texts.append(text)
            if not texts:
                continue
            if len(texts) == 1:
                await self.socket.send_text(texts[0])
            else:
                await self.socket.send_text('{"type":"batch","messages":[' + ",".join(texts) + "]}")

    def _fresh(self, seq: int | None, text: str) -> str | None:
        """The message to send, or None for a logged event this client already has (from the replay)."""
        if seq is not None:
            if seq <= self.sent_seq:
                return None
            self.sent_seq = seq
        return text

    def cut_off(self, reason: str) -> None:
        if self.closed is not None:
            return
        self.closed = reason
        log.warning("websocket %s cut off: %s", self.name, reason)
        if self.on_cut_off is not None:
            self.on_cut_off(self)
        if self._writer is not None:
            self._writer.cancel()
        self._closing = asyncio.get_running_loop().create_task(self._close(CLOSE_TOO_SLOW, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.socket.close(code=code, reason=reason[:120]), timeout=CLOSE_WAIT_S)

    async def wait_closed(self) -> None:
        """Until the writer stops (the client was cut off, or the socket failed) and, after a cut-off, the
        close frame with the reason is out (or ``CLOSE_WAIT_S`` passed)."""
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        if self._closing is not None:
            await self._closing

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()


#: messages in one ``batch`` frame at most
BATCH_MAX = 200


def encode(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def as_message(event: dict[str, Any]) -> dict[str, Any]:
    """A bus message as sent to clients: logged events are ``event``, live-only ones ``live``."""
    return {"type": "event" if event.get("seq") is not None else "live", **event}


class Hub:
    """Fans messages out to this process's clients, in event-log order."""

    def __init__(
        self,
        *,
        latest_seq: Callable[[], int],
        events_after: Callable[[int, int], list[dict[str, Any]]],
        on_live: Callable[[dict[str, Any]], object] | None = None,
        on_event: Callable[[dict[str, Any]], object] | None = None,
        queue_max: int = 1000,
    ) -> None:
        self._latest_seq = latest_seq
        self._events_after = events_after
        self._on_live = on_live
        self._on_event = on_event
        self.queue_max = queue_max
        self.clients: set[Client] = set()
        self.last_seq = 0
        self.delivered = 0
        self.filled_from_db = 0
        self.cut_offs = 0
        self._early: dict[int, dict[str, Any]] = {}
        self._gap_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._filling = False
        self._fixes: list[dict[str, Any]] = []

    # -- the bus side ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Call after subscribing :meth:`from_bus`: events published meanwhile are kept, older ones dropped."""
        self._loop = asyncio.get_running_loop()
        self.last_seq = await asyncio.to_thread(self._latest_seq)
        self._early = {s: m for s, m in self._early.items() if s > self.last_seq}
        self._drain()
        self._tasks.append(self._loop.create_task(self._poll(), name="hub-poll"))
        self._tasks.append(self._loop.create_task(self._flush_fixes(), name="hub-positions"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in list(self.clients):
            c.stop()

    def from_bus(self, msg: dict[str, Any]) -> None:
        """The bus handler: runs on whatever thread published; hands the message to the event loop."""
        loop = self._loop
        if loop is None:  # before start(): keep logged events, start() sorts them out
            if msg.get("seq") is not None:
                self._early[int(msg["seq"])] = msg
            return
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(self.receive, msg)

    def receive(self, msg: dict[str, Any]) -> None:
        seq = msg.get("seq")
        if seq is None:
            if self._on_live is not None:
                self._on_live(msg)
            if msg.get("kind") == "unit.position":
                self._fixes.append(
                    {"unit_id": msg.get("unit_id"), "incident_id": msg.get("incident_id"), **msg["data"]}
                )
            else:
                self._fanout(msg)
            return
        if seq <= self.last_seq:
            return
        self._early[int(seq)] = msg
        if self._loop is not None:  # before start(), start() sorts the early ones out
            self._drain()

    def _drain(self) -> None:
        while self.last_seq + 1 in self._early:
            self.last_seq += 1
            self._fanout(self._early.pop(self.last_seq))
        for s in [s for s in self._early if s <= self.last_seq]:
            del self._early[s]
        if not self._early:
            self._gap_since = None
        elif self._gap_since is None and self._loop is not None:
            self._gap_since = self._loop.time()

    async def _flush_fixes(self) -> None:
        """Every ``POSITION_BATCH_S``: the live fixes received meanwhile, as one ``unit.positions`` message to
        each console (crews do not get other units' positions)."""
        while True:
            await asyncio.sleep(POSITION_BATCH_S)
            if self._fixes:
                fixes, self._fixes = self._fixes, []
                self._fanout(
                    {
                        "seq": None,
                        "kind": "unit.positions",
                        "unit_id": None,
                        "incident_id": None,
                        "data": {"fixes": fixes},
                    }
                )

    async def _poll(self) -> None:
        """Fill gaps the bus left: a late or lost message, or one published while Redis was away."""
        assert self._loop is not None
        next_check = self._loop.time() + POLL_S
        while True:
            await asyncio.sleep(GAP_WAIT_S / 3)
            now = self._loop.time()
            gap = self._gap_since is not None and now - self._gap_since >= GAP_WAIT_S
            if gap or now >= next_check:
                next_check = now + POLL_S
                try:
                    await self.fill_from_db(only_if_behind=not gap)
                except Exception:  # noqa: BLE001 - the database is away: try again next round
                    log.exception("could not read the event log")

    async def fill_from_db(self, *, only_if_behind: bool = False) -> None:
        if self._filling:
            return
        self._filling = True
        try:
            if only_if_behind:
                latest = await asyncio.to_thread(self._latest_seq)
                if latest <= self.last_seq:
                    return
            while True:
                rows = await asyncio.to_thread(self._events_after, self.last_seq, 500)
                for m in rows:
                    if m["seq"] == self.last_seq + 1:
                        self.filled_from_db += 1
                        self._early[m["seq"]] = m
                        self._drain()
                if len(rows) < 500:
                    break
        finally:
            self._filling = False

    def _fanout(self, msg: dict[str, Any]) -> None:
        self.delivered += 1
        if self._on_event is not None and msg.get("seq") is not None:
            try:
                self._on_event(msg)
            except Exception:  # noqa: BLE001 - one bad event must not stop the delivery of the others
                log.exception("handling event %s failed", msg.get("seq"))
        seq = msg.get("seq")
        text: str | None = None
        clients = list(self.clients)
        # crews first: their writers wake first, so an assignment is on its way to the phone before the fan-out
        # to every console (1,000 of them in bench/live.py) has begun
        for c in [c for c in clients if c.is_crew] + [c for c in clients if not c.is_crew]:
            if c.closed is not None or not c.wants(msg):
                continue
            c.follow(msg)
            if text is None:
                text = encode(as_message(msg))
            c.offer(seq, text)

    # -- the client side ---------------------------------------------------------------------------------------
    def client(self, socket: Socket, name: str, unit_id: int | None = None, *, batch: bool = False) -> Client:
        return Client(
            socket, name, unit_id=unit_id, queue_max=self.queue_max, batch=batch, on_cut_off=self._count_cut_off
        )

    def _count_cut_off(self, _client: Client) -> None:
        self.cut_offs += 1

    def stats(self) -> dict[str, int]:
        return {
            "clients": len(self.clients),
            "last_seq": self.last_seq,
            "delivered": self.delivered,
            "filled_from_db": self.filled_from_db,
            "cut_off": self.cut_offs,
        }

    async def attach(self, c: Client, after: int | None, replay: Callable[[int, int], list[dict[str, Any]]]) -> int:
        """Register ``c``; if ``after`` is given, first send it every logged event after that number that it
        wants, then live ones. Returns the number of events replayed."""
        self.clients.add(c)  # live events queue up from here on; the writer skips what the replay sent
        replayed = 0
        if after is not None:
            c.sent_seq = after
            cursor = after
            while True:
                page = list(await asyncio.to_thread(replay, cursor, 500))
                for m in page:
                    cursor = max(cursor, m["seq"])
                    if c.wants(m):
                        c.follow(m)
                        await c.socket.send_text(encode(as_message(m)))
                        c.sent_seq = m["seq"]
                        replayed += 1
                if len(page) < 500:
                    break
            c.sent_seq = max(c.sent_seq, cursor)
        c.start()
        return replayed

    def detach(self, c: Client) -> None:
        self.clients.discard(c)
        c.stop()

    def send_to_unit(self, unit_id: int, msg: dict[str, Any]) -> int:
        """Send ``msg`` (not through the log) to this process's crew sockets of ``unit_id``."""
        text = encode(msg)
        n = 0
        for c in list(self.clients):
            if c.unit_id == unit_id and c.closed is None:
                c.offer(None, text)
                n += 1
        return n
