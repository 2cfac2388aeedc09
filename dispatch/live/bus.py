"""The event bus: in-process by default. Services publish committed events here, never before commit.

A bus message is a JSON-able dict of the shape of ``dispatch.services.context.event_message``::

    {"seq": 41, "at": "2026-11-23T07:00:00+00:00", "actor": "dispatcher", "kind": "unit.assigned",
     "incident_id": 7, "unit_id": 3, "data": {...}}

``seq`` is the event's number in the event log, for events that are stored there. Live-only messages (position
fixes that thinning did not store, recomputed ETAs) carry ``"seq": None``: they are pushed to whoever is
connected and never replayed; the state they describe is in the snapshot a client fetches on (re)connect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)
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

    def close(self) -> None:
        with self._lock:
            self._handlers.clear()


class Bus(Protocol):
    def publish(self, event: dict[str, Any]) -> None: ...
    def subscribe(self, handler: Handler) -> Callable[[], None]: ...
    def close(self) -> None: ...


class RedisBus:
    """Redis pub/sub between server processes. Every process, the publisher included, receives each message
    from Redis, so all of them see one order per publisher. Redis pub/sub keeps nothing: a message published
    while a process is cut off from Redis does not reach it, and that is why logged events are numbered: the
    hub fills any gap in the numbers from the database (``dispatch.live.hub``)."""

    def __init__(self, url: str, channel: str = "dispatch:events") -> None:
        import redis

        self.channel = channel
        self._redis = redis.Redis.from_url(url, socket_keepalive=True, health_check_interval=10)
        self._redis.ping()  # fail at start, with the address, when Redis is not there
        self._local = InProcessBus()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        self._pubsub.subscribe(**{channel: self._on_message})
        self._thread = self._pubsub.run_in_thread(sleep_time=1.0, daemon=True, exception_handler=self._on_error)

    def _on_message(self, message: dict[str, Any]) -> None:
        try:
            event = json.loads(message["data"])
        except (ValueError, TypeError):
            log.warning("ignored a message on %s that is not JSON", self.channel)
            return
        self._local.publish(event)

    def _on_error(self, exc: BaseException, _pubsub: Any, _thread: Any) -> None:
        # a dropped connection: redis-py reconnects and re-subscribes on the next read; say so and go on
        log.warning("Redis bus: %s; reconnecting", exc)
        time.sleep(0.5)

    def publish(self, event: dict[str, Any]) -> None:
        try:
            self._redis.publish(self.channel, json.dumps(event, separators=(",", ":")))
        except Exception as exc:  # noqa: BLE001 - the event is committed; the hubs fill the gap from the database
            log.warning("Redis bus: could not publish event %s: %s", event.get("seq"), exc)

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        return self._local.subscribe(handler)

    def close(self) -> None:
        self._thread.stop()
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._redis.close()
        self._local.close()


def make_bus(redis_url: str | None, channel: str = "dispatch:events") -> Bus:
    return RedisBus(redis_url, channel) if redis_url else InProcessBus()
