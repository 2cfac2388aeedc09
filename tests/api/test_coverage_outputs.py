"""The planner's downloads from GET /api/v1/coverage (csv, png, html) and the station isochrones
(GET /api/v1/coverage/isochrones), over the demo stations, on both databases."""

from __future__ import annotations

import csv
import io
import re

import pytest
import shapely.geometry
from PIL import Image

from tests.api.conftest import Api


def test_the_isochrones_of_every_station(shared_api: Api) -> None:
    api = shared_api
    stations = api.ok(api.get("/stations", user="planner"))
    fc = api.ok(api.get("/coverage/isochrones", params={"minutes": "8,4"}, user="planner"))
    assert fc["type"] == "FeatureCollection"
    got = sorted((f["properties"]["station"], f["properties"]["minutes"]) for f in fc["features"])
    assert got == sorted((s["name"], m) for s in stations for m in (4, 8))
    # largest first (the smaller draw on top), and each station's 4 minutes inside its 8 minutes
    assert [f["properties"]["minutes"] for f in fc["features"]][: len(stations)] == [8] * len(stations)
    by = {(f["properties"]["station"], f["properties"]["minutes"]): f for f in fc["features"]}
    for s in stations:
        small = shapely.geometry.shape(by[s["name"], 4]["geometry"])
        big = shapely.geometry.shape(by[s["name"], 8]["geometry"])
        assert small.area < big.area and small.difference(big).area <= 1e-9 * big.area
    assert api.get("/coverage/isochrones", user="crew-a01").status_code == 403
    r = api.get("/coverage/isochrones", params={"minutes": "0"}, user="planner")
    assert r.status_code == 422 and "above 0" in r.json()["detail"]


def test_the_csv_has_one_row_a_cell_and_the_json_shares(shared_api: Api) -> None:
    api = shared_api
    params = {"minutes": "4,8", "cell_m": 1000}
    cells = api.ok(api.get("/coverage", params={**params, "format": "geojson"}, user="planner"))
    r = api.get("/coverage", params={**params, "format": "csv"}, user="planner")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="coverage.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(cells["features"]) > 5
    by_cell = {f["properties"]["cell"]: f["properties"] for f in cells["features"]}
    for row in rows:
        props = by_cell[row["cell"]]
        assert float(row["covered_8min"]) == pytest.approx(props["covered_8min"], abs=1e-4)
        assert float(row["backup_4min"]) == pytest.approx(props["backup_4min"], abs=1e-4)
        assert row["demand_source"].startswith("proxy")


def test_the_png_map_and_the_html_report(shared_api: Api) -> None:
    api = shared_api
    r = api.get("/coverage", params={"minutes": "4,8,15", "format": "png", "map_minutes": 4}, user="planner")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"] == 'attachment; filename="coverage.png"'
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "PNG" and im.size == (1600, 1200)

    r = api.get("/coverage", params={"minutes": "4,8,15", "format": "html"}, user="dispatcher")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="coverage.html"'
    page = r.text
    assert "data:image/png;base64," in page and "Demand is a PROXY" in page
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["https://www.openstreetmap.org/copyright"]
    stations = api.ok(api.get("/stations"))
    assert all(s["name"] in page for s in stations)  # Vietnamese names, escaped only where needed


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"format": "pdf"}, "allowed: json, geojson, csv, png, html"),
        ({"format": "png", "minutes": "4,8", "map_minutes": 5}, "not one of the report's thresholds (4, 8)"),
        ({"format": "html", "minutes": "4,8", "map_minutes": "soon"}, "map_minutes"),
    ],
)
def test_bad_download_questions_get_422(shared_api: Api, params: dict[str, object], words: str) -> None:
    r = shared_api.get("/coverage", params=params, user="planner")
    assert r.status_code == 422 and words in r.text, r.text


def test_downloads_need_a_planner_or_staff(shared_api: Api) -> None:
    assert shared_api.get("/coverage", params={"format": "csv"}, user=None).status_code == 401
    assert shared_api.get("/coverage", params={"format": "png"}, user="crew-a01").status_code == 403
