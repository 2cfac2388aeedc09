"""Compile OSM road ways into a compact road graph (CSR-ready arc arrays, node coordinates, edge geometry).

An *edge* is a stretch of road between two junctions, with its polyline; an *arc* is one direction of travel
along an edge. Travel times are integer milliseconds, one row per time-of-day period of the profile.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dispatch.geo.osm import FilterReport, OsmReadError, RawWays, WayRule, evaluate_way
from dispatch.geo.profile import Profile

#: travel time of an arc that is closed in a period (RoutingKit's "infinite" is 2**31 - 1)
CLOSED_MS = np.int32(2**31 - 1)
EARTH_RADIUS_M = 6_371_008.8

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass
class RoadGraph:
    """The drivable road network of one file for one vehicle profile."""

    profile: Profile
    node_lat: F64
    node_lon: F64
    node_osm: I64
    arc_tail: I32
    arc_head: I32
    arc_edge: I32  # the edge an arc runs along
    arc_reversed: npt.NDArray[np.bool_]  # runs against the edge's drawing direction
    arc_length_m: F64
    arc_time_ms: I32  # shape (periods, arcs); CLOSED_MS where closed in that period
    edge_fwd_arc: I32  # arc along the drawing direction, or -1
    edge_bwd_arc: I32  # arc against it, or -1
    edge_way: I64
    edge_name: I32  # index into names, -1 for an unnamed road
    edge_class: npt.NDArray[np.int8]  # index into classes
    geom_offsets: I64  # edge e's polyline is geom_lat/lon[geom_offsets[e]:geom_offsets[e+1]]
    geom_lat: F64
    geom_lon: F64
    names: list[str]
    names_en: list[str]
    classes: list[str]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.node_lat.shape[0])

    @property
    def n_arcs(self) -> int:
        return int(self.arc_tail.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_way.shape[0])

    def bbox(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lon, max_lat, max_lon) of the road geometry (worked out once: every "outside the map"
        message names it)."""
        found: tuple[float, float, float, float] | None = self.__dict__.get("_bbox")
        if found is None:
            found = (
                float(self.geom_lat.min()),
                float(self.geom_lon.min()),
                float(self.geom_lat.max()),
                float(self.geom_lon.max()),
            )
            self.__dict__["_bbox"] = found
        return found

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}


def haversine_m(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a)), dtype=np.float64)


def build_graph(raw: RawWays, profile: Profile, *, source: str = "") -> RoadGraph:
    """Filter, split at junctions, weigh, and keep the largest strongly connected part."""
    started = time.perf_counter()
    report = FilterReport()
    rules: list[WayRule | None] = [evaluate_way(t, profile, report) for t in raw.tags]
    keep = np.array([r is not None for r in rules], dtype=bool)
    if not keep.any():
        raise OsmReadError(
            f"{source or 'the file'}: holds {len(raw.tags)} highway ways but none that the "
            f"{profile.name!r} profile may drive (dropped: {dict(report.dropped.most_common(5))})"
        )

    # junctions: nodes used by two kept ways (or twice by one) and every way end
    pos_way = np.repeat(np.arange(len(raw.tags)), np.diff(raw.node_offsets))
    starts, ends = raw.node_offsets[:-1][keep], raw.node_offsets[1:][keep]
    used = raw.node_ids[keep[pos_way]]
    uniq, counts = np.unique(used, return_counts=True)
    is_junction_id = uniq[counts > 1]
    endpoints = np.concatenate([raw.node_ids[starts], raw.node_ids[ends - 1]])
    junction_ids = np.union1d(is_junction_id, endpoints)

    # split every kept way at its junctions: consecutive junction positions of one way bound an edge
    at_junction = np.isin(raw.node_ids, junction_ids) & keep[pos_way]
    jpos = np.nonzero(at_junction)[0]
    same_way = pos_way[jpos[:-1]] == pos_way[jpos[1:]]
    e_from_a, e_to_a = jpos[:-1][same_way], jpos[1:][same_way]
    loop = (raw.node_ids[e_from_a] == raw.node_ids[e_to_a]) & (e_to_a - e_from_a < 3)
    e_from_a, e_to_a = e_from_a[~loop].astype(np.int64), e_to_a[~loop].astype(np.int64)
    e_way = pos_way[e_from_a]

    n_e = len(e_way)
    seg_len = np.zeros(len(raw.lat), dtype=np.float64)
    seg_len[1:] = haversine_m(raw.lat[:-1], raw.lon[:-1], raw.lat[1:], raw.lon[1:])
    cum = np.cumsum(seg_len)
    e_len = cum[e_to_a] - cum[e_from_a]

    node_ids_all = np.unique(np.concatenate([raw.node_ids[e_from_a], raw.node_ids[e_to_a]]))
    u = np.searchsorted(node_ids_all, raw.node_ids[e_from_a])
    v = np.searchsorted(node_ids_all, raw.node_ids[e_to_a])

    len(profile.periods)
    e_rules = [rules[int(i)] for i in e_way]
    fwd = np.array([r is not None and r.forward for r in e_rules], dtype=bool)
    bwd = np.array([r is not None and r.backward for r in e_rules], dtype=bool)
    speed = np.array([r.speed_kph if r else 1.0 for r in e_rules], dtype=np.float64)
    factors = np.array([p.speed_factor for p in profile.periods], dtype=np.float64)
    speed_p = np.minimum(speed[None, :] * factors[:, None], profile.max_speed_kph)
    e_time = np.rint(e_len[None, :] / (speed_p / 3.6) * 1000.0)
    e_time = np.maximum(e_time, 1).astype(np.int64)
    if e_time.max(initial=0) >= int(CLOSED_MS):
        raise OsmReadError(
            f"{source or 'the file'}: a road would take {e_time.max() / 3.6e6:.0f} hours to drive with the "
            f"{profile.name!r} profile's speeds; raise its speeds_kph or speed_factor values"
        )
    for i, r in enumerate(e_rules):
        if r is not None:
            for p in r.closed_periods:
                e_time[p, i] = int(CLOSED_MS)

    # arcs: forward ones first, then backward ones
    f_idx, b_idx = np.nonzero(fwd)[0], np.nonzero(bwd)[0]
    arc_edge = np.concatenate([f_idx, b_idx])
    arc_rev = np.concatenate([np.zeros(len(f_idx), bool), np.ones(len(b_idx), bool)])
    arc_tail = np.concatenate([u[f_idx], v[b_idx]])
    arc_head = np.concatenate([v[f_idx], u[b_idx]])

    # largest strongly connected part (arcs open in any period count)
    n_all = len(node_ids_all)
    adj = coo_matrix((np.ones(len(arc_tail)), (arc_tail, arc_head)), shape=(n_all, n_all)).tocsr()
    n_comp, labels = connected_components(adj, directed=True, connection="strong")
    sizes = np.bincount(labels)
    main = int(np.argmax(sizes))
    node_keep = labels == main
    arc_keep = node_keep[arc_tail] & node_keep[arc_head]
    edge_keep = np.zeros(n_e, dtype=bool)
    edge_keep[arc_edge[arc_keep]] = True
    dropped_sizes = Counter(int(s) for i, s in enumerate(sizes) if i != main)

    node_new = np.full(n_all, -1, dtype=np.int64)
    node_new[node_keep] = np.arange(int(node_keep.sum()))
    edge_new = np.full(n_e, -1, dtype=np.int64)
    edge_new[edge_keep] = np.arange(int(edge_keep.sum()))
    arc_edge_k = edge_new[arc_edge[arc_keep]]
    arc_rev_k = arc_rev[arc_keep]
    n_arcs = int(arc_keep.sum())
    kept_edges = np.nonzero(edge_keep)[0]
    edge_fwd = np.full(len(kept_edges), -1, dtype=np.int32)
    edge_bwd = np.full(len(kept_edges), -1, dtype=np.int32)
    arc_ids = np.arange(n_arcs, dtype=np.int32)
    edge_fwd[arc_edge_k[~arc_rev_k]] = arc_ids[~arc_rev_k]
    edge_bwd[arc_edge_k[arc_rev_k]] = arc_ids[arc_rev_k]

    # geometry of kept edges
    gf, gt = e_from_a[kept_edges], e_to_a[kept_edges]
    glen = gt - gf + 1
    goff = np.zeros(len(kept_edges) + 1, dtype=np.int64)
    goff[1:] = np.cumsum(glen)
    gidx = np.repeat(gf - goff[:-1], glen) + np.arange(int(goff[-1]))

    names: list[str] = []
    names_en: list[str] = []
    name_ids: dict[tuple[str, str], int] = {}
    edge_name = np.full(len(kept_edges), -1, dtype=np.int32)
    classes = sorted(profile.speeds_kph)
    edge_class = np.zeros(len(kept_edges), dtype=np.int8)
    way_of_edge = e_way[kept_edges]
    for i, w in enumerate(way_of_edge):
        tags = raw.tags[int(w)]
        name = tags.get("name") or tags.get("name:vi") or tags.get("ref") or ""
        if name:
            key = (name, tags.get("name:en", ""))
            if key not in name_ids:
                name_ids[key] = len(names)
                names.append(key[0])
                names_en.append(key[1])
            edge_name[i] = name_ids[key]
        edge_class[i] = classes.index(tags["highway"])

    arc_sel = np.nonzero(arc_keep)[0]
    node_lat, node_lon = _node_coords(raw, node_ids_all[node_keep])
    graph = RoadGraph(
        profile=profile,
        node_lat=node_lat,
        node_lon=node_lon,
        node_osm=node_ids_all[node_keep],
        arc_tail=node_new[arc_tail[arc_sel]].astype(np.int32),
        arc_head=node_new[arc_head[arc_sel]].astype(np.int32),
        arc_edge=arc_edge_k.astype(np.int32),
        arc_reversed=arc_rev_k,
        arc_length_m=e_len[arc_edge[arc_sel]],
        arc_time_ms=e_time[:, arc_edge[arc_sel]].astype(np.int32),
        edge_fwd_arc=edge_fwd,
        edge_bwd_arc=edge_bwd,
        edge_way=raw.way_ids[way_of_edge],
        edge_name=edge_name,
        edge_class=edge_class,
        geom_offsets=goff,
        geom_lat=raw.lat[gidx],
        geom_lon=raw.lon[gidx],
        names=names,
        names_en=names_en,
        classes=classes,
    )
    graph.stats = {
        "source": source,
        "profile": profile.name,
        "nodes": graph.n_nodes,
        "arcs": graph.n_arcs,
        "edges": graph.n_edges,
        "highway_ways_read": len(raw.tags),
        **report.as_dict(),
        "dropped_components": sum(dropped_sizes.values()),
        "dropped_nodes": int(n_all - node_keep.sum()),
        "dropped_arcs": int(len(arc_tail) - n_arcs),
        "largest_dropped_component_nodes": max(dropped_sizes, default=0),
        "components_before": int(n_comp),
        "bbox": list(graph.bbox()),
        "build_s": round(time.perf_counter() - started, 3),
        "missing_node_locations": raw.missing_nodes,
    }
    return graph


def _node_coords(raw: RawWays, ids: I64) -> tuple[F64, F64]:
    order = np.argsort(raw.node_ids, kind="stable")
    pos = order[np.searchsorted(raw.node_ids, ids, sorter=order)]
    return raw.lat[pos], raw.lon[pos]
