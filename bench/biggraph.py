"""A synthetic ~1,000,000-node road graph for benchmarks, built directly as RoadGraph arrays (no OSM file).

The grid follows the one described in shared/notes/routing-figures.md: about 1000 x 1000 junctions 120 m
apart around Hanoi's latitude (21.0 N, 105.8 E), a road-class hierarchy (every 10th street secondary at
40 km/h, every 50th primary at 60 km/h, every 200th trunk at 100 km/h, the rest local streets at 30 km/h),
15 % of the local street blocks removed at random and 10 % of the local street stretches (the 10 blocks
between two secondary streets) one-way in a random direction. Junctions are jittered by up to +-12 m so
that shortest paths are not massively tied. Only the largest strongly connected part is kept.

Everything is vectorised numpy; the graph and its contraction hierarchy are cached under bench/out/
through ``dispatch.geo.store._save`` / ``_load``.

    .venv/bin/python bench/biggraph.py            # build (or load) the 1000 x 1000 grid and print its stats
    .venv/bin/python bench/biggraph.py --size 300 --rebuild
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dispatch.geo.ch import CHIndex
from dispatch.geo.graph import EARTH_RADIUS_M, RoadGraph, haversine_m
from dispatch.geo.profile import Profile, parse_profile
from dispatch.geo.store import LoadedGraph, _load, _save

OUT = Path(__file__).resolve().parent / "out"
#: bump when the generator changes, so old caches under bench/out are not reused
GEN_VERSION = 1

GRID_PROFILE = """
name = "grid-ambulance"
vehicle = "ambulance"
description = "Synthetic benchmark grid: local 30, secondary 40, primary 60, trunk 100 km/h"
max_speed_kph = 100

[speeds_kph]
residential = 30
secondary = 40
primary = 60
trunk = 100
"""


def grid_profile() -> Profile:
    """The single-period profile of the synthetic grid (no [[periods]]: one period "base")."""
    return parse_profile(GRID_PROFILE, source="bench grid profile")


#: road classes by level: 0 local street, 1 secondary (every 10th), 2 primary (every 50th), 3 trunk (every 200th)
LEVELS = ("residential", "secondary", "primary", "trunk")


def _street_level(s: np.ndarray) -> np.ndarray:
    """Level (index into LEVELS) of street number s."""
    return (s % 10 == 0).astype(np.int8) + (s % 50 == 0) + (s % 200 == 0)


def generate_grid(
    n: int = 1000,
    *,
    block_m: float = 120.0,
    seed: int = 20261123,
    removed_local: float = 0.15,
    oneway_local: float = 0.10,
    jitter_m: float = 12.0,
    lat0: float = 21.0,
    lon0: float = 105.8,
) -> RoadGraph:
    """An n x n junction grid as a RoadGraph (largest strongly connected part)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    profile = grid_profile()
    classes = sorted(profile.speeds_kph)

    # junctions: node k = i * n + j, row i northward, column j eastward
    ii, jj = np.divmod(np.arange(n * n, dtype=np.int64), n)
    y = ii * block_m + rng.uniform(-jitter_m, jitter_m, n * n)
    x = jj * block_m + rng.uniform(-jitter_m, jitter_m, n * n)
    ky = np.pi / 180.0 * EARTH_RADIUS_M
    kx = ky * np.cos(np.radians(lat0))
    half = (n - 1) * block_m / 2.0
    lat = lat0 + (y - half) / ky
    lon = lon0 + (x - half) / kx

    # blocks (edges), drawn from the lower node id to the higher: east-west along row i, then north-south
    hi_, hj_ = np.divmod(np.arange(n * (n - 1), dtype=np.int64), n - 1)  # row, column of the west end
    h_u = hi_ * n + hj_
    vj_, vi_ = np.divmod(np.arange(n * (n - 1), dtype=np.int64), n - 1)  # column, row of the south end
    v_u = vi_ * n + vj_
    u = np.concatenate([h_u, v_u])
    v = np.concatenate([h_u + 1, v_u + n])
    street = np.concatenate([hi_, n + vj_])  # street id: rows 0..n-1, columns n..2n-1
    street_no = np.concatenate([hi_, vj_])  # position across the grid: decides the class
    pos_along = np.concatenate([hj_, vi_])  # block number along its street
    level = _street_level(street_no)
    class_idx = np.array([classes.index(c) for c in LEVELS], dtype=np.int8)[level]
    local = level == 0

    # 15 % of local blocks removed
    keep = ~(local & (rng.random(len(u)) < removed_local))
    # 10 % of local stretches (10 blocks between two secondaries) one-way, random direction
    stretch = street * ((n + 9) // 10) + pos_along // 10
    n_stretch = 2 * n * ((n + 9) // 10)
    st_oneway = rng.random(n_stretch) < oneway_local
    st_backward = rng.random(n_stretch) < 0.5
    oneway = local & st_oneway[stretch]
    fwd_ok = ~(oneway & st_backward[stretch])
    bwd_ok = ~(oneway & ~st_backward[stretch])
    u, v, street, class_idx, fwd_ok, bwd_ok, oneway = (
        a[keep] for a in (u, v, street, class_idx, fwd_ok, bwd_ok, oneway)
    )
    e_len = haversine_m(lat[u], lon[u], lat[v], lon[v])
    speeds = np.array([profile.speeds_kph[c] for c in classes], dtype=np.float64)
    e_time = np.maximum(np.rint(e_len / (speeds[class_idx] / 3.6) * 1000.0), 1).astype(np.int64)

    # arcs: forward ones first, then backward ones (as dispatch.geo.graph.build_graph does)
    f_idx, b_idx = np.nonzero(fwd_ok)[0], np.nonzero(bwd_ok)[0]
    arc_edge = np.concatenate([f_idx, b_idx])
    arc_rev = np.concatenate([np.zeros(len(f_idx), bool), np.ones(len(b_idx), bool)])
    arc_tail = np.concatenate([u[f_idx], v[b_idx]])
    arc_head = np.concatenate([v[f_idx], u[b_idx]])

    # largest strongly connected part
    n_all = n * n
    adj = coo_matrix((np.ones(len(arc_tail), np.int8), (arc_tail, arc_head)), shape=(n_all, n_all)).tocsr()
    n_comp, labels = connected_components(adj, directed=True, connection="strong")
    sizes = np.bincount(labels)
    main = int(np.argmax(sizes))
    node_keep = labels == main
    arc_keep = node_keep[arc_tail] & node_keep[arc_head]
    n_e = len(u)
    edge_keep = np.zeros(n_e, dtype=bool)
    edge_keep[arc_edge[arc_keep]] = True

    node_new = np.full(n_all, -1, dtype=np.int64)
    node_new[node_keep] = np.arange(int(node_keep.sum()))
    edge_new = np.full(n_e, -1, dtype=np.int64)
    edge_new[edge_keep] = np.arange(int(edge_keep.sum()))
    arc_sel = np.nonzero(arc_keep)[0]
    arc_edge_k = edge_new[arc_edge[arc_sel]]
    arc_rev_k = arc_rev[arc_sel]
    n_arcs = len(arc_sel)
    kept = np.nonzero(edge_keep)[0]
    edge_fwd = np.full(len(kept), -1, dtype=np.int32)
    edge_bwd = np.full(len(kept), -1, dtype=np.int32)
    arc_ids = np.arange(n_arcs, dtype=np.int32)
    edge_fwd[arc_edge_k[~arc_rev_k]] = arc_ids[~arc_rev_k]
    edge_bwd[arc_edge_k[arc_rev_k]] = arc_ids[arc_rev_k]

    # 2-point geometry per edge, in drawing direction (u -> v)
    ku, kv = u[kept], v[kept]
    geom_lat = np.column_stack([lat[ku], lat[kv]]).ravel()
    geom_lon = np.column_stack([lon[ku], lon[kv]]).ravel()
    geom_offsets = np.arange(0, 2 * len(kept) + 1, 2, dtype=np.int64)
    names = [f"Street {i}" for i in range(n)] + [f"Avenue {j}" for j in range(n)]

    graph = RoadGraph(
        profile=profile,
        node_lat=lat[node_keep],
        node_lon=lon[node_keep],
        node_osm=np.nonzero(node_keep)[0].astype(np.int64),
        arc_tail=node_new[arc_tail[arc_sel]].astype(np.int32),
        arc_head=node_new[arc_head[arc_sel]].astype(np.int32),
        arc_edge=arc_edge_k.astype(np.int32),
        arc_reversed=arc_rev_k,
        arc_length_m=e_len[arc_edge[arc_sel]],
        arc_time_ms=e_time[arc_edge[arc_sel]][None, :].astype(np.int32),
        edge_fwd_arc=edge_fwd,
        edge_bwd_arc=edge_bwd,
        edge_way=street[kept].astype(np.int64),
        edge_name=street[kept].astype(np.int32),
        edge_class=class_idx[kept],
        geom_offsets=geom_offsets,
        geom_lat=geom_lat,
        geom_lon=geom_lon,
        names=names,
        names_en=[""] * len(names),
        classes=classes,
    )
    dropped = sizes[np.arange(len(sizes)) != main]
    graph.stats = {
        "source": f"synthetic grid {n}x{n}, {block_m:g} m blocks, seed {seed}",
        "profile": profile.name,
        "nodes": graph.n_nodes,
        "arcs": graph.n_arcs,
        "edges": graph.n_edges,
        "oneway_edges": int(oneway[kept].sum()),
        "removed_local_blocks": int((~keep).sum()),
        "components_before": int(n_comp),
        "dropped_nodes": int(n_all - node_keep.sum()),
        "largest_dropped_component_nodes": int(dropped.max()) if len(dropped) else 0,
        "bbox": list(graph.bbox()),
        "generate_s": round(time.perf_counter() - started, 3),
    }
    return graph


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0) so the next peak measures one step only."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cache_dir_for(n: int, seed: int) -> Path:
    return OUT / f"grid-{n}-s{seed}-g{GEN_VERSION}-{grid_profile().digest()}"


def load_or_build_grid(
    n: int = 1000, *, seed: int = 20261123, rebuild: bool = False, verbose: bool = True
) -> tuple[LoadedGraph, dict[str, Any]]:
    """The grid with its contraction hierarchy: from bench/out when cached, else generated, built and saved.

    The returned dict holds the build figures (generation s, CH build s and memory, as measured when the
    cache was made) and this call's load time.
    """
    target = cache_dir_for(n, seed)
    started = time.perf_counter()
    if not rebuild and (target / "meta.json").is_file():
        graph, chs = _load(target, grid_profile())
        info = dict(graph.stats.get("bench_build", {}))
        info["cached"] = True
        info["load_s"] = round(time.perf_counter() - started, 3)
        if verbose:
            print(f"[biggraph] loaded {target.name} in {info['load_s']} s ({graph.n_nodes:,} nodes)", flush=True)
        return LoadedGraph(graph, chs, cache_path=target, warm=True, load_s=info["load_s"]), info

    if verbose:
        print(f"[biggraph] generating {n}x{n} grid ...", flush=True)
    t0 = time.perf_counter()
    graph = generate_grid(n, seed=seed)
    gen_s = time.perf_counter() - t0
    if verbose:
        print(
            f"[biggraph] generated {graph.n_nodes:,} nodes, {graph.n_arcs:,} arcs, {graph.n_edges:,} edges "
            f"in {gen_s:.2f} s; building the contraction hierarchy ...",
            flush=True,
        )
    rss0 = _rss_kb("VmRSS")
    peak_ok = _reset_peak_rss()
    t0 = time.perf_counter()
    ch = CHIndex.build(graph, 0)
    ch_s = time.perf_counter() - t0
    rss1, hwm = _rss_kb("VmRSS"), _rss_kb("VmHWM")
    t0 = time.perf_counter()
    info: dict[str, Any] = {
        "generate_s": round(gen_s, 3),
        "ch_build_s": round(ch_s, 3),
        "ch_rss_growth_mb": round((rss1 - rss0) / 1024, 1),
        "ch_build_peak_extra_mb": round((hwm - rss0) / 1024, 1) if peak_ok else None,
    }
    graph.stats["bench_build"] = info
    _save(target, graph, [ch])
    info["save_s"] = round(time.perf_counter() - t0, 3)
    info["ch_file_mb"] = round(os.path.getsize(target / "ch-0.bin") / 2**20, 1)
    info["arrays_file_mb"] = round(os.path.getsize(target / "arrays.npz") / 2**20, 1)
    # rewrite meta with the file sizes (the arrays and CH are already in place)
    meta = json.loads((target / "meta.json").read_text("utf-8"))
    meta["stats"]["bench_build"] = info
    (target / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
    graph.stats["bench_build"] = info
    info = dict(info, cached=False, load_s=round(time.perf_counter() - started, 3))
    if verbose:
        print(
            f"[biggraph] CH built in {ch_s:.1f} s (RSS +{info['ch_rss_growth_mb']} MB, peak +"
            f"{info['ch_build_peak_extra_mb']} MB, file {info['ch_file_mb']} MB); saved to {target}",
            flush=True,
        )
    return LoadedGraph(graph, [ch], cache_path=target, warm=False, load_s=info["load_s"]), info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1000, help="junctions per side (default 1000: ~1M nodes)")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--rebuild", action="store_true", help="ignore the cache under bench/out")
    args = ap.parse_args()
    loaded, info = load_or_build_grid(args.size, seed=args.seed, rebuild=args.rebuild)
    stats = {k: v for k, v in loaded.graph.stats.items() if k != "bench_build"}
    print(json.dumps({"stats": stats, "build": info}, indent=2))


if __name__ == "__main__":
    main()
