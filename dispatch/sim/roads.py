"""Drive times for the simulator: the live router's own answers, without its per-call overheads.

:class:`RoadTimes` implements core's ``TravelTimes`` as :meth:`Router.eta_to` does, on the same router: the same
snapping of each position onto a road edge, the same partial-edge costs to the edge's ends, the same
time-of-day period, the same contraction hierarchy searched in the same compiled call, the same direct way along
one edge. What it adds is memory: a position's snap is worked out once per period (stations, hospitals and
streets recur call after call), where the router snaps every position on every call. With a road closed the
hierarchy cannot be used, and it asks the router itself. ``tests/sim/test_roads.py`` checks both give the same
seconds on the Hanoi graph.

Where a unit is while it drives back to its station needs the junctions it passes: :meth:`RoadTimes.path` reads
them off a backward Dijkstra tree toward the destination's junctions, one per junction and period, kept in a
table (``n_nodes x 12`` bytes a tree; ``max_bytes`` bounds it, least recently used first).

Distances are not worked out: legs carry ``distance_m = nan`` (the simulator reports times, not kilometres).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import DispatchError, InvalidInput, NoRoute, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo._chkernels import tree
from dispatch.geo.ch import Seed, Seeds
from dispatch.geo.routing import End, Leg, Router, When, _seconds
from dispatch.geo.snap import Snap

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Place:
    """A position snapped onto the road graph in one period: how to leave it and how to arrive at it."""

    snap: Snap
    starts: tuple[End, ...]
    ends: tuple[End, ...]
    #: the ways out as the hierarchy's seeds: nodes, ms, metres
    out_node: npt.NDArray[np.int64]
    out_ms: F64
    out_m: F64


class RoadTimes:
    """``TravelTimes`` over one router with a simulated clock: ``now`` is the period used when no ``at`` is given
    (core's ranking asks without one, as the live server does at the wall-clock time)."""

    def __init__(self, router: Router, *, now: datetime, max_bytes: int = 2 << 30) -> None:
        if max_bytes < router.graph.n_nodes * 16:
            raise InvalidInput(f"max_bytes={max_bytes} cannot hold even one row of {router.graph.n_nodes} junctions")
        self.router = router
        self.now = now
        self._max_rows = max_bytes // (router.graph.n_nodes * 12)  # float64 times + int32 next hops
        self._rows: OrderedDict[tuple[int, int, bool], tuple[F64, npt.NDArray[np.int32]]] = OrderedDict()
        self._csr: dict[tuple[int, bool], tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], F64]] = {}
        m = router.graph.n_arcs + 1
        self._hk, self._hv = np.empty(m), np.empty(m, dtype=np.int64)
        self._places: dict[tuple[int, LatLon], _Place | OutsideCoverage] = {}
        self.searches = 0
        self._period_at: tuple[datetime, int] | None = None

    def period(self, at: When = None) -> int:
        """The road profile's time-of-day period at ``at`` (default ``now``)."""
        if at is not None:
            return self.router.period(at)
        if self._period_at is None or self._period_at[0] is not self.now:
            self._period_at = (self.now, self.router.period(self.now))
        return self._period_at[1]

    # ---- tables ------------------------------------------------------------------------------------------
    def _row(self, period: int, node: int, *, toward: bool = True) -> tuple[F64, npt.NDArray[np.int32]]:
        """Milliseconds from every junction to ``node`` and each junction's next one on the way there; or, with
        ``toward=False``, from ``node`` to every junction and the one before it."""
        key = (period, node, toward)
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
            return row
        csr = self._csr.get((period, toward))
        if csr is None:
            dg = self.router.dijkstra_graph(period)
            m = dg.reverse if toward else dg.forward
            csr = self._csr[(period, toward)] = (m.indptr, m.indices, m.data.astype(np.float64))
        n = self.router.graph.n_nodes
        row = (np.empty(n), np.empty(n, dtype=np.int32))
        tree(*csr, node, row[0], row[1], self._hk, self._hv)
        self.searches += 1
        self._rows[key] = row
        if len(self._rows) > self._max_rows:
            self._rows.popitem(last=False)
        return row

    def place(self, point: LatLon, period: int) -> _Place | OutsideCoverage:
        key = (period, point)
        found = self._places.get(key)
        if found is None:
            r = self.router
            snapped = r.snapper.snap_many([point], usable=r.usable_edges(period))[0]
            if isinstance(snapped, OutsideCoverage):
                found = snapped
            else:
                w = r.weights(period)
                starts = r.starts(snapped, w)
                found = _Place(
                    snapped,
                    tuple(starts),
                    tuple(r.ends(snapped, w)),
                    np.array([e.node for e in starts], dtype=np.int64),
                    np.array([e.cost_ms for e in starts]),
                    np.array([e.length_m for e in starts]),
                )
            self._places[key] = found
        return found

    def _best(self, period: int, o: _Place, d: _Place) -> tuple[float, End | None, End | None]:
        """Milliseconds from ``o`` to ``d`` (inf: no way), with the way out of ``o`` and into ``d`` it used
        (None, None: directly along one edge)."""
        best, out, into = math.inf, None, None
        for b in d.ends:
            row = self._row(period, b.node)[0]
            for a in o.starts:
                t = a.cost_ms + float(row[a.node]) + b.cost_ms
                if t < best:
                    best, out, into = t, a, b
        if o.snap.edge == d.snap.edge:
            direct = self.router._same_edge(o.snap, d.snap, self.router.weights(period))
            if direct is not None and direct[0] < best:
                best, out, into = direct[0], None, None
        return best, out, into

    # ---- TravelTimes ---------------------------------------------------------------------------------------
    def eta_to(
        self, origins: Sequence[LatLon], destination: LatLon, *, at: When = None
    ) -> list[Leg | DispatchError]:
        when = self.now if at is None else at
        r = self.router
        period = self.period(at)
        if r._any_closed or period >= len(r.chs):
            return list(r.eta_to(origins, destination, at=when))
        d = self.place(destination, period)
        if isinstance(d, OutsideCoverage):
            raise d
        places = [self.place(p, period) for p in origins]
        ok = [p for p in places if not isinstance(p, OutsideCoverage)]
        time_ms: list[float] = []
        if len(ok) == 1:
            # one origin: a patient to each hospital. A backward tree per hospital (a few dozen in a region)
            # answers for every scene
            time_ms = [self._best(period, ok[0], d)[0]]
        elif ok and d.ends:
            offsets = np.zeros(len(ok) + 1, dtype=np.int64)
            np.cumsum([len(p.out_node) for p in ok], out=offsets[1:])
            seeds = Seeds(
                np.concatenate([p.out_node for p in ok]),
                np.concatenate([p.out_ms for p in ok]),
                np.concatenate([p.out_m for p in ok]),
            )
            target = Seeds.of([Seed(e.node, e.cost_ms, e.length_m) for e in d.ends])
            time_ms = r.chs[period].many_to_one_times(seeds, offsets, target)[0].tolist()
        elif ok:
            time_ms = [math.inf] * len(ok)
        out: list[Leg | DispatchError] = []
        k = 0
        w = r.weights(period)
        for p, o in zip(origins, places, strict=True):
            if isinstance(o, OutsideCoverage):
                out.append(o)
                continue
            t = time_ms[k]
            k += 1
            if o.snap.edge == d.snap.edge:
                direct = r._same_edge(o.snap, d.snap, w)
                if direct is not None and direct[0] <= t:
                    t = direct[0]
            if t == math.inf:
                out.append(
                    NoRoute(
                        f"no drivable route from {p.lat:.6f},{p.lon:.6f} to "
                        f"{destination.lat:.6f},{destination.lon:.6f} (one-way streets or closed roads)"
                    )
                )
            else:
                out.append(Leg(eta_s=_seconds(t), distance_m=math.nan))
        return out

    # ---- where a moving unit is ----------------------------------------------------------------------------
    def path(self, origin: LatLon, destination: LatLon, *, at: When = None) -> list[tuple[float, LatLon]]:
        """The junctions passed from ``origin`` to ``destination``, each with the seconds to reach it, starting
        with the origin at 0 and ending with the destination at the drive time. Raises when there is no way."""
        period = self.period(at)
        o, d = self.place(origin, period), self.place(destination, period)
        for p in (o, d):
            if isinstance(p, OutsideCoverage):
                raise p
        assert not isinstance(o, OutsideCoverage) and not isinstance(d, OutsideCoverage)
        t, out, into = self._best(period, o, d)
        if t == math.inf:
            raise NoRoute(f"no drivable route from {origin.lat:.6f},{origin.lon:.6f} to {destination}")
        points = [(0.0, origin)]
        if out is not None and into is not None:
            dist, ahead = self._row(period, into.node)
            nodes = [out.node]
            while nodes[-1] != into.node:
                nodes.append(int(ahead[nodes[-1]]))
            g = self.router.graph
            base = out.cost_ms + float(dist[out.node])
            for n in nodes:
                points.append(
                    ((base - float(dist[n])) / 1000.0, LatLon(float(g.node_lat[n]), float(g.node_lon[n])))
                )
        points.append((_seconds(t), destination))
        return points
