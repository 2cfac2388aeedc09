"""Coverage: which share of demand an ambulance reaches within T minutes from the stations, on the road graph.

Drive times come from the same road graph and router that rank units for the dispatcher: one bounded search
from each station to every junction (``Router.node_times_from``), so a plan and the live system agree.

Demand sits on the road network's junctions and is summed into cells: squares of ``cell_m`` metres (``cells="grid"``)
or H3 hexagons (``cells="h3"``, at ``h3_resolution`` or the resolution whose average hexagon area is nearest to a
square of ``cell_m``). Demand from a call log, the incident history or a population file comes from
:mod:`dispatch.geo.demand`; without one the source is a **proxy**: the road length around each junction (half of
every road segment that ends there, in metres), i.e. where there are streets there are people. Every report
says which demand it used (``demand_source``). A junction no station reaches within the largest threshold
counts as not reached.

Backup coverage: the demand within T of at least two stations (a second unit can come when the first is busy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.graph import F64, RoadGraph
from dispatch.geo.routing import Router, When

if TYPE_CHECKING:  # districts.py reads files through demand.py, which uses this module's proxy
    from dispatch.geo.districts import Districts

PROXY = "proxy: road length around each junction (no demand file given)"
CELL_KINDS = ("grid", "h3")
#: metres per degree of latitude (and of longitude at the equator), for the local cell grid
M_PER_DEG = 111_320.0
MAX_THRESHOLD_S = 3 * 3600.0


@dataclass(frozen=True)
class Station:
    name: str
    at: LatLon


@dataclass(frozen=True)
class Cell:
    """One square of ``cell_m`` metres: its demand and how soon it is reached."""

    row: int
    col: int
    lat: float  # the cell's centre
    lon: float
    demand: float
    #: demand-weighted share reached within each threshold, by one station and by two or more
    covered: dict[float, float]
    backup: dict[float, float]
    #: the drive time from the nearest station to the cell's median unit of demand (inf: beyond the largest
    #: threshold)
    median_s: float
    #: the H3 index of a hexagonal cell ("" for a square; row and col are then 0)
    h3: str = ""

    def as_feature(self, cell_m: float) -> dict[str, Any]:
        if self.h3:
            import h3

            ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(self.h3)]
            ring.append(ring[0])
        else:
            dlat = cell_m / M_PER_DEG / 2
            dlon = cell_m / (M_PER_DEG * math.cos(math.radians(self.lat))) / 2
            ring = [
                [self.lon - dlon, self.lat - dlat],
                [self.lon + dlon, self.lat - dlat],
                [self.lon + dlon, self.lat + dlat],
                [self.lon - dlon, self.lat + dlat],
                [self.lon - dlon, self.lat - dlat],
            ]
        props: dict[str, Any] = {
            "cell": self.h3 or f"{self.row}:{self.col}",
            "demand": round(self.demand, 1),
            "median_s": None if math.isinf(self.median_s) else round(self.median_s, 1),
        }
        for t, share in self.covered.items():
            props[f"covered_{t / 60:g}min"] = round(share, 4)
            props[f"backup_{t / 60:g}min"] = round(self.backup[t], 4)
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}


@dataclass(frozen=True)
class Coverage:
    thresholds_s: tuple[float, ...]
    demand_source: str
    cell_m: float
    total_demand: float
    #: share of all demand within each threshold of the nearest station / of two or more stations
    covered: dict[float, float]
    backup: dict[float, float]
    stations: list[Station]
    #: demand no station reaches within the largest threshold
    not_reached: float
    cells: list[Cell] = field(repr=False)
    cell_kind: str = "grid"
    h3_resolution: int | None = None
    #: per district (dispatch.geo.districts): demand, covered and backup shares; the last entry, named None,
    #: holds the demand outside every district
    districts: list[dict[str, Any]] | None = None
    districts_source: str | None = None

    def worst(self, threshold_s: float, n: int = 10) -> list[Cell]:
        """The cells with the most demand left outside ``threshold_s``."""
        if threshold_s not in self.covered:
            raise InvalidInput(f"{threshold_s / 60:g} min is not one of this report's thresholds")
        left = [c for c in self.cells if c.demand * (1.0 - c.covered[threshold_s]) > 1e-9]
        return sorted(left, key=lambda c: -(c.demand * (1.0 - c.covered[threshold_s])))[:n]

    def as_dict(self, *, worst: int = 10) -> dict[str, Any]:
        return {
            "demand_source": self.demand_source,
            "cell_m": self.cell_m,
            "cell_kind": self.cell_kind,
            "h3_resolution": self.h3_resolution,
            "stations": [{"name": s.name, "lat": s.at.lat, "lon": s.at.lon} for s in self.stations],
            "total_demand": round(self.total_demand, 1),
            "thresholds_min": [t / 60 for t in self.thresholds_s],
            "covered": {f"{t / 60:g}": round(v, 4) for t, v in self.covered.items()},
            "backup": {f"{t / 60:g}": round(v, 4) for t, v in self.backup.items()},
            "not_reached": round(self.not_reached / self.total_demand, 4) if self.total_demand else 0.0,
            "worst_cells": {
                f"{t / 60:g}": [c.as_feature(self.cell_m)["properties"] for c in self.worst(t, worst)]
                for t in self.thresholds_s
            },
            **({} if self.districts is None else {"districts": self.districts, "district_file": self.districts_source}),
        }

    def geojson(self) -> dict[str, Any]:
        return {"type": "FeatureCollection", "features": [c.as_feature(self.cell_m) for c in self.cells]}


def load_stations(text: str, where: str = "the station file") -> tuple[list[Station], dict[str, int]]:
    """Stations from GeoJSON: Point features (a ``name`` property is used when there is one). Returns the
    stations and the features skipped, counted by reason; none usable at all is an error."""
    import json

    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{where} is not JSON: {exc}") from None
    feats = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(feats, list):
        raise InvalidInput(f"{where} is not a GeoJSON FeatureCollection (no 'features' list)")
    stations: list[Station] = []
    skipped: dict[str, int] = {}
    for i, f in enumerate(feats):
        geom = f.get("geometry") if isinstance(f, dict) else None
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            skipped["not a Point"] = skipped.get("not a Point", 0) + 1
            continue
        try:
            lon, lat = (float(v) for v in geom["coordinates"][:2])
            at = LatLon(lat, lon)
        except (KeyError, TypeError, ValueError, InvalidInput):
            skipped["bad coordinates"] = skipped.get("bad coordinates", 0) + 1
            continue
        props = f.get("properties") or {}
        stations.append(Station(str(props.get("name") or f"station {i + 1}"), at))
    if not stations:
        why = ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "it has no features"
        raise InvalidInput(f"{where} has no usable station ({why})")
    return stations, skipped


def road_length_demand(graph: RoadGraph) -> F64:
    """The proxy demand of each junction: half the length of every road segment that ends there (metres)."""
    demand = np.zeros(graph.n_nodes)
    half = graph.arc_length_m / 2.0
    # each two-way edge has two arcs: count each edge once, whichever arcs it has
    first = np.ones(len(half), dtype=bool)
    both = (graph.edge_fwd_arc >= 0) & (graph.edge_bwd_arc >= 0)
    first[graph.edge_bwd_arc[both]] = False
    np.add.at(demand, graph.arc_tail[first], half[first])
    np.add.at(demand, graph.arc_head[first], half[first])
    return demand


def check_thresholds(minutes: Sequence[float]) -> tuple[float, ...]:
    if not minutes:
        raise InvalidInput("give at least one threshold in minutes, e.g. 8 or 4,8,15")
    bad = [m for m in minutes if not 0 < m * 60 <= MAX_THRESHOLD_S]  # NaN fails the comparison too
    if bad:
        raise InvalidInput(f"thresholds must be above 0 and at most {MAX_THRESHOLD_S / 60:g} minutes; got {bad}")
    return tuple(sorted({float(m) * 60 for m in minutes}))


def h3_resolution_for(cell_m: float) -> int:
    """The H3 resolution whose average hexagon area is nearest (by ratio) to a square of ``cell_m`` metres."""
    import h3

    return min(range(16), key=lambda r: abs(math.log(h3.average_hexagon_area(r, "m^2") / (cell_m * cell_m))))


def coverage(
    router: Router,
    stations: Sequence[Station],
    minutes: Sequence[float],
    *,
    cell_m: float = 500.0,
    demand: F64 | None = None,
    demand_source: str = PROXY,
    at: When = None,
    cells: str = "grid",
    h3_resolution: int | None = None,
    districts: Districts | None = None,
) -> Coverage:
    """The share of demand within each threshold of the nearest station (and of two), overall and per cell."""
    thresholds = check_thresholds(minutes)
    if not stations:
        raise InvalidInput("no stations: give at least one station (a GeoJSON point with a name, or the database's)")
    if not 50.0 <= cell_m <= 20_000.0:
        raise InvalidInput(f"cell size {cell_m:g} m is out of range: give 50 to 20000 metres")
    if cells not in CELL_KINDS:
        raise InvalidInput(f"cells {cells!r} is not known; allowed: {', '.join(CELL_KINDS)}")
    resolution: int | None = None
    if cells != "h3" and h3_resolution is not None:
        raise InvalidInput("an H3 resolution goes with H3 cells: ask for cells=h3 (--cells h3), or leave it out")
    if cells == "h3":
        resolution = h3_resolution_for(cell_m) if h3_resolution is None else h3_resolution
        if not 0 <= resolution <= 15:
            raise InvalidInput(f"H3 resolution {resolution} is out of range: give 0 to 15 (9: about 0.1 km2)")
    g = router.graph
    weights = road_length_demand(g) if demand is None else np.asarray(demand, dtype=np.float64)
    if weights.shape != (g.n_nodes,) or np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise InvalidInput("demand must give every junction a finite amount >= 0")
    limit = thresholds[-1]
    # per junction: the nearest station's time, and how many stations reach it within each threshold
    best = np.full(g.n_nodes, np.inf)
    within = np.zeros((len(thresholds), g.n_nodes), dtype=np.int32)
    for s in stations:
        t = router.node_times_from(s.at, at=at, limit_s=limit)
        np.minimum(best, t, out=best)
        for i, th in enumerate(thresholds):
            within[i] += t <= th
    cell_list = _cells(g, weights, best, within, thresholds, cell_m, resolution)
    total = float(weights.sum())
    covered = {th: float(weights[within[i] >= 1].sum() / total) if total else 0.0 for i, th in enumerate(thresholds)}
    backup = {th: float(weights[within[i] >= 2].sum() / total) if total else 0.0 for i, th in enumerate(thresholds)}
    return Coverage(
        thresholds_s=thresholds,
        demand_source=demand_source,
        cell_m=cell_m,
        total_demand=total,
        covered=covered,
        backup=backup,
        stations=list(stations),
        not_reached=float(weights[np.isinf(best)].sum()),
        cells=cell_list,
        cell_kind=cells,
        h3_resolution=resolution,
        districts=None if districts is None else _district_shares(districts, weights, within, thresholds),
        districts_source=None if districts is None else districts.source,
    )


def _district_shares(
    districts: Districts, weights: F64, within: npt.NDArray[np.int32], thresholds: tuple[float, ...]
) -> list[dict[str, Any]]:
    from dispatch.geo.districts import district_shares

    return district_shares(districts, weights, within, thresholds)


def local_metres(g: RoadGraph) -> tuple[F64, F64]:
    """Every junction's position in metres north (y) and east (x) of the junctions' mean position."""
    lat0 = float(np.mean(g.node_lat))
    lon0 = float(np.mean(g.node_lon))
    y: F64 = (g.node_lat - lat0) * M_PER_DEG
    x: F64 = (g.node_lon - lon0) * M_PER_DEG * math.cos(math.radians(lat0))
    return y, x


def grid_cells(g: RoadGraph, cell_m: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The square cell (row, column) of every junction, ``cell_m`` metres a side (coverage and siting share
    these cells)."""
    y, x = local_metres(g)
    return np.floor(y / cell_m).astype(np.int64), np.floor(x / cell_m).astype(np.int64)


def _cells(
    g: RoadGraph,
    weights: F64,
    best: F64,
    within: npt.NDArray[np.int32],
    thresholds: tuple[float, ...],
    cell_m: float,
    resolution: int | None = None,
) -> list[Cell]:
    lat0 = float(np.mean(g.node_lat))
    lon0 = float(np.mean(g.node_lon))
    if resolution is None:
        row, col = grid_cells(g, cell_m)
    else:
        # the hexagon of every junction with demand (the others make one cell of no demand, left out below)
        from h3.api import basic_int

        row = np.full(g.n_nodes, -1, dtype=np.int64)
        has = np.flatnonzero(weights > 0)
        row[has] = [
            basic_int.latlng_to_cell(a, b, resolution)
            for a, b in zip(g.node_lat[has].tolist(), g.node_lon[has].tolist(), strict=True)
        ]
        col = np.zeros(g.n_nodes, dtype=np.int64)
    order = np.lexsort((best, col, row))  # by cell, then by time within the cell (for the median)
    row, col, w, t = row[order], col[order], weights[order], best[order]
    starts = np.flatnonzero(np.r_[True, (row[1:] != row[:-1]) | (col[1:] != col[:-1])])
    ends = np.r_[starts[1:], len(order)]
    total = np.add.reduceat(w, starts)
    covered = [np.add.reduceat(w * (within[i][order] >= 1), starts) for i in range(len(thresholds))]
    backup = [np.add.reduceat(w * (within[i][order] >= 2), starts) for i in range(len(thresholds))]
    # the median unit of demand: the first junction (by time) where the cell's running demand reaches half
    cum = np.cumsum(w)
    before = cum[starts] - w[starts]
    median_at = np.minimum(np.searchsorted(cum, before + total / 2.0), ends - 1)
    median_s = t[median_at]
    cos0 = math.cos(math.radians(lat0))
    cells: list[Cell] = []
    for k in np.flatnonzero(total > 0):
        r, c, tot = int(row[starts[k]]), int(col[starts[k]]), float(total[k])
        hexagon = ""
        if resolution is None:
            lat, lon = lat0 + (r + 0.5) * cell_m / M_PER_DEG, lon0 + (c + 0.5) * cell_m / (M_PER_DEG * cos0)
        else:
            import h3

            hexagon, r = h3.int_to_str(r), 0
            lat, lon = h3.cell_to_latlng(hexagon)
        cells.append(
            Cell(
                row=r,
                col=c,
                lat=lat,
                lon=lon,
                demand=tot,
                covered={th: float(covered[i][k]) / tot for i, th in enumerate(thresholds)},
                backup={th: float(backup[i][k]) / tot for i, th in enumerate(thresholds)},
                median_s=float(median_s[k]),
                h3=hexagon,
            )
        )
    return cells
