"""``dispatch coverage --csv/--png/--html/--isochrones``: the planner's files, written by the real command."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from dispatch.geo.store import LoadedGraph
from tests.test_cli import assert_ok, assert_one_line_error, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(hanoi: LoadedGraph, geo_cache: Path) -> Path:
    """The session cache, already holding the Hanoi ambulance graph (so the command starts warm)."""
    assert hanoi.cache_path is not None and hanoi.cache_path.parent == geo_cache
    return geo_cache


@pytest.fixture
def stations(tmp_path: Path) -> Path:
    path = tmp_path / "stations.geojson"
    points = [("Trung tâm 115", 105.8566, 21.0236), ("Cầu Giấy", 105.7950, 21.0330)]
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {"name": name}}
        for name, lon, lat in points
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def test_coverage_writes_the_planner_s_files(cache: Path, tmp_path: Path, stations: Path) -> None:
    out = {k: tmp_path / f"out.{k}" for k in ("csv", "png", "html", "geojson", "cells")}
    p = run(
        [
            "coverage", "--stations", stations, "--minutes", "4,8,15", "--cell-m", "1000", "--json",
            "--csv", out["csv"], "--png", out["png"], "--html", out["html"], "--isochrones", out["geojson"],
            "--geojson", out["cells"], "--map-minutes", "15",
        ],
        cache,
    )  # fmt: skip
    assert_ok(p)
    report = json.loads(p.stdout)  # stdout stays the JSON report; the files are named on stderr
    assert all(f"wrote {out[k]}" in p.stderr for k in ("csv", "png", "html", "geojson"))

    rows = list(csv.DictReader(io.StringIO(out["csv"].read_text("utf-8"))))
    cells = json.loads(out["cells"].read_text("utf-8"))["features"]
    assert [r["cell"] for r in rows] == [f["properties"]["cell"] for f in cells]
    assert {r["demand_source"] for r in rows} == {report["demand_source"]}

    iso = json.loads(out["geojson"].read_text("utf-8"))
    assert sorted((f["properties"]["station"], f["properties"]["minutes"]) for f in iso["features"]) == sorted(
        (s, m) for s in ("Trung tâm 115", "Cầu Giấy") for m in (4, 8, 15)
    )

    with Image.open(out["png"]) as im:
        assert im.format == "PNG" and im.size == (1600, 1200)

    page = out["html"].read_text("utf-8")
    assert "Map: coverage within 15 min" in page and "data:image/png;base64," in page
    assert f"{report['covered']['15']:.1%}" in page and "Demand is a PROXY" in page
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["https://www.openstreetmap.org/copyright"]


def test_bad_report_options_are_one_line_errors(cache: Path, tmp_path: Path, stations: Path) -> None:
    png = tmp_path / "map.png"
    assert_one_line_error(
        run(["coverage", "--stations", stations, "--minutes", "4,8", "--png", png, "--map-minutes", "5"], cache),
        "5 min is not one of the report's thresholds (4, 8)",
    )
    assert not png.exists()
    assert_one_line_error(
        run(["coverage", "--stations", stations, "--csv", tmp_path / "no" / "such" / "dir.csv"], cache),
        "cannot write",
    )
