"""What a planner takes away from a coverage report: station isochrones (GeoJSON), the cell table (CSV), a map
(PNG) and one self-contained HTML page to mail.

Every output carries the report's ``demand_source``, so a proxy demand is never mistaken for real calls: a
column of the CSV, the map's title, a banner of the HTML page. The map is drawn with matplotlib's Agg canvas on
an ``Figure`` of its own (no pyplot figure, no display), so the API can draw one per request in any thread.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dispatch.core.errors import InvalidInput
from dispatch.geo.coverage import Cell, Coverage, Station
from dispatch.geo.isochrone import isochrones
from dispatch.geo.routing import Router, When

ATTRIBUTION = "© OpenStreetMap contributors"
OSM_COPYRIGHT = "https://www.openstreetmap.org/copyright"
#: the share-covered classes of the map and of the planner page (frontend/planner/planner.js draws the same):
#: below 50 %, 50-75 %, 75-90 %, 90-99 %, 99 % and more
SHARE_BREAKS = (0.0, 0.5, 0.75, 0.9, 0.99, 1.0)
SHARE_COLOURS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")
#: the cells' opacity on the map (the roads show through)
CELL_ALPHA = 0.55
ROAD_COLOUR = "#a8a8a8"
ISOCHRONE_COLOUR = "#1565c0"
#: matplotlib is not thread-safe (its font cache is shared): the API's worker threads draw one map at a time
_DRAWING = threading.Lock()


def cell_id(cell: Cell) -> str:
    """The cell's id as the GeoJSON gives it: its H3 index, or row:col of the square grid."""
    return cell.h3 or f"{cell.row}:{cell.col}"


def cells_text(report: Coverage) -> str:
    if report.cell_kind == "h3":
        return f"H3 hexagons of resolution {report.h3_resolution}"
    return f"cells of {report.cell_m:g} m"


def is_proxy(demand_source: str) -> bool:
    return demand_source.lower().startswith("proxy")


def middle_threshold(report: Coverage) -> float:
    """The threshold a map shows when none is asked for: the middle one (8 of 4, 8, 15 minutes)."""
    return report.thresholds_s[len(report.thresholds_s) // 2]


def check_map_threshold(report: Coverage, minutes: float | None) -> float:
    if minutes is None:
        return middle_threshold(report)
    seconds = float(minutes) * 60
    if seconds not in report.covered:
        allowed = ", ".join(f"{t / 60:g}" for t in report.thresholds_s)
        raise InvalidInput(f"the map threshold {minutes:g} min is not one of the report's thresholds ({allowed})")
    return seconds


# ---- isochrones ---------------------------------------------------------------------------------------------
def isochrone_layer(
    router: Router, stations: Sequence[Station], seconds: Sequence[float], *, at: When = None
) -> dict[str, Any]:
    """One feature per station and threshold, the largest thresholds first (so the smaller draw on top), each
    with the station's name and the minutes; the same isochrones as ``dispatch isochrone`` gives."""
    if not stations:
        raise InvalidInput("no stations: give at least one station (a GeoJSON point with a name, or the database's)")
    features: list[dict[str, Any]] = []
    for i, s in enumerate(stations):
        fc = isochrones(router, s.at, seconds, at=at)
        for f in fc["features"]:
            props = f["properties"]
            f["properties"] = {"station": s.name, "station_index": i, **props}
            features.append(f)
    features.sort(key=lambda f: (-f["properties"]["seconds"], f["properties"]["station_index"]))
    return {"type": "FeatureCollection", "features": features}


# ---- CSV ----------------------------------------------------------------------------------------------------
def cells_csv(report: Coverage) -> str:
    """One row per cell: id, centre, demand, the share covered and with backup per threshold, the median drive
    time in seconds (empty: not reached within the largest threshold) and the demand source."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["cell", "lat", "lon", "demand"]
    for t in report.thresholds_s:
        head += [f"covered_{t / 60:g}min", f"backup_{t / 60:g}min"]
    w.writerow([*head, "median_s", "demand_source"])
    for c in report.cells:
        row: list[object] = [cell_id(c), f"{c.lat:.6f}", f"{c.lon:.6f}", f"{c.demand:.1f}"]
        for t in report.thresholds_s:
            row += [f"{c.covered[t]:.6f}", f"{c.backup[t]:.6f}"]
        row += ["" if math.isinf(c.median_s) else f"{c.median_s:.1f}", report.demand_source]
        w.writerow(row)
    return out.getvalue()


# ---- PNG ----------------------------------------------------------------------------------------------------
def coverage_png(
    report: Coverage,
    router: Router,
    *,
    threshold_s: float | None = None,
    isochrone_fc: dict[str, Any] | None = None,
    width_px: int = 1600,
    height_px: int = 1200,
    dpi: int = 100,
) -> bytes:
    """The map: roads in light grey, cells coloured by the share of their demand covered within the threshold,
    each station's isochrone of that threshold outlined (from ``isochrone_fc``, e.g. ``isochrone_layer``), the
    stations, a legend, the demand source in the title and the OpenStreetMap attribution."""
    th = middle_threshold(report) if threshold_s is None else threshold_s
    if th not in report.covered:
        raise InvalidInput(f"{th / 60:g} min is not one of this report's thresholds")
    if not (200 <= width_px <= 6000 and 200 <= height_px <= 6000):
        raise InvalidInput(f"a map of {width_px} x {height_px} px is not allowed: give 200 to 6000 px a side")
    with _DRAWING:
        return _draw(report, router, th, isochrone_fc, width_px, height_px, dpi)


def _draw(
    report: Coverage,
    router: Router,
    th: float,
    isochrone_fc: dict[str, Any] | None,
    width_px: int,
    height_px: int,
    dpi: int,
) -> bytes:
    import geopandas as gpd
    import shapely
    from matplotlib.artist import Artist
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.06, 0.80, 0.84))
    g = router.graph
    lat0 = float(np.mean(g.node_lat))
    # roads: every edge's polyline, one LineString each
    counts = np.diff(g.geom_offsets)
    roads = shapely.linestrings(
        np.column_stack([g.geom_lon, g.geom_lat]), indices=np.repeat(np.arange(len(counts)), counts)
    )
    gpd.GeoSeries(roads, crs="EPSG:4326").plot(ax=ax, color=ROAD_COLOUR, linewidth=0.4, zorder=1, aspect=None)
    cmap = ListedColormap(list(SHARE_COLOURS))
    norm = BoundaryNorm(list(SHARE_BREAKS), cmap.N)
    if report.cells:
        cells = gpd.GeoDataFrame.from_features([c.as_feature(report.cell_m) for c in report.cells], crs="EPSG:4326")
        cells["share"] = [c.covered[th] for c in report.cells]
        cells.plot(
            ax=ax, column="share", cmap=cmap, norm=norm, alpha=CELL_ALPHA, edgecolor="white", linewidth=0.3, zorder=2,
            aspect=None,
        )  # fmt: skip
    iso = [f for f in (isochrone_fc or {}).get("features", []) if f["properties"].get("seconds") == th]
    if iso:
        gpd.GeoDataFrame.from_features(iso, crs="EPSG:4326").boundary.plot(
            ax=ax, color=ISOCHRONE_COLOUR, linewidth=1.2, zorder=3, aspect=None
        )
    sx = [s.at.lon for s in report.stations]
    sy = [s.at.lat for s in report.stations]
    ax.scatter(sx, sy, marker="s", s=46, color=ISOCHRONE_COLOUR, edgecolor="white", linewidth=1.0, zorder=4)
    for s in report.stations:
        ax.annotate(s.name, (s.at.lon, s.at.lat), xytext=(5, 4), textcoords="offset points", fontsize=7, zorder=5)
    south, west, north, east = g.bbox()
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    ax.set_aspect(1 / math.cos(math.radians(lat0)), adjustable="box", anchor="C")
    ax.set_axis_off()
    minutes = f"{th / 60:g}"
    handles: list[Artist] = [
        Patch(facecolor=colour, edgecolor="none", alpha=0.8, label=_bin_label(i))
        for i, colour in enumerate(SHARE_COLOURS)
    ]
    handles += [
        Line2D([], [], color=ISOCHRONE_COLOUR, linewidth=1.2, label=f"station isochrone, {minutes} min"),
        Line2D([], [], marker="s", linestyle="none", color=ISOCHRONE_COLOUR, label="station"),
        Line2D([], [], color=ROAD_COLOUR, linewidth=1.5, label="road (OSM)"),
    ]
    fig.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(0.825, 0.9), frameon=False, fontsize=9,
        title=f"demand covered\nwithin {minutes} min", title_fontsize=9, alignment="left",
    )  # fmt: skip
    shares = "   ".join(f"{t / 60:g} min: {report.covered[t]:.1%}" for t in report.thresholds_s)
    fig.text(0.02, 0.965, f"Coverage within {minutes} min of {len(report.stations)} stations  ({shares})", fontsize=13)
    source = ("DEMAND IS A PROXY: " if is_proxy(report.demand_source) else "demand: ") + report.demand_source
    fig.text(0.02, 0.925, source, fontsize=10, color="#b71c1c" if is_proxy(report.demand_source) else "#333333")
    fig.text(0.98, 0.02, ATTRIBUTION, fontsize=9, ha="right", va="bottom", color="#333333")
    fig.text(0.02, 0.02, f"{cells_text(report)}; {Path(str(g.stats.get('source', ''))).name}", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _bin_label(i: int) -> str:
    lo, hi = SHARE_BREAKS[i], SHARE_BREAKS[i + 1]
    if i == len(SHARE_COLOURS) - 1:
        return f"{lo:.0%} and more"
    return f"{lo:.0%} to {hi:.0%}"


# ---- HTML ---------------------------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; margin: 24px auto;
  max-width: 1100px; color: #1d2329; padding: 0 16px; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { font-size: 1.15em; margin-top: 28px; }
.meta { color: #5f6b76; } .demand { padding: 10px 14px; border-radius: 6px; background: #eceff1; margin: 14px 0; }
.demand.proxy { background: #fff3e0; border: 2px solid #e65100; font-weight: 600; }
table { border-collapse: collapse; font-size: 0.95em; } th, td { padding: 4px 10px; border-bottom: 1px solid #d9dde3;
  text-align: right; } th { color: #5f6b76; } td.l, th.l { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #d9dde3; }
footer { margin-top: 30px; color: #5f6b76; font-size: 0.9em; }
"""


def html_report(
    report: Coverage,
    png: bytes,
    *,
    region: str,
    threshold_s: float | None = None,
    generated_at: datetime | None = None,
    worst: int = 15,
) -> str:
    """One HTML page with nothing outside it (no scripts, fonts or links but the OSM copyright): the shares,
    the map inlined, the worst-covered cells, the stations, the demand source, when and for which region."""
    th = middle_threshold(report) if threshold_s is None else threshold_s
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    e = html.escape
    minutes = f"{th / 60:g}"
    proxy = is_proxy(report.demand_source)
    reached = 1 - report.not_reached / report.total_demand if report.total_demand else 0.0
    summary = "".join(
        f"<tr><td>{t / 60:g} min</td><td>{report.covered[t]:.1%}</td><td>{report.backup[t]:.1%}</td></tr>"
        for t in report.thresholds_s
    )
    heads = "".join(f"<th>{t / 60:g} min</th>" for t in report.thresholds_s)
    rows = []
    for c in report.worst(th, worst):
        median = "not reached" if math.isinf(c.median_s) else f"{c.median_s / 60:.1f} min"
        shares = "".join(f"<td>{c.covered[t]:.0%}</td>" for t in report.thresholds_s)
        rows.append(
            f"<tr><td class=l>{e(cell_id(c))}</td><td>{c.lat:.5f}, {c.lon:.5f}</td><td>{c.demand:,.0f}</td>"
            f"<td>{c.demand * (1 - c.covered[th]):,.0f}</td>{shares}<td>{e(median)}</td></tr>"
        )
    stations = "".join(
        f"<tr><td class=l>{e(s.name)}</td><td>{s.at.lat:.5f}</td><td>{s.at.lon:.5f}</td></tr>" for s in report.stations
    )
    banner = ("Demand is a PROXY, not recorded calls or population: " if proxy else "Demand: ") + report.demand_source
    image = base64.b64encode(png).decode("ascii")
    title = f"Ambulance coverage: {region}"
    stamp = when.isoformat(timespec="seconds")
    last = f"{report.thresholds_s[-1] / 60:g}"
    alt = f"Map of the share of demand covered within {minutes} minutes"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{e(title)}</h1>
<p class="meta">{len(report.stations)} stations, {e(cells_text(report))}, generated {e(stamp)} (UTC),
drive times from the dispatch system's own road graph.</p>
<p class="demand{" proxy" if proxy else ""}" id="demand-source">{e(banner)}</p>
<h2>Share of demand within reach</h2>
<table id="summary"><thead><tr><th class=l>within</th><th>covered (nearest station)</th>
<th>backup (2 or more stations)</th></tr></thead><tbody>{summary}</tbody></table>
<p class="meta">Total demand {report.total_demand:,.0f}; {reached:.1%} reached within {last} min of some station.</p>
<h2>Map: coverage within {minutes} min</h2>
<img id="map" alt="{e(alt)}" src="data:image/png;base64,{image}">
<h2>Worst-covered cells (most demand outside {minutes} min)</h2>
<table id="worst"><thead><tr><th class=l>cell</th><th>centre (lat, lon)</th><th>demand</th>
<th>outside {minutes} min</th>{heads}<th>median drive</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Stations</h2>
<table id="stations"><thead><tr><th class=l>name</th><th>lat</th><th>lon</th></tr></thead>
<tbody>{stations}</tbody></table>
<footer>Road data <a href="{OSM_COPYRIGHT}">{e(ATTRIBUTION)}</a> (ODbL). Region: {e(region)}.</footer>
</body>
</html>
"""


# ---- files --------------------------------------------------------------------------------------------------
def write_outputs(
    report: Coverage,
    router: Router,
    *,
    csv_path: Path | None = None,
    png_path: Path | None = None,
    html_path: Path | None = None,
    isochrones_path: Path | None = None,
    threshold_s: float | None = None,
    at: When = None,
) -> list[Path]:
    """Write the outputs asked for (the map and the page show ``threshold_s``, by default the middle one);
    returns the paths written."""
    import json

    th = middle_threshold(report) if threshold_s is None else threshold_s
    written: list[Path] = []
    iso: dict[str, Any] | None = None
    if isochrones_path is not None:
        iso = isochrone_layer(router, report.stations, report.thresholds_s, at=at)
        _write(isochrones_path, json.dumps(iso, ensure_ascii=False).encode("utf-8"), written)
    if csv_path is not None:
        _write(csv_path, cells_csv(report).encode("utf-8"), written)
    if png_path is not None or html_path is not None:
        if iso is None:
            iso = isochrone_layer(router, report.stations, [th], at=at)
        png = coverage_png(report, router, threshold_s=th, isochrone_fc=iso)
        if png_path is not None:
            _write(png_path, png, written)
        if html_path is not None:
            region = region_name(router)
            _write(html_path, html_report(report, png, region=region, threshold_s=th).encode("utf-8"), written)
    return written


def region_name(router: Router) -> str:
    return Path(str(router.graph.stats.get("source", "the road graph"))).name


def _write(path: Path, data: bytes, written: list[Path]) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None
    written.append(path)
