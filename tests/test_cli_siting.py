"""``dispatch site``, run as a subprocess on the real Hanoi graph and real files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dispatch.geo.store import LoadedGraph
from tests.test_cli import assert_ok, assert_one_line_error, run

pytestmark = pytest.mark.slow

#: two stations of the demo, and candidate sites: two on the road, one north of the extract
STATIONS = [("Trung tâm 115", 21.0236, 105.8566), ("Việt Đức", 21.0286, 105.8470)]
CANDIDATES = [("Cầu Giấy", 21.0330, 105.7950), ("Tây Hồ", 21.0650, 105.8250)]


def points(path: Path, rows: list[tuple[str, float, float]]) -> Path:
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": {"name": n}}
        for n, lat, lon in rows
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cache(hanoi: LoadedGraph, geo_cache: Path) -> Path:
    assert hanoi.cache_path is not None and hanoi.cache_path.parent == geo_cache
    return geo_cache


def test_site_prints_json_and_writes_the_table_and_the_map_layer(cache: Path, tmp_path: Path) -> None:
    stations = points(tmp_path / "stations.geojson", STATIONS)
    out_geojson, out_csv = tmp_path / "sites.geojson", tmp_path / "sites.csv"
    args = ["site", "--model", "mclp", "--minutes", "4", "--p", "4", "--stations", stations, "--keep-existing"]
    png = tmp_path / "plan.png"
    p = run([*args, "--cell-m", "1000", "--at", "10:00", "--json", "--geojson", out_geojson, "--csv", out_csv,
             "--png", png], cache)  # fmt: skip
    assert_ok(p)
    plan = json.loads(p.stdout)  # JSON only: the solver's banner is printed nowhere
    assert "HiGHS" not in p.stderr
    assert plan["solver"]["status"] == "Optimal" and plan["model"] == "mclp" and plan["p"] == 4
    assert [s["name"] for s in plan["sites"][:2]] == ["Trung tâm 115", "Việt Đức"]
    assert plan["new_sites"] == 2 and plan["covered_after"] > plan["covered_before"] > 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text("utf-8"))))
    assert [r["name"] for r in rows] == [s["name"] for s in plan["sites"]]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "map: " in p.stderr
    fc = json.loads(out_geojson.read_text("utf-8"))
    assert len(fc["features"]) == 4 and fc["features"][0]["properties"]["locked"] is True
    # the same question answered for a person
    p = run([*args, "--cell-m", "1000", "--at", "10:00"], cache)
    assert_ok(p)
    assert "HiGHS: Optimal, gap 0" in p.stdout and "Trung tâm 115 (kept)" in p.stdout


def test_site_from_a_candidate_file(cache: Path, tmp_path: Path) -> None:
    stations = points(tmp_path / "stations.geojson", STATIONS)
    candidates = points(tmp_path / "candidates.geojson", CANDIDATES)
    base = ["site", "--stations", stations, "--candidates", candidates, "--cell-m", "1000", "--at", "10:00"]
    p = run([*base, "--model", "lscp", "--minutes", "4"], cache)
    line = assert_one_line_error(p, "not reachable within 4 min of any candidate site", "--drop-unreachable")
    assert "% of the demand" in line
    p = run([*base, "--model", "lscp", "--minutes", "4", "--drop-unreachable", "--json"], cache)
    assert_ok(p)
    plan = json.loads(p.stdout)
    assert plan["dropped"] > 0 and plan["candidates"] == 4
    p = run([*base, "--model", "pmedian", "--p", "2", "--json"], cache)
    assert_ok(p)
    assert json.loads(p.stdout)["mean_time_s_after"] > 0


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--model", "mclp"], ["mclp needs p"]),
        (["--model", "lscp", "--p", "3"], ["do not give p"]),
        (["--model", "mclp", "--p", "1", "--keep-existing"], ["fewer than the 2 existing stations"]),
        (["--model", "mclp", "--p", "1", "--minutes", "0"], ["above 0"]),
        (["--model", "center", "--p", "1"], ["--model", "invalid choice"]),
        (["--model", "mclp", "--p", "1", "--candidates", "EMPTY"], ["no usable station", "it has no features"]),
        (["--model", "mclp", "--p", "1", "--candidates", "MISSING"], ["cannot read the candidate file"]),
    ],
)
def test_bad_site_questions_end_with_one_line(
    cache: Path, tmp_path: Path, extra: list[str], needles: list[str]
) -> None:
    stations = points(tmp_path / "stations.geojson", STATIONS)
    empty = points(tmp_path / "empty.geojson", [])
    args = [str(empty) if a == "EMPTY" else str(tmp_path / "nope.geojson") if a == "MISSING" else a for a in extra]
    assert_one_line_error(run(["site", "--stations", stations, "--cell-m", "1000", *args], cache), *needles)


def test_site_on_demand_from_a_call_log(cache: Path, tmp_path: Path) -> None:
    """Demand from a real-format call log: the plan and every figure say so, and the skipped rows are counted."""
    from tests.conftest import DATA

    stations = points(tmp_path / "stations.geojson", STATIONS)
    args = ["site", "--model", "mclp", "--minutes", "4", "--p", "3", "--stations", stations, "--keep-existing",
            "--cell-m", "1000", "--at", "10:00", "--json", "--calls", DATA / "calls-sf-format.csv",
            "--columns", "time=Received DtTm,point=case_location,id=Call Number"]  # fmt: skip
    p = run(args, cache)
    assert_ok(p)
    plan = json.loads(p.stdout)
    assert plan["demand_source"].startswith("call log calls-sf-format.csv")
    assert "skipped" in p.stderr
    proxy = json.loads(run(args[: args.index("--calls")], cache).stdout)
    assert proxy["demand_source"].startswith("proxy") and proxy["covered_before"] != plan["covered_before"]
    assert_one_line_error(run([*args, "--cells", "h3"], cache), "siting works on square cells")


def test_site_refuses_an_unwritable_output_before_solving(cache: Path, tmp_path: Path) -> None:
    stations = points(tmp_path / "stations.geojson", STATIONS)
    args = ["site", "--model", "mclp", "--minutes", "4", "--p", "3", "--stations", stations]
    assert_one_line_error(run([*args, "--png", tmp_path / "no" / "plan.png"], cache), "the folder")
    assert_one_line_error(run([*args, "--geojson", tmp_path], cache), "is a folder")
    assert_one_line_error(run([*args, "--time-limit", "-5"], cache), "time limit -5 s is not allowed")
