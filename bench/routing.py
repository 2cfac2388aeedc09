"""Routing benchmark: dispatch's Router against osmnx / networkx doing the same work, in the same run.

For the bundled central-Hanoi graph (ambulance profile) and a synthetic ~1M-node grid (bench/biggraph.py)
it prints the median (p50) and p99 wall time of

  (a) ranking 50 ambulance positions for one incident   Router.eta_to(engine="ch"), and engine="dijkstra"
      baseline: one reverse networkx Dijkstra from the incident node (nx.single_source_dijkstra_path_length
      on G.reverse(copy=False), weight travel_time), nearest nodes from a prebuilt k-d tree
  (b) one route with geometry                           Router.route(engine="ch")
      baseline: ox.distance.nearest_nodes (both ends) + ox.routing.shortest_path + ox.routing.route_to_gdf
  (c) one 8-minute isochrone                             dispatch.geo.isochrone.isochrones(router, p, [480])
      baseline: networkx Dijkstra with cutoff=480 s + convex hull of the reached nodes (osmnx example)
  (d) a 200 x all-nodes matrix                           200 x Router.node_times_from
      baseline: networkx single_source_dijkstra_path_length per source (a few sources on the big graph,
      extrapolated to 200)

each beside its baseline as a ratio (baseline p50 / ours p50), checks that the CH and Dijkstra engines give the
same eta_s and that both match networkx node to node, and judges the issue's targets on the big graph.

    .venv/bin/python bench/routing.py                 # Hanoi + 1000 x 1000 grid (~10 min on 2 cores)
    .venv/bin/python bench/routing.py --rebuild       # same, generating the grid and its CH afresh
    .venv/bin/python bench/routing.py --quick         # Hanoi + a 200 x 200 grid, fewer repetitions (~1 min)
    .venv/bin/python bench/routing.py --profile       # cProfile of our four operations on the big graph

Results are also written to bench/out/routing-results.json and bench/out/routing-results.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import osmnx as ox
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from biggraph import OUT, _reset_peak_rss, _rss_kb, load_or_build_grid  # noqa: E402
from machine import machine_info  # noqa: E402

from dispatch.core.types import LatLon  # noqa: E402
from dispatch.geo.graph import CLOSED_MS, RoadGraph  # noqa: E402
from dispatch.geo.isochrone import isochrones  # noqa: E402
from dispatch.geo.routing import Leg, Router  # noqa: E402
from dispatch.geo.store import LoadedGraph, load_or_build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOUR = 12  # the hour the queries run at: the "base" period in both profiles
UTM48N = "EPSG:32648"  # Hanoi's UTM zone, for osmnx's projected nearest_nodes (k-d tree)
ISO_S = 480.0
MATRIX_SOURCES = 200
UNITS = 50

# targets from the issue, judged on the big graph
TARGETS = {
    "rank_p50_ms": 5.0,
    "rank_ratio": 300.0,
    "route_p50_ms": 10.0,
    "iso_p50_ms": 20.0,
}


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    """Wall times (seconds) of repeated runs of one operation."""

    label: str
    times: list[float] = field(default_factory=list)
    note: str = ""
    total_s: float | None = None  # for the matrix: the whole job

    @property
    def n(self) -> int:
        return len(self.times)

    def pct(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.times), q)) if self.times else float("nan")

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p99(self) -> float:
        return self.pct(99)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "n": self.n,
            "p50_ms": round(self.p50 * 1e3, 4),
            "p99_ms": round(self.p99 * 1e3, 4),
            "mean_ms": round(float(np.mean(self.times)) * 1e3, 4) if self.times else None,
            "total_s": None if self.total_s is None else round(self.total_s, 3),
            "note": self.note,
        }


FAILED = object()


def measure(label: str, fn: Callable[[Any], Any], inputs: Sequence[Any], *, warm: int = 2, note: str = "") -> Figure:
    """Time fn(x) for every x of inputs after `warm` untimed calls on the first inputs."""
    for x in inputs[:warm]:
        fn(x)
    fig = Figure(label, note=note)
    gc.collect()
    for x in inputs:
        t0 = time.perf_counter()
        result = fn(x)
        if result is not FAILED:  # a call that raised (a bug, reported separately) is not timed
            fig.times.append(time.perf_counter() - t0)
    return fig


def fmt_ratio(r: float) -> str:
    return f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


def fmt_ms(s: float) -> str:
    ms = s * 1e3
    if ms >= 10_000:
        return f"{ms / 1e3:,.1f} s"
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms"


# ---------------------------------------------------------------------------------------------------------------
# networkx / osmnx graphs from our arrays
# ---------------------------------------------------------------------------------------------------------------
def projected_xy(graph: RoadGraph) -> tuple[np.ndarray, np.ndarray]:
    tr = Transformer.from_crs("EPSG:4326", UTM48N, always_xy=True)
    x, y = tr.transform(graph.node_lon, graph.node_lat)
    return np.asarray(x), np.asarray(y)


def open_arcs(graph: RoadGraph, period: int) -> np.ndarray:
    return np.nonzero(graph.arc_time_ms[period] != CLOSED_MS)[0]


def nx_multidigraph(graph: RoadGraph, period: int, x: np.ndarray, y: np.ndarray) -> nx.MultiDiGraph:
    """What osmnx works on: node x, y (projected metres, UTM 48N), edge length (m) and travel_time (s).

    The graph is projected (G.graph["crs"] = UTM 48N) because osmnx's nearest_nodes needs scikit-learn (not a
    dependency of this project) for an unprojected (epsg:4326) graph and a scipy k-d tree for a projected one.
    """
    G = nx.MultiDiGraph(crs=UTM48N)
    G.add_nodes_from((i, {"x": xi, "y": yi}) for i, (xi, yi) in enumerate(zip(x.tolist(), y.tolist(), strict=True)))
    arcs = open_arcs(graph, period)
    secs = (graph.arc_time_ms[period][arcs] / 1000.0).tolist()
    G.add_edges_from(
        (u, v, {"length": ln, "travel_time": s})
        for u, v, ln, s in zip(
            graph.arc_tail[arcs].tolist(),
            graph.arc_head[arcs].tolist(),
            graph.arc_length_m[arcs].tolist(),
            secs,
            strict=True,
        )
    )
    return G


def nx_digraph(graph: RoadGraph, period: int) -> nx.DiGraph:
    """The lighter networkx graph for the plain Dijkstra baselines (parallel arcs keep the fastest)."""
    G = nx.DiGraph()
    G.add_nodes_from(range(graph.n_nodes))
    arcs = open_arcs(graph, period)
    w = graph.arc_time_ms[period][arcs]
    order = np.argsort(-w, kind="stable")  # slowest first, so the fastest of parallel arcs is added last and wins
    G.add_weighted_edges_from(
        zip(
            graph.arc_tail[arcs][order].tolist(),
            graph.arc_head[arcs][order].tolist(),
            (w[order] / 1000.0).tolist(),
            strict=True,
        ),
        weight="travel_time",
    )
    return G


# ---------------------------------------------------------------------------------------------------------------
# one graph
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Reps:
    rank: int
    rank_dij: int
    rank_nx: int
    route: int
    route_dij: int
    route_ox: int
    iso: int
    iso_nx: int
    iso_nx_buf: int
    matrix_nx: int


def bench_graph(name: str, loaded: LoadedGraph, reps: Reps, seed: int, build: dict[str, Any]) -> dict[str, Any]:
    g = loaded.graph
    log(f"\n=== {name}: {g.n_nodes:,} nodes, {g.n_arcs:,} arcs, {g.n_edges:,} edges ===")
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        "graph": name,
        "nodes": g.n_nodes,
        "arcs": g.n_arcs,
        "edges": g.n_edges,
        "build": build,
        "figures": {},
        "checks": {},
    }
    figs: dict[str, Figure] = {}
    checks = out["checks"]
    out["load_avg_start"] = os.getloadavg()

    t0 = time.perf_counter()
    router = Router(g, loaded.chs)
    build["router_s"] = round(time.perf_counter() - t0, 3)
    period = router.period(HOUR)
    t0 = time.perf_counter()
    dg = router.dijkstra_graph(period)
    build["dijkstra_csr_s"] = round(time.perf_counter() - t0, 3)
    log(f"Router (snapping STRtree) {build['router_s']} s; Dijkstra CSR {build['dijkstra_csr_s']} s")

    rss0 = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    x, y = projected_xy(g)
    G = nx_multidigraph(g, period, x, y)
    build["nx_multidigraph_s"] = round(time.perf_counter() - t0, 2)
    rss1 = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    D = nx_digraph(g, period)
    build["nx_digraph_s"] = round(time.perf_counter() - t0, 2)
    rss2 = _rss_kb("VmRSS")
    build["nx_multidigraph_mb"] = round((rss1 - rss0) / 1024)
    build["nx_digraph_mb"] = round((rss2 - rss1) / 1024)
    kd = cKDTree(np.column_stack([x, y]))
    tr = Transformer.from_crs("EPSG:4326", UTM48N, always_xy=True)
    # the networkx graphs are millions of long-lived Python objects: without this, every garbage collection
    # that our timed code triggers walks them all, charging the baselines' memory to our timings
    gc.collect()
    gc.freeze()
    log(
        f"networkx MultiDiGraph (for osmnx) {build['nx_multidigraph_s']} s, +{build['nx_multidigraph_mb']} MB; "
        f"DiGraph (Dijkstra baselines) {build['nx_digraph_s']} s, +{build['nx_digraph_mb']} MB"
    )

    def positions(k: int) -> list[LatLon]:
        nodes = rng.integers(0, g.n_nodes, k)
        d = rng.uniform(-1.5e-4, 1.5e-4, (k, 2))  # within ~16 m of a junction
        return [LatLon(float(g.node_lat[n] + a), float(g.node_lon[n] + b)) for n, (a, b) in zip(nodes, d, strict=True)]

    def nearest(points: Sequence[LatLon]) -> np.ndarray:
        px, py = tr.transform([p.lon for p in points], [p.lat for p in points])
        return kd.query(np.column_stack([px, py]))[1]

    # ---- (a) ranking 50 units for one incident ------------------------------------------------------------
    log("(a) ranking 50 units for one incident ...")
    cases = [(positions(UNITS), positions(1)[0]) for _ in range(reps.rank)]

    seen: dict[str, dict[int, list[Any]]] = {"ch": {}, "dijkstra": {}}

    def rank(case: tuple[list[LatLon], LatLon], engine: str) -> list[int]:
        legs = router.eta_to(case[0], case[1], at=HOUR, engine=engine)  # type: ignore[arg-type]
        seen[engine][id(case)] = legs
        return sorted(range(len(legs)), key=lambda i: legs[i].eta_s if isinstance(legs[i], Leg) else np.inf)

    figs["rank_ch"] = measure("ranking 50 units, engine=ch", lambda c: rank(c, "ch"), cases, warm=3)
    figs["rank_dij"] = measure(
        "ranking 50 units, engine=dijkstra (checked fallback)",
        lambda c: rank(c, "dijkstra"),
        cases[: reps.rank_dij],
        warm=1,
    )
    GR = D.reverse(copy=False)

    def rank_nx(case: tuple[list[LatLon], LatLon]) -> list[int]:
        nodes = nearest([*case[0], case[1]])
        dist = nx.single_source_dijkstra_path_length(GR, int(nodes[-1]), weight="travel_time")
        etas = [dist.get(int(n), np.inf) for n in nodes[:-1]]
        return sorted(range(len(etas)), key=etas.__getitem__)

    figs["rank_nx"] = measure(
        "networkx: reverse single_source_dijkstra_path_length",
        rank_nx,
        cases[: reps.rank_nx],
        warm=0 if reps.rank_nx <= 5 else 1,
        note=f"{reps.rank_nx} runs",
    )
    # check: the two engines give identical eta_s
    mism, pairs, max_diff, dist_mism, errors, over_us = 0, 0, 0.0, 0, 0, 0
    for case in cases[: reps.rank_dij]:  # the results of the timed runs
        a, b = seen["ch"][id(case)], seen["dijkstra"][id(case)]
        for la, lb in zip(a, b, strict=True):
            pairs += 1
            if isinstance(la, Leg) and isinstance(lb, Leg):
                if la.eta_s != lb.eta_s:
                    mism += 1
                    diff = abs(float(la.eta_s) - float(lb.eta_s))
                    max_diff = max(max_diff, diff)
                    over_us += diff > 1e-6
                if abs(float(la.distance_m) - float(lb.distance_m)) > 0.5:
                    dist_mism += 1
            elif type(la) is not type(lb):
                mism += 1
                over_us += 1
            else:
                errors += 1
    checks["eta_ch_vs_dijkstra"] = {
        "pairs": pairs,
        "eta_mismatches": mism,  # not bit-identical
        "eta_mismatches_over_1us": int(over_us),
        "max_abs_diff_s": max_diff,
        "distance_m_differs_over_0.5m": dist_mism,
        "both_no_route": errors,
    }
    log(
        f"    check: eta_s CH vs Dijkstra on {pairs} unit->incident pairs: {mism} not bit-identical "
        f"(max difference {max_diff:.3g} s; {over_us} differ by more than 1 us); "
        f"distance_m differs by > 0.5 m on {dist_mism} (equal-time paths of different length)"
    )

    # ---- (b) one route with geometry -----------------------------------------------------------------------
    log("(b) one route with geometry ...")
    pairs_r = [(positions(1)[0], positions(1)[0]) for _ in range(reps.route)]
    route_lens: list[int] = []
    route_seen: dict[str, dict[int, float]] = {"ch": {}, "dijkstra": {}}

    def route_ch(p: tuple[LatLon, LatLon]) -> Any:
        r = router.route(p[0], p[1], at=HOUR, engine="ch")
        route_lens.append(len(r.arcs))
        route_seen["ch"][id(p)] = r.eta_s
        return r

    figs["route_ch"] = measure("one route with geometry + steps, engine=ch", route_ch, pairs_r, warm=3)
    figs["route_dij"] = measure(
        "one route, engine=dijkstra",
        lambda p: route_seen["dijkstra"].__setitem__(id(p), router.route(p[0], p[1], at=HOUR, engine="dijkstra").eta_s),
        pairs_r[: reps.route_dij],
        warm=1,
    )
    parts: dict[str, list[float]] = {"nearest_nodes": [], "shortest_path": [], "route_to_gdf": []}

    def route_ox(p: tuple[LatLon, LatLon]) -> Any:
        px, py = tr.transform([p[0].lon, p[1].lon], [p[0].lat, p[1].lat])
        t0 = time.perf_counter()
        o, d = ox.distance.nearest_nodes(G, px, py)
        t1 = time.perf_counter()
        path = ox.routing.shortest_path(G, int(o), int(d), weight="travel_time")
        t2 = time.perf_counter()
        gdf = ox.routing.route_to_gdf(G, path, weight="travel_time") if path and len(path) > 1 else None
        t3 = time.perf_counter()
        parts["nearest_nodes"].append(t1 - t0)
        parts["shortest_path"].append(t2 - t1)
        parts["route_to_gdf"].append(t3 - t2)
        return gdf

    figs["route_ox"] = measure(
        "osmnx: nearest_nodes + shortest_path + route_to_gdf",
        route_ox,
        pairs_r[: reps.route_ox],
        warm=0 if reps.route_ox <= 5 else 1,
        note=f"{reps.route_ox} runs",
    )
    k = reps.route_ox
    ox_parts = {name_: float(np.median(v[-k:])) for name_, v in parts.items()}
    figs["route_ox_nonn"] = Figure(
        "osmnx: shortest_path + route_to_gdf only (no nearest_nodes)",
        [a + b for a, b in zip(parts["shortest_path"][-k:], parts["route_to_gdf"][-k:], strict=True)],
        note=f"{k} runs",
    )
    mism_r, over_r, max_r = 0, 0, 0.0
    for p in pairs_r[: reps.route_dij]:  # the results of the timed runs
        diff = abs(float(route_seen["ch"][id(p)]) - float(route_seen["dijkstra"][id(p)]))
        mism_r += route_seen["ch"][id(p)] != route_seen["dijkstra"][id(p)]
        over_r += diff > 1e-6
        max_r = max(max_r, diff)
    checks["route_ch_vs_dijkstra"] = {
        "pairs": reps.route_dij,
        "eta_mismatches": int(mism_r),
        "eta_mismatches_over_1us": int(over_r),
        "max_abs_diff_s": max_r,
    }
    checks["route_arcs_median"] = float(np.median(route_lens)) if route_lens else None
    log(
        "    osmnx parts (median): "
        + ", ".join(f"{k_} {fmt_ms(v)}" for k_, v in ox_parts.items())
        + f"; route eta_s CH vs Dijkstra: {mism_r}/{reps.route_dij} not bit-identical (max {max_r:.3g} s)"
    )
    out["osmnx_route_parts_ms"] = {k_: round(v * 1e3, 3) for k_, v in ox_parts.items()}

    # ---- (c) one 8-minute isochrone -------------------------------------------------------------------------
    log("(c) one 8-minute isochrone ...")
    iso_pts = positions(reps.iso)
    reached: list[int] = []
    iso_fail: list[str] = []

    def iso_ours(p: LatLon) -> Any:
        try:
            fc = isochrones(router, p, [ISO_S], at=HOUR)
        except Exception as exc:  # noqa: BLE001 - counted and reported, see checks["iso_failures"]
            iso_fail.append(f"{p.lat:.7f},{p.lon:.7f}: {type(exc).__name__}: {str(exc).strip()}")
            return FAILED
        reached.append(fc["features"][0]["properties"]["reached_nodes"])
        return fc

    figs["iso"] = measure("8-minute isochrone (GeoJSON polygon)", iso_ours, iso_pts, warm=2)
    reached_nx: list[int] = []

    def iso_nx(p: LatLon) -> Any:
        n = int(nearest([p])[0])
        dist = nx.single_source_dijkstra_path_length(D, n, cutoff=ISO_S, weight="travel_time")
        idx = np.fromiter(dist.keys(), dtype=np.int64, count=len(dist))
        reached_nx.append(len(idx))
        return shapely.MultiPoint(np.column_stack([x[idx], y[idx]])).convex_hull

    figs["iso_nx"] = measure(
        "networkx: Dijkstra cutoff=480 s + convex hull of reached nodes", iso_nx, iso_pts[: reps.iso_nx], warm=1
    )

    def iso_nx_buffer(p: LatLon) -> Any:
        # the osmnx isochrone example's make_iso_polys (nodes buffered 50 m, edges 25 m, union), vectorised
        n = int(nearest([p])[0])
        dist = nx.single_source_dijkstra_path_length(D, n, cutoff=ISO_S, weight="travel_time")
        idx = np.fromiter(dist.keys(), dtype=np.int64, count=len(dist))
        uv = np.array([(u, v) for u in dist for v in D._succ[u] if v in dist], dtype=np.int64).reshape(-1, 2)
        pts = shapely.points(x[idx], y[idx])
        coords = np.stack([np.column_stack([x[uv[:, 0]], y[uv[:, 0]]]), np.column_stack([x[uv[:, 1]], y[uv[:, 1]]])], 1)
        lines = shapely.linestrings(coords)
        return shapely.union_all(np.concatenate([shapely.buffer(pts, 50.0), shapely.buffer(lines, 25.0)]))

    figs["iso_nx_buf"] = measure(
        "networkx: Dijkstra cutoff=480 s + buffered nodes/edges union (osmnx example)",
        iso_nx_buffer,
        iso_pts[: reps.iso_nx_buf],
        warm=1,
        note=f"{reps.iso_nx_buf} runs",
    )
    checks["iso_failures"] = {"calls": reps.iso + 2, "failed": len(iso_fail), "examples": iso_fail[:3]}
    if iso_fail:
        log(f"    BUG: isochrones() raised on {len(iso_fail)} of {reps.iso + 2} origins, e.g. {iso_fail[0]}")
    checks["iso_reached_nodes_median"] = {
        "ours": float(np.median(reached[-reps.iso :])),
        "networkx": float(np.median(reached_nx[-reps.iso_nx :])),
    }

    # ---- (d) 200 x all-nodes matrix -----------------------------------------------------------------------
    log(f"(d) {MATRIX_SOURCES} x all-nodes matrix ...")
    srcs = positions(MATRIX_SOURCES)
    matrix = np.empty((MATRIX_SOURCES, g.n_nodes), dtype=np.float32)
    router.node_times_from(srcs[0], at=HOUR)  # warm
    fig = Figure("200 x all nodes: Router.node_times_from per source")
    t_all = time.perf_counter()
    for i, p in enumerate(srcs):
        t0 = time.perf_counter()
        matrix[i] = router.node_times_from(p, at=HOUR)
        fig.times.append(time.perf_counter() - t0)
    fig.total_s = time.perf_counter() - t_all
    figs["matrix"] = fig
    del matrix
    k = reps.matrix_nx
    nx_nodes = nearest(srcs[:k])
    nx_dists: list[dict[int, float]] = []
    fig = Figure(
        "networkx: single_source_dijkstra_path_length per source",
        note=f"{k} sources" + (f", total extrapolated x{MATRIX_SOURCES / k:g}" if k < MATRIX_SOURCES else ""),
    )
    for n in nx_nodes:
        t0 = time.perf_counter()
        d = nx.single_source_dijkstra_path_length(D, int(n), weight="travel_time")
        fig.times.append(time.perf_counter() - t0)
        if len(nx_dists) < 20:
            nx_dists.append(d)
    fig.total_s = float(np.mean(fig.times)) * MATRIX_SOURCES
    figs["matrix_nx"] = fig

    # ---- checks against networkx, node to node -----------------------------------------------------------------
    ch = loaded.chs[period]
    full_mism, full_nodes, ch_mism, ch_pairs = 0, 0, 0, 0
    for n, d in zip(nx_nodes, nx_dists, strict=False):
        nxv = np.full(g.n_nodes, np.inf)
        nxv[np.fromiter(d.keys(), np.int64, len(d))] = np.rint(np.fromiter(d.values(), np.float64, len(d)) * 1000)
        ours = dg.search([int(n)])[0][0]
        full_mism += int(np.sum(nxv != ours))
        full_nodes += g.n_nodes
        for t in rng.integers(0, g.n_nodes, 200):
            c = ch.distance_ms(int(n), int(t))
            ch_pairs += 1
            ch_mism += (np.inf if c is None else c) != nxv[t]
    checks["dijkstra_vs_networkx_all_nodes"] = {"sources": len(nx_dists), "nodes": full_nodes, "mismatches": full_mism}
    checks["ch_vs_networkx_pairs"] = {"pairs": ch_pairs, "mismatches": int(ch_mism)}
    log(
        f"    check: scipy Dijkstra vs networkx, {len(nx_dists)} sources x all nodes: {full_mism} mismatches; "
        f"CHIndex.distance_ms vs networkx on {ch_pairs} node pairs: {int(ch_mism)} mismatches"
    )
    nx_dists.clear()

    out["load_avg_end"] = os.getloadavg()
    out["figures"] = {k_: f.as_dict() for k_, f in figs.items()}
    out["ratios"] = {
        "rank_ch": figs["rank_nx"].p50 / figs["rank_ch"].p50,
        "rank_dij": figs["rank_nx"].p50 / figs["rank_dij"].p50,
        "route_ch": figs["route_ox"].p50 / figs["route_ch"].p50,
        "route_ch_vs_sp_only": figs["route_ox_nonn"].p50 / figs["route_ch"].p50,
        "route_dij": figs["route_ox"].p50 / figs["route_dij"].p50,
        "iso": figs["iso_nx"].p50 / figs["iso"].p50,
        "iso_buf": figs["iso_nx_buf"].p50 / figs["iso"].p50,
        "matrix": figs["matrix_nx"].total_s / figs["matrix"].total_s,  # type: ignore[operator]
    }
    print_table(name, figs, out["ratios"])
    log(f"load average (1, 5, 15 min) at start {out['load_avg_start']}, at end {out['load_avg_end']}")
    return out


def print_table(name: str, figs: dict[str, Figure], ratios: dict[str, float]) -> None:
    rows = [
        ("rank_ch", "rank_nx", "rank_ch"),
        ("rank_dij", "rank_nx", "rank_dij"),
        ("route_ch", "route_ox", "route_ch"),
        ("route_ch", "route_ox_nonn", "route_ch_vs_sp_only"),
        ("route_dij", "route_ox", "route_dij"),
        ("iso", "iso_nx", "iso"),
        ("iso", "iso_nx_buf", "iso_buf"),
    ]
    log(f"\n--- {name} ---")
    log(f"{'work (ours) / baseline':86} {'p50':>10} {'p99':>10} {'n':>4}  ratio")
    for ours, base, rk in rows:
        a, b = figs[ours], figs[base]
        log(f"{a.label:86} {fmt_ms(a.p50):>10} {fmt_ms(a.p99):>10} {a.n:>4}")
        log(f"{'   vs ' + b.label:86} {fmt_ms(b.p50):>10} {fmt_ms(b.p99):>10} {b.n:>4}  {fmt_ratio(ratios[rk])}")
    a, b = figs["matrix"], figs["matrix_nx"]
    extra = " (extrapolated)" if b.n < MATRIX_SOURCES else ""
    log(f"{'200 x all-nodes matrix: total / per source p50, p99':86} {fmt_ms(a.total_s or 0):>10}")
    log(f"{'   ' + a.label:86} {fmt_ms(a.p50):>10} {fmt_ms(a.p99):>10} {a.n:>4}")
    log(f"{'   vs networkx total' + extra:86} {fmt_ms(b.total_s or 0):>10} {'':>15}  {fmt_ratio(ratios['matrix'])}")
    log(f"{'   vs ' + b.label:86} {fmt_ms(b.p50):>10} {fmt_ms(b.p99):>10} {b.n:>4}")


# ---------------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    return machine_info(("numpy", "scipy", "shapely", "networkx", "osmnx", "ch-router", "numba", "pyproj", "pandas"))


def hanoi(seed: int, reps: Reps) -> dict[str, Any]:
    log("Hanoi: cold build and warm load (fresh temporary cache dir) ...")
    with tempfile.TemporaryDirectory(prefix="bench-hanoi-") as tmp:
        t0 = time.perf_counter()
        cold = load_or_build(cache_dir=tmp)
        cold_s = time.perf_counter() - t0
        warm_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            loaded = load_or_build(cache_dir=tmp)
            warm_times.append(time.perf_counter() - t0)
        assert loaded.warm and not cold.warm
    build = {"cold_build_s": round(cold_s, 3), "warm_load_s_median": round(float(np.median(warm_times)), 4)}
    log(f"    cold build {cold_s:.2f} s, warm load {np.median(warm_times) * 1e3:.1f} ms (median of 5)")
    return bench_graph("central Hanoi (ambulance profile)", loaded, reps, seed, build)


def big(size: int, seed: int, reps: Reps, rebuild: bool) -> dict[str, Any]:
    loaded, info = load_or_build_grid(size, rebuild=rebuild)
    build = dict(info)
    name = f"synthetic grid {size}x{size} ({loaded.graph.n_nodes / 1e6:.2f}M nodes)"
    return bench_graph(name, loaded, reps, seed, build)


def profile_ops(size: int, seed: int) -> None:
    """cProfile of our four operations on the big graph: where the time goes."""
    loaded, _ = load_or_build_grid(size)
    g = loaded.graph
    router = Router(g, loaded.chs)
    rng = np.random.default_rng(seed)
    router.dijkstra_graph(router.period(HOUR))

    def positions(k: int) -> list[LatLon]:
        nodes = rng.integers(0, g.n_nodes, k)
        return [LatLon(float(g.node_lat[n]) + 1e-4, float(g.node_lon[n]) + 1e-4) for n in nodes]

    ops: list[tuple[str, Callable[[], Any], int]] = [
        ("ranking 50 units (ch)", lambda: router.eta_to(positions(UNITS), positions(1)[0], at=HOUR, engine="ch"), 100),
        ("route (ch)", lambda: router.route(positions(1)[0], positions(1)[0], at=HOUR, engine="ch"), 100),
        ("8-minute isochrone", lambda: isochrones(router, positions(1)[0], [ISO_S], at=HOUR), 30),
        ("node_times_from", lambda: router.node_times_from(positions(1)[0], at=HOUR), 5),
    ]
    for label, fn, n in ops:
        for _ in range(3):
            fn()
        pr = cProfile.Profile()
        t0 = time.perf_counter()
        pr.enable()
        for _ in range(n):
            fn()
        pr.disable()
        wall = (time.perf_counter() - t0) / n
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(14)
        log(f"\n##### {label}: {n} calls, {wall * 1e3:.1f} ms per call under the profiler")
        log("\n".join(line for line in s.getvalue().splitlines() if line.strip()))


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        f, q = r["figures"], r["ratios"]
        big_graph = r["graph"].startswith("synthetic")
        lines.append(f"### {r['graph']}: {r['nodes']:,} nodes, {r['arcs']:,} arcs\n")
        lines.append(
            "| work | ours p50 | ours p99 | runs | baseline | baseline p50 | baseline p99 | runs | ratio (p50) "
            "| target |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")

        def row(key: str, base: str, ratio: float, target: str = "", f: dict[str, Any] = f) -> None:
            a, b = f[key], f[base]
            lines.append(
                f"| {a['label']} | {a['p50_ms']:.3f} ms | {a['p99_ms']:.3f} ms | {a['n']} | {b['label']} | "
                f"{b['p50_ms']:,.1f} ms | {b['p99_ms']:,.1f} ms | {b['n']} | {fmt_ratio(ratio)} | {target} |"
            )

        def verdict(ok: bool, what: str) -> str:
            return f"{what}: **{'met' if ok else 'not met'}**"

        t_rank = t_route = t_iso = ""
        if big_graph:
            t_rank = (
                verdict(f["rank_ch"]["p50_ms"] <= TARGETS["rank_p50_ms"], "p50 <= 5 ms")
                + "; "
                + verdict(q["rank_ch"] >= TARGETS["rank_ratio"], ">= 300x networkx")
            )
            t_route = verdict(f["route_ch"]["p50_ms"] <= TARGETS["route_p50_ms"], "p50 <= 10 ms")
            t_iso = verdict(f["iso"]["p50_ms"] <= TARGETS["iso_p50_ms"], "p50 <= 20 ms")
        row("rank_ch", "rank_nx", q["rank_ch"], t_rank)
        row("rank_dij", "rank_nx", q["rank_dij"])
        row("route_ch", "route_ox", q["route_ch"], t_route)
        row("route_ch", "route_ox_nonn", q["route_ch_vs_sp_only"])
        row("route_dij", "route_ox", q["route_dij"])
        row("iso", "iso_nx", q["iso"], t_iso)
        row("iso", "iso_nx_buf", q["iso_buf"])
        a, b = f["matrix"], f["matrix_nx"]
        extra = " (extrapolated)" if b["n"] < MATRIX_SOURCES else ""
        lines.append(
            f"| 200 x all-nodes matrix (total; p50/p99 per source) | {a['total_s']:,.2f} s total | "
            f"{a['p50_ms']:,.1f} / {a['p99_ms']:,.1f} ms | {a['n']} | {b['label']} | {b['total_s']:,.1f} s total"
            f"{extra} | {b['p50_ms']:,.1f} / {b['p99_ms']:,.1f} ms per source | {b['n']} | {fmt_ratio(q['matrix'])} | |"
        )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Hanoi + a 200 x 200 grid, fewer repetitions")
    ap.add_argument("--size", type=int, default=None, help="big grid junctions per side (default 1000, quick 200)")
    ap.add_argument("--rebuild", action="store_true", help="generate the big grid and its CH afresh")
    ap.add_argument("--hanoi-only", action="store_true")
    ap.add_argument("--big-only", action="store_true")
    ap.add_argument("--profile", action="store_true", help="only cProfile our operations on the big graph")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    size = args.size or (200 if args.quick else 1000)
    if args.profile:
        profile_ops(size, args.seed)
        return
    started = time.perf_counter()
    _reset_peak_rss()
    env = machine()
    log(f"machine: {env['nproc']} cores, {env['cpu']}, {env['ram_gb']} GB; Python {env['python']}; {env['packages']}")
    if args.quick:
        hanoi_reps = Reps(100, 10, 10, 100, 10, 10, 50, 20, 5, 50)
        big_reps = Reps(100, 4, 2, 100, 4, 2, 30, 10, 2, 3)
    else:
        hanoi_reps = Reps(500, 40, 40, 500, 40, 30, 200, 100, 20, MATRIX_SOURCES)
        big_reps = Reps(300, 8, 5, 300, 10, 5, 100, 20, 5, 3)
    results = []
    if not args.big_only:
        results.append(hanoi(args.seed, hanoi_reps))
    if not args.hanoi_only:
        results.append(big(size, args.seed + 1, big_reps, args.rebuild))
    env["total_run_s"] = round(time.perf_counter() - started, 1)
    env["load_avg_at_end"] = os.getloadavg()
    env["peak_rss_gb"] = round(_rss_kb("VmHWM") / 2**20, 2)
    env["command"] = "python bench/routing.py " + " ".join(sys.argv[1:])

    if results and results[-1]["graph"].startswith("synthetic"):
        r = results[-1]
        f, q = r["figures"], r["ratios"]
        verdicts = {
            "ranking 50 units p50 <= 5 ms": f["rank_ch"]["p50_ms"] <= TARGETS["rank_p50_ms"],
            "ranking 50 units >= 300x networkx": q["rank_ch"] >= TARGETS["rank_ratio"],
            "one route with geometry p50 <= 10 ms": f["route_ch"]["p50_ms"] <= TARGETS["route_p50_ms"],
            "8-minute isochrone p50 <= 20 ms": f["iso"]["p50_ms"] <= TARGETS["iso_p50_ms"],
        }
        env["targets"] = verdicts
        log(f"\ntargets on {r['graph']}:")
        for k, ok in verdicts.items():
            log(f"    {k}: {'met' if ok else 'NOT MET'}")
    engines = ("eta_ch_vs_dijkstra", "route_ch_vs_dijkstra")
    bit_identical = all(r["checks"][c]["eta_mismatches"] == 0 for r in results for c in engines)
    within_us = all(r["checks"][c]["eta_mismatches_over_1us"] == 0 for r in results for c in engines)
    env["engines_bit_identical"], env["engines_within_1us"] = bit_identical, within_us
    if within_us and not bit_identical:
        log("CH and Dijkstra eta_s agree within 1 us but are NOT bit-identical (float summation order)")
    checks_ok = bit_identical and all(
        r["checks"][c]["mismatches"] == 0
        for r in results
        for c in ("dijkstra_vs_networkx_all_nodes", "ch_vs_networkx_pairs")
    )
    log(f"checks (CH = Dijkstra = networkx): {'all passed' if checks_ok else 'FAILED'}")
    log(f"total run time {env['total_run_s']} s, peak RSS {env['peak_rss_gb']} GB")
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    report = json.dumps({"machine": env, "results": results}, indent=2, default=float)
    (OUT / f"routing-results{suffix}.json").write_text(report)
    (OUT / f"routing-results{suffix}.md").write_text(markdown(results))
    log(f"wrote {OUT / f'routing-results{suffix}.json'} and .md")
    if not checks_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
