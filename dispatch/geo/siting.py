"""Station siting: where stations should go, by maximal covering (MCLP), set covering (LSCP) or p-median.

The models are spopt's (PySAL) ``from_cost_matrix`` builders, solved by HiGHS through PuLP with a relative MIP
gap of 0, so a result is a proven optimum or an error (:class:`NotSolved`). The cost matrix is our own: one
Dijkstra from each candidate site on the same road graph, weights and closures as the router that ranks units
for the dispatcher (bounded at the threshold for MCLP and LSCP, unbounded for p-median), read at each demand
cell. Measured faster than ``Router.matrix`` (bench/planning.py part 2, docs/benchmarks-planning.md).

Demand is the same as :mod:`dispatch.geo.coverage`'s: an amount per junction (the labelled road-length proxy
unless a ``demand`` array is given) summed into the same square cells of ``cell_m`` metres. A cell is one
demand point, placed at its **demand centre**: the junction of the cell nearest to the demand-weighted
centroid of its junctions (always on the road and inside the cell). A cell counts as covered when its demand
centre is within the threshold of a site, so shares here are cell-level and can differ slightly from
``coverage()``'s junction-level shares. Candidate sites are the points of a file or every cell's demand centre:
a cell's candidate stands on that junction and may leave it by any road (a point from a file is snapped onto its
nearest road, like a unit's position). Existing stations are always candidates too, and locked in (spopt's
predefined facilities) with ``keep_existing``. ``p`` counts every site of the plan, locked ones included.

Marginal gain: the locked stations come first; then the other chosen sites are added one at a time, each time
the one that adds the most covered demand (ties: the one that cuts the demand-weighted drive time most). A
site's ``gain`` is the share of all demand it adds at its turn, and ``covered_after`` the share covered once it
is in. Coverage is submodular, so the gains never increase, and they add up to ``covered_after`` of the plan
minus the coverage of the locked stations.

Before solving, MCLP and LSCP merge demand cells that exactly the same candidates cover (their weights summed)
and MCLP leaves out cells no candidate covers; both are exact reductions (the optimum is unchanged) that keep
spopt's model small: its builder writes a term for every cell x candidate pair.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import DispatchError, InvalidInput, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.coverage import PROXY, Station, check_thresholds, grid_cells, local_metres, road_length_demand
from dispatch.geo.graph import F64, I64, RoadGraph
from dispatch.geo.routing import Router, When

MODELS = ("mclp", "lscp", "pmedian")
OBJECTIVES = {"mclp": "covered demand", "lscp": "sites", "pmedian": "demand x seconds"}
#: p-median has a variable per cell x candidate pair: beyond this, the model is refused with advice
MAX_PMEDIAN_PAIRS = 2_000_000
#: PuLP 3.3 deprecates the LpVariable constructor that spopt 0.7 calls; nothing of ours calls it
_PULP_DEPRECATION = r"Constructing LpVariable\(name, \.\.\.\) directly is deprecated"


class NotSolved(DispatchError):
    """The solver stopped without proving an optimum (time limit, numerical trouble)."""


@dataclass(frozen=True)
class DemandCells:
    """Demand summed into square cells, each placed at its demand centre (a junction)."""

    row: I64
    col: I64
    node: I64  # the cell's demand centre
    demand: F64


@dataclass(frozen=True)
class Site:
    name: str
    at: LatLon
    existing: bool
    locked: bool
    #: 0 for a locked station, then 1, 2, ... in the order of greatest gain
    order: int
    #: share of all demand this site adds at its turn (None for a locked station)
    gain: float | None
    #: share of all demand covered once this site (and those before it) are in
    covered_after: float

    def row(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "name": self.name,
            "lat": round(self.at.lat, 7),
            "lon": round(self.at.lon, 7),
            "existing": self.existing,
            "locked": self.locked,
            "gain": None if self.gain is None else round(self.gain, 6),
            "covered_after": round(self.covered_after, 6),
        }


@dataclass(frozen=True)
class Siting:
    model: str
    threshold_s: float
    p: int | None
    demand_source: str
    cell_m: float
    total_demand: float
    demand_cells: int
    candidates: int
    sites: list[Site]
    #: share of all demand within the threshold: of the existing stations, of the plan
    covered_before: float
    covered_after: float
    #: share of all demand no candidate reaches within the threshold (no plan can cover it)
    not_coverable: float
    #: share of all demand left out of the model (``drop_unreachable``)
    dropped: float
    #: demand-weighted mean drive time to the nearest site (p-median only: the others search up to the threshold)
    mean_time_s_before: float | None
    mean_time_s_after: float | None
    objective: float
    status: str
    mip_gap: float
    matrix_s: float
    build_s: float
    solve_s: float
    stats: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        return {
            "model": self.model,
            "minutes": self.threshold_s / 60,
            "p": self.p,
            "demand_source": self.demand_source,
            "cell_m": self.cell_m,
            "total_demand": round(self.total_demand, 1),
            "demand_cells": self.demand_cells,
            "candidates": self.candidates,
            "sites": [s.row() for s in self.sites],
            "new_sites": sum(not s.existing for s in self.sites),
            "covered_before": round(self.covered_before, 4),
            "covered_after": round(self.covered_after, 4),
            "not_coverable": round(self.not_coverable, 4),
            "dropped": round(self.dropped, 4),
            "mean_time_s_before": r(self.mean_time_s_before),
            "mean_time_s_after": r(self.mean_time_s_after),
            "objective": round(self.objective, 3),
            "objective_unit": OBJECTIVES[self.model],
            "solver": {"name": "HiGHS", "status": self.status, "mip_gap": self.mip_gap},
            "matrix_s": round(self.matrix_s, 3),
            "build_s": round(self.build_s, 3),
            "solve_s": round(self.solve_s, 3),
            "model_size": self.stats,
        }

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(self.sites[0].row()) if self.sites else ["order"], lineterminator="\n")
        w.writeheader()
        for s in self.sites:
            w.writerow({k: "" if v is None else v for k, v in s.row().items()})
        return out.getvalue()

    def geojson(self) -> dict[str, Any]:
        feats = [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(s.at.lon, 7), round(s.at.lat, 7)]},
                "properties": {**s.row(), "model": self.model, "minutes": self.threshold_s / 60},
            }
            for s in self.sites
        ]
        return {"type": "FeatureCollection", "features": feats}


def demand_cells(graph: RoadGraph, weights: F64, cell_m: float) -> DemandCells:
    """The cells of ``coverage()``'s grid that hold demand, each at its demand centre."""
    row, col = grid_cells(graph, cell_m)
    y, x = local_metres(graph)
    has = np.flatnonzero(weights > 0)
    order = has[np.lexsort((col[has], row[has]))]
    r, c, w = row[order], col[order], weights[order]
    starts = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])])
    total = np.add.reduceat(w, starts)
    cy = np.add.reduceat(w * y[order], starts) / total
    cx = np.add.reduceat(w * x[order], starts) / total
    group = np.cumsum(np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])]) - 1
    dist = np.hypot(y[order] - cy[group], x[order] - cx[group])
    nearest = np.lexsort((dist, group))  # by cell, nearest first
    first = nearest[np.r_[True, group[nearest][1:] != group[nearest][:-1]]]
    return DemandCells(row=r[starts], col=c[starts], node=order[first].astype(np.int64), demand=total)


def cost_matrix(
    router: Router,
    cells: DemandCells,
    candidates: Sequence[Station],
    *,
    limit_s: float,
    at: When = None,
    nodes: Sequence[int] | None = None,
) -> F64:
    """Seconds from every candidate to every cell's demand centre, shape (cells, candidates); inf beyond
    ``limit_s`` or unreachable. One bounded Dijkstra per candidate (faster than ``Router.matrix``, which also
    measures metres and snaps every target: bench/planning.py part 2).

    A candidate is snapped onto its road like a unit's position (``Router.node_times_from``), unless ``nodes``
    gives the junction it stands on (a cell's demand centre, ``-1`` for none): the search then starts at that
    junction and may leave it by any road, where a position snapped onto one of its roads could not."""
    cost = np.empty((len(cells.node), len(candidates)))
    period = router.period(at)
    for j, c in enumerate(candidates):
        node = -1 if nodes is None else nodes[j]
        if node >= 0:
            dist, _ = router.dijkstra_graph(period).search([node], limit_ms=limit_s * 1000.0)
            cost[:, j] = dist[0, cells.node] / 1000.0
            continue
        try:
            t = router.node_times_from(c.at, at=at, limit_s=limit_s)
        except OutsideCoverage as exc:
            raise OutsideCoverage(
                f"site {c.name!r}: {exc}", distance_m=exc.distance_m, max_distance_m=exc.max_distance_m
            ) from None
        cost[:, j] = t[cells.node]
    return cost


def site(
    router: Router,
    model: str,
    minutes: float,
    *,
    p: int | None = None,
    candidates: Sequence[Station] | None = None,
    stations: Sequence[Station] = (),
    keep_existing: bool = False,
    cell_m: float = 500.0,
    demand: F64 | None = None,
    demand_source: str = PROXY,
    drop_unreachable: bool = False,
    time_limit_s: float | None = None,
    at: When = None,
) -> Siting:
    """Choose sites by ``model`` (mclp: ``p`` sites covering the most demand within ``minutes``; lscp: the
    fewest sites covering all of it; pmedian: ``p`` sites with the least demand-weighted drive time).

    ``candidates`` None means every demand cell's centre. ``stations`` are the existing ones (candidates too;
    locked in with ``keep_existing``). Demand no candidate can reach (within ``minutes`` for lscp, at all for
    pmedian) is an error unless ``drop_unreachable``, which leaves it out of the model and reports its share.
    """
    if model not in MODELS:
        raise InvalidInput(f"model {model!r} is not known; allowed: {', '.join(MODELS)}")
    (threshold,) = check_thresholds([minutes])
    if not 50.0 <= cell_m <= 20_000.0:
        raise InvalidInput(f"cell size {cell_m:g} m is out of range: give 50 to 20000 metres")
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and time_limit_s > 0):
        raise InvalidInput(f"time limit {time_limit_s:g} s is not allowed: give more than 0 seconds, or none")
    if keep_existing and not stations:
        raise InvalidInput("keep_existing needs the existing stations (a GeoJSON file of points, or the database's)")
    n_locked = len(stations) if keep_existing else 0
    if model == "lscp" and p is not None:
        raise InvalidInput("lscp finds the smallest number of sites itself: do not give p (mclp and pmedian use it)")
    if model != "lscp":
        if p is None:
            raise InvalidInput(f"{model} needs p, the number of sites in the plan (locked stations included)")
        if p < max(1, n_locked):
            raise InvalidInput(
                f"p = {p} is fewer than the {n_locked} existing stations locked in: give p >= {max(1, n_locked)}"
                if n_locked
                else f"p = {p}: give at least 1 site"
            )
    if candidates is not None and not candidates:
        raise InvalidInput("the candidate file holds no site: give at least one point, or use every cell centre")
    g = router.graph
    weights = road_length_demand(g) if demand is None else np.asarray(demand, dtype=np.float64)
    if weights.shape != (g.n_nodes,) or np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise InvalidInput("demand must give every junction a finite amount >= 0")
    if not np.any(weights > 0):
        raise InvalidInput("there is no demand: every junction has 0")
    cells = demand_cells(g, weights, cell_m)
    junctions = [-1] * len(stations)
    if candidates is None:
        candidates = [
            Station(f"cell {r}:{c}", LatLon(float(g.node_lat[v]), float(g.node_lon[v])))
            for r, c, v in zip(cells.row.tolist(), cells.col.tolist(), cells.node.tolist(), strict=True)
        ]
        junctions += cells.node.tolist()
    else:
        junctions += [-1] * len(candidates)
    sites = [*stations, *candidates]
    n_existing = len(stations)
    if p is not None and p > len(sites):
        raise InvalidInput(f"p = {p} is more than the {len(sites)} candidate sites (existing stations included)")
    if model == "pmedian" and len(cells.node) * len(sites) > MAX_PMEDIAN_PAIRS:
        raise InvalidInput(
            f"p-median over {len(cells.node):,} cells x {len(sites):,} sites is too large (at most "
            f"{MAX_PMEDIAN_PAIRS:,} pairs): give larger cells or fewer candidate sites"
        )

    t0 = time.perf_counter()
    limit = np.inf if model == "pmedian" else threshold
    cost = cost_matrix(router, cells, sites, limit_s=limit, at=at, nodes=junctions)
    matrix_s = time.perf_counter() - t0
    total = float(cells.demand.sum())
    covers = cost <= threshold
    reach: npt.NDArray[np.bool_] = np.asarray((np.isfinite(cost) if model == "pmedian" else covers).any(axis=1))
    keep: npt.NDArray[np.bool_] = np.ones(len(cells.node), dtype=bool)
    dropped = 0.0
    if model != "mclp" and not reach.all():
        lost = ~reach
        share = float(cells.demand[lost].sum()) / total
        if not drop_unreachable:
            far = int(np.argmax(np.where(lost, cells.demand, -1.0)))
            v = int(cells.node[far])
            beyond = f"within {threshold / 60:g} min of" if model == "lscp" else "by road from"
            raise InvalidInput(
                f"{int(lost.sum())} of {len(lost)} demand cells ({share:.1%} of the demand; the largest at "
                f"{g.node_lat[v]:.5f},{g.node_lon[v]:.5f}) are not reachable {beyond} any candidate site, so "
                f"{model} has no solution: drop that demand from the model (drop_unreachable, "
                "--drop-unreachable), or add candidate sites near it"
            )
        keep, dropped = reach, share
    locked = np.zeros(len(sites), dtype=np.int64)
    locked[:n_locked] = 1
    objective, status, gap, chosen, build_s, solve_s, stats = solve_model(
        model, cost[keep], covers[keep], cells.demand[keep], threshold, p, locked if n_locked else None, time_limit_s
    )
    picked = np.flatnonzero(chosen)
    if n_locked and not chosen[:n_locked].all():  # spopt fixes them; a solver that ignored it would be a bug
        raise NotSolved("the solver's plan leaves out a locked existing station")
    mean_before = mean_after = None
    if model == "pmedian":
        mean_after = _mean_time(cost[keep][:, picked], cells.demand[keep])
        mean_before = _mean_time(cost[keep][:, :n_existing], cells.demand[keep])
    ordered = _order(covers, cost, cells.demand, picked, n_locked, total)
    return Siting(
        model=model,
        threshold_s=threshold,
        p=p,
        demand_source=demand_source,
        cell_m=cell_m,
        total_demand=total,
        demand_cells=len(cells.node),
        candidates=len(sites),
        sites=[
            Site(sites[j].name, sites[j].at, j < n_existing, j < n_locked, order, gain, after)
            for j, order, gain, after in ordered
        ],
        covered_before=_share(covers[:, :n_existing], cells.demand, total),
        covered_after=_share(covers[:, picked], cells.demand, total),
        not_coverable=float(cells.demand[~covers.any(axis=1)].sum()) / total,
        dropped=dropped,
        mean_time_s_before=mean_before,
        mean_time_s_after=mean_after,
        objective=objective,
        status=status,
        mip_gap=gap,
        matrix_s=matrix_s,
        build_s=build_s,
        solve_s=solve_s,
        stats=stats,
    )


def _share(covers: npt.NDArray[np.bool_], demand: F64, total: float) -> float:
    return float(demand[covers.any(axis=1)].sum()) / total if covers.shape[1] else 0.0


def _mean_time(cost: F64, demand: F64) -> float | None:
    """Demand-weighted mean seconds to the nearest of the sites (columns), over the demand they reach."""
    if not cost.shape[1]:
        return None
    best = cost.min(axis=1)
    ok = np.isfinite(best)
    return float((demand[ok] * best[ok]).sum() / demand[ok].sum()) if ok.any() else None


def _order(
    covers: npt.NDArray[np.bool_], cost: F64, demand: F64, picked: I64, n_locked: int, total: float
) -> list[tuple[int, int, float | None, float]]:
    """(site, order, gain, covered after) for the plan: locked stations, then greedy by covered demand."""
    finite = np.isfinite(cost)
    capped = np.where(finite, cost, float(cost[finite].max()) + 1.0 if finite.any() else 0.0)
    done = np.zeros(len(demand), dtype=bool)
    best = capped.max(axis=1, initial=0.0)  # no site yet: as slow as the slowest
    locked = [int(j) for j in picked if j < n_locked]
    for j in locked:
        done |= covers[:, j]
        np.minimum(best, capped[:, j], out=best)
    base = float(demand[done].sum()) / total
    out: list[tuple[int, int, float | None, float]] = [(j, 0, None, base) for j in locked]
    rest = [int(j) for j in picked if j >= n_locked]
    while rest:
        gains = np.array([demand[covers[:, j] & ~done].sum() for j in rest])
        saved = np.array([(demand * np.maximum(best - capped[:, j], 0.0)).sum() for j in rest])
        k = int(np.lexsort((-saved, -gains))[0])
        j = rest.pop(k)
        done |= covers[:, j]
        np.minimum(best, capped[:, j], out=best)
        out.append((j, len(out) - len(locked) + 1, float(gains[k]) / total, float(demand[done].sum()) / total))
    return out


def solve_model(
    model: str,
    cost: F64,
    covers: npt.NDArray[np.bool_],
    demand: F64,
    threshold: float,
    p: int | None,
    locked: I64 | None,
    time_limit_s: float | None,
) -> tuple[float, str, float, npt.NDArray[np.bool_], float, float, dict[str, int]]:
    """Build the spopt model on a cost matrix (cells x sites; after the exact reductions), solve it with HiGHS
    and check the proof. Returns the objective, HiGHS's status, the MIP gap, the chosen sites (a mask), the
    build and solve seconds, and the model's size. ``locked``: 0/1 per site, or None."""
    import pulp
    from spopt.locate import LSCP, MCLP, PMedian

    t0 = time.perf_counter()
    stats = {"cells": int(cost.shape[0]), "sites": int(cost.shape[1])}
    if model in ("mclp", "lscp"):
        rows = covers.any(axis=1) if model == "mclp" else np.ones(len(demand), dtype=bool)
        packed = np.packbits(covers[rows], axis=1)
        _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
        demand = np.bincount(inverse.ravel(), weights=demand[rows], minlength=len(first)).astype(np.float64)
        cost = cost[rows][first]
        stats["model_cells"] = int(len(first))
    else:
        stats["model_cells"] = int(cost.shape[0])
        finite = np.isfinite(cost)
        # a pair no road joins (one-way traps): a cost no optimum pays while another site reaches the cell
        cost = np.where(finite, cost, 10.0 * (float(cost[finite].max()) + 1.0) * len(demand))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PULP_DEPRECATION, category=DeprecationWarning)
        if model == "mclp":
            built: Any = MCLP.from_cost_matrix(cost, demand, threshold, p, predefined_facilities_arr=locked)
        elif model == "lscp":
            built = LSCP.from_cost_matrix(cost, threshold, predefined_facilities_arr=locked)
        else:
            built = PMedian.from_cost_matrix(cost, demand, p, predefined_facilities_arr=locked)
        build_s = time.perf_counter() - t0
        _quiet_highs_banner()
        t0 = time.perf_counter()
        solver = pulp.HiGHS(msg=False, gapRel=0.0, timeLimit=time_limit_s)
        with contextlib.suppress(RuntimeError):  # spopt's status check: the status is read and reported below
            built.solve(solver, results=False)
        solve_s = time.perf_counter() - t0
    problem = built.problem
    highs = getattr(problem, "solverModel", None)
    status = highs.modelStatusToString(highs.getModelStatus()) if highs is not None else pulp.LpStatus[problem.status]
    gap = float(highs.getInfo().mip_gap) if highs is not None else math.nan
    if problem.status != pulp.LpStatusOptimal or problem.sol_status != pulp.LpSolutionOptimal:
        raise NotSolved(
            f"{model}: HiGHS stopped without proving an optimum ({status}; PuLP: {pulp.LpStatus[problem.status]}, "
            f"gap {gap:.2%}) after {solve_s:.1f} s: give a longer time limit, fewer candidate sites or larger cells"
        )
    chosen = np.array([(v.value() or 0.0) > 0.5 for v in built.fac_vars], dtype=bool)
    return float(pulp.value(problem.objective)), status, gap, chosen, build_s, solve_s, stats


_banner = threading.Lock()
_banner_shown = False


def _quiet_highs_banner() -> None:
    """HiGHS prints its banner once per process, from C, to standard output, whatever ``msg`` says: print it to
    nowhere, so that ``dispatch site --json`` prints JSON only (and an error stays one line on stderr)."""
    global _banner_shown
    with _banner:
        if _banner_shown:
            return
        import highspy

        sys.stdout.flush()
        saved = os.dup(1)
        nowhere = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(nowhere, 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(nowhere)
        _banner_shown = True
