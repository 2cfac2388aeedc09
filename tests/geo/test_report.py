"""The planner's outputs of a coverage report on the real Hanoi graph: isochrone layers, the CSV table, the PNG
map and the self-contained HTML page."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, datetime, time
from html.parser import HTMLParser

import h3
import numpy as np
import pytest
import shapely.geometry
from PIL import Image

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.coverage import PROXY, Coverage, Station, coverage
from dispatch.geo.report import (
    ATTRIBUTION,
    CELL_ALPHA,
    SHARE_COLOURS,
    cells_csv,
    check_map_threshold,
    coverage_png,
    html_report,
    isochrone_layer,
)
from dispatch.geo.routing import Router

STATIONS = [
    Station("Trung tâm 115", LatLon(21.0236, 105.8566)),
    Station("Việt Đức", LatLon(21.0286, 105.8470)),
    Station("Cầu Giấy <&>", LatLon(21.0330, 105.7950)),  # a name that must be escaped in HTML
]


#: the drive times of a fixed traffic period: the shares and colours below must not move with the clock
OFF_PEAK = time(10, 0)


@pytest.fixture(scope="module")
def report(hanoi_router: Router) -> Coverage:
    return coverage(hanoi_router, STATIONS, [4, 8, 15], cell_m=750, at=OFF_PEAK)


def test_isochrone_layer_one_feature_per_station_and_threshold(hanoi_router: Router) -> None:
    fc = isochrone_layer(hanoi_router, STATIONS, [240, 480, 900])
    props = [f["properties"] for f in fc["features"]]
    assert sorted((p["station"], p["minutes"]) for p in props) == sorted(
        (s.name, m) for s in STATIONS for m in (4.0, 8.0, 15.0)
    )
    assert [p["minutes"] for p in props] == [15.0] * 3 + [8.0] * 3 + [4.0] * 3  # draw order: largest first
    for s in STATIONS:
        areas = {p["minutes"]: shapely.geometry.shape(f["geometry"]) for f, p in zip(fc["features"], props, strict=True)
                 if p["station"] == s.name}  # fmt: skip
        for small, big in ((areas[4.0], areas[8.0]), (areas[8.0], areas[15.0])):
            assert small.is_valid and big.is_valid
            assert 0 < small.area < big.area
            assert small.difference(big).area <= 1e-9 * big.area  # the bigger holds the smaller
        # the station itself is inside its smallest isochrone
        assert areas[4.0].buffer(1e-4).contains(shapely.geometry.Point(s.at.lon, s.at.lat))
    with pytest.raises(InvalidInput, match="no stations"):
        isochrone_layer(hanoi_router, [], [240])


def test_the_csv_has_one_row_per_cell_with_the_report_s_shares(report: Coverage) -> None:
    text = cells_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(report.cells) > 20
    assert list(rows[0]) == [
        "cell", "lat", "lon", "demand", "covered_4min", "backup_4min", "covered_8min", "backup_8min",
        "covered_15min", "backup_15min", "median_s", "demand_source",
    ]  # fmt: skip
    for row, cell in zip(rows, report.cells, strict=True):
        assert row["cell"] == f"{cell.row}:{cell.col}" == cell.as_feature(report.cell_m)["properties"]["cell"]
        assert float(row["lat"]) == pytest.approx(cell.lat, abs=1e-6)
        assert float(row["demand"]) == pytest.approx(cell.demand, abs=0.05)
        for t in report.thresholds_s:
            assert float(row[f"covered_{t / 60:g}min"]) == pytest.approx(cell.covered[t], abs=1e-6)
            assert float(row[f"backup_{t / 60:g}min"]) == pytest.approx(cell.backup[t], abs=1e-6)
        assert (row["median_s"] == "") == math.isinf(cell.median_s)
        assert row["demand_source"] == PROXY
    # the table's shares add up to the report's
    demand = np.array([float(r["demand"]) for r in rows])
    for t in report.thresholds_s:
        share = np.array([float(r[f"covered_{t / 60:g}min"]) for r in rows])
        assert float((demand * share).sum() / demand.sum()) == pytest.approx(report.covered[t], abs=1e-5)


def _share_colour(pixels: np.ndarray, colour: str) -> np.ndarray:
    """Where the image shows a cell of this colour over the white page (within a few levels)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    seen = CELL_ALPHA * rgb + (1 - CELL_ALPHA) * 255
    out: np.ndarray = np.abs(pixels - seen).max(axis=2) <= 6
    return out


def test_h3_cells_are_named_by_their_index(hanoi_router: Router) -> None:
    report = coverage(hanoi_router, STATIONS, [8], cells="h3", h3_resolution=8, at=OFF_PEAK)
    rows = list(csv.DictReader(io.StringIO(cells_csv(report))))
    assert [r["cell"] for r in rows] == [f["properties"]["cell"] for f in report.geojson()["features"]]
    assert all(h3.is_valid_cell(r["cell"]) for r in rows)
    png = coverage_png(report, hanoi_router, width_px=400, height_px=300)
    page = html_report(report, png, region="Hanoi", worst=3)
    assert "H3 hexagons of resolution 8" in page and report.worst(480.0, 1)[0].h3 in page


def test_the_png_is_a_map_of_the_asked_size(hanoi_router: Router, report: Coverage) -> None:
    iso = isochrone_layer(hanoi_router, STATIONS, [480], at=OFF_PEAK)
    png = coverage_png(report, hanoi_router, threshold_s=480, isochrone_fc=iso, width_px=900, height_px=700, dpi=100)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (900, 700)
        pixels = np.asarray(im.convert("RGB")).astype(int)
    white = (pixels == 255).all(axis=2)
    assert 0.2 < 1 - white.mean() < 0.95  # the map, not a blank page
    # the cells' colours are there, as drawn over white: the green of the well covered and the red of the worst
    green, red = (_share_colour(pixels, SHARE_COLOURS[i]) for i in (-1, 0))
    assert green.mean() > 0.05 and red.mean() > 0.01, (green.mean(), red.mean())
    # the isochrone outline's blue
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 60) & (pixels[..., 1] < 140)
    assert blue.mean() > 0.001


def test_the_png_changes_with_the_threshold(hanoi_router: Router, report: Coverage) -> None:
    a = coverage_png(report, hanoi_router, threshold_s=240, width_px=400, height_px=300)
    b = coverage_png(report, hanoi_router, threshold_s=900, width_px=400, height_px=300)
    pa, pb = (np.asarray(Image.open(io.BytesIO(p)).convert("RGB")).astype(int) for p in (a, b))
    red_a, red_b = (_share_colour(p, SHARE_COLOURS[0]) for p in (pa, pb))
    assert red_a.sum() > 2 * red_b.sum()  # far more badly covered cells within 4 min than within 15
    with pytest.raises(InvalidInput, match="not one of this report's thresholds"):
        coverage_png(report, hanoi_router, threshold_s=300)
    with pytest.raises(InvalidInput, match="200 to 6000 px"):
        coverage_png(report, hanoi_router, width_px=10)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "img", "br", "link"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_report_stands_alone(hanoi_router: Router, report: Coverage) -> None:
    png = coverage_png(report, hanoi_router, width_px=400, height_px=300)
    when = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    page = html_report(report, png, region="central-hanoi.osm.pbf", generated_at=when, worst=7)
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.open == []  # every element closed, in order
    text = " ".join(parser.text)
    # nothing from outside but the link to the OSM copyright page
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["https://www.openstreetmap.org/copyright"]
    assert not [t for t, a in parser.tags if t in ("script", "link", "iframe")]
    assert all(not (a.get("src") or "data:").startswith(("http", "//")) for _, a in parser.tags)
    imgs = [a for t, a in parser.tags if t == "img"]
    assert len(imgs) == 1 and imgs[0]["src"] == "data:image/png;base64," + __import__("base64").b64encode(png).decode()
    # the proxy label, prominent; the region, the time, the shares, the stations (escaped), the worst cells
    banner = next(a for t, a in parser.tags if a.get("id") == "demand-source")
    assert banner["class"] == "demand proxy" and PROXY in text and "PROXY" in text
    assert "central-hanoi.osm.pbf" in text and "2025-03-01T08:30:00+00:00" in text
    for t in report.thresholds_s:
        assert f"{report.covered[t]:.1%}" in text and f"{report.backup[t]:.1%}" in text
    assert "Cầu Giấy <&>" in text and "Cầu Giấy &lt;&amp;&gt;" in page and "Cầu Giấy <&>" not in page
    worst_rows = page.split('<table id="worst">')[1].split("</table>")[0].count("<tr>") - 1
    assert worst_rows == 7
    assert ATTRIBUTION in text


def test_the_map_threshold_must_be_one_of_the_report_s(report: Coverage) -> None:
    assert check_map_threshold(report, None) == 480.0
    assert check_map_threshold(report, 15) == 900.0
    with pytest.raises(InvalidInput, match=r"5 min is not one of the report's thresholds \(4, 8, 15\)"):
        check_map_threshold(report, 5)
