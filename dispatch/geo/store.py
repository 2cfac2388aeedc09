"""Build a road graph from an OSM file once and cache it on disk, keyed by the file's hash and the profile."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dispatch.core.errors import InvalidInput
from dispatch.geo.ch import CHIndex
from dispatch.geo.graph import RoadGraph, build_graph
from dispatch.geo.osm import read_osm
from dispatch.geo.profile import Profile, load_profile

#: bump when the compiled layout or the build rules change, so old caches are not reused
FORMAT_VERSION = 1
DEFAULT_OSM = Path(__file__).resolve().parents[2] / "geodata" / "hanoi" / "central-hanoi.osm.pbf"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dispatch"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def cache_key(osm_path: Path, profile: Profile) -> str:
    return f"{file_digest(osm_path)}-{profile.name}-{profile.digest()}-v{FORMAT_VERSION}"


class LoadedGraph:
    """A road graph with one contraction hierarchy per time-of-day period."""

    def __init__(
        self, graph: RoadGraph, chs: list[CHIndex], *, cache_path: Path | None, warm: bool, load_s: float
    ) -> None:
        self.graph = graph
        self.chs = chs
        self.cache_path = cache_path
        self.warm = warm
        self.load_s = load_s


def load_or_build(
    osm_path: str | Path | None = None,
    profile: Profile | str = "ambulance",
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    use_cache: bool = True,
) -> LoadedGraph:
    """The graph of ``osm_path`` for ``profile``: from the cache when it holds it, else built (and cached)."""
    started = time.perf_counter()
    path = Path(osm_path) if osm_path is not None else DEFAULT_OSM
    prof = load_profile(profile) if isinstance(profile, str) else profile
    if not path.is_file():  # checked here too so the message names the path before any hashing
        read_osm(path)
    base = Path(cache_dir or default_cache_dir())
    if base.exists() and not base.is_dir():
        raise InvalidInput(
            f"cache directory {base} is a file, not a directory: give another --cache-dir or DISPATCH_CACHE_DIR"
        )
    target = base / cache_key(path, prof)
    if use_cache and (target / "meta.json").is_file():
        graph, chs = _load(target, prof)
        return LoadedGraph(graph, chs, cache_path=target, warm=True, load_s=time.perf_counter() - started)
    with tqdm(
        total=2 + len(prof.periods), desc=f"reading {path.name}", unit="step", disable=not progress, leave=False
    ) as bar:
        raw = read_osm(path)
        bar.update()
        bar.set_description(f"compiling the {prof.name} graph")
        graph = build_graph(raw, prof, source=str(path))
        bar.update()
        chs = []
        for p, period in enumerate(prof.periods):
            bar.set_description(f"contraction hierarchy for {period.name}")
            chs.append(CHIndex.build(graph, p))
            bar.update()
    graph.stats["build_s"] = round(time.perf_counter() - started, 3)
    if use_cache:
        _save(target, graph, chs)
    return LoadedGraph(
        graph, chs, cache_path=target if use_cache else None, warm=False, load_s=time.perf_counter() - started
    )


_LISTS = ("names", "names_en", "classes")


def _save(target: Path, graph: RoadGraph, chs: list[CHIndex]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create the cache directory {target.parent}: {exc.strerror}") from None
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        np.savez(tmp / "arrays.npz", allow_pickle=False, **graph.arrays())
        for i, ch in enumerate(chs):
            ch.save(tmp / f"ch-{i}.bin")
        meta: dict[str, Any] = {k: getattr(graph, k) for k in _LISTS}
        meta["stats"] = graph.stats
        meta["format"] = FORMAT_VERSION
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a reader sees the whole cache or none of it
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(target: Path, profile: Profile) -> tuple[RoadGraph, list[CHIndex]]:
    meta = json.loads((target / "meta.json").read_text("utf-8"))
    with np.load(target / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    kwargs: dict[str, Any] = {f.name: arrays[f.name] for f in fields(RoadGraph) if f.name in arrays}
    graph = RoadGraph(profile=profile, stats=meta["stats"], **{k: meta[k] for k in _LISTS}, **kwargs)
    chs = [CHIndex.load(target / f"ch-{i}.bin", graph, i) for i in range(len(profile.periods))]
    return graph, chs
