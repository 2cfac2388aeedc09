"""Ranking 50 units for one incident on the ~1M-node grid, alone: Router.eta_to(engine="ch") p50 / p99.

The same work as (a) of bench/routing.py (positions within ~16 m of a random junction, at noon), without the
networkx baselines, so it runs in about a minute on the cached grid (bench/biggraph.py builds it once).

    .venv/bin/python bench/rank_standalone.py                  # 500 runs, seed 7
    .venv/bin/python bench/rank_standalone.py --runs 1000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from biggraph import load_or_build_grid  # noqa: E402

from dispatch.core.types import LatLon  # noqa: E402
from dispatch.geo.routing import Router  # noqa: E402

HOUR = 12
UNITS = 50


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1000, help="grid size (default 1000: ~1M nodes)")
    ap.add_argument("--runs", type=int, default=500, help="timed runs (default 500)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the runs instead of timing them")
    args = ap.parse_args()

    loaded, _ = load_or_build_grid(args.size)
    g = loaded.graph
    router = Router(g, loaded.chs)
    rng = np.random.default_rng(args.seed)

    def positions(k: int) -> list[LatLon]:
        nodes = rng.integers(0, g.n_nodes, k)
        d = rng.uniform(-1.5e-4, 1.5e-4, (k, 2))  # within ~16 m of a junction
        return [LatLon(float(g.node_lat[n] + a), float(g.node_lon[n] + b)) for n, (a, b) in zip(nodes, d, strict=True)]

    cases = [(positions(UNITS), positions(1)[0]) for _ in range(args.runs)]
    for units, incident in cases[:3]:
        router.eta_to(units, incident, at=HOUR, engine="ch")
    gc.collect()
    if args.profile:
        pr = cProfile.Profile()
        pr.enable()
        for units, incident in cases:
            router.eta_to(units, incident, at=HOUR, engine="ch")
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(25)
        print(s.getvalue())
        return
    times = []
    for units, incident in cases:
        t0 = time.perf_counter()
        router.eta_to(units, incident, at=HOUR, engine="ch")
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"ranking {UNITS} units, engine=ch, {g.n_nodes:,} nodes: {len(ms)} runs  "
        f"p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms  mean {ms.mean():.3f} ms  "
        f"(load average {load})"
    )


if __name__ == "__main__":
    main()
