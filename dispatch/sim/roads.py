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

import bisect
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import DispatchError, InvalidInput, NoRoute, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo._chkernels import tree
from dispatch.geo.ch import Seed, Seeds
from dispatch.geo.routing import End, Router, When, _seconds
from dispatch.geo.snap import Snap

F64 = npt.NDArray[np.float64]


class SimLeg(NamedTuple):
    """A drive time (core's ``LegLike``): a named tuple, built a hundred thousand times faster than a dataclass."""

    eta_s: float
    distance_m: float


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


@dataclass(frozen=True)
class Trip:
    """The junctions passed on a drive, from the origin (at 0 s) to the destination (at the drive time)."""

    times_s: list[float]
    lat: list[float]
    lon: list[float]

    def at(self, seconds: float) -> LatLon:
        """Where the vehicle is ``seconds`` into the drive: the last junction it passed."""
        i = max(bisect.bisect_right(self.times_s, seconds) - 1, 0)
        return LatLon(self.lat[i], self.lon[i])

    @property
    def duration_s(self) -> float:
        return self.times_s[-1]


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
        # keyed by (period, lat, lon): a tuple of floats hashes in C, a LatLon dataclass in Python
        self._places: dict[tuple[int, float, float], _Place | OutsideCoverage] = {}
        self._snaps: dict[tuple[int, float, float], Snap | OutsideCoverage] = {}
        self._groups: dict[int, int] = {}
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

    def _snap_group(self, period: int) -> int:
        """The first period whose drivable edges are this period's (periods that close no road share snaps)."""
        group = self._groups.get(period)
        if group is None:
            usable = self.router.usable_edges(period)
            group = next(
                (p for p in sorted(self._groups) if np.array_equal(self.router.usable_edges(p), usable)), period
            )
            self._groups[period] = group
        return group

    def place(self, point: LatLon, period: int) -> _Place | OutsideCoverage:
        key = (period, point.lat, point.lon)
        found = self._places.get(key)
        if found is None:
            r = self.router
            group = self._snap_group(period)
            snapped = self._snaps.get((group, point.lat, point.lon))
            if snapped is None:
                snapped = r.snapper.snap_many([point], usable=r.usable_edges(period))[0]
                self._snaps[(group, point.lat, point.lon)] = snapped
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
    ) -> list[SimLeg | DispatchError]:
        when = self.now if at is None else at
        r = self.router
        period = self.period(at)
        if r._any_closed or period >= len(r.chs):
            return [
                leg if isinstance(leg, DispatchError) else SimLeg(leg.eta_s, math.nan)
                for leg in r.eta_to(origins, destination, at=when)
            ]
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
        out: list[SimLeg | DispatchError] = []
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
                out.append(SimLeg(_seconds(t), math.nan))
        return out

    # ---- where a moving unit is ----------------------------------------------------------------------------
    def path(self, origin: LatLon, destination: LatLon, *, at: When = None) -> Trip:
        """The junctions passed from ``origin`` to ``destination`` with the seconds to reach each. Raises when
        there is no way."""
        period = self.period(at)
        o, d = self.place(origin, period), self.place(destination, period)
        for p in (o, d):
            if isinstance(p, OutsideCoverage):
                raise p
        assert not isinstance(o, OutsideCoverage) and not isinstance(d, OutsideCoverage)
        t, out, into = self._best(period, o, d)
        if t == math.inf:
            raise NoRoute(f"no drivable route from {origin.lat:.6f},{origin.lon:.6f} to {destination}")
        times, lat, lon = [0.0], [origin.lat], [origin.lon]
        if out is not None and into is not None:
            dist, ahead = self._row(period, into.node)
            nodes = [out.node]
            while nodes[-1] != into.node:
                nodes.append(int(ahead[nodes[-1]]))
            idx = np.array(nodes)
            g = self.router.graph
            times += ((out.cost_ms + dist[out.node] - dist[idx]) / 1000.0).tolist()
            lat += g.node_lat[idx].tolist()
            lon += g.node_lon[idx].tolist()
        times.append(_seconds(t))
        lat.append(destination.lat)
        lon.append(destination.lon)
        return Trip(times, lat, lon)
