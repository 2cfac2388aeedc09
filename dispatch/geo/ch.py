"""Contraction hierarchies (RoutingKit, through the ch-router wheel) over one period's arc weights."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from routingkit_ch import INF_WEIGHT, CHQuery, ContractionHierarchy

from dispatch.geo.graph import CLOSED_MS, I32, RoadGraph


class CHIndex:
    """A contraction hierarchy of the arcs open in one period; answers node-to-node queries in microseconds."""

    def __init__(self, ch: ContractionHierarchy, arc_ids: I32) -> None:
        self._ch = ch
        self.arc_ids = arc_ids  # CH input arc i is graph arc arc_ids[i]
        self._local = threading.local()

    @classmethod
    def build(cls, graph: RoadGraph, period: int) -> CHIndex:
        weights = graph.arc_time_ms[period]
        arc_ids = np.nonzero(weights != CLOSED_MS)[0].astype(np.int32)
        ch = ContractionHierarchy.build(
            graph.n_nodes, graph.arc_tail[arc_ids], graph.arc_head[arc_ids], weights[arc_ids]
        )
        return cls(ch, arc_ids)

    def save(self, path: Path) -> None:
        self._ch.save(str(path))

    @classmethod
    def load(cls, path: Path, graph: RoadGraph, period: int) -> CHIndex:
        arc_ids = np.nonzero(graph.arc_time_ms[period] != CLOSED_MS)[0].astype(np.int32)
        return cls(ContractionHierarchy.load(str(path)), arc_ids)

    def _query(self) -> CHQuery:
        q = getattr(self._local, "query", None)
        if q is None:
            q = self._local.query = CHQuery(self._ch)
        return q

    def distance_ms(self, source: int, target: int) -> int | None:
        """Shortest travel time in ms from node to node, None if unreachable."""
        q = self._query()
        q.reset().add_source(source).add_target(target).run()
        d = q.get_distance()
        return None if d >= INF_WEIGHT else int(d)

    def path(self, source: int, target: int) -> tuple[int, list[int]] | None:
        """(time in ms, graph arc ids of the path), None if unreachable."""
        q = self._query()
        q.reset().add_source(source).add_target(target).run()
        d = q.get_distance()
        if d >= INF_WEIGHT:
            return None
        return int(d), self.arc_ids[np.asarray(q.get_arc_path(), dtype=np.int64)].tolist()
