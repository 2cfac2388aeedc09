"""Drive-time queries on the road graph: one-to-many ETAs, routes with steps, isochrones, matrices, closures.

The fast path is a contraction hierarchy per time-of-day period; the checked fallback (and the engine while
roads are closed) is Dijkstra on the same integer-millisecond weights, so both give the same times.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import DispatchError, InvalidInput, NoRoute, OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.ch import CHIndex, Seed, Seeds
from dispatch.geo.dijkstra import DijkstraGraph
from dispatch.geo.graph import CLOSED_MS, F64, I64, RoadGraph
from dispatch.geo.snap import DEFAULT_MAX_SNAP_M, Located, Snap, Snapper

Engine = Literal["auto", "ch", "dijkstra"]
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
When = datetime | time | int | None


@dataclass(frozen=True)
class Leg:
    """Drive time and distance of the fastest way from one place to another."""

    eta_s: float
    distance_m: float


@dataclass(frozen=True)
class End:
    """One way onto (or off) the road graph from a snapped position: a node, and the partial arc to it."""

    node: int
    cost_ms: float
    length_m: float
    arc: int
    reversed: bool


def _seconds(time_ms: float) -> float:
    """Seconds, rounded to the microsecond: the engines add the same terms in different orders, and the last
    bits of a float sum must not make them disagree."""
    return round(time_ms, 3) / 1000.0


@dataclass(frozen=True)
class _Best:
    """The fastest way found: total ms and metres, the partial arcs at both ends, the graph arcs between."""

    time_ms: float
    length_m: float
    start: End | None  # None: along one edge, no junction passed
    arcs: list[int]
    end: End | None


@dataclass(frozen=True)
class _OriginSide:
    """Origins as the ranking needs them: the edge (-1: off the coverage) and fraction each lies at, and its
    ways onto the graph (origin i's are ``seeds[offsets[i]:offsets[i + 1]]``)."""

    edge: npt.NDArray[np.int64]
    fraction: F64
    seeds: Seeds
    offsets: npt.NDArray[np.int64]


#: how many origin sides a router keeps (a few: the units' positions of the latest calls, per period)
ORIGIN_SIDES_KEPT = 16


@dataclass
class Route:
    eta_s: float
    distance_m: float
    origin: Snap
    destination: Snap
    arcs: list[int]
    geometry: dict[str, Any]
    steps: list[dict[str, Any]]
    period: str
    engine: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "eta_s": round(self.eta_s, 1),
            "distance_m": round(self.distance_m, 1),
            "period": self.period,
            "engine": self.engine,
            "origin": self.origin.as_dict(),
            "destination": self.destination.as_dict(),
            "geometry": self.geometry,
            "steps": self.steps,
        }


@dataclass
class Closure:
    id: int
    reason: str
    edges: list[int]
    kind: str
    geometry: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "kind": self.kind,
            "edges": len(self.edges),
            "geometry": self.geometry,
        }


class Router:
    """Every drive-time query the product makes, on one graph and one vehicle profile."""

    def __init__(
        self,
        graph: RoadGraph,
        chs: Sequence[CHIndex] | None = None,
        *,
        max_snap_m: float = DEFAULT_MAX_SNAP_M,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> None:
        if not max_snap_m > 0:
            raise InvalidInput(f"max_snap_m = {max_snap_m} is not allowed: it must be more than 0 metres")
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"time zone {timezone!r} is not known; give an IANA name such as Asia/Ho_Chi_Minh"
            ) from None
        self.graph = graph
        self.chs = list(chs or [])
        self.snapper = Snapper(graph, max_distance_m=max_snap_m)
        self._closures: dict[int, Closure] = {}
        self._next_closure = 1
        self._closed_arcs = np.zeros(graph.n_arcs, dtype=bool)
        self._any_closed = False
        self._dijkstra: dict[int, DijkstraGraph] = {}
        self._usable: dict[int, npt.NDArray[np.bool_]] = {}
        #: the origin side of recent rankings (:meth:`_origin_side`), by closures' generation, period and origins
        self._origins: dict[tuple[int, int, tuple[LatLon, ...]], _OriginSide] = {}
        #: counts the changes of closures: an origin side worked out before one is never used after it
        self._generation = 0
        self._lock = threading.Lock()

    # ---- time of day -------------------------------------------------------------------------------------
    def period(self, at: When = None) -> int:
        """The profile period for a time of day on the region's clock; None means now.

        An aware datetime is converted to the region's time zone; a naive one or a time is taken as local.
        """
        if at is None:
            at = datetime.now(self.tz)
        elif isinstance(at, datetime) and at.tzinfo is not None:
            at = at.astimezone(self.tz)
        hour = at if isinstance(at, int) else at.hour
        return self.graph.profile.period_index(hour)

    def weights(self, period: int) -> npt.NDArray[np.int32]:
        w: npt.NDArray[np.int32] = self.graph.arc_time_ms[period]
        if self._any_closed:
            w = np.where(self._closed_arcs, CLOSED_MS, w).astype(np.int32)
        return w

    def dijkstra_graph(self, period: int) -> DijkstraGraph:
        with self._lock:
            dg = self._dijkstra.get(period)
            if dg is None:
                dg = self._dijkstra[period] = DijkstraGraph(self.graph, self.weights(period))
            return dg

    def _engine(self, engine: Engine, period: int) -> Literal["ch", "dijkstra"]:
        """``ch`` when a hierarchy exists for the period (paths that cross a closure fall back to Dijkstra)."""
        if engine not in ("auto", "ch", "dijkstra"):
            raise InvalidInput(f"engine {engine!r} is not known; allowed: auto, ch, dijkstra")
        if engine == "ch" and period >= len(self.chs):
            raise InvalidInput("engine 'ch' needs the contraction hierarchies, which this router was not given")
        if engine == "auto":
            return "ch" if period < len(self.chs) else "dijkstra"
        return engine

    # ---- snapping ----------------------------------------------------------------------------------------
    def usable_edges(self, period: int) -> npt.NDArray[np.bool_]:
        """Edges with at least one direction open in ``period`` (snapping ignores the others)."""
        ok = self._usable.get(period)
        if ok is None:
            w = self.weights(period)
            g = self.graph
            ok = np.zeros(g.n_edges, dtype=bool)
            for arcs in (g.edge_fwd_arc, g.edge_bwd_arc):
                has = arcs >= 0
                ok[has] |= w[arcs[has]] != CLOSED_MS
            self._usable[period] = ok
        return ok

    def snap(self, point: LatLon, *, at: When = None) -> Snap:
        return self.snapper.snap(point, usable=self.usable_edges(self.period(at)))

    def _ways(
        self, edge: I64, fraction: F64, w: npt.NDArray[np.int32], *, arriving: bool
    ) -> tuple[I64, F64, F64, I64, npt.NDArray[np.bool_]]:
        """Both ways between each snapped position and its edge's ends, as (n, 2) arrays, along the edge then
        against it: the node, ms, metres and arc, and whether the arc is open. Leaving a position runs to the
        arc's head; arriving comes from its tail."""
        g = self.graph
        arc = np.stack([g.edge_fwd_arc[edge], g.edge_bwd_arc[edge]], axis=1).astype(np.int64)
        a = np.maximum(arc, 0)
        is_open = (arc >= 0) & (w[a] != CLOSED_MS)
        # the part of each arc between the position and the node
        part = np.stack([fraction, 1 - fraction], axis=1) if arriving else np.stack([1 - fraction, fraction], axis=1)
        node = (g.arc_tail if arriving else g.arc_head)[a].astype(np.int64)
        return node, part * w[a], part * g.arc_length_m[a], arc, is_open

    def _ends_of(self, edge: int, fraction: float, w: npt.NDArray[np.int32], *, arriving: bool) -> list[End]:
        """:meth:`_ways` for one position, in plain floats (a call ranks from here: numpy costs more than the
        arithmetic for two ways): along the edge, then against it, the open ones only."""
        g = self.graph
        heads = g.arc_tail if arriving else g.arc_head
        ways = (
            (int(g.edge_fwd_arc[edge]), fraction if arriving else 1 - fraction),
            (int(g.edge_bwd_arc[edge]), 1 - fraction if arriving else fraction),
        )
        return [
            End(int(heads[arc]), part * float(w[arc]), part * float(g.arc_length_m[arc]), arc, k == 1)
            for k, (arc, part) in enumerate(ways)
            if arc >= 0 and w[arc] != CLOSED_MS
        ]

    def starts(self, snap: Snap, w: npt.NDArray[np.int32]) -> list[End]:
        """Ways to leave a snapped position: along the edge to its end, or against it to its start."""
        return self._ends_of(snap.edge, snap.fraction, w, arriving=False)

    def ends(self, snap: Snap, w: npt.NDArray[np.int32]) -> list[End]:
        """Ways to arrive at a snapped position: from the edge's start along it, or from its end against it."""
        return self._ends_of(snap.edge, snap.fraction, w, arriving=True)

    def _directs(
        self, edge: I64, fraction: F64, d_edge: int, d_fraction: float, w: npt.NDArray[np.int32]
    ) -> tuple[F64, F64, I64]:
        """Direct travel from each position to one on ``d_edge`` along that edge, no junction passed: ms, metres
        and arc (inf, 0, -1 where the positions are not on that edge, or its way between them is closed)."""
        g = self.graph
        fa, ba = int(g.edge_fwd_arc[d_edge]), int(g.edge_bwd_arc[d_edge])
        same = edge == d_edge
        along = same & (d_fraction >= fraction) & (fa >= 0 and w[fa] != CLOSED_MS)
        against = same & ~along & (d_fraction <= fraction) & (ba >= 0 and w[ba] != CLOSED_MS)
        k = np.where(along, d_fraction - fraction, fraction - d_fraction)
        fa, ba = max(fa, 0), max(ba, 0)
        ms = np.where(along, k * w[fa], np.where(against, k * w[ba], np.inf))
        metres = np.where(along, k * g.arc_length_m[fa], np.where(against, k * g.arc_length_m[ba], 0.0))
        arc = np.where(along, fa, np.where(against, ba, -1))
        return ms, metres, arc

    def _same_edge(self, o: Snap, d: Snap, w: npt.NDArray[np.int32]) -> tuple[float, float, int] | None:
        """Direct travel along one edge (no junction passed): (ms, metres, arc)."""
        ms, metres, arc = self._directs(np.array([o.edge]), np.array([o.fraction]), d.edge, d.fraction, w)
        return None if arc[0] < 0 else (float(ms[0]), float(metres[0]), int(arc[0]))

    # ---- the contraction-hierarchy path, checked against closures ---------------------------------------------
    def _ch_many(
        self,
        ch: CHIndex,
        starts: list[list[End]],
        ends: list[End],
        directs: list[tuple[float, float, int] | None],
        *,
        need_arcs: bool,
    ) -> list[_Best | None | Literal["closed"]]:
        """The fastest way from each origin by the hierarchy; ``"closed"`` where it runs over a closed road
        (the caller then asks Dijkstra)."""
        check = self._any_closed
        found = ch.many_to_one(
            [[Seed(a.node, a.cost_ms, a.length_m) for a in st] for st in starts],
            [Seed(b.node, b.cost_ms, b.length_m) for b in ends],
            with_paths=need_arcs or check,
        )
        out: list[_Best | None | Literal["closed"]] = []
        g = self.graph
        for st, f, direct in zip(starts, found, directs, strict=True):
            if direct is not None and (f is None or direct[0] <= f.time_ms):
                out.append(_Best(direct[0], direct[1], None, [], None))
                continue
            if f is None:
                out.append(None)
                continue
            arcs = f.arcs or []
            if check and arcs and self._closed_arcs[arcs].any():
                out.append("closed")
                continue
            if f.arcs is None:  # time and metres only (ranking): the ends used do not matter
                out.append(_Best(f.time_ms, f.length_m, None, [], None))
                continue
            first = int(g.arc_tail[arcs[0]]) if arcs else f.meet
            last = int(g.arc_head[arcs[-1]]) if arcs else f.meet
            a = min((x for x in st if x.node == first), key=lambda x: x.cost_ms)
            b = min((x for x in ends if x.node == last), key=lambda x: x.cost_ms)
            out.append(_Best(f.time_ms, f.length_m, a, arcs, b))
        return out

    # ---- one-to-many: the query dispatch runs on every call ------------------------------------------------
    def eta_to(
        self, origins: Sequence[LatLon], destination: LatLon, *, at: When = None, engine: Engine = "auto"
    ) -> list[Leg | DispatchError]:
        """Drive time from each origin (ambulance positions) to one destination (the patient).

        One entry per origin, in order: a :class:`Leg`, or the error that keeps that origin from the patient
        (off the road coverage, no route). A destination off the coverage raises.
        """
        period = self.period(at)
        generation = self._generation  # before the weights: a closure changed meanwhile makes a new key
        eng = self._engine(engine, period)
        w = self.weights(period)
        usable = self.usable_edges(period)
        if eng == "ch" and not self._any_closed:
            dest = self.snapper.locate([destination], usable=usable)
            if dest.edge[0] < 0:
                raise self.snapper.outside(destination, dest.geoms[0], usable)
            side = self._origin_side((generation, period, tuple(origins)), usable, w)
            time_ms, metres = self._rank_ch(self.chs[period], side, dest, w)
            edges = side.edge
        else:  # closures: every path is checked against them
            points = [destination, *origins]
            loc = self.snapper.locate(points, usable=usable)  # one snapping pass for the patient and every unit
            if loc.edge[0] < 0:
                raise self.snapper.outside(destination, loc.geoms[0], usable)
            time_ms, metres = self._rank_checked(period, eng, self.snapper.snaps(points, loc, usable), w)
            edges = loc.edge[1:]
        out: list[Leg | DispatchError] = []
        for i, (e, t, m) in enumerate(zip(edges.tolist(), time_ms.tolist(), metres.tolist(), strict=True)):
            if e < 0:
                off = self.snapper.locate([origins[i]], usable=usable)
                out.append(self.snapper.outside(origins[i], off.geoms[0], usable))
            elif t == np.inf:
                out.append(
                    NoRoute(
                        f"no drivable route from {origins[i].lat:.6f},{origins[i].lon:.6f} to "
                        f"{destination.lat:.6f},{destination.lon:.6f} (one-way streets or closed roads)"
                    )
                )
            else:
                out.append(Leg(eta_s=_seconds(t), distance_m=m))
        return out

    def _origin_side(
        self, key: tuple[int, int, tuple[LatLon, ...]], usable: npt.NDArray[np.bool_], w: npt.NDArray[np.int32]
    ) -> _OriginSide:
        """Where the origins lie and their ways onto the graph, kept for the next rankings: the units are the
        origins of every call, and they stand still between calls (a batch of calls has the same ones), so
        only the patient is snapped per call. ``key`` is (closures' generation, period, origins): a closure
        made or lifted while this ran makes its side unreachable, never stale."""
        found = self._origins.get(key)
        if found is not None:
            return found
        origins = key[2]
        loc = self.snapper.locate(origins, usable=usable)
        node, cost, length, _, way = self._ways(np.maximum(loc.edge, 0), loc.fraction, w, arriving=False)
        way &= (loc.edge >= 0)[:, None]
        offsets = np.zeros(len(origins) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(way.sum(axis=1))
        side = _OriginSide(loc.edge, loc.fraction, Seeds(node[way], cost[way], length[way]), offsets)
        with self._lock:
            if key[0] == self._generation:
                if len(self._origins) >= ORIGIN_SIDES_KEPT:
                    self._origins.clear()
                self._origins[key] = side
        return side

    def _rank_ch(self, ch: CHIndex, side: _OriginSide, dest: Located, w: npt.NDArray[np.int32]) -> tuple[F64, F64]:
        """Time (ms; inf where there is no way) and metres from every origin to the destination by the
        hierarchy, with no closure to check the paths against: arrays in, one compiled search call."""
        d_edge, d_fraction = int(dest.edge[0]), float(dest.fraction[0])
        arrivals = Seeds.of(
            [Seed(e.node, e.cost_ms, e.length_m) for e in self._ends_of(d_edge, d_fraction, w, arriving=True)]
        )
        time_ms, metres, _ = ch.many_to_one_times(side.seeds, side.offsets, arrivals)
        if not (side.edge == d_edge).any():  # no unit on the patient's road: no direct way to compare
            return time_ms, metres
        d_ms, d_metres, _ = self._directs(side.edge, side.fraction, d_edge, d_fraction, w)
        direct = d_ms <= time_ms  # where neither way exists, both are inf
        return np.where(direct, d_ms, time_ms), np.where(direct, d_metres, metres)

    def _rank_checked(
        self, period: int, eng: Literal["ch", "dijkstra"], snaps: list[Snap | OutsideCoverage], w: npt.NDArray[np.int32]
    ) -> tuple[F64, F64]:
        """As :meth:`_rank_ch`, from the snaps, by the hierarchy checked against closures (Dijkstra for the
        origins whose path runs over a closed road) or by Dijkstra alone."""
        dest, origins = snaps[0], snaps[1:]
        assert isinstance(dest, Snap)
        time_ms, metres = np.full(len(origins), np.inf), np.zeros(len(origins))
        d_ends = self.ends(dest, w)
        on_road = [i for i, s in enumerate(origins) if isinstance(s, Snap)]
        pending: list[int] = []  # origins the Dijkstra pass answers
        if eng == "ch" and on_road:
            road = [origins[i] for i in on_road]
            found = self._ch_many(
                self.chs[period],
                [self.starts(s, w) for s in road if isinstance(s, Snap)],
                d_ends,
                [self._same_edge(s, dest, w) for s in road if isinstance(s, Snap)],
                need_arcs=False,
            )
            for i, best in zip(on_road, found, strict=True):
                if best == "closed":
                    pending.append(i)
                elif best is not None:
                    time_ms[i], metres[i] = best.time_ms, best.length_m
        else:
            pending = on_road
        if pending:
            dg = self.dijkstra_graph(period)
            roots = [b.node for b in d_ends]
            dist, pred = dg.search(roots, reverse=True)
            lengths = [dg.tree_lengths(r, pred[k], reverse=True) for k, r in enumerate(roots)]
            for i in pending:
                s = origins[i]
                assert isinstance(s, Snap)
                direct = self._same_edge(s, dest, w)
                best = _Best(direct[0], direct[1], None, [], None) if direct is not None else None
                for a in self.starts(s, w):
                    for k, b in enumerate(d_ends):
                        t = a.cost_ms + dist[k, a.node] + b.cost_ms
                        if np.isfinite(t) and (best is None or t < best.time_ms):
                            best = _Best(float(t), a.length_m + float(lengths[k][a.node]) + b.length_m, a, [], b)
                if best is not None:
                    time_ms[i], metres[i] = best.time_ms, best.length_m
        return time_ms, metres

    # ---- one route with geometry and steps -------------------------------------------------------------------
    def route(self, origin: LatLon, destination: LatLon, *, at: When = None, engine: Engine = "auto") -> Route:
        from dispatch.geo.steps import route_geometry, route_pieces, route_steps

        period = self.period(at)
        eng = self._engine(engine, period)
        w = self.weights(period)
        usable = self.usable_edges(period)
        o = self.snapper.snap(origin, usable=usable)
        d = self.snapper.snap(destination, usable=usable)
        direct = self._same_edge(o, d, w)
        starts, ends = self.starts(o, w), self.ends(d, w)
        best: _Best | None | Literal["closed"] = "closed"
        if eng == "ch":
            best = self._ch_many(self.chs[period], [starts], ends, [direct], need_arcs=True)[0]
        if best == "closed":
            eng = "dijkstra"
            best = _Best(direct[0], direct[1], None, [], None) if direct is not None else None
            dg = self.dijkstra_graph(period)
            dist, pred = dg.search([a.node for a in starts])
            for i, a in enumerate(starts):
                for b in ends:
                    t = a.cost_ms + dist[i, b.node] + b.cost_ms
                    if np.isfinite(t) and (best is None or t < best.time_ms):
                        arcs = dg.path_arcs(pred[i], a.node, b.node)
                        metres = a.length_m + float(self.graph.arc_length_m[arcs].sum()) + b.length_m
                        best = _Best(float(t), metres, a, arcs, b)
        if best is None:
            raise NoRoute(
                f"no drivable route from {origin.lat:.6f},{origin.lon:.6f} to "
                f"{destination.lat:.6f},{destination.lon:.6f} (one-way streets or closed roads)"
            )
        pieces = route_pieces(self, o, d, best.start, best.arcs, best.end, direct, w)
        return Route(
            eta_s=_seconds(best.time_ms),
            distance_m=best.length_m,
            origin=o,
            destination=d,
            arcs=best.arcs,
            geometry=route_geometry(self, pieces),
            steps=route_steps(self, pieces),
            period=self.graph.profile.periods[period].name,
            engine=eng,
        )

    # ---- many-to-many, for planning --------------------------------------------------------------------------
    def node_times_from(self, source: LatLon, *, at: When = None, limit_s: float = np.inf) -> F64:
        """Seconds from ``source`` to every graph node (inf beyond ``limit_s`` or unreachable)."""
        period = self.period(at)
        w = self.weights(period)
        o = self.snapper.snap(source, usable=self.usable_edges(period))
        starts = self.starts(o, w)
        dist, _ = self.dijkstra_graph(period).search([a.node for a in starts], limit_ms=limit_s * 1000.0)
        best = np.min(dist + np.array([[a.cost_ms] for a in starts]), axis=0)
        out: F64 = best / 1000.0
        return out

    def matrix(
        self,
        sources: Sequence[LatLon],
        targets: Sequence[LatLon],
        *,
        at: When = None,
        limit_s: float = np.inf,
    ) -> tuple[F64, F64]:
        """(seconds, metres) from every source to every target; inf where unreachable or beyond ``limit_s``.

        One Dijkstra search per way out of each source (two on a two-way street); targets are read off the
        search in bulk. Raises :class:`OutsideCoverage` naming the first source or target off the road coverage.
        """
        period = self.period(at)
        w = self.weights(period)
        usable = self.usable_edges(period)
        src = self._snap_all(sources, usable, "source")
        tgts = self._snap_all(targets, usable, "target")
        dg = self.dijkstra_graph(period)
        limit_ms = limit_s * 1000.0
        # each target's (up to) two ways in, padded with an unreachable dummy
        end_node = np.zeros((len(tgts), 2), dtype=np.int64)
        end_cost = np.full((len(tgts), 2), np.inf)
        end_len = np.zeros((len(tgts), 2))
        for j, t in enumerate(tgts):
            for k, b in enumerate(self.ends(t, w)):
                end_node[j, k], end_cost[j, k], end_len[j, k] = b.node, b.cost_ms, b.length_m
        secs = np.full((len(src), len(tgts)), np.inf)
        metres = np.full((len(src), len(tgts)), np.inf)
        tgt_edge = np.array([t.edge for t in tgts], dtype=np.int64)
        for i, o in enumerate(src):
            starts = self.starts(o, w)
            dist, pred = dg.search([a.node for a in starts], limit_ms=limit_ms)
            via = dist + np.array([[a.cost_ms] for a in starts])
            k_best = np.argmin(via, axis=0)
            node_ms = via[k_best, np.arange(via.shape[1])]
            node_m = np.empty_like(node_ms)
            for k, a in enumerate(starts):
                sel = k_best == k
                node_m[sel] = dg.tree_lengths(a.node, pred[k])[sel] + a.length_m
            tt = node_ms[end_node] + end_cost
            pick = np.argmin(tt, axis=1)
            rows = np.arange(len(tgts))
            t_best, m_best = tt[rows, pick], node_m[end_node[rows, pick]] + end_len[rows, pick]
            for same in np.nonzero(tgt_edge == o.edge)[0].tolist():
                direct = self._same_edge(o, tgts[same], w)
                if direct is not None and direct[0] < t_best[same]:
                    t_best[same], m_best[same] = direct[0], direct[1]
            ok = t_best <= limit_ms
            secs[i, ok], metres[i, ok] = np.round(t_best[ok], 3) / 1000.0, m_best[ok]
        return secs, metres

    def _snap_all(self, points: Sequence[LatLon], usable: npt.NDArray[np.bool_], what: str) -> list[Snap]:
        out = []
        for i, s in enumerate(self.snapper.snap_many(list(points), usable=usable)):
            if isinstance(s, OutsideCoverage):
                raise OutsideCoverage(f"{what} {i}: {s}", distance_m=s.distance_m, max_distance_m=s.max_distance_m)
            out.append(s)
        return out

    # ---- closures ----------------------------------------------------------------------------------------------
    def close_edges(
        self,
        edges: Sequence[int],
        *,
        reason: str,
        kind: str = "segment",
        geometry: dict[str, Any] | None = None,
        closure_id: int | None = None,
    ) -> Closure:
        """Close road segments (both directions) until reopened; the next query honours it, no rebuild."""
        if not edges:
            raise InvalidInput("the closure holds no road segment: nothing to close")
        bad = [e for e in edges if not 0 <= e < self.graph.n_edges]
        if bad:
            raise InvalidInput(f"edge ids {bad[:5]} do not exist; allowed: 0-{self.graph.n_edges - 1}")
        with self._lock:
            cid = self._next_closure if closure_id is None else closure_id
            closure = Closure(cid, reason, sorted({int(e) for e in edges}), kind, geometry)
            self._next_closure = max(self._next_closure, cid + 1)
            self._closures[closure.id] = closure
            self._recompute_closed()
        return closure

    def edge_near(self, point: LatLon) -> int:
        """The road segment nearest to ``point`` (within the snap limit)."""
        return self.snapper.snap(point).edge

    def edges_in(self, polygon: dict[str, Any]) -> list[int]:
        """Every road segment that enters a GeoJSON Polygon/MultiPolygon (lon, lat order)."""
        import shapely
        from shapely.geometry import shape

        try:
            geom = shape(polygon)
        except Exception as exc:  # shapely raises several types for malformed GeoJSON
            raise InvalidInput(f"the closure area is not a GeoJSON Polygon: {exc}") from None
        if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty or not geom.is_valid:
            raise InvalidInput(
                f"the closure area must be a valid, non-empty Polygon or MultiPolygon, not {geom.geom_type}"
            )
        coords = shapely.get_coordinates(geom)
        x, y = self.snapper.proj.forward(coords[:, 1], coords[:, 0])
        projected = shapely.set_coordinates(geom, np.column_stack([x, y]))
        edges: list[int] = self.snapper.tree.query(projected, predicate="intersects").tolist()
        if not edges:
            raise InvalidInput("the closure area touches no road of the map: nothing to close")
        return edges

    def close_near(self, point: LatLon, *, reason: str, closure_id: int | None = None) -> Closure:
        """Close the road segment (both directions, junction to junction) nearest to ``point``."""
        edge = self.edge_near(point)
        return self.close_edges(
            [edge], reason=reason, kind="segment", geometry=self.edge_geojson(edge), closure_id=closure_id
        )

    def close_area(self, polygon: dict[str, Any], *, reason: str, closure_id: int | None = None) -> Closure:
        """Close every road segment that enters a GeoJSON Polygon/MultiPolygon (lon, lat order)."""
        return self.close_edges(
            self.edges_in(polygon), reason=reason, kind="area", geometry=polygon, closure_id=closure_id
        )

    def reopen(self, closure_id: int) -> None:
        """Reopen a closure: the next query drives its roads again."""
        with self._lock:
            if closure_id not in self._closures:
                raise InvalidInput(f"closure {closure_id} does not exist; open closures: {sorted(self._closures)}")
            del self._closures[closure_id]
            self._recompute_closed()

    def closures(self) -> list[Closure]:
        return list(self._closures.values())

    def _recompute_closed(self) -> None:
        closed = np.zeros(self.graph.n_arcs, dtype=bool)
        g = self.graph
        for c in self._closures.values():
            e = np.asarray(c.edges, dtype=np.int64)
            for arcs in (g.edge_fwd_arc[e], g.edge_bwd_arc[e]):
                closed[arcs[arcs >= 0]] = True
        self._closed_arcs = closed
        self._any_closed = bool(closed.any())
        self._dijkstra.clear()
        self._usable.clear()
        self._origins.clear()
        self._generation += 1

    def edge_geojson(self, edge: int) -> dict[str, Any]:
        g = self.graph
        s, e = int(g.geom_offsets[edge]), int(g.geom_offsets[edge + 1])
        return {
            "type": "LineString",
            "coordinates": [
                [round(float(lo), 7), round(float(la), 7)]
                for la, lo in zip(g.geom_lat[s:e], g.geom_lon[s:e], strict=True)
            ],
        }
