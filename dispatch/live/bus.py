"""The event bus: in-process by default. Services publish committed events here, never before commit.

A bus message is a JSON-able dict of the shape of ``dispatch.services.context.event_message``::

    {"seq": 41, "at": "2026-11-23T07:00:00+00:00", "actor": "dispatcher", "kind": "unit.assigned",
     "incident_id": 7, "unit_id": 3, "data": {...}}

``seq`` is the event's number in the event log, for events that are stored there. Live-only messages (position
fixes that thinning did not store, recomputed ETAs) carry ``"seq": None``: they are pushed to whoever is
connected and never replayed; the state they describe is in the snapshot a client fetches on (re)connect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], None]


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        with self._lock:
            self._handlers.append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers:
                    self._handlers.remove(handler)

        return unsubscribe

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for h in handlers:
            h(event)
