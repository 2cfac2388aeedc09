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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """``DISPATCH_OSM_FILE``, ``DISPATCH_PROFILE``, ``DISPATCH_CACHE_DIR``, ``DISPATCH_MAX_SNAP_M``,
        ``DISPATCH_DATABASE_URL`` (SQLite file by default, or ``postgresql://...``), ``DISPATCH_TIMEZONE``."""
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
        return cls(
            osm_file=Path(e.get("DISPATCH_OSM_FILE", str(DEFAULT_OSM))),
            profile=e.get("DISPATCH_PROFILE", "ambulance"),
            cache_dir=Path(e["DISPATCH_CACHE_DIR"]) if e.get("DISPATCH_CACHE_DIR") else default_cache_dir(),
            max_snap_m=max_snap,
            database_url=url,
            timezone=e.get("DISPATCH_TIMEZONE", "Asia/Ho_Chi_Minh"),
        )
