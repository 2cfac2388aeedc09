"""Demand for planning: where the calls come from, as an amount per road junction (what ``coverage()`` takes).

Three sources besides the proxy of :mod:`dispatch.geo.coverage`:

- a **call log**, a CSV export such as San Francisco's "Fire Department Calls for Service" or Seattle's "Real Time
  Fire 911 Calls", read as it is with a column mapping (``time=Received DtTm,point=case_location``);
- the **incident history** of the database (:mod:`dispatch.services.demand` reads it into the same structure);
- a **population** file (GeoJSON, GeoPackage or CSV) of points or polygons with a population column.

A call counts once at the junction it is placed at: it is snapped to the nearest road the profile may drive, by the
same rule as every position the dispatcher enters (at most ``max_snap_m``, 250 m by default), and goes to the nearer
end of that road segment. Rows that cannot be used are never dropped silently: they are counted by reason.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon, Priority
from dispatch.geo.coverage import road_length_demand
from dispatch.geo.graph import F64, I64, RoadGraph
from dispatch.geo.routing import DEFAULT_TIMEZONE, Router

#: the keys of a column mapping: ``time`` and either ``lat`` and ``lon`` or ``point`` are needed
COLUMN_KEYS = ("time", "lat", "lon", "point", "priority", "id")
#: tried in turn when no time format is given; the one that reads most of the first rows is used
TIME_FORMATS = ("ISO8601", "%m/%d/%Y %I:%M:%S %p", "%Y %b %d %I:%M:%S %p", "%m/%d/%Y %H:%M")
_WKT = r"^\s*POINT\s*\(\s*(?P<lon>[-+0-9.eE]+)\s+(?P<lat>[-+0-9.eE]+)\s*\)\s*$"
_PAIR = r"^\s*\(?\s*(?P<lat>[-+0-9.eE]+)\s*,\s*(?P<lon>[-+0-9.eE]+)\s*\)?\s*$"

NO_COORDINATES = "no coordinates (empty cell)"
BAD_COORDINATES = "bad coordinates (not a number, or latitude/longitude out of range)"
ZERO_COORDINATES = "coordinates 0,0 (no location recorded)"
NO_TIME = "no time (empty cell)"
BAD_TIME = "unparsable time"
DUPLICATE = "duplicate call id (one row per responding unit)"
MALFORMED = "malformed line (wrong number of fields)"


def outside_reason(router: Router) -> str:
    return (
        f"outside road coverage (more than {router.snapper.max_distance_m:.0f} m from a road the "
        f"{router.graph.profile.name} profile may drive)"
    )


@dataclass(frozen=True, slots=True)
class Call:
    at: datetime  # aware, UTC
    where: LatLon
    priority: Priority | None
    #: the triage card's code where the source records it (the incident history does; call logs do not)
    complaint: str | None = None


@dataclass(frozen=True)
class CallLog:
    """The usable calls of a log, the junction each is placed at, and what was skipped, by reason."""

    source: str  # e.g. "call log calls.csv" or "incident history (database)"
    calls: list[Call]
    node: I64  # the junction of each call
    rows: int  # rows read
    skipped: dict[str, int]
    #: priority values that are not in the map, with their counts: those calls are kept, without a priority
    unmapped_priority: dict[str, int] = field(default_factory=dict)
    time_format: str | None = None
    timezone: str = DEFAULT_TIMEZONE

    @property
    def label(self) -> str:
        if not self.calls:
            return f"{self.source}: no usable call"
        tz = ZoneInfo(self.timezone)
        first = min(c.at for c in self.calls).astimezone(tz)
        last = max(c.at for c in self.calls).astimezone(tz)
        return f"{self.source}: {len(self.calls):,} calls, {first:%Y-%m-%d}..{last:%Y-%m-%d}"


@dataclass(frozen=True)
class Demand:
    """An amount of demand per junction, labelled with where it came from."""

    per_junction: F64
    source: str
    skipped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)


# ---- parsing the options -------------------------------------------------------------------------------------
def parse_mapping(text: str, what: str) -> dict[str, str]:
    """``a=b,c=d`` (a value may hold spaces; the first ``=`` of each pair splits it)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInput(f"{what} {text!r}: {part.strip()!r} is not KEY=VALUE; write e.g. time=Received DtTm")
        out[key.strip()] = value.strip()
    return out


def parse_columns(text: str | Mapping[str, str]) -> dict[str, str]:
    """A column mapping, from ``time=Received DtTm,point=case_location`` or a dict, checked."""
    cols = parse_mapping(text, "column mapping") if isinstance(text, str) else dict(text)
    unknown = sorted(set(cols) - set(COLUMN_KEYS))
    if unknown:
        raise InvalidInput(f"column mapping: {', '.join(unknown)} not known; allowed: {', '.join(COLUMN_KEYS)}")
    if "time" not in cols:
        raise InvalidInput("column mapping: give the time column, e.g. time=Received DtTm")
    if "point" not in cols and not {"lat", "lon"} <= set(cols):
        raise InvalidInput("column mapping: give lat= and lon= columns, or one point= column (WKT or (lat, lon))")
    return cols


def parse_priority_map(text: str) -> dict[str, Priority]:
    out: dict[str, Priority] = {}
    for value, name in parse_mapping(text, "priority map").items():
        try:
            out[value] = Priority(name.lower())
        except ValueError:
            raise InvalidInput(
                f"priority map: {name!r} is not a priority; allowed: {', '.join(p.value for p in Priority)}"
            ) from None
    return out


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"time zone {name!r} is not known; give an IANA name such as Asia/Ho_Chi_Minh") from None


# ---- call logs -----------------------------------------------------------------------------------------------
def _read_csv(path: Path, what: str) -> tuple[Any, int]:
    """Every cell as text (empty cells as ''), and the count of malformed lines skipped."""
    import pandas as pd

    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, on_bad_lines="warn")
            bad = sum(str(w.message).count("Skipping line") for w in caught)
            return df, bad
        except UnicodeDecodeError:
            continue
        except OSError as exc:
            raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise InvalidInput(f"{what} {path} is not a readable CSV file: {' '.join(str(exc).split())}") from None
    raise InvalidInput(f"{what} {path} is neither UTF-8 nor Windows-1252 text")


def _column(df: Any, name: str, what: str) -> Any:
    if name in df.columns:
        return df[name]
    folded = {str(c).strip().casefold(): c for c in df.columns}
    if name.strip().casefold() in folded:
        return df[folded[name.strip().casefold()]]
    present = ", ".join(repr(str(c)) for c in df.columns)
    raise InvalidInput(f"{what} has no column {name!r}; its columns are: {present}")


def _parse_times(text: Any, fmt: str | None, tz: ZoneInfo) -> tuple[npt.NDArray[np.datetime64], str]:
    """UTC times (NaT where unreadable) and the format used."""
    import pandas as pd

    def parse(values: Any, f: str) -> Any:
        try:
            t = pd.to_datetime(values, format=f, errors="coerce")
        except (ValueError, TypeError):  # offsets that differ from row to row
            t = pd.to_datetime(values, format=f, errors="coerce", utc=True)
        if t.dt.tz is None:
            t = t.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        return t.dt.tz_convert("UTC").dt.tz_localize(None)

    if fmt is None:
        sample = text[text != ""].head(1000)
        fmt = max(TIME_FORMATS, key=lambda f: int(parse(sample, f).notna().sum()))
    t = parse(text, fmt)
    return t.to_numpy(dtype="datetime64[ns]"), fmt


def _coordinates(df: Any, columns: Mapping[str, str], what: str) -> tuple[F64, F64, npt.NDArray[np.bool_]]:
    """Latitude, longitude (NaN where unreadable) and which cells were empty."""
    import pandas as pd
    import shapely

    if "point" in columns:
        text = _column(df, columns["point"], what).str.strip()
        empty = (text == "").to_numpy()
        # WKT through GEOS (fast); "(lat, lon)" and any WKT that GEOS refused through a regular expression
        values = text.to_numpy(dtype=object)
        wkt = np.char.startswith(values.astype(str), "POINT") if len(values) else np.zeros(0, dtype=bool)
        lat, lon = np.full(len(values), np.nan), np.full(len(values), np.nan)
        if wkt.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pts = shapely.from_wkt(values[wkt], on_invalid="ignore")
            ok = shapely.get_type_id(pts) == 0
            sub = np.flatnonzero(wkt)[ok]
            lon[sub], lat[sub] = shapely.get_x(pts[ok]), shapely.get_y(pts[ok])
        rest = np.flatnonzero(np.isnan(lat) & ~empty)
        if len(rest):
            found = text.iloc[rest].str.extract(_WKT, flags=re.IGNORECASE)
            pair = text.iloc[rest].str.extract(_PAIR)
            lat_s, lon_s = found["lat"].fillna(pair["lat"]), found["lon"].fillna(pair["lon"])
            lat[rest] = pd.to_numeric(lat_s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            lon[rest] = pd.to_numeric(lon_s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return lat, lon, empty
    else:
        lat_t, lon_t = _column(df, columns["lat"], what).str.strip(), _column(df, columns["lon"], what).str.strip()
        lat_s, lon_s = lat_t, lon_t
        empty = ((lat_t == "") | (lon_t == "")).to_numpy()
    lat = pd.to_numeric(lat_s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    lon = pd.to_numeric(lon_s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return lat, lon, empty


def load_calls(
    router: Router,
    path: Path,
    columns: Mapping[str, str] | str,
    *,
    time_format: str | None = None,
    priority_map: Mapping[str, Priority] | str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> CallLog:
    """The calls of a CSV log. ``columns`` maps ``time``, ``lat``/``lon`` or ``point``, and optionally ``priority``
    and ``id`` (rows repeating an id, one per responding unit as in San Francisco's export, count once) to the file's
    column names. Times without an offset are taken in ``timezone``. Priority values go through ``priority_map``
    (``1=echo,2=delta``); without one they must be priority names (echo, delta, ...)."""
    cols = parse_columns(columns)
    pmap = parse_priority_map(priority_map) if isinstance(priority_map, str) else priority_map
    tz = _zone(timezone)
    what = f"the call log {path.name}"
    df, malformed = _read_csv(path, "the call log")
    n = len(df)
    # every mapped column must exist before any row is judged
    for key in ("time", "point", "lat", "lon", "priority", "id"):
        if key in cols:
            _column(df, cols[key], what)
    reason = np.full(n, "", dtype=object)

    def mark(mask: npt.NDArray[np.bool_], why: str) -> None:
        reason[mask & (reason == "")] = why

    if "id" in cols:
        ids = _column(df, cols["id"], what).str.strip()
        mark((ids.duplicated(keep="first") & (ids != "")).to_numpy(), DUPLICATE)
    lat, lon, empty = _coordinates(df, cols, what)
    mark(empty, NO_COORDINATES)
    in_range = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    mark(~in_range, BAD_COORDINATES)
    mark((lat == 0) & (lon == 0), ZERO_COORDINATES)
    time_text = _column(df, cols["time"], what).str.strip()
    times, used_format = _parse_times(time_text, time_format, tz)
    mark((time_text == "").to_numpy(), NO_TIME)
    mark(np.isnat(times), BAD_TIME if time_format is None else f"time not in the format {time_format!r}")
    priorities: list[Priority | None] = [None] * n
    texts: list[str] = [""] * n
    if "priority" in cols:
        known = {p.value: p for p in Priority}
        texts = _column(df, cols["priority"], what).str.strip().tolist()
        priorities = [pmap.get(v) if pmap is not None else known.get(v.lower()) for v in texts]
    skipped = Counter(str(r) for r in reason if r)
    if malformed:
        skipped[MALFORMED] = malformed
    keep = np.flatnonzero(reason == "")
    return locate_calls(
        router,
        times=times[keep],
        lat=lat[keep],
        lon=lon[keep],
        priorities=[priorities[i] for i in keep.tolist()],
        source=f"call log {path.name}",
        priority_text=[texts[i] for i in keep.tolist()],
        rows=n + malformed,
        skipped=dict(skipped),
        time_format=used_format,
        timezone=timezone,
    )


def locate_calls(
    router: Router,
    *,
    times: npt.NDArray[np.datetime64],
    lat: F64,
    lon: F64,
    priorities: Sequence[Priority | None],
    source: str,
    priority_text: Sequence[str] | None = None,
    rows: int | None = None,
    skipped: Mapping[str, int] | None = None,
    time_format: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    complaints: Sequence[str | None] | None = None,
) -> CallLog:
    """Place calls (UTC times, positions) on the road graph; those out of its coverage are counted, not kept.
    ``priority_text`` is the priority as the source wrote it: a call kept without a priority whose text is not
    empty is counted in ``unmapped_priority``."""
    counts = Counter(skipped or {})
    times = np.asarray(times, dtype="datetime64[ns]")
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~np.isnat(times)
    counts[BAD_COORDINATES] += int(np.count_nonzero(~ok & ~np.isnat(times)))
    counts[BAD_TIME] += int(np.count_nonzero(np.isnat(times)))
    idx = np.flatnonzero(ok)
    points = [LatLon(a, b) for a, b in zip(lat[idx].tolist(), lon[idx].tolist(), strict=True)]
    node = junctions_of(router, points)
    placed = node >= 0
    counts[outside_reason(router)] += int(np.count_nonzero(~placed))
    ns = times[idx].astype(np.int64).tolist()
    calls: list[Call] = []
    unmapped: Counter[str] = Counter()
    for t, p, i, good in zip(ns, points, idx.tolist(), placed.tolist(), strict=True):
        if good:
            code = None if complaints is None else complaints[i]
            calls.append(Call(datetime.fromtimestamp(t / 1e9, UTC), p, priorities[i], code))
            if priorities[i] is None and priority_text is not None and priority_text[i]:
                unmapped[priority_text[i]] += 1
    return CallLog(
        source=source,
        calls=calls,
        node=node[placed],
        rows=len(lat) if rows is None else rows,
        skipped={k: v for k, v in counts.items() if v},
        unmapped_priority=dict(unmapped),
        time_format=time_format,
        timezone=timezone,
    )


def junctions_of(router: Router, points: Sequence[LatLon]) -> I64:
    """The junction each point goes to: the nearer end (along the road) of the road segment it snaps to, by the
    router's snapping rule; -1 for a point farther than ``max_snap_m`` from every road the profile may drive."""
    if not points:
        return np.zeros(0, dtype=np.int64)
    g = router.graph
    loc = router.snapper.locate(points)
    fwd, bwd = g.edge_fwd_arc, g.edge_bwd_arc
    first = np.where(fwd >= 0, g.arc_tail[np.maximum(fwd, 0)], g.arc_head[np.maximum(bwd, 0)])
    last = np.where(fwd >= 0, g.arc_head[np.maximum(fwd, 0)], g.arc_tail[np.maximum(bwd, 0)])
    e = np.maximum(loc.edge, 0)
    node = np.where(loc.fraction < 0.5, first[e], last[e]).astype(np.int64)
    node[loc.edge < 0] = -1
    return node


def demand_from_calls(graph: RoadGraph, log: CallLog) -> Demand:
    """One unit of demand per call, at its junction."""
    if not log.calls:
        why = ", ".join(f"{n:,} {reason}" for reason, n in log.skipped.items()) or "it holds no rows"
        raise InvalidInput(f"{log.source} has no usable call ({why})")
    per = np.bincount(log.node, minlength=graph.n_nodes).astype(np.float64)
    notes = {f"kept without a priority: {v!r} is not in the priority map": n for v, n in log.unmapped_priority.items()}
    return Demand(per, log.label, dict(log.skipped), notes)


# ---- population ----------------------------------------------------------------------------------------------
def load_population(
    router: Router,
    path: Path,
    *,
    column: str = "population",
    lat_column: str = "lat",
    lon_column: str = "lon",
) -> Demand:
    """Demand from a population file: GeoJSON or GeoPackage (points or polygons; a declared CRS is reprojected to
    EPSG:4326, none declared means EPSG:4326) or CSV (``lat_column``/``lon_column`` in degrees).

    A point's population goes to its junction as a call's would (:func:`junctions_of`). A polygon's is spread over
    the junctions inside it **in proportion to the road length around each** (the proxy of
    :func:`dispatch.geo.coverage.road_length_demand`), so that more streets hold more people; a polygon with no
    junction inside gives all of it to the junction its centre goes to. Features that cannot be used are counted
    by reason; a file that lies wholly outside the region after reprojection is refused ("wrong CRS?")."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    what = f"the population file {path.name}"
    crs_note = "no CRS declared: read as EPSG:4326"
    if path.suffix.lower() == ".csv":
        df, malformed = _read_csv(path, "the population file")
        lat = pd.to_numeric(_column(df, lat_column, what), errors="coerce")
        lon = pd.to_numeric(_column(df, lon_column, what), errors="coerce")
        values = _column(df, column, what)
        gdf = gpd.GeoDataFrame({"pop": values}, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
        crs_note = "CSV in degrees"
    else:
        malformed = 0
        gdf = _read_geofile(path, what)
        values = _column(gdf, column, what)
        gdf = gpd.GeoDataFrame({"pop": values}, geometry=gdf.geometry, crs=gdf.crs)
        if gdf.crs is not None:
            epsg = gdf.crs.to_epsg()
            name = f"EPSG:{epsg}" if epsg else gdf.crs.name
            crs_note = "EPSG:4326" if epsg == 4326 else f"{name} reprojected to EPSG:4326"
            if epsg != 4326:
                gdf = gdf.to_crs("EPSG:4326")
    skipped: Counter[str] = Counter()
    if malformed:
        skipped[MALFORMED] = malformed
    pop = pd.to_numeric(gdf["pop"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    geoms = gdf.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    kind = shapely.get_type_id(geoms)  # 0 point, 3 polygon, 4 multipoint, 6 multipolygon
    reason = np.full(len(gdf), "", dtype=object)
    reason[missing] = "no geometry"
    with np.errstate(invalid="ignore"):
        reason[~missing & np.isnan(shapely.bounds(geoms)).any(axis=1)] = BAD_COORDINATES
    reason[(reason == "") & ~np.isin(kind, [0, 3, 4, 6])] = "not a point or polygon"
    reason[(reason == "") & ~np.isfinite(pop)] = f"no number in column {column!r}"
    reason[(reason == "") & (pop < 0)] = f"negative number in column {column!r}"
    _check_region(router, geoms[reason == ""], what, crs_note)
    g = router.graph
    per = np.zeros(g.n_nodes)
    notes: Counter[str] = Counter()
    # polygons: the junctions inside each, weighted by road length
    poly = np.flatnonzero((reason == "") & np.isin(kind, [3, 6]))
    weight = road_length_demand(g)
    nodes_xy = shapely.points(g.node_lon, g.node_lat)
    # "intersects": a junction on a polygon's edge belongs to it (a shared border gives it to both)
    pt, k = shapely.STRtree(geoms[poly]).query(nodes_xy, predicate="intersects")
    w = weight[pt] + 1e-9  # a junction of zero-length roads still counts a little
    total_w = np.bincount(k, weights=w, minlength=len(poly))
    np.add.at(per, pt, pop[poly][k] * w / total_w[k])
    empty_poly = poly[total_w == 0]
    if len(empty_poly):
        notes["polygons holding no junction (their population went to the junction at their centre)"] += len(empty_poly)
    # points, and polygons without a junction inside: one junction each
    single = np.concatenate([np.flatnonzero((reason == "") & np.isin(kind, [0, 4])), empty_poly])
    centre = shapely.centroid(geoms[single])
    node = junctions_of(router, [LatLon(float(y), float(x)) for x, y in shapely.get_coordinates(centre)])
    reason[single[node < 0]] = outside_reason(router)
    np.add.at(per, node[node >= 0], pop[single[node >= 0]])
    skipped.update(str(r) for r in reason if r)
    used = reason == ""
    if not used.any():
        why = ", ".join(f"{n:,} {r}" for r, n in skipped.items()) or "it has no features"
        raise InvalidInput(f"{what} has no usable feature ({why})")
    label = (
        f"population {path.name}: {float(pop[used].sum()):,.0f} people in {int(used.sum()):,} features "
        f"(column {column!r}, {crs_note})"
    )
    return Demand(per, label, dict(skipped), dict(notes))


def _read_geofile(path: Path, what: str) -> Any:
    import geopandas as gpd
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
        layer = str(layers[0][0]) if len(layers) else None
        return gpd.read_file(path, layer=layer)
    except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"cannot read {what}: {' '.join(str(exc).split())}") from None


def _check_region(router: Router, geoms: npt.NDArray[np.object_], what: str, crs_note: str) -> None:
    """Refuse a file none of whose features overlap the road network: most likely a wrong or missing CRS."""
    import shapely

    if not len(geoms):
        return
    min_lat, min_lon, max_lat, max_lon = router.graph.bbox()
    region = shapely.box(min_lon, min_lat, max_lon, max_lat)
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    if not np.all(np.isfinite([x0, y0, x1, y1])) or not shapely.intersects(region, shapely.box(x0, y0, x1, y1)):
        raise InvalidInput(
            f"{what} lies outside the region after reading its coordinates ({crs_note}): its features span "
            f"lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f}, the road network lon {min_lon:.4f}..{max_lon:.4f}, "
            f"lat {min_lat:.4f}..{max_lat:.4f}. Wrong CRS? Declare the file's CRS (or reproject it to EPSG:4326)"
        )
