"""Settings: built once from the environment by the entry point and passed down, never read at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dispatch.core.errors import InvalidInput
from dispatch.geo.snap import DEFAULT_MAX_SNAP_M
from dispatch.geo.store import DEFAULT_OSM, default_cache_dir

DEFAULT_DATABASE_URL = "sqlite:///dispatch.db"


@dataclass(frozen=True)
class Settings:
    osm_file: Path = DEFAULT_OSM
    profile: str = "ambulance"
    cache_dir: Path | None = None
    max_snap_m: float = DEFAULT_MAX_SNAP_M
    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "Asia/Ho_Chi_Minh"
    vehicles: tuple[str, ...] = ("ambulance", "motorbike")
    #: several server processes share events over Redis pub/sub when set (e.g. redis://127.0.0.1:6379/0)
    redis_url: str | None = None
    redis_channel: str = "dispatch:events"
    #: the consoles are told when a crew has not acknowledged an assignment after this long
    ack_timeout_s: float = 30.0
    #: an unacknowledged assignment is sent to the crew's phone again this often
    resend_s: float = 10.0
    #: a crew phone silent for this long is shown as disconnected
    heartbeat_timeout_s: float = 90.0
    #: messages a websocket client may have waiting before it is cut off as too slow
    ws_queue: int = 1000
    #: permessage-deflate on the websockets: off by default, because compressing every message once per socket
    #: was the largest cost of a fan-out to many consoles (bench/live.py); worth it only on slow links
    ws_deflate: bool = False
    #: an online tile server the console may offer beside the offline basemap, as a URL template with {z}, {x}
    #: and {y} (e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png); None: the offline basemap only
    online_tile_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """``DISPATCH_OSM_FILE``, ``DISPATCH_PROFILE``, ``DISPATCH_CACHE_DIR``, ``DISPATCH_MAX_SNAP_M``,
        ``DISPATCH_DATABASE_URL`` (SQLite file by default, or ``postgresql://...``), ``DISPATCH_TIMEZONE``,
        ``DISPATCH_REDIS_URL`` and ``DISPATCH_REDIS_CHANNEL`` (the bus of several processes),
        ``DISPATCH_ACK_TIMEOUT_S``, ``DISPATCH_RESEND_S``, ``DISPATCH_HEARTBEAT_TIMEOUT_S`` (seconds),
        ``DISPATCH_WS_QUEUE`` (messages), ``DISPATCH_WS_DEFLATE`` (1/0),
        ``DISPATCH_ONLINE_TILE_URL`` (a tile URL template with {z}, {x}, {y})."""
        e = os.environ if env is None else env
        try:
            max_snap = float(e.get("DISPATCH_MAX_SNAP_M", DEFAULT_MAX_SNAP_M))
        except ValueError:
            raise InvalidInput("DISPATCH_MAX_SNAP_M must be a number of metres, e.g. 250") from None
        url = e.get("DISPATCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise InvalidInput(
                f"DISPATCH_DATABASE_URL {url!r} is not supported: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
            )
        redis = e.get("DISPATCH_REDIS_URL", "")
        if redis and not redis.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidInput(f"DISPATCH_REDIS_URL {redis!r} is not supported: use redis://HOST:PORT/DB")
        return cls(
            osm_file=Path(e.get("DISPATCH_OSM_FILE", str(DEFAULT_OSM))),
            profile=e.get("DISPATCH_PROFILE", "ambulance"),
            cache_dir=Path(e["DISPATCH_CACHE_DIR"]) if e.get("DISPATCH_CACHE_DIR") else default_cache_dir(),
            max_snap_m=max_snap,
            database_url=url,
            timezone=e.get("DISPATCH_TIMEZONE", "Asia/Ho_Chi_Minh"),
            redis_url=redis or None,
            redis_channel=e.get("DISPATCH_REDIS_CHANNEL", "dispatch:events"),
            ack_timeout_s=_seconds(e, "DISPATCH_ACK_TIMEOUT_S", 30.0),
            resend_s=_seconds(e, "DISPATCH_RESEND_S", 10.0),
            heartbeat_timeout_s=_seconds(e, "DISPATCH_HEARTBEAT_TIMEOUT_S", 90.0),
            ws_queue=_count(e, "DISPATCH_WS_QUEUE", 1000),
            ws_deflate=_flag(e, "DISPATCH_WS_DEFLATE", False),
            online_tile_url=_tile_url(e, "DISPATCH_ONLINE_TILE_URL"),
        )


def _seconds(env: os._Environ[str] | dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number of seconds, e.g. {default:g}; got {raw!r}") from None
    if not 0.1 <= value <= 86_400:
        raise InvalidInput(f"{name} must be between 0.1 and 86400 seconds; got {value:g}")
    return value


def _flag(env: os._Environ[str] | dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise InvalidInput(f"{name} must be 1 or 0 (true/false, yes/no, on/off); got {raw!r}")
    return raw in ("1", "true", "yes", "on")


def _count(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise InvalidInput(f"{name} must be a whole number from 1 to 1000000, e.g. {default}; got {raw!r}")
    return int(raw)


def _tile_url(env: os._Environ[str] | dict[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in raw]
    problems = [] if raw.startswith(("http://", "https://")) else ["it does not start with http:// or https://"]
    problems += [f"it lacks {', '.join(missing)}"] if missing else []
    if problems:
        example = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
        raise InvalidInput(f"{name} {raw!r} is not a tile URL template ({'; '.join(problems)}): use e.g. {example}")
    return raw
