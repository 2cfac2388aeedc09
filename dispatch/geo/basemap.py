"""The dispatcher console's offline basemap: vector tiles of the road graph, cut by viewport.

Tiles follow the slippy-map (Web Mercator XYZ) scheme. A tile is a small JSON document::

    {"z": 16, "x": 52103, "y": 28857, "extent": 4096,
     "roads": [{"c": "primary", "n": "Phố Huế", "p": [x0, y0, x1, y1, ...]}, ...],
     "labels": [{"n": "Phố Huế", "x": 2011, "y": 1707, "a": 1.52, "c": "primary"}, ...]}

- Coordinates are integers in tile space: 0..4096 spans the tile, y grows downwards (16 units to a pixel of a
  256-px tile). Lines are clipped to the tile plus a buffer of ``BUFFER`` units, so that lines and their
  casings join across tile edges.
- Only the classes that fit the zoom are drawn (``CLASS_GROUPS``): z <= 11 motorway and trunk; 12 adds primary
  and the motorway/trunk links; 13 secondary and primary links; 14 tertiary and the other links; 15 residential,
  unclassified, living streets and unknown roads; 16 and more every class, service roads and alleys included.
  Each class group has its own spatial index, so a low-zoom tile never reads the geometry of minor roads.
- ``roads`` is in drawing order: minor classes first, major ones last (drawn on top).
- Consecutive edges of one OSM way (same name and class, sharing the junction) are merged into one line, and
  lines are simplified (Douglas-Peucker) to ``SIMPLIFY_PX`` pixel of a 256-px tile.
- From z15 on, ``labels`` holds at most one anchor per road name and tile: the middle of the longest stretch of
  the road inside the tile, when that stretch is long enough for the name (``LABEL_PX_PER_CHAR`` per character).
  ``a`` is the text angle in radians in tile space (y down, so positive turns clockwise on screen, as canvas
  ``rotate`` expects), kept within -pi/2..pi/2 so that a name never reads upside down.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from dispatch.core.errors import InvalidInput
from dispatch.geo.graph import F64, I64, RoadGraph
from dispatch.geo.profile import ROAD_CLASSES

#: bump when the tile format or drawing rules change: the ETag changes with it, so browsers fetch again
TILE_FORMAT = 1
EXTENT = 4096
#: units of tile space per pixel of a 256-px tile
UNITS_PER_PX = EXTENT // 256
#: lines are kept this far outside the tile (8 px of a 256-px tile)
BUFFER = 8 * UNITS_PER_PX
MAX_ZOOM = 20
SIMPLIFY_PX = 1.0
LABEL_MIN_ZOOM = 15
LABEL_PX_PER_CHAR = 6.5

#: (first zoom drawn, OSM highway classes); a class not named here is drawn from OTHER_MIN_ZOOM on
CLASS_GROUPS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("motorway", "trunk")),
    (12, ("primary", "motorway_link", "trunk_link")),
    (13, ("secondary", "primary_link")),
    (14, ("tertiary", "secondary_link", "tertiary_link")),
    (15, ("residential", "unclassified", "living_street", "road")),
)
OTHER_MIN_ZOOM = 16
#: the profiles' list of road classes runs from major to minor; tiles list roads in the reverse order (minor
#: first), so that major roads are drawn on top. A class not named there counts as the most minor.
MAJOR_FIRST = ROAD_CLASSES
#: the finest cell grid of the spatial index: cells of a z16 tile (about 570 m at Hanoi's latitude)
FINEST_CELL_ZOOM = 16
COARSEST_CELL_ZOOM = 10


def world_x(lon: F64) -> F64:
    """Web Mercator x of longitudes, 0..1 across the world."""
    return np.asarray((lon + 180.0) / 360.0, dtype=np.float64)


def world_y(lat: F64) -> F64:
    """Web Mercator y of latitudes, 0 at the top (85.05 N) to 1 at the bottom."""
    phi = np.radians(lat)
    return np.asarray(0.5 - np.log(np.tan(np.pi / 4 + phi / 2)) / (2 * np.pi), dtype=np.float64)


def tile_xy(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The (x, y) of the tile of zoom ``z`` that holds a place."""
    n = 2**z
    wy = 0.5 - math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / (2 * math.pi)
    return min(int((lon + 180.0) / 360.0 * n), n - 1), min(max(int(wy * n), 0), n - 1)


def encode(doc: dict[str, Any]) -> bytes:
    """Compact JSON (no spaces, UTF-8 names)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _ranges(starts: I64, ends: I64) -> I64:
    """The concatenation of arange(starts[i], ends[i]) over i."""
    counts = ends - starts
    total = int(counts.sum())
    before = np.cumsum(counts) - counts
    return np.asarray(np.repeat(starts - before, counts) + np.arange(total, dtype=np.int64), dtype=np.int64)


class _CellIndex:
    """Edges of one class group (at least one) bucketed by the cells of the tile grid at zoom ``zoom`` (CSR: a
    cell's edges are ``edges[starts[c]:starts[c + 1]]``); an edge is listed in every cell its bounding box meets."""

    def __init__(self, zoom: int, edges: I64, box: tuple[F64, F64, F64, F64]) -> None:
        self.zoom = zoom
        scale = 2.0**zoom
        x0, y0, x1, y1 = box
        cx0, cy0 = np.floor(x0 * scale).astype(np.int64), np.floor(y0 * scale).astype(np.int64)
        cx1, cy1 = np.floor(x1 * scale).astype(np.int64), np.floor(y1 * scale).astype(np.int64)
        self.col0, self.row0 = int(cx0.min()), int(cy0.min())
        self.cols, self.rows = int(cx1.max()) - self.col0 + 1, int(cy1.max()) - self.row0 + 1
        w, h = cx1 - cx0 + 1, cy1 - cy0 + 1
        rep = np.repeat(np.arange(len(edges)), w * h)
        k = _ranges(np.zeros(len(edges), np.int64), w * h)  # the k-th cell of its edge's box
        cell = (cy0[rep] + k // w[rep] - self.row0) * self.cols + (cx0[rep] + k % w[rep] - self.col0)
        order = np.argsort(cell, kind="stable")
        self.edges = edges[rep[order]]
        self.starts = np.searchsorted(cell[order], np.arange(self.rows * self.cols + 1)).astype(np.int64)

    def query(self, wx0: float, wy0: float, wx1: float, wy1: float) -> I64:
        """Edges (with repeats) of the cells that meet the world box."""
        scale = 2.0**self.zoom
        c0 = max(math.floor(wx0 * scale) - self.col0, 0)
        c1 = min(math.floor(wx1 * scale) - self.col0, self.cols - 1)
        r0 = max(math.floor(wy0 * scale) - self.row0, 0)
        r1 = min(math.floor(wy1 * scale) - self.row0, self.rows - 1)
        if c0 > c1 or r0 > r1:
            return np.zeros(0, dtype=np.int64)
        rows = np.arange(r0, r1 + 1, dtype=np.int64) * self.cols  # a row's cells are contiguous in the CSR
        return self.edges[_ranges(self.starts[rows + c0], self.starts[rows + c1 + 1])]


class Basemap:
    """Vector tiles of one road graph. Built once (a few seconds for a million nodes); ``tile`` only reads, so
    threads may share one Basemap."""

    def __init__(self, graph: RoadGraph) -> None:
        self.graph = graph
        off = graph.geom_offsets
        n = graph.n_edges  # at least one: build_graph refuses a file without a drivable road
        px, py = world_x(graph.geom_lon), world_y(graph.geom_lat)
        starts = off[:-1]
        box = (
            np.minimum.reduceat(px, starts),
            np.minimum.reduceat(py, starts),
            np.maximum.reduceat(px, starts),
            np.maximum.reduceat(py, starts),
        )
        #: the world box of the whole graph (x0, y0, x1, y1)
        self.world_box = (float(px.min()), float(py.min()), float(px.max()), float(py.max()))
        # each edge's box, from the graph box's corner: float32 keeps 1e-10 of the world (1 cm) over a metro area
        ox, oy = self.world_box[:2]
        self._box32 = tuple(np.asarray(b - o, dtype=np.float32) for b, o in zip(box, (ox, oy, ox, oy), strict=True))

        # class of each class index: first zoom drawn, drawing rank (0 = most major)
        group_of: dict[str, int] = {c: z for z, cs in CLASS_GROUPS for c in cs}
        self._class_min_zoom = np.array([group_of.get(c, OTHER_MIN_ZOOM) for c in graph.classes], dtype=np.int64)
        rank = {c: i for i, c in enumerate(MAJOR_FIRST)}
        self._class_rank = np.array([rank.get(c, len(MAJOR_FIRST)) for c in graph.classes], dtype=np.int64)
        edge_zoom = self._class_min_zoom[graph.edge_class]
        self._indexes: list[tuple[int, _CellIndex]] = []
        for zoom in sorted({int(z) for z in np.unique(edge_zoom)}):
            members = np.nonzero(edge_zoom == zoom)[0].astype(np.int64)
            cell_zoom = min(max(zoom, COARSEST_CELL_ZOOM), FINEST_CELL_ZOOM)
            sub = (box[0][members], box[1][members], box[2][members], box[3][members])
            self._indexes.append((zoom, _CellIndex(cell_zoom, members, sub)))

        # edge e + 1 continues edge e: the same way, name and class, and it starts where e ends
        joins = np.zeros(n, dtype=bool)
        last, first = off[1:-1] - 1, off[1:-1]
        joins[:-1] = (
            (graph.edge_way[:-1] == graph.edge_way[1:])
            & (graph.edge_name[:-1] == graph.edge_name[1:])
            & (graph.edge_class[:-1] == graph.edge_class[1:])
            & (graph.geom_lat[last] == graph.geom_lat[first])
            & (graph.geom_lon[last] == graph.geom_lon[first])
        )
        self._joins_next = joins
        # names are listed per (name, English name): one street may stand under two indexes, merge it by its name
        # (the first index of that name; the extra last entry maps edge_name -1, unnamed, to -1)
        first_of: dict[str, int] = {}
        self._name_key = np.array([first_of.setdefault(m, i) for i, m in enumerate(graph.names)] + [-1], np.int64)

        digest = hashlib.blake2b(f"basemap-{TILE_FORMAT}".encode(), digest_size=12)
        for a in (graph.geom_offsets, graph.geom_lat, graph.geom_lon, graph.edge_class, graph.edge_name):
            digest.update(np.ascontiguousarray(a).data)
        digest.update("\x00".join([*graph.classes, *graph.names]).encode())
        #: a weak ETag of every tile of this graph: it changes when the road graph or the tile format changes
        self.etag = f'W/"{digest.hexdigest()}"'

    # ---- region -----------------------------------------------------------------------------------------------
    def region(self) -> dict[str, Any]:
        """Bounds [south, west, north, east], centre [lat, lon] and the zooms worth showing."""
        south, west, north, east = self.graph.bbox()
        x0, y0, x1, y1 = self.world_box
        # the zoom at which the whole network fits a 1280 x 800 px console; one level out of it is the minimum
        span = max((x1 - x0) / 1280, (y1 - y0) / 800, 1e-12) * 256
        fit = int(math.floor(-math.log2(span)))
        return {
            "bounds": [south, west, north, east],
            "center": [(south + north) / 2, (west + east) / 2],
            "min_zoom": min(max(fit - 1, 0), MAX_ZOOM - 1),
            # tiles are served up to MAX_ZOOM, one level more than the map zooms to: retina screens ask for it
            "max_zoom": MAX_ZOOM - 1,
        }

    # ---- tiles ------------------------------------------------------------------------------------------------
    def edges_in(self, z: int, x: int, y: int) -> I64:
        """Sorted ids of the edges drawn at zoom z whose bounding box meets the buffered tile; the classes not
        drawn at z are skipped, their index and geometry unread."""
        b = BUFFER / EXTENT
        scale = 2.0**z
        wx0, wy0, wx1, wy1 = (x - b) / scale, (y - b) / scale, (x + 1 + b) / scale, (y + 1 + b) / scale
        gx0, gy0, gx1, gy1 = self.world_box
        if wx1 < gx0 or wx0 > gx1 or wy1 < gy0 or wy0 > gy1:
            return np.zeros(0, dtype=np.int64)
        found = np.concatenate(
            [np.zeros(0, np.int64)] + [index.query(wx0, wy0, wx1, wy1) for zoom, index in self._indexes if zoom <= z]
        )
        # the cells stretch beyond the tile (its buffer alone reaches into 8 neighbours): keep the edges whose own
        # box meets the tile's, before any geometry is read
        bx0, by0, bx1, by1 = self._box32
        rx0, ry0, rx1, ry1 = wx0 - gx0, wy0 - gy0, wx1 - gx0, wy1 - gy0
        meets = (bx0[found] <= rx1) & (bx1[found] >= rx0) & (by0[found] <= ry1) & (by1[found] >= ry0)
        return np.unique(found[meets])

    def tile(self, z: int, x: int, y: int) -> dict[str, Any]:
        """The tile (z, x, y): see the module's docstring for its format."""
        doc: dict[str, Any] = {"z": z, "x": x, "y": y, "extent": EXTENT, "roads": [], "labels": []}
        ids = self.edges_in(z, x, y)
        if len(ids) == 0:
            return doc
        g = self.graph
        off = g.geom_offsets
        # runs: consecutive edges of one way, an edge continuing the previous one drops its first point (the joint)
        cont = np.zeros(len(ids), dtype=bool)
        cont[1:] = (ids[1:] == ids[:-1] + 1) & self._joins_next[ids[:-1]]
        run_first = ids[~cont]
        pts = _ranges(off[ids] + cont, off[ids + 1])
        run_of_pt = np.repeat(np.cumsum(~cont) - 1, off[ids + 1] - off[ids] - cont)
        scale = 2.0**z
        tx = (world_x(g.geom_lon[pts]) * scale - x) * EXTENT
        ty = (world_y(g.geom_lat[pts]) * scale - y) * EXTENT
        runs = shapely.linestrings(np.column_stack([tx, ty]), indices=run_of_pt)
        # the runs of one street (same name and class; OSM splits streets into many ways) merged where they meet
        name, cls = self._name_key[g.edge_name[run_first]], g.edge_class[run_first].astype(np.int64)
        key = np.where(name >= 0, name.astype(np.int64) * 256 + cls, -1 - np.arange(len(run_first)))
        _, group_run, group_of_run = np.unique(key, return_index=True, return_inverse=True)
        by_group = np.argsort(group_of_run, kind="stable")
        lines = shapely.line_merge(shapely.multilinestrings(runs[by_group], indices=group_of_run[by_group]))
        lines = shapely.clip_by_rect(lines, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
        lines = shapely.simplify(lines, SIMPLIFY_PX * UNITS_PER_PX, preserve_topology=False)
        group_edge = run_first[group_run]
        doc["roads"] = self._roads(lines, group_edge)
        if z >= LABEL_MIN_ZOOM:
            named = np.nonzero(g.edge_name[group_edge] >= 0)[0]
            doc["labels"] = self._labels(lines[named], group_edge[named])
        return doc

    def _roads(self, lines: npt.NDArray[np.object_], first_edge: I64) -> list[dict[str, Any]]:
        """Every line as integer tile coordinates, minor classes first."""
        g = self.graph
        parts, line_of_part = shapely.get_parts(lines, return_index=True)
        coords, part_of_pt = shapely.get_coordinates(parts, return_index=True)
        q = np.rint(coords).astype(np.int64)
        # rounding can put two neighbours on one point: keep the first of each repeat
        keep = np.ones(len(q), dtype=bool)
        keep[1:] = (part_of_pt[1:] != part_of_pt[:-1]) | np.any(q[1:] != q[:-1], axis=1)
        q, part_of_pt = q[keep], part_of_pt[keep]
        n_pts = np.bincount(part_of_pt, minlength=len(parts))
        cls = g.edge_class[first_edge[line_of_part]]
        name = g.edge_name[first_edge[line_of_part]]
        # minor classes first, then in graph order; a part that rounded to a single point is dropped
        order = np.lexsort((line_of_part, -self._class_rank[cls]))
        order = order[n_pts[order] >= 2]
        flat: list[int] = q.ravel().tolist()
        ends = np.cumsum(n_pts) * 2
        part_ends: list[int] = ends.tolist()
        part_starts: list[int] = (ends - 2 * n_pts).tolist()
        classes, names = g.classes, g.names
        return [
            {"c": classes[c], "n": names[m] if m >= 0 else None, "p": flat[part_starts[i] : part_ends[i]]}
            for i, c, m in zip(order.tolist(), cls[order].tolist(), name[order].tolist(), strict=True)
        ]

    def _labels(self, lines: npt.NDArray[np.object_], first_edge: I64) -> list[dict[str, Any]]:
        """One anchor per road name: the middle of its longest stretch inside the tile, when the name fits."""
        g = self.graph
        parts, line_of_part = shapely.get_parts(shapely.clip_by_rect(lines, 0, 0, EXTENT, EXTENT), return_index=True)
        if len(parts) == 0:
            return []
        length = np.asarray(shapely.length(parts), dtype=np.float64)
        name = self._name_key[g.edge_name[first_edge[line_of_part]]]
        best = np.lexsort((-length, name))  # by name, longest first
        firsts = best[np.r_[True, name[best][1:] != name[best][:-1]]]
        chars = np.array([len(g.names[m]) for m in name[firsts].tolist()], dtype=np.float64)
        text = chars * LABEL_PX_PER_CHAR * UNITS_PER_PX
        fits = length[firsts] >= text
        chosen, text = firsts[fits], text[fits]
        if len(chosen) == 0:
            return []
        mid = length[chosen] / 2
        at = [shapely.get_coordinates(shapely.line_interpolate_point(parts[chosen], d)) for d in (mid, mid - text / 2)]
        ahead = shapely.get_coordinates(shapely.line_interpolate_point(parts[chosen], mid + text / 2))
        angle = np.arctan2(ahead[:, 1] - at[1][:, 1], ahead[:, 0] - at[1][:, 0])
        angle = np.where(angle > np.pi / 2, angle - np.pi, np.where(angle < -np.pi / 2, angle + np.pi, angle))
        cls = g.edge_class[first_edge[line_of_part[chosen]]]
        xy: list[list[int]] = np.rint(at[0]).astype(np.int64).tolist()
        turn: list[float] = (np.trunc(angle * 1000) / 1000).tolist()  # towards 0: stays within -pi/2..pi/2
        return [
            {"n": g.names[m], "x": p[0], "y": p[1], "a": t, "c": g.classes[c]}
            for m, p, t, c in zip(name[chosen].tolist(), xy, turn, cls.tolist(), strict=True)
        ]


class LazyBasemap:
    """The basemap of a server, built on first use from the graph with the most edges (the most detailed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: Basemap | None = None

    def get(self, graphs: Iterable[RoadGraph]) -> Basemap:
        built = self._built
        if built is None:
            with self._lock:  # one thread builds; the others wait for it instead of building again
                if self._built is None:
                    candidates = list(graphs)
                    if not candidates:
                        raise InvalidInput("no road graph is loaded: the basemap is drawn from the road graphs")
                    self._built = Basemap(max(candidates, key=lambda g: g.n_edges))
                built = self._built
        return built
