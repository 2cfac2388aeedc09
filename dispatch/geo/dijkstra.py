"""The plain-Dijkstra path (scipy.sparse.csgraph): the checked fallback, and the engine for closures,
isochrones and matrices. Times are the same integer milliseconds the contraction hierarchies use."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from dispatch.geo.graph import CLOSED_MS, F64, I64, RoadGraph


class DijkstraGraph:
    """Forward and reverse CSR of one weight vector, with the arc behind each CSR entry.

    Parallel arcs (two ways joining the same junctions) keep the fastest open one.
    """

    def __init__(self, graph: RoadGraph, weights_ms: npt.NDArray[np.integer]) -> None:
        self.graph = graph
        n = graph.n_nodes
        open_arcs = np.nonzero(weights_ms != CLOSED_MS)[0]
        tail = graph.arc_tail[open_arcs].astype(np.int64)
        head = graph.arc_head[open_arcs].astype(np.int64)
        w = weights_ms[open_arcs].astype(np.float64)
        order = np.lexsort((w, head, tail))
        key = tail[order] * n + head[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        rep = order[first]
        self.keys: I64 = key[first]  # sorted tail * n + head
        self.rep_arc: I64 = open_arcs[rep]  # the arc behind each key
        self.forward = csr_matrix((w[rep], (tail[rep], head[rep])), shape=(n, n))
        self.reverse = csr_matrix((w[rep], (head[rep], tail[rep])), shape=(n, n))

    def arc_between(self, a: I64, b: I64) -> I64:
        """The arc used from node a[i] to node b[i]."""
        idx = np.searchsorted(self.keys, a * self.graph.n_nodes + b)
        return self.rep_arc[idx]

    def search(
        self, sources: list[int], *, reverse: bool = False, limit_ms: float = np.inf
    ) -> tuple[F64, npt.NDArray[np.int32]]:
        """Times (ms, inf when not reached) and predecessors from each source: shape (len(sources), n)."""
        m = self.reverse if reverse else self.forward
        dist, pred = dijkstra(m, directed=True, indices=sources, return_predecessors=True, limit=limit_ms)
        return dist, pred

    def tree_lengths(self, root: int, pred: npt.NDArray[np.int32], *, reverse: bool = False) -> F64:
        """Metres from ``root`` to every node along the shortest-time tree ``pred`` (toward root if reverse)."""
        n = self.graph.n_nodes
        child = np.nonzero(pred >= 0)[0]
        parent = pred[child].astype(np.int64)
        # in a reverse search the tree arcs run child -> parent on the road
        arcs = self.arc_between(child, parent) if reverse else self.arc_between(parent, child)
        length = self.graph.arc_length_m[arcs]
        tree = csr_matrix((length + 1e-9, (parent, child)), shape=(n, n))
        out: F64 = dijkstra(tree, directed=True, indices=root)
        return out

    def path_arcs(self, pred_row: npt.NDArray[np.int32], source: int, target: int) -> list[int]:
        """Arcs from ``source`` to ``target`` following a forward search's predecessor row."""
        nodes = [target]
        while nodes[-1] != source:
            p = int(pred_row[nodes[-1]])
            if p < 0:
                return []
            nodes.append(p)
        nodes.reverse()
        a = np.asarray(nodes[:-1], dtype=np.int64)
        b = np.asarray(nodes[1:], dtype=np.int64)
        return self.arc_between(a, b).tolist() if len(a) else []
