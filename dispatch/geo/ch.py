"""Contraction hierarchies: RoutingKit (through the ch-router wheel) builds them; our own numba searches
query them, because dispatch needs what the wheel's node-to-node query lacks: start costs (a position part
way along a road), one backward search shared by 50 units, and metres without unpacking every path.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from routingkit_ch import ContractionHierarchy

from dispatch.geo import _chkernels as K
from dispatch.geo.graph import CLOSED_MS, F64, I32, I64, RoadGraph

MAGIC = 0x436F6E7448696572


class CHFormatError(RuntimeError):
    """A contraction-hierarchy file that is not what RoutingKit writes."""


@dataclass(frozen=True)
class Seed:
    """A way onto the graph: a node, the time (ms) and metres it costs to reach it."""

    node: int
    cost_ms: float
    length_m: float


@dataclass(frozen=True)
class Seeds:
    """Many ways onto the graph, as arrays: graph node, time (ms) and metres to reach it."""

    node: I64
    cost_ms: F64
    length_m: F64

    @classmethod
    def of(cls, seeds: Sequence[Seed]) -> Seeds:
        return cls(
            np.array([s.node for s in seeds], dtype=np.int64),
            np.array([s.cost_ms for s in seeds], dtype=np.float64),
            np.array([s.length_m for s in seeds], dtype=np.float64),
        )


@dataclass(frozen=True)
class Found:
    """The fastest way found: ms and metres from the source's position, the graph arcs between the way on
    and the way off (when asked for), and the node where the two searches met."""

    time_ms: float
    length_m: float
    arcs: list[int] | None
    meet: int


#: a CH arc: the node it leads to, its time (ms) and metres
ARC = np.dtype([("head", np.int64), ("weight", np.float64), ("length_m", np.float64)])
#: a search's label of one node: time (ms) and metres from the seeds, and the arc it was reached by
LABEL = np.dtype([("dist", np.float64), ("length_m", np.float64), ("pred", np.int64)])
#: forward searches many_to_one_times runs side by side, a row of labels each (~32 MB per million nodes)
LANES = 2
BACKWARD, FORWARD = 0, 1  # workspace rows: the backward search, then the forward one(s)
HEAP_ROOM = 1024  # heap entries per row to begin with (the searches double it when one runs out)


class _Workspace:
    def __init__(self, n: int) -> None:
        self.label = np.empty((1 + LANES, n), dtype=LABEL)
        self.label["dist"] = np.inf
        self.label["length_m"] = 0.0
        self.label["pred"] = -1
        self.visited = np.zeros((1 + LANES, n), dtype=np.int64)
        self.hk = np.empty((1 + LANES, HEAP_ROOM))
        self.hv = np.empty((1 + LANES, HEAP_ROOM), dtype=np.int64)
        self.out = np.empty(n + 1, dtype=np.int64)


class CHIndex:
    """A contraction hierarchy of the arcs open in one period."""

    def __init__(self, raw: bytes | Path, arc_ids: I32, input_length_m: F64) -> None:
        data = np.frombuffer(raw if isinstance(raw, bytes) else Path(raw).read_bytes(), dtype=np.uint8)
        self._parse(data)
        self.arc_ids = arc_ids  # CH input arc i is graph arc arc_ids[i]
        self.fw["length_m"], self.bw["length_m"] = K.arc_lengths(
            np.ascontiguousarray(self.fw["weight"]),
            self.fw_orig,
            self.fw_first,
            self.fw_second,
            np.ascontiguousarray(self.bw["weight"]),
            self.bw_orig,
            self.bw_first,
            self.bw_second,
            input_length_m,
        )
        self._pool: list[_Workspace] = []
        self._pool_lock = threading.Lock()

    def _parse(self, data: npt.NDArray[np.uint8]) -> None:
        if len(data) < 24 or int(data[:8].view(np.uint64)[0]) != MAGIC:
            raise CHFormatError("not a RoutingKit contraction hierarchy (magic number)")
        n, nf, nb = (int(v) for v in data[8:20].view(np.uint32))
        pos = 24

        def take(count: int) -> npt.NDArray[np.int64]:
            nonlocal pos
            out = data[pos : pos + 4 * count].view(np.uint32).astype(np.int64)
            pos += 4 * count
            return out

        def bits(count: int) -> npt.NDArray[np.bool_]:
            nonlocal pos
            size = ((count + 511) // 512) * 64
            out = np.unpackbits(data[pos : pos + size], bitorder="little")[:count].astype(bool)
            pos += size
            return out

        def arcs(count: int) -> npt.NDArray[np.void]:
            out = np.empty(count, dtype=ARC)
            out["head"] = take(count)
            out["weight"] = take(count)
            out["length_m"] = 0.0  # set from the input arcs once parsed
            return out

        self.n = n
        self.rank = take(n)
        fw_first_out, self.fw = take(n + 1), arcs(nf)
        self.fw_orig, self.fw_first, self.fw_second = bits(nf), take(nf), take(nf)
        bw_first_out, self.bw = take(n + 1), arcs(nb)
        self.bw_orig, self.bw_first, self.bw_second = bits(nb), take(nb), take(nb)
        if pos != len(data):
            raise CHFormatError(f"contraction hierarchy file size {len(data)} does not match its header ({pos})")
        self.first_out = np.stack([fw_first_out, bw_first_out], axis=1)  # arcs leaving x: [x, 0] fw, [x, 1] bw
        self.max_out = int(np.diff(self.first_out, axis=0).max(initial=0))  # arcs leaving one node, at most
        self.order = np.argsort(self.rank)
        self.fw_tail = np.repeat(np.arange(n, dtype=np.int64), np.diff(fw_first_out))
        self.bw_tail = np.repeat(np.arange(n, dtype=np.int64), np.diff(bw_first_out))
        self.raw = data

    @classmethod
    def build(cls, graph: RoadGraph, period: int) -> CHIndex:
        weights = graph.arc_time_ms[period]
        arc_ids = np.nonzero(weights != CLOSED_MS)[0].astype(np.int32)
        ch = ContractionHierarchy.build(
            graph.n_nodes, graph.arc_tail[arc_ids], graph.arc_head[arc_ids], weights[arc_ids]
        )
        with tempfile.TemporaryDirectory() as tmp:
            ch.save(str(Path(tmp) / "ch.bin"))
            raw = (Path(tmp) / "ch.bin").read_bytes()
        return cls(raw, arc_ids, graph.arc_length_m[arc_ids])

    def save(self, path: Path) -> None:
        path.write_bytes(self.raw.tobytes())

    @classmethod
    def load(cls, path: Path, graph: RoadGraph, period: int) -> CHIndex:
        arc_ids = np.nonzero(graph.arc_time_ms[period] != CLOSED_MS)[0].astype(np.int32)
        return cls(path, arc_ids, graph.arc_length_m[arc_ids])

    # ---- searches ------------------------------------------------------------------------------------------
    def _workspace(self) -> _Workspace:
        with self._pool_lock:
            return self._pool.pop() if self._pool else _Workspace(self.n)

    def _release(self, ws: _Workspace) -> None:
        with self._pool_lock:
            self._pool.append(ws)

    def _search(self, ws: _Workspace, own: int, seeds: Sequence[Seed], meet: bool) -> tuple[int, float, int, float]:
        """One upward search (own 0: forward, in the workspace's forward row; 1: backward, in its backward row),
        meeting the backward row's labels with ``meet``: (nodes labelled, best time, meeting rank, metres)."""
        row = FORWARD if own == 0 else BACKWARD
        arcs, opp = (self.fw, self.bw) if own == 0 else (self.bw, self.fw)
        s = Seeds.of(seeds)
        while True:
            best, metres, node, nvis, full = K.searches(
                self.first_out,
                own,
                arcs,
                opp,
                self.max_out,
                self.rank[s.node],
                s.cost_ms,
                s.length_m,
                np.array([0, len(seeds)]),
                ws.label,
                ws.visited,
                ws.hk,
                ws.hv,
                row,
                row + 1,
                BACKWARD,
                meet,
            )
            if not full:
                return int(nvis[row]), float(best[0]), int(node[0]), float(metres[0])
            K.reset(ws.label, ws.visited, row, nvis[row])
            ws.hk, ws.hv = K.grow(ws.hk, ws.hv)

    def _reset(self, ws: _Workspace, own: int, nvis: int) -> None:
        K.reset(ws.label, ws.visited, FORWARD if own == 0 else BACKWARD, nvis)

    def many_to_one(
        self, sources: Sequence[Sequence[Seed]], targets: Sequence[Seed], *, with_paths: bool = False
    ) -> list[Found | None]:
        """For each source (its ways onto the graph), the fastest way to the target's ways off the graph
        (None where unreachable). One backward search serves every source; without paths, all the searches
        run in one compiled call (:meth:`many_to_one_times`)."""
        if not with_paths:
            flat = [s for seeds in sources for s in seeds]
            offsets = np.zeros(len(sources) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([len(seeds) for seeds in sources])
            best_t, best_l, best_n = self.many_to_one_times(Seeds.of(flat), offsets, Seeds.of(targets))
            return [
                Found(t, length, None, node) if node >= 0 else None
                for t, length, node in zip(best_t.tolist(), best_l.tolist(), best_n.tolist(), strict=True)
            ]
        ws = self._workspace()
        out: list[Found | None] = []
        nb = 0
        try:
            if not targets:
                return [None] * len(sources)
            nb, _, _, _ = self._search(ws, 1, targets, False)
            for seeds in sources:
                if not seeds:
                    out.append(None)
                    continue
                nf, best, node, metres = self._search(ws, 0, seeds, True)
                if node < 0 or not np.isfinite(best):
                    out.append(None)
                else:
                    out.append(Found(best, metres, self._path(ws, node), int(self.order[node])))
                self._reset(ws, 0, nf)
        finally:
            self._reset(ws, 1, nb)
            self._release(ws)
        return out

    def many_to_one_times(self, sources: Seeds, offsets: I64, target: Seeds) -> tuple[F64, F64, I64]:
        """Time (ms) and metres of the fastest way from each source to the target, and the node where the
        searches met: inf, 0 and -1 where unreachable. Source i's ways onto the graph are
        ``sources[offsets[i]:offsets[i + 1]]``; one compiled call runs the backward search and all the
        forward ones."""
        ws = self._workspace()
        try:
            best_t, best_l, best_n, ws.hk, ws.hv = K.many_to_one(
                self.first_out,
                self.fw,
                self.bw,
                self.max_out,
                self.rank[target.node],
                target.cost_ms,
                target.length_m,
                self.rank[sources.node],
                sources.cost_ms,
                sources.length_m,
                offsets,
                ws.label,
                ws.visited,
                ws.hk,
                ws.hv,
            )
        finally:
            self._release(ws)
        reached = (best_n >= 0) & (best_t != np.inf)
        best_n[reached] = self.order[best_n[reached]]
        best_n[~reached] = -1
        return best_t, best_l, best_n

    def _path(self, ws: _Workspace, meet: int) -> list[int]:
        """Graph arcs of the path through ``meet``: the forward tree back to the source, then the backward
        tree down to the target, every shortcut unpacked."""
        pred_f, pred_b = ws.label[FORWARD]["pred"], ws.label[BACKWARD]["pred"]
        chain_f: list[int] = []
        x = meet
        while pred_f[x] >= 0:
            a = int(pred_f[x])
            chain_f.append(a)
            x = int(self.fw_tail[a])
        shortcuts = (self.fw_orig, self.fw_first, self.fw_second, self.bw_orig, self.bw_first, self.bw_second)
        n = 0
        for a in reversed(chain_f):
            n = K.unpack(a, True, *shortcuts, ws.out, n)
        x = meet
        while pred_b[x] >= 0:
            a = int(pred_b[x])
            n = K.unpack(a, False, *shortcuts, ws.out, n)
            x = int(self.bw_tail[a])
        arcs: list[int] = self.arc_ids[ws.out[:n]].astype(np.int64).tolist()
        return arcs

    def distance_ms(self, source: int, target: int) -> int | None:
        """Shortest travel time in ms from node to node, None if unreachable."""
        r = self.many_to_one([[Seed(source, 0.0, 0.0)]], [Seed(target, 0.0, 0.0)])[0]
        return None if r is None else int(round(r.time_ms))

    def path(self, source: int, target: int) -> tuple[int, list[int]] | None:
        """(time in ms, graph arc ids of the path), None if unreachable."""
        if source == target:
            return 0, []
        r = self.many_to_one([[Seed(source, 0.0, 0.0)]], [Seed(target, 0.0, 0.0)], with_paths=True)[0]
        if r is None:
            return None
        assert r.arcs is not None
        return int(round(r.time_ms)), r.arcs
