"""Basemap benchmark: vector-tile times per zoom and what a console viewport costs, against one whole GeoJSON.

For the central-Hanoi graph the server draws (the motorbike graph: the one with the most edges) and for the
synthetic ~1M-node grid of bench/biggraph.py (cached under bench/out/), it

  1. builds the Basemap (spatial index, join table, ETag digest) and times it,
  2. times ``Basemap.tile`` + JSON encoding for ``--tiles`` tiles per zoom 12..17: the tiles that hold randomly
     drawn points of the road geometry (seeded), so busy areas are drawn as often as a dispatcher looks at them,
  3. adds up the bytes of the tiles a 1280 x 800 px console viewport needs over the graph's centre at z15 and
     z13 (raw JSON, and gzipped as the API sends them),
  4. builds the baseline a naive console would use: the whole road network as one GeoJSON FeatureCollection,
     made the way a naive endpoint would (``json.dumps`` of every edge's LineString with its name and class, in
     FastAPI's compact JSONResponse style), and reports its bytes (raw, gzipped) and build time, with the
     viewport-to-baseline ratios.

    .venv/bin/python bench/basemap.py            # Hanoi + the 1M-node grid (~1 min with the grid cached)
    .venv/bin/python bench/basemap.py --quick    # Hanoi only, fewer tiles
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.biggraph import load_or_build_grid  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from dispatch.geo.basemap import Basemap, encode, tile_xy, world_x, world_y  # noqa: E402
from dispatch.geo.graph import RoadGraph  # noqa: E402
from dispatch.geo.store import load_or_build  # noqa: E402

ZOOMS = range(12, 18)
VIEWPORT_PX = (1280, 800)
GZIP_LEVEL = 6  # as dispatch.api.basemap


def tile_times(basemap: Basemap, z: int, n: int, rng: np.random.Generator) -> dict[str, float]:
    g = basemap.graph
    picks = rng.integers(0, len(g.geom_lat), n)
    times = []
    for i in picks.tolist():
        x, y = tile_xy(float(g.geom_lat[i]), float(g.geom_lon[i]), z)
        t0 = time.perf_counter()
        encode(basemap.tile(z, x, y))
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def viewport_tiles(lat: float, lon: float, z: int) -> list[tuple[int, int, int]]:
    """The tiles of a VIEWPORT_PX console centred on (lat, lon) at zoom z."""
    n = 2**z
    wx = float(world_x(np.array([lon]))[0]) * n * 256  # the centre in world pixels at zoom z
    wy = float(world_y(np.array([lat]))[0]) * n * 256
    w, h = VIEWPORT_PX
    xs = range(int((wx - w / 2) // 256), int((wx + w / 2) // 256) + 1)
    ys = range(int((wy - h / 2) // 256), int((wy + h / 2) // 256) + 1)
    return [(z, tx, ty) for tx in xs for ty in ys if 0 <= tx < n and 0 <= ty < n]


def viewport_bytes(basemap: Basemap, z: int) -> dict[str, Any]:
    south, west, north, east = basemap.graph.bbox()
    tiles = viewport_tiles((south + north) / 2, (west + east) / 2, z)
    t0 = time.perf_counter()
    bodies = [encode(basemap.tile(*t)) for t in tiles]
    build_s = time.perf_counter() - t0
    return {
        "tiles": len(tiles),
        "raw": sum(len(b) for b in bodies),
        "gzip": sum(len(gzip.compress(b, compresslevel=GZIP_LEVEL)) for b in bodies),
        "build_ms": build_s * 1000,
    }


def naive_geojson(g: RoadGraph) -> tuple[bytes, float]:
    """The whole network as one GeoJSON FeatureCollection, one json.dumps per edge, and its build time."""
    t0 = time.perf_counter()
    off = g.geom_offsets.tolist()
    lat, lon = g.geom_lat.tolist(), g.geom_lon.tolist()
    names, classes = g.edge_name.tolist(), g.edge_class.tolist()
    features = []
    for e in range(g.n_edges):
        coords = [[lon[i], lat[i]] for i in range(off[e], off[e + 1])]
        feature = {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": coords},
            "properties": {"name": g.names[names[e]] if names[e] >= 0 else None, "class": g.classes[classes[e]]},
        }
        features.append(json.dumps(feature, ensure_ascii=False, separators=(",", ":")))
    body = ('{"type":"FeatureCollection","features":[' + ",".join(features) + "]}").encode()
    return body, time.perf_counter() - t0


def run(label: str, g: RoadGraph, *, tiles: int, seed: int) -> dict[str, Any]:
    print(f"[basemap] {label}: {g.n_nodes:,} nodes, {g.n_edges:,} edges; building the basemap ...", flush=True)
    t0 = time.perf_counter()
    basemap = Basemap(g)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    basemap.tile(15, *tile_xy(*basemap.region()["center"], 15))  # warm-up (imports, first allocations)
    zooms = {z: tile_times(basemap, z, tiles, rng) for z in ZOOMS}
    views = {z: viewport_bytes(basemap, z) for z in (15, 13)}
    print(f"[basemap] {label}: naive GeoJSON of every edge ...", flush=True)
    body, naive_s = naive_geojson(g)
    t0 = time.perf_counter()
    naive_gzip = len(gzip.compress(body, compresslevel=GZIP_LEVEL))
    naive_gzip_s = time.perf_counter() - t0
    return {
        "graph": label,
        "nodes": g.n_nodes,
        "edges": g.n_edges,
        "index_build_s": build_s,
        "zooms": zooms,
        "viewports": views,
        "naive": {"raw": len(body), "gzip": naive_gzip, "build_s": naive_s, "gzip_s": naive_gzip_s},
    }


def mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def share(part: float, whole: float) -> str:
    return f"1/{whole / part:,.0f} ({100 * part / whole:.2g} %)"


def report(results: list[dict[str, Any]]) -> str:
    lines = ["| graph | index build s | " + " | ".join(f"z{z} p50 / p99 ms" for z in ZOOMS) + " |"]
    lines.append("|---|---|" + "---|" * len(ZOOMS))
    for r in results:
        cells = [f"{r['zooms'][z]['p50_ms']:.1f} / {r['zooms'][z]['p99_ms']:.1f}" for z in ZOOMS]
        lines.append(f"| {r['graph']} | {r['index_build_s']:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| graph | what | requests | raw JSON | gzip | time | raw vs whole GeoJSON | gzip vs whole GeoJSON gzip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        nv = r["naive"]
        for z, v in r["viewports"].items():
            lines.append(
                f"| {r['graph']} | viewport 1280x800 at z{z} | {v['tiles']} tiles | {mb(v['raw'])} | {mb(v['gzip'])} "
                f"| {v['build_ms']:.0f} ms | {share(v['raw'], nv['raw'])} | {share(v['gzip'], nv['gzip'])} |"
            )
        lines.append(
            f"| {r['graph']} | whole network as one GeoJSON (baseline) | 1 | {mb(nv['raw'])} | {mb(nv['gzip'])} "
            f"| {nv['build_s']:.2f} s (+{nv['gzip_s']:.2f} s gzip) | 100% | 100% |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=300, help="tiles timed per zoom and graph (default 300)")
    ap.add_argument("--quick", action="store_true", help="Hanoi only, 60 tiles per zoom")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "basemap-results.json")
    args = ap.parse_args()
    tiles = 60 if args.quick else args.tiles
    info = machine_info(["numpy", "shapely"])
    hanoi = load_or_build(None, "motorbike").graph
    results = [run("Hanoi (motorbike graph)", hanoi, tiles=tiles, seed=args.seed)]
    if not args.quick:
        grid, _ = load_or_build_grid(verbose=True)
        results.append(run("1M-node grid", grid.graph, tiles=tiles, seed=args.seed))
    print()
    print(report(results))
    print()
    print(json.dumps(info))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
