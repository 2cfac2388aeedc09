"""What a server process runs for live push: the hub on the bus, presence and acknowledgement watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from dispatch.db.models import Event
from dispatch.live.hub import Hub, as_message
from dispatch.services import closures, presence
from dispatch.services.context import Ctx, event_message
from dispatch.services.incidents import events_after

log = logging.getLogger(__name__)


class Live:
    """The hub plus the periodic work: disconnected phones, overdue acknowledgements, resent assignments."""

    def __init__(
        self,
        ctx: Ctx,
        *,
        ack_timeout_s: float = 30.0,
        resend_s: float = 10.0,
        heartbeat_timeout_s: float = 90.0,
        queue_max: int = 1000,
        on_live: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        self.ctx = ctx
        self.ack_timeout_s = ack_timeout_s
        self.resend_s = resend_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        #: a phone's "seen" time is written at most this often while it stays connected
        self.seen_every_s = min(15.0, heartbeat_timeout_s / 6)
        self.hub = Hub(
            latest_seq=self.latest_seq,
            events_after=self.events_after,
            on_live=on_live,
            on_event=self._on_event,
            queue_max=queue_max,
        )
        self._seen: dict[int, float] = {}
        self._seen_pending: set[int] = set()
        self._seen_writer: asyncio.Task[None] | None = None
        self._resent: dict[tuple[int, int], float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None

    def _on_event(self, msg: dict[str, Any]) -> None:
        """Logged events that change this process's state: road closures made through another process."""
        if msg.get("kind") in ("road.closed", "road.reopened"):
            closures.follow(self.ctx, msg)

    def latest_seq(self) -> int:
        with self.ctx.reader() as s:
            return int(s.execute(select(func.coalesce(func.max(Event.seq), 0))).scalar_one())

    def events_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        return [event_message(e) for e in events_after(self.ctx, after=after, limit=limit)]

    async def start(self) -> None:
        self._unsubscribe = self.ctx.bus.subscribe(self.hub.from_bus)
        await self.hub.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(min(5.0, self.heartbeat_timeout_s / 6, self.ack_timeout_s / 3), self._sweep)),
            loop.create_task(self._every(max(0.2, self.resend_s / 4), self._resend)),
        ]

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._seen_writer is not None:
            with contextlib.suppress(Exception):
                await self._seen_writer  # the last phones heard from are written
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.hub.stop()

    async def _every(self, period_s: float, work: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await work()
            except Exception:  # noqa: BLE001 - the database may be away for a moment: next round
                log.exception("live housekeeping failed")

    async def _sweep(self) -> None:
        await asyncio.to_thread(
            presence.sweep, self.ctx, heartbeat_timeout_s=self.heartbeat_timeout_s, ack_timeout_s=self.ack_timeout_s
        )

    async def _resend(self) -> None:
        crews = {c.unit_id for c in self.hub.clients if c.unit_id is not None and c.closed is None}
        if not crews:
            return
        now = time.monotonic()
        wall = self.ctx.clock()
        for u in await asyncio.to_thread(presence.unacknowledged, self.ctx):
            if u.unit_id not in crews or (wall - u.event.at).total_seconds() < self.resend_s:
                continue
            key = (u.unit_id, u.assignment_id)
            if now - self._resent.get(key, 0.0) < self.resend_s:
                continue
            self._resent[key] = now
            msg = {**as_message(event_message(u.event)), "resent": True}
            self.hub.send_to_unit(u.unit_id, msg)

    async def seen(self, unit_id: int, *, wait: bool = False) -> None:
        """A crew phone was heard from: recorded in the database at most every ``seen_every_s``. The phones
        heard from meanwhile are written together, one transaction at a time; a message from a phone is not
        held up behind that write, unless ``wait`` (a socket opening: its ``unit.connected`` comes before
        the ``hello``)."""
        now = time.monotonic()
        if now - self._seen.get(unit_id, -1e9) < self.seen_every_s:
            return
        self._seen[unit_id] = now
        self._seen_pending.add(unit_id)
        if self._seen_writer is None or self._seen_writer.done():
            self._seen_writer = asyncio.get_running_loop().create_task(self._write_seen())
        if wait:
            await asyncio.shield(self._seen_writer)

    async def _write_seen(self) -> None:
        while self._seen_pending:
            ids = sorted(self._seen_pending)
            self._seen_pending.clear()
            try:
                await asyncio.to_thread(presence.mark_seen, self.ctx, ids)
            except Exception:  # noqa: BLE001 - the database may be away for a moment: written with the next ones
                log.exception("recording phones heard from failed")
                for unit_id in ids:
                    self._seen.pop(unit_id, None)

    def forget(self, unit_id: int) -> None:
        """The crew's socket closed: the next message from it is written at once (it may have reconnected
        after the sweep marked it disconnected)."""
        self._seen.pop(unit_id, None)
