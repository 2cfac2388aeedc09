"""Districts: a planner's own areas (wards, districts, response zones) for coverage figures per area.

The bundled OSM extract carries no administrative boundaries, so districts always come from a file: GeoJSON or
GeoPackage polygons with a name column (a declared CRS is reprojected to EPSG:4326). Each junction belongs to
the first polygon that contains it; its demand counts for that district. Features that cannot be used are
counted by reason, and a file that lies wholly outside the region is refused (most likely a wrong CRS).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import InvalidInput
from dispatch.geo.demand import _check_region, _column, _read_geofile
from dispatch.geo.graph import F64, I64
from dispatch.geo.routing import Router


@dataclass(frozen=True)
class Districts:
    names: list[str]
    #: per junction, the index of its district in ``names`` (-1: in none)
    of_node: I64
    source: str
    skipped: dict[str, int] = field(default_factory=dict)


def load_districts(router: Router, path: Path, *, name_column: str = "name") -> Districts:
    import geopandas as gpd
    import shapely

    what = f"the district file {path.name}"
    gdf = _read_geofile(path, what)
    names = _column(gdf, name_column, what)
    crs_note = "no CRS declared: read as EPSG:4326"
    if gdf.crs is not None:
        epsg = gdf.crs.to_epsg()
        crs_note = "EPSG:4326" if epsg == 4326 else f"EPSG:{epsg} reprojected to EPSG:4326"
        if epsg != 4326:
            gdf = gpd.GeoDataFrame({"name": names}, geometry=gdf.geometry, crs=gdf.crs).to_crs("EPSG:4326")
            names = gdf["name"]
    geoms = gdf.geometry.to_numpy()
    kind = shapely.get_type_id(geoms)
    skipped: Counter[str] = Counter()
    keep: list[int] = []
    seen: set[str] = set()
    for i, (g, k, n) in enumerate(zip(geoms, kind, names, strict=True)):
        label = "" if n is None or (isinstance(n, float) and np.isnan(n)) else str(n).strip()
        if g is None or shapely.is_empty(g):
            skipped["no geometry"] += 1
        elif k not in (3, 6):
            skipped["not a polygon"] += 1
        elif not label:
            skipped[f"no name in column {name_column!r}"] += 1
        elif label in seen:
            skipped["a second polygon with a name already used (give each district one name)"] += 1
        else:
            seen.add(label)
            keep.append(i)
    if not keep:
        why = ", ".join(f"{n} {r}" for r, n in skipped.items()) or "it has no features"
        raise InvalidInput(f"{what} has no usable district ({why})")
    polys = geoms[keep]
    _check_region(router, polys, what, crs_note)
    g = router.graph
    of_node = np.full(g.n_nodes, -1, dtype=np.int64)
    node_pts = shapely.points(g.node_lon, g.node_lat)
    # "intersects": a junction on a border (districts often follow streets) belongs to the first polygon
    pt, k_idx = shapely.STRtree(polys).query(node_pts, predicate="intersects")
    # the first polygon (in file order) that holds each junction
    order = np.lexsort((k_idx, pt))
    first = np.r_[True, pt[order][1:] != pt[order][:-1]]
    of_node[pt[order][first]] = k_idx[order][first]
    label_names = [str(names.iloc[i]).strip() for i in keep]
    return Districts(label_names, of_node, f"{path.name}: {len(label_names)} districts, {crs_note}", dict(skipped))


def district_shares(
    districts: Districts, weights: F64, within: npt.NDArray[np.int32], thresholds: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Per district: its demand, and the share of it within each threshold of one station and of two or more."""
    inside = districts.of_node >= 0
    k = districts.of_node[inside]
    w = weights[inside]
    n = len(districts.names)
    total = np.bincount(k, weights=w, minlength=n)
    out: list[dict[str, Any]] = []
    cov = [np.bincount(k, weights=w * (within[i][inside] >= 1), minlength=n) for i in range(len(thresholds))]
    bak = [np.bincount(k, weights=w * (within[i][inside] >= 2), minlength=n) for i in range(len(thresholds))]
    for d, name in enumerate(districts.names):
        tot = float(total[d])
        out.append(
            {
                "district": name,
                "demand": round(tot, 1),
                "covered": {f"{t / 60:g}": round(float(cov[i][d]) / tot, 4) if tot else None
                            for i, t in enumerate(thresholds)},
                "backup": {f"{t / 60:g}": round(float(bak[i][d]) / tot, 4) if tot else None
                           for i, t in enumerate(thresholds)},
            }
        )  # fmt: skip
    outside = float(weights[~inside].sum())
    if outside > 0:
        out.append({"district": None, "demand": round(outside, 1), "covered": None, "backup": None})
    return out
