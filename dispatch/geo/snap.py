"""Place a position on the nearest drivable road *edge* (not just the nearest junction)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from dispatch.core.errors import OutsideCoverage
from dispatch.core.types import LatLon
from dispatch.geo.graph import EARTH_RADIUS_M, F64, RoadGraph

DEFAULT_MAX_SNAP_M = 250.0


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


class Snapper:
    """An STRtree over every edge's polyline in local metres, built once per graph."""

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
        lat = np.array([p.lat for p in points])
        lon = np.array([p.lon for p in points])
        px, py = self.proj.forward(lat, lon)
        geoms = shapely.points(px, py)
        # the nearest edge of each point (one tree walk each); ties go to the lower edge id
        (pi, ei), dist = self.tree.query_nearest(
            geoms, max_distance=self.max_distance_m, return_distance=True, all_matches=False
        )
        best_e = np.full(len(points), -1, dtype=np.int64)
        best_d = np.full(len(points), np.inf)
        best_e[pi], best_d[pi] = ei, dist
        if usable is not None:
            # a point whose nearest edge is closed looks further, among the edges within reach
            blocked = np.nonzero((best_e >= 0) & ~usable[np.maximum(best_e, 0)])[0]
            for k in blocked.tolist():
                cand = self.tree.query(geoms[k], predicate="dwithin", distance=self.max_distance_m)
                cand = cand[usable[cand]]
                best_e[k], best_d[k] = -1, np.inf
                if len(cand):
                    d = shapely.distance(geoms[k], self.lines[cand])
                    m = int(np.lexsort((cand, d))[0])
                    best_e[k], best_d[k] = int(cand[m]), float(d[m])
        ok = np.nonzero(best_e >= 0)[0]
        lines = self.lines[best_e[ok]]
        frac = np.clip(shapely.line_locate_point(lines, geoms[ok], normalized=True), 0.0, 1.0)
        on = shapely.line_interpolate_point(lines, frac, normalized=True)
        slat, slon = self.proj.inverse(shapely.get_x(on), shapely.get_y(on))
        found = {int(k): n for n, k in enumerate(ok.tolist())}
        out: list[Snap | OutsideCoverage] = []
        for i, point in enumerate(points):
            n = found.get(i)
            if n is None:
                out.append(self._outside(point, geoms[i], usable))
            else:
                out.append(
                    Snap(point, float(slat[n]), float(slon[n]), int(best_e[i]), float(frac[n]), float(best_d[i]))
                )
        return out

    def _outside(self, point: LatLon, geom: shapely.Point, usable: npt.NDArray[np.bool_] | None) -> OutsideCoverage:
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
