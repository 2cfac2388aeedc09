"""Place a position on the nearest drivable road *edge* (not just the nearest junction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from dispatch.core.errors import OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo import _chkernels as K
from dispatch.geo.graph import EARTH_RADIUS_M, F64, I64, RoadGraph

DEFAULT_MAX_SNAP_M = 250.0
#: metres within which two distances count as equal when the grid picks candidate edges; they are then
#: measured again by GEOS, the measure of the STRtree answer they must equal
NEAR_M = 1e-4
#: exact GEOS distances closer than this are a tie, which the STRtree settles (its own visiting order)
TIE_M = 1e-9


@dataclass(frozen=True)
class Snap:
    """Where a position lies on the road graph."""

    query: LatLon
    lat: float  # the point on the road
    lon: float
    edge: int
    fraction: float  # 0 at the edge's first point, 1 at its last, along its length
    distance_m: float  # from the query position to the road

    def as_dict(self) -> dict[str, float | int]:
        return {
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "edge": self.edge,
            "fraction": round(self.fraction, 6),
            "snap_distance_m": round(self.distance_m, 1),
        }


class LocalProjection:
    """Equirectangular metres around the graph's centre: < 0.1 % error across a metropolitan region."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        self.ky = np.pi / 180.0 * EARTH_RADIUS_M
        self.kx = self.ky * float(np.cos(np.radians(lat0)))

    def forward(self, lat: F64, lon: F64) -> tuple[F64, F64]:
        return (np.asarray(lon) - self.lon0) * self.kx, (np.asarray(lat) - self.lat0) * self.ky

    def inverse(self, x: F64, y: F64) -> tuple[F64, F64]:
        return np.asarray(y) / self.ky + self.lat0, np.asarray(x) / self.kx + self.lon0


@dataclass(frozen=True)
class Located:
    """Where several positions lie on the road graph, as arrays: edge -1 where no usable edge is in reach."""

    edge: I64
    fraction: F64  # nan where edge is -1
    geoms: npt.NDArray[np.object_]  # the positions as shapely points in local metres


class SegmentGrid:
    """Every segment of every edge's polyline, bucketed in square cells (about as many cells as segments),
    so that the few edges near a point are found without walking the STRtree."""

    def __init__(self, x: F64, y: F64, edge_of_point: I64) -> None:
        self.start = np.nonzero(edge_of_point[:-1] == edge_of_point[1:])[0]  # segment k: points start[k], +1
        self.edge = edge_of_point[self.start]
        self.x, self.y = x, y
        self.x0, self.y0 = float(x.min()), float(y.min())
        width, height = float(x.max()) - self.x0, float(y.max()) - self.y0
        self.cell_m = max(float(np.sqrt(width * height / max(len(self.start), 1))), 10.0)
        self.nx, self.ny = int(width // self.cell_m) + 1, int(height // self.cell_m) + 1
        self.cell_start, self.cell_seg = K.segment_grid(
            x, y, self.start, self.x0, self.y0, self.cell_m, self.nx, self.ny
        )

    def near(self, px: F64, py: F64, max_m: float) -> tuple[I64, I64, I64]:
        """Per point, the edges within ``NEAR_M`` of its nearest segment: (status, point, edge) as
        :func:`dispatch.geo._chkernels.nearest_edges` gives them."""
        status, c_pt, c_edge = K.nearest_edges(
            px,
            py,
            self.x,
            self.y,
            self.start,
            self.edge,
            self.cell_start,
            self.cell_seg,
            self.x0,
            self.y0,
            self.cell_m,
            self.nx,
            self.ny,
            max_m,
            NEAR_M,
        )
        return status, c_pt, c_edge


class Snapper:
    """An STRtree over every edge's polyline in local metres, built once per graph, and a grid of the
    polylines' segments that answers most positions without walking the tree."""

    def __init__(self, graph: RoadGraph, *, max_distance_m: float = DEFAULT_MAX_SNAP_M) -> None:
        self.graph = graph
        self.max_distance_m = max_distance_m
        lat0 = float((graph.geom_lat.min() + graph.geom_lat.max()) / 2)
        lon0 = float((graph.geom_lon.min() + graph.geom_lon.max()) / 2)
        self.proj = LocalProjection(lat0, lon0)
        x, y = self.proj.forward(graph.geom_lat, graph.geom_lon)
        self.x, self.y = x, y
        seg_index = np.repeat(np.arange(graph.n_edges), np.diff(graph.geom_offsets))
        self.lines = shapely.linestrings(np.column_stack([x, y]), indices=seg_index)
        self.tree = shapely.STRtree(self.lines)
        self.grid = SegmentGrid(x, y, seg_index)

    def snap(self, point: LatLon, *, usable: npt.NDArray[np.bool_] | None = None) -> Snap:
        result = self.snap_many([point], usable=usable)[0]
        if isinstance(result, OutsideCoverage):
            raise result
        return result

    def snap_many(
        self, points: Sequence[LatLon], *, usable: npt.NDArray[np.bool_] | None = None
    ) -> list[Snap | OutsideCoverage]:
        """Snap every point; a point too far from any usable edge gets an :class:`OutsideCoverage`."""
        if not points:
            return []
        return self.snaps(points, self.locate(points, usable=usable), usable)

    def snaps(
        self, points: Sequence[LatLon], loc: Located, usable: npt.NDArray[np.bool_] | None
    ) -> list[Snap | OutsideCoverage]:
        """The snaps of ``points`` that ``locate`` placed at ``loc``."""
        ok = np.nonzero(loc.edge >= 0)[0]
        lines = self.lines[loc.edge[ok]]
        # the distance GEOS measures, as the STRtree's query_nearest returns it
        distance_m = shapely.distance(loc.geoms[ok], lines)
        on = shapely.line_interpolate_point(lines, loc.fraction[ok], normalized=True)
        slat, slon = self.proj.inverse(shapely.get_x(on), shapely.get_y(on))
        found = {int(k): n for n, k in enumerate(ok.tolist())}
        out: list[Snap | OutsideCoverage] = []
        for i, point in enumerate(points):
            n = found.get(i)
            if n is None:
                out.append(self.outside(point, loc.geoms[i], usable))
            else:
                out.append(
                    Snap(
                        point,
                        float(slat[n]),
                        float(slon[n]),
                        int(loc.edge[i]),
                        float(loc.fraction[i]),
                        float(distance_m[n]),
                    )
                )
        return out

    def locate(self, points: Sequence[LatLon], *, usable: npt.NDArray[np.bool_] | None = None) -> Located:
        """The nearest usable edge of every point within ``max_distance_m`` (ties go to the STRtree's pick),
        and how far along it the point lies."""
        lat = np.array([p.lat for p in points], dtype=np.float64)
        lon = np.array([p.lon for p in points], dtype=np.float64)
        px, py = self.proj.forward(lat, lon)
        geoms = shapely.points(np.column_stack([px, py]))
        best_e = self._nearest(px, py, geoms)
        if usable is not None:
            # a point whose nearest edge is closed looks further, among the edges within reach
            blocked = np.nonzero((best_e >= 0) & ~usable[np.maximum(best_e, 0)])[0]
            for k in blocked.tolist():
                cand = self.tree.query(geoms[k], predicate="dwithin", distance=self.max_distance_m)
                cand = cand[usable[cand]]
                best_e[k] = -1
                if len(cand):
                    d = shapely.distance(geoms[k], self.lines[cand])
                    best_e[k] = int(cand[np.lexsort((cand, d))[0]])
        ok = np.nonzero(best_e >= 0)[0]
        frac = np.full(len(points), np.nan)
        frac[ok] = np.clip(shapely.line_locate_point(self.lines[best_e[ok]], geoms[ok], normalized=True), 0.0, 1.0)
        return Located(best_e, frac, geoms)

    def _nearest(self, px: F64, py: F64, geoms: npt.NDArray[np.object_]) -> I64:
        """The nearest edge of each point within ``max_distance_m`` (-1 where none), as the STRtree's
        query_nearest picks it: the grid names the candidates, GEOS measures them as the tree does where two are
        close, and the tree answers the rest (ties, which it settles in its own visiting order)."""
        status, c_pt, c_edge = self.grid.near(px, py, self.max_distance_m)
        measure = np.nonzero(status[c_pt] == K.SNAP_MEASURE)[0]
        exact = np.zeros(len(c_pt))
        if len(measure):
            exact[measure] = shapely.distance(geoms[c_pt[measure]], self.lines[c_edge[measure]])
        best_e: I64
        best_e, settled = K.pick_nearest(status, c_pt, c_edge, exact, self.max_distance_m, TIE_M)
        rest = np.nonzero(~settled)[0]
        if len(rest):
            pi, ei = self.tree.query_nearest(geoms[rest], max_distance=self.max_distance_m, all_matches=False)
            best_e[rest[pi]] = ei
        return best_e

    def outside(self, point: LatLon, geom: shapely.Point, usable: npt.NDArray[np.bool_] | None) -> OutsideCoverage:
        idx, dist = self.tree.query_nearest(geom, return_distance=True, all_matches=False)
        nearest = float(dist[0]) if len(dist) else float("inf")
        where = f"{point.lat:.6f},{point.lon:.6f}"
        vehicle = self.graph.profile.name
        if nearest <= self.max_distance_m and usable is not None:
            return OutsideCoverage(
                f"{where}: every road within {self.max_distance_m:.0f} m that the {vehicle} profile may drive "
                f"is closed (nearest road {nearest:.0f} m away); reopen a closure or choose another point",
                distance_m=nearest,
                max_distance_m=self.max_distance_m,
            )
        return OutsideCoverage(
            f"{where} is {nearest:.0f} m from the nearest road the {vehicle} profile may drive; the limit is "
            f"{self.max_distance_m:.0f} m, so the place is outside this map's road coverage "
            f"(bbox {', '.join(f'{v:.4f}' for v in self.graph.bbox())})",
            distance_m=nearest,
            max_distance_m=self.max_distance_m,
        )

    def edge_xy(self, edge: int) -> tuple[F64, F64]:
        s, e = int(self.graph.geom_offsets[edge]), int(self.graph.geom_offsets[edge + 1])
        return self.x[s:e], self.y[s:e]
