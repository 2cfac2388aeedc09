"""The event bus: in-process by default. Services publish committed events here, never before commit."""

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
