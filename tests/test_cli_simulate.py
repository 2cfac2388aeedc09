"""``dispatch simulate``: the real command as a subprocess on the Hanoi graph, with generated calls, a
real-format call log, a station file and the bundled hospitals; every bad input one clear line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dispatch.geo.store import LoadedGraph
from dispatch.services.seed import HOSPITALS_FILE
from tests.conftest import DATA
from tests.test_cli import assert_ok, assert_one_line_error, run

pytestmark = pytest.mark.slow

SF = DATA / "calls-sf-format.csv"
SF_COLUMNS = "time=Received DtTm,point=case_location,priority=Priority,id=Call Number"
STATIONS = [("115 Phan Chu Trinh", 21.0236, 105.8566), ("Van Mieu", 21.0276, 105.8355), ("Kim Ma", 21.0318, 105.8220)]


@pytest.fixture(scope="module")
def cache(hanoi: LoadedGraph, geo_cache: Path) -> Path:
    assert hanoi.cache_path is not None and hanoi.cache_path.parent == geo_cache
    return geo_cache


@pytest.fixture
def stations(tmp_path: Path) -> Path:
    path = tmp_path / "stations.geojson"
    feats = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {"name": name}}
        for name, lat, lon in STATIONS
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _sim(*extra: str | Path, stations: Path) -> list[str | Path]:
    return ["simulate", "--stations", stations, "--hospitals", HOSPITALS_FILE, *extra]


def test_generated_calls_two_policies_and_a_second_scenario(cache: Path, stations: Path, tmp_path: Path) -> None:
    png = tmp_path / "runs.png"
    args = _sim("--units", "6", "--compare-units", "9", "--calls-per-day", "300", "--days", "1", "--seed", "4",
                "--standard", "arp", "--plot", png, "--json", stations=stations)  # fmt: skip
    p = run(args, cache)
    assert_ok(p)
    out = json.loads(p.stdout)
    runs = out["runs"]
    assert [(r["scenario"], r["policy"]) for r in runs] == [
        ("6 units", "drive_time"),
        ("6 units", "straight_line"),
        ("9 units", "drive_time"),
    ]
    assert len({r["calls"] for r in runs}) == 1 and runs[0]["calls"] > 200
    assert runs[2]["response"]["mean_s"] < runs[0]["response"]["mean_s"]
    assert runs[2]["waited_share"] <= runs[0]["waited_share"]
    checks = runs[0]["standard"]["checks"]
    assert runs[0]["standard"]["name"] == "ARP (England)" and checks[0]["rule"].startswith("category 1")
    assert out["durations"]["on_scene"] == "lognormal:900,400" and out["seed"] == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "generated calls over 1 days" in p.stderr
    # the same seed, the same figures
    again = json.loads(run(args, cache).stdout)["runs"]
    assert again == runs


def test_a_real_format_call_log_with_bad_rows(cache: Path, stations: Path) -> None:
    p = run(
        _sim("--units", "4", "--calls", SF, "--columns", SF_COLUMNS, "--priority-map", "1=echo,2=delta,3=charlie,"
             "E=echo,A=alpha,B=bravo,C=charlie", "--policy", "drive_time", "--on-scene", "fixed:600",
             stations=stations),
        cache,
    )  # fmt: skip
    assert_ok(p)
    # the fixture's bad rows, each counted by its reason
    for line in [
        "skipped 2 of call log calls-sf-format.csv: duplicate call id (one row per responding unit)",
        "skipped 1 of call log calls-sf-format.csv: no coordinates (empty cell)",
        "skipped 1 of call log calls-sf-format.csv: coordinates 0,0 (no location recorded)",
        "skipped 1 of call log calls-sf-format.csv: unparsable time",
        "skipped 1 of call log calls-sf-format.csv: outside road coverage",
        "note: 1 calls without a priority: one drawn from the priority mix",
    ]:
        assert line in p.stderr, line
    assert "11 calls from 2019-01-01 00:00" in p.stdout
    rows = {re.split(r"\s{2,}", line.strip())[0]: line for line in p.stdout.splitlines()}
    assert rows["calls answered"].split()[-1] == "11" and rows["never answered (no unit able)"].split()[-1] == "0"
    assert rows["ALS travel <= 480 s (90th percentile)"].endswith(("met", "NOT met"))


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--units", "4", "--standard", "nfpa"], "standard 'nfpa' is not known; allowed: nfpa1710, arp, custom:"),
        (["--units", "4", "--standard", "custom:echo=fast@90"], "is not PRIORITIES=SECONDS@STAT"),
        ([], "with --stations, say how many ambulances: --units N"),
        (["--units", "0"], "units = 0: give at least 1"),
        (["--units", "4", "--on-scene", "gamma:3"], "--on-scene 'gamma:3': distribution 'gamma' is not known"),
        (["--units", "4", "--calls", SF], "--calls needs --columns"),
        (["--units", "4", "--columns", "time=x"], "--time-format, --timezone and --priority-map go with --calls FILE"),
        (["--units", "4", "--days", "0"], "days = 0: give more than 0"),
        (["--units", "4", "--mix", "echo=1,purple=2"], "'purple=2' is not PRIORITY=SHARE"),
        (["--units", "4", "--start", "tomorrow"], "--start 'tomorrow' is not a time"),
        (["--units", "4", "--add-station", "21.0480,105.8700"], "cannot be driven from"),
        (["--units", "4", "--plot", "/nonexistent/runs.png"], "cannot write /nonexistent/runs.png: the folder"),
        (["--units", "4", "--history", "--calls", SF], "give one source of calls"),
    ],
)
def test_bad_input_one_clear_line(cache: Path, stations: Path, extra: list[str], words: str) -> None:
    assert_one_line_error(run(_sim("--days", "0.2", *extra, stations=stations), cache), words)


def test_bad_station_and_hospital_files(cache: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    assert_one_line_error(run(_sim("--units", "2", stations=empty), cache), "no usable station")
    river = tmp_path / "river.geojson"
    boat = {"type": "Point", "coordinates": [105.87, 21.048]}  # the Red River
    river.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": boat, "properties": {"name": "boat"}}
    ]}))  # fmt: skip
    assert_one_line_error(run(_sim("--units", "2", stations=river), cache), "stations off the ambulance roads")
    good = tmp_path / "one.geojson"
    good.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [105.8566, 21.0236]}, "properties": {}}
    ]}))  # fmt: skip
    p = run(["simulate", "--stations", good, "--units", "2", "--hospitals", empty], cache)
    assert_one_line_error(p, "has no hospital with an emergency department")
