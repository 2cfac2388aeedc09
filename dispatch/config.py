"""Settings: built once from the environment by the entry point and passed down, never read at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dispatch.geo.snap import DEFAULT_MAX_SNAP_M
from dispatch.geo.store import DEFAULT_OSM, default_cache_dir


@dataclass(frozen=True)
class Settings:
    osm_file: Path = DEFAULT_OSM
    profile: str = "ambulance"
    cache_dir: Path | None = None
    max_snap_m: float = DEFAULT_MAX_SNAP_M

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """``DISPATCH_OSM_FILE``, ``DISPATCH_PROFILE``, ``DISPATCH_CACHE_DIR``, ``DISPATCH_MAX_SNAP_M``."""
        e = os.environ if env is None else env
        return cls(
            osm_file=Path(e.get("DISPATCH_OSM_FILE", str(DEFAULT_OSM))),
            profile=e.get("DISPATCH_PROFILE", "ambulance"),
            cache_dir=Path(e["DISPATCH_CACHE_DIR"]) if e.get("DISPATCH_CACHE_DIR") else default_cache_dir(),
            max_snap_m=float(e.get("DISPATCH_MAX_SNAP_M", DEFAULT_MAX_SNAP_M)),
        )
