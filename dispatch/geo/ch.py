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
from dispatch.geo.graph import CLOSED_MS, F64, I32, RoadGraph

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
class Found:
    """The fastest way found: ms and metres from the source's position, the graph arcs between the way on
    and the way off (when asked for), and the node where the two searches met."""

    time_ms: float
    length_m: float
    arcs: list[int] | None
    meet: int


class _Workspace:
    def __init__(self, n: int) -> None:
        self.dist = [np.full(n, np.inf), np.full(n, np.inf)]
        self.lens = [np.zeros(n), np.zeros(n)]
        self.pred = [np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)]
        self.visited = [np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]
        self.hk = np.empty(1024)
        self.hv = np.empty(1024, dtype=np.int64)
        self.out = np.empty(n + 1, dtype=np.int64)


class CHIndex:
    """A contraction hierarchy of the arcs open in one period."""

    def __init__(self, raw: bytes | Path, arc_ids: I32, input_length_m: F64) -> None:
        data = np.frombuffer(raw if isinstance(raw, bytes) else Path(raw).read_bytes(), dtype=np.uint8)
        self._parse(data)
        self.arc_ids = arc_ids  # CH input arc i is graph arc arc_ids[i]
        self.fw_len, self.bw_len = K.arc_lengths(
            self.fw_w,
            self.fw_orig,
            self.fw_first,
            self.fw_second,
            self.bw_w,
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

        self.n = n
        self.rank = take(n)
        self.fw_first_out, self.fw_head, self.fw_w = take(n + 1), take(nf), take(nf).astype(np.float64)
        self.fw_orig, self.fw_first, self.fw_second = bits(nf), take(nf), take(nf)
        self.bw_first_out, self.bw_head, self.bw_w = take(n + 1), take(nb), take(nb).astype(np.float64)
        self.bw_orig, self.bw_first, self.bw_second = bits(nb), take(nb), take(nb)
        if pos != len(data):
            raise CHFormatError(f"contraction hierarchy file size {len(data)} does not match its header ({pos})")
        self.order = np.argsort(self.rank)
        self.fw_tail = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.fw_first_out))
        self.bw_tail = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.bw_first_out))
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

    def _search(self, ws: _Workspace, side: int, seeds: Sequence[Seed], meet: bool) -> tuple[int, float, int, float]:
        fw = (self.fw_first_out, self.fw_head, self.fw_w, self.fw_len)
        bw = (self.bw_first_out, self.bw_head, self.bw_w, self.bw_len)
        g, opp = (fw, bw) if side == 0 else (bw, fw)
        s_nodes = np.array([self.rank[s.node] for s in seeds], dtype=np.int64)
        s_cost = np.array([s.cost_ms for s in seeds], dtype=np.float64)
        s_len = np.array([s.length_m for s in seeds], dtype=np.float64)
        nvis, best, best_node, best_len, ws.hk, ws.hv = K.upward_search(
            g[0],
            g[1],
            g[2],
            g[3],
            s_nodes,
            s_cost,
            s_len,
            ws.dist[side],
            ws.lens[side],
            ws.pred[side],
            ws.visited[side],
            ws.hk,
            ws.hv,
            ws.dist[1],
            ws.lens[1],
            meet,
            opp[0],
            opp[1],
            opp[2],
        )
        return int(nvis), float(best), int(best_node), float(best_len)

    def _reset(self, ws: _Workspace, side: int, nvis: int) -> None:
        K.reset(ws.dist[side], ws.lens[side], ws.pred[side], ws.visited[side], nvis)

    def many_to_one(
        self, sources: Sequence[Sequence[Seed]], targets: Sequence[Seed], *, with_paths: bool = False
    ) -> list[Found | None]:
        """For each source (its ways onto the graph), the fastest way to the target's ways off the graph
        (None where unreachable). One backward search serves every source; without paths, all the forward
        searches run in one compiled call."""
        ws = self._workspace()
        out: list[Found | None] = []
        nb = 0
        try:
            if not targets:
                return [None] * len(sources)
            nb, _, _, _ = self._search(ws, 1, targets, False)
            if not with_paths:
                flat = [s for seeds in sources for s in seeds]
                offsets = np.zeros(len(sources) + 1, dtype=np.int64)
                offsets[1:] = np.cumsum([len(seeds) for seeds in sources])
                best_t, best_l, best_n, ws.hk, ws.hv = K.many_forward(
                    self.fw_first_out,
                    self.fw_head,
                    self.fw_w,
                    self.fw_len,
                    self.bw_first_out,
                    self.bw_head,
                    self.bw_w,
                    self.rank[np.array([s.node for s in flat], dtype=np.int64)] if flat else np.zeros(0, np.int64),
                    np.array([s.cost_ms for s in flat], dtype=np.float64),
                    np.array([s.length_m for s in flat], dtype=np.float64),
                    offsets,
                    ws.dist[0],
                    ws.lens[0],
                    ws.pred[0],
                    ws.visited[0],
                    ws.hk,
                    ws.hv,
                    ws.dist[1],
                    ws.lens[1],
                )
                for t, length, node in zip(best_t.tolist(), best_l.tolist(), best_n.tolist(), strict=True):
                    ok = node >= 0 and t != float("inf")
                    out.append(Found(t, length, None, int(self.order[node])) if ok else None)
                return out
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

    def _path(self, ws: _Workspace, meet: int) -> list[int]:
        """Graph arcs of the path through ``meet``: the forward tree back to the source, then the backward
        tree down to the target, every shortcut unpacked."""
        chain_f: list[int] = []
        x = meet
        while ws.pred[0][x] >= 0:
            a = int(ws.pred[0][x])
            chain_f.append(a)
            x = int(self.fw_tail[a])
        shortcuts = (self.fw_orig, self.fw_first, self.fw_second, self.bw_orig, self.bw_first, self.bw_second)
        n = 0
        for a in reversed(chain_f):
            n = K.unpack(a, True, *shortcuts, ws.out, n)
        x = meet
        while ws.pred[1][x] >= 0:
            a = int(ws.pred[1][x])
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
