"""The real ``dispatch`` command, run as a subprocess on real files.

Every bad input must end the command with exit status 2 and exactly one line on stderr,
``dispatch: error: ...``, that names the problem, and never a Python traceback.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import time
from pathlib import Path

import pytest

from dispatch.core.types import LatLon
from dispatch.geo.profile import load_profile
from dispatch.geo.routing import Router
from dispatch.geo.store import LoadedGraph, load_or_build
from tests.conftest import FOOTWAYS_ONLY_OSM, HANOI_PBF, REPO, TINY_OSM, TINY_PROFILE

pytestmark = pytest.mark.slow

TRANG_TIEN = "21.0253,105.8539"
VAN_MIEU = "21.0276,105.8355"
BACH_MAI = "21.0018,105.8394"  # ~0.7 km south of the extract
ERROR_LINE = re.compile(r"^dispatch( [a-z]+)*: error: \S")


def run(args: Sequence[str | Path], cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m dispatch.cli ARGS`` with a clean DISPATCH_* environment and the given graph cache."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    e["DISPATCH_CACHE_DIR"] = str(cache)
    e["XDG_CACHE_HOME"] = str(cache / "xdg")  # never the user's ~/.cache
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dispatch.cli", *map(str, args)],
        cwd=REPO,
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.returncode == 2, f"exit status {p.returncode}; stderr: {p.stderr[-3000:]!r}"
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    line = lines[0]
    assert ERROR_LINE.match(line), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert p.stdout == ""
    return line


def assert_ok(p: subprocess.CompletedProcess[str]) -> None:
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr


@pytest.fixture(scope="module")
def cache(hanoi: LoadedGraph, geo_cache: Path) -> Path:
    """The session cache, already holding the Hanoi ambulance graph (so queries start warm)."""
    assert hanoi.cache_path is not None and hanoi.cache_path.parent == geo_cache
    return geo_cache


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad inputs on disk: files that are not OSM data and profiles that are malformed."""
    d = tmp_path_factory.mktemp("bad-inputs")
    rnd = random.Random(20240902)
    out: dict[str, Path] = {}

    def put(name: str, content: str | bytes) -> None:
        path = d / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, "utf-8")
        out[name] = path

    put("text.osm", "Hanoi road list\nPho Trang Tien, Pho Hang Bai\n")
    put("random.osm.pbf", bytes(rnd.randrange(256) for _ in range(4096)))
    put("empty.osm", "")
    put("roads.csv", "name,lat,lon\nTrang Tien,21.0253,105.8539\n")
    put(
        "buildings.osm",
        '<?xml version="1.0"?><osm version="0.6">'
        '<node id="1" lat="21.03" lon="105.85"/><node id="2" lat="21.031" lon="105.85"/>'
        '<way id="1"><nd ref="1"/><nd ref="2"/><tag k="building" v="yes"/></way></osm>',
    )
    base = 'name = "test"\nvehicle = "ambulance"\n'
    put("negative-speed.toml", base + "[speeds_kph]\nprimary = -5\nresidential = 18\n")
    put("unknown-key.toml", base + 'colour = "red"\n[speeds_kph]\nprimary = 30\n')
    put(
        "bad-hours.toml",
        base + '[speeds_kph]\nprimary = 30\n[[periods]]\nname = "late"\nhours = "25-3"\nspeed_factor = 1.2\n',
    )
    put(
        "overlapping-hours.toml",
        base + "[speeds_kph]\nprimary = 30\n"
        '[[periods]]\nname = "a"\nhours = "7-9"\nspeed_factor = 0.7\n'
        '[[periods]]\nname = "b"\nhours = "8-10"\nspeed_factor = 0.8\n',
    )
    put("not-toml.toml", base + "[speeds_kph\nprimary = 30\n")
    put("footway-class.toml", base + "[speeds_kph]\nprimary = 30\nfootway = 5\n")
    put("not-utf8.toml", "name = 'xe cấp cứu'\n".encode("utf-16"))
    # speeds above 0 that no vehicle drives: a 300 m street would take longer than int32 milliseconds hold
    put("crawling-speed.toml", base + "[speeds_kph]\nprimary = 0.0001\nresidential = 0.0001\n")
    put(
        "crawling-period.toml",
        base + '[speeds_kph]\nprimary = 30\nresidential = 18\n[[periods]]\nname = "jam"\nhours = "7-9"\n'
        "speed_factor = 0.00001\n",
    )
    put("a-file-not-a-directory", "x")
    put(
        "far-away.geojson",
        json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [0.01, 0], [0.01, 0.01], [0, 0]]]}),
    )
    return out


# ---- graph build ----------------------------------------------------------------------------------------------
def test_graph_build_prints_the_summary(tmp_path: Path) -> None:
    p = run(["graph", "build", TINY_OSM, "--profile", TINY_PROFILE], tmp_path)
    assert_ok(p)
    lines = p.stdout.splitlines()
    assert lines[0] == f"graph     {TINY_OSM} (tiny-test profile)"
    assert "nodes     12" in lines
    assert "edges     15 road segments, 26 directed arcs" in lines
    assert "dropped   1 disconnected parts (3 nodes, 4 arcs; largest 3 nodes)" in lines
    assert "bbox      21.02900,105.85000 .. 21.03200,105.85400" in lines
    assert any(re.fullmatch(r"ways      10 of 16 highway ways drivable; 1 time-of-day .*", x) for x in lines)
    assert any(re.fullmatch(r"build     \d+\.\d\d s", x) for x in lines)  # cold: no warm load
    cache_line = next(x for x in lines if x.startswith("cache "))
    cached = Path(cache_line.split(maxsplit=1)[1])
    assert cached.parent == tmp_path and (cached / "meta.json").is_file()
    assert p.stderr == ""  # no progress bar when stderr is not a terminal

    again = run(["graph", "build", TINY_OSM, "--profile", TINY_PROFILE, "--json"], tmp_path)
    assert_ok(again)
    s = json.loads(again.stdout)
    assert (s["nodes"], s["edges"], s["arcs"]) == (12, 15, 26)
    assert (s["dropped_components"], s["dropped_nodes"], s["dropped_arcs"]) == (1, 3, 4)
    assert s["bbox"] == pytest.approx([21.029, 105.85, 21.032, 105.854], abs=1e-9)
    assert s["cache"] == str(cached)
    assert s["build_s"] >= 0 and s["load_s"] >= 0
    assert sorted(x.name for x in tmp_path.iterdir() if x.name != "xdg") == [cached.name]  # reused, not rebuilt


def test_graph_build_of_the_hanoi_extract_matches_the_library(hanoi: LoadedGraph, cache: Path) -> None:
    p = run(["graph", "build", HANOI_PBF, "--json"], cache)
    assert_ok(p)
    s = json.loads(p.stdout)
    for key in ("nodes", "edges", "arcs", "dropped_components", "dropped_nodes", "ways_kept", "bbox"):
        assert s[key] == hanoi.graph.stats[key], key
    assert s["profile"] == "ambulance"
    assert s["cache"] == str(hanoi.cache_path)  # warm: the session's cache entry was reused


# ---- queries ------------------------------------------------------------------------------------------------------
def test_route_prints_json(hanoi_router: Router, cache: Path) -> None:
    p = run(["route", TRANG_TIEN, VAN_MIEU, "--at", "10:00"], cache)
    assert_ok(p)
    r = json.loads(p.stdout)
    assert r["eta_s"] > 0 and r["distance_m"] > 0
    assert r["period"] == "base"
    assert r["geometry"]["type"] == "LineString" and len(r["geometry"]["coordinates"]) > 2
    assert r["steps"][0]["maneuver"]["type"] == "depart" and r["steps"][-1]["maneuver"]["type"] == "arrive"
    assert "Phố Tràng Tiền" in {s["name"] for s in r["steps"]}  # UTF-8, not escaped
    assert "Phố Tràng Tiền" in p.stdout
    # the same answer as the library
    lib = hanoi_router.route(LatLon.parse(TRANG_TIEN), LatLon.parse(VAN_MIEU), at=time(10, 0))
    assert r == json.loads(json.dumps(lib.as_dict()))


def test_route_at_the_morning_peak(hanoi_router: Router, cache: Path) -> None:
    p = run(["route", TRANG_TIEN, VAN_MIEU, "--at", "08:00"], cache)
    assert_ok(p)
    r = json.loads(p.stdout)
    assert r["period"] == "morning_peak"
    base = hanoi_router.route(LatLon.parse(TRANG_TIEN), LatLon.parse(VAN_MIEU), at=time(10, 0))
    assert r["eta_s"] > base.eta_s


def test_route_on_a_custom_file_and_profile_equals_the_library(tmp_path: Path) -> None:
    a, b = "21.0310,105.8525", "21.0310,105.8515"  # against the one-way street of tests/data/tiny.osm
    p = run(["route", a, b, "--osm", TINY_OSM, "--profile", TINY_PROFILE, "--at", "12:00"], tmp_path)
    assert_ok(p)
    loaded = load_or_build(TINY_OSM, load_profile(TINY_PROFILE), use_cache=False)
    lib = Router(loaded.graph, loaded.chs).route(LatLon.parse(a), LatLon.parse(b), at=time(12, 0))
    assert json.loads(p.stdout) == json.loads(json.dumps(lib.as_dict()))
    assert [s["name"] for s in json.loads(p.stdout)["steps"]][:3] == ["Phố Một Chiều", "Phố Ngô Quyền", "Phố Hàng Bài"]


def test_route_with_a_closed_road_detours(hanoi_router: Router, cache: Path) -> None:
    plain = json.loads(run(["route", TRANG_TIEN, VAN_MIEU, "--at", "10:00"], cache).stdout)
    lib = hanoi_router.route(LatLon.parse(TRANG_TIEN), LatLon.parse(VAN_MIEU), at=time(10, 0))
    g = hanoi_router.graph
    edge = int(g.arc_edge[lib.arcs[len(lib.arcs) // 2]])
    s, t = int(g.geom_offsets[edge]), int(g.geom_offsets[edge + 1])
    k = (s + t - 1) // 2
    lat, lon = (g.geom_lat[k] + g.geom_lat[k + 1]) / 2, (g.geom_lon[k] + g.geom_lon[k + 1]) / 2
    p = run(["route", TRANG_TIEN, VAN_MIEU, "--at", "10:00", "--close", f"{lat:.7f},{lon:.7f}"], cache)
    assert_ok(p)
    closed = json.loads(p.stdout)
    assert closed["engine"] == "dijkstra"
    assert closed["eta_s"] >= plain["eta_s"]
    assert closed["geometry"] != plain["geometry"]


def test_eta_lists_units_fastest_first_with_errors_last(cache: Path) -> None:
    units = [VAN_MIEU, BACH_MAI, "21.0245,105.8525", "21.0370,105.8350"]
    p = run(["eta", TRANG_TIEN, *units, "--at", "10:00"], cache)
    assert_ok(p)
    out = json.loads(p.stdout)
    assert out["incident"] == {"lat": 21.0253, "lon": 105.8539}
    rows = out["units"]
    assert sorted(r["unit"] for r in rows) == [0, 1, 2, 3]
    assert "error" in rows[-1] and rows[-1]["unit"] == 1
    assert "outside this map's road coverage" in rows[-1]["error"]
    etas = [r["eta_s"] for r in rows[:-1]]
    assert etas == sorted(etas) and all(e > 0 for e in etas)


def test_isochrone_prints_geojson(cache: Path) -> None:
    p = run(["isochrone", TRANG_TIEN, "--minutes", "4,8", "--at", "10:00"], cache)
    assert_ok(p)
    fc = json.loads(p.stdout)
    assert fc["type"] == "FeatureCollection"
    assert [f["properties"]["minutes"] for f in fc["features"]] == [8, 4]
    for f in fc["features"]:
        assert f["type"] == "Feature"
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert f["properties"]["area_km2"] > 0
    assert fc["features"][0]["properties"]["area_km2"] > fc["features"][1]["properties"]["area_km2"]


def test_coverage_from_a_station_file(cache: Path, tmp_path: Path) -> None:
    stations = tmp_path / "stations.geojson"
    point = {"type": "Point", "coordinates": [105.8566, 21.0236]}
    fc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": point, "properties": {"name": "115"}}],
    }
    stations.write_text(json.dumps(fc))
    cells = tmp_path / "cells.geojson"
    p = run(["coverage", "--stations", stations, "--minutes", "4,8", "--geojson", cells, "--json"], cache)
    assert_ok(p)
    report = json.loads(p.stdout)
    assert report["stations"] == [{"name": "115", "lat": 21.0236, "lon": 105.8566}]
    assert 0 < report["covered"]["4"] < report["covered"]["8"] < 1 and report["backup"]["8"] == 0
    assert report["demand_source"].startswith("proxy")
    assert len(json.loads(cells.read_text())["features"]) > 20
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    assert_one_line_error(run(["coverage", "--stations", empty], cache), "no usable station")
    assert_one_line_error(run(["coverage", "--stations", stations, "--minutes", "0"], cache), "--minutes '0'")
    assert_one_line_error(run(["coverage", "--stations", tmp_path / "nope.geojson"], cache), "cannot read")


def test_graph_demo_prints_a_sample_route(cache: Path) -> None:
    p = run(["graph", "demo"], cache)
    assert_ok(p)
    assert p.stdout.startswith("Road graph: ")
    assert "Sample route, Hoan Kiem Lake -> Ba Dinh Square at 10:00 (base traffic):" in p.stdout
    assert re.search(r"^  - Head \w+ on ", p.stdout, re.MULTILINE)


def test_installed_console_script_runs(cache: Path) -> None:
    script = Path(sys.executable).with_name("dispatch")
    if not script.exists():
        pytest.skip("the dispatch console script is not installed in this environment")
    e = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    e["DISPATCH_CACHE_DIR"] = str(cache)
    p = subprocess.run(
        [str(script), "route", "95,105.85", VAN_MIEU], env=e, capture_output=True, text=True, timeout=120
    )
    assert_one_line_error(p, "latitude 95.0 is out of range")
    ok = subprocess.run([str(script), "--help"], env=e, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "route" in ok.stdout


# ---- bad inputs: one line, exit 2, no traceback --------------------------------------------------------------------
def test_missing_osm_file(tmp_path: Path) -> None:
    missing = tmp_path / "hanoi-2025.osm.pbf"
    line = assert_one_line_error(run(["graph", "build", missing], tmp_path), "no such file")
    assert "hanoi-2025.osm.pbf" in line
    line = assert_one_line_error(run(["route", TRANG_TIEN, VAN_MIEU, "--osm", missing], tmp_path), "no such file")
    assert "hanoi-2025.osm.pbf" in line


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("text.osm", "could not be read as OpenStreetMap data"),
        ("random.osm.pbf", "could not be read as OpenStreetMap data"),
        ("empty.osm", "could not be read as OpenStreetMap data"),
        ("roads.csv", "not an OpenStreetMap file name"),
        ("buildings.osm", "holds no road"),
    ],
    ids=["text", "random-bytes-pbf", "empty", "csv", "no-highway"],
)
def test_file_that_is_not_osm(files: dict[str, Path], tmp_path: Path, name: str, needle: str) -> None:
    line = assert_one_line_error(run(["graph", "build", files[name]], tmp_path), needle)
    assert name in line


def test_file_with_no_drivable_road(tmp_path: Path) -> None:
    line = assert_one_line_error(
        run(["graph", "build", FOOTWAYS_ONLY_OSM], tmp_path),
        "footways-only.osm",
        "none that the 'ambulance' profile may drive",
    )
    assert "highway=footway" in line


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["route", "95,105.85", VAN_MIEU], ["latitude 95.0 is out of range", "between -90 and 90"]),
        (["route", TRANG_TIEN, "21.03,200"], ["longitude 200.0 is out of range"]),
        (["route", "21.0253", VAN_MIEU], ["'21.0253' is not a position", "LAT,LON"]),
        (["eta", "21.03;105.85", VAN_MIEU], ["'21.03;105.85' is not a position"]),
    ],
    ids=["lat-95", "lon-200", "one-number", "semicolon"],
)
def test_coordinates_out_of_range_or_malformed(cache: Path, args: list[str], needles: list[str]) -> None:
    assert_one_line_error(run(args, cache), *needles)


@pytest.mark.parametrize(
    "args",
    [
        ["route", BACH_MAI, VAN_MIEU],
        ["eta", BACH_MAI, VAN_MIEU, TRANG_TIEN],
        ["isochrone", BACH_MAI, "--minutes", "4"],
        ["route", TRANG_TIEN, VAN_MIEU, "--close", BACH_MAI],
    ],
    ids=["route", "eta-incident", "isochrone", "close"],
)
def test_bach_mai_is_outside_coverage(cache: Path, args: list[str]) -> None:
    line = assert_one_line_error(run(args, cache), "21.001800,105.839400", "outside this map's road coverage")
    m = re.search(r"is (\d+) m from the nearest road the ambulance profile may drive; the limit is 250 m", line)
    assert m is not None, line
    assert int(m.group(1)) >= 700  # the hospital is 0.7 km beyond the extract's edge


PROFILE_CASES = [
    ("negative-speed.toml", ["speeds_kph.primary = -5 is not allowed"]),
    ("unknown-key.toml", ["unknown key(s) colour"]),
    ("bad-hours.toml", ["'25-3' is not an hour range"]),
    ("overlapping-hours.toml", ["hour 8 is already in period 'a'"]),
    ("not-toml.toml", ["is not valid TOML"]),
    ("footway-class.toml", ["speeds_kph.footway is not a road class"]),
    ("not-utf8.toml", []),
    ("crawling-speed.toml", ["speeds_kph.primary"]),
    ("crawling-period.toml", ["speed_factor"]),
]


@pytest.mark.parametrize(("name", "needles"), PROFILE_CASES, ids=[n.removesuffix(".toml") for n, _ in PROFILE_CASES])
def test_malformed_profile(files: dict[str, Path], tmp_path: Path, name: str, needles: list[str]) -> None:
    line = assert_one_line_error(run(["graph", "build", TINY_OSM, "--profile", files[name]], tmp_path), *needles)
    assert name in line  # the message names the file


def test_missing_profile(tmp_path: Path) -> None:
    assert_one_line_error(
        run(["route", TRANG_TIEN, VAN_MIEU, "--profile", tmp_path / "van.toml"], tmp_path),
        "van.toml' not found",
        "ambulance, motorbike",
    )


def test_malformed_profile_from_the_environment(files: dict[str, Path], tmp_path: Path) -> None:
    p = run(["route", TRANG_TIEN, VAN_MIEU], tmp_path, env={"DISPATCH_PROFILE": str(files["unknown-key.toml"])})
    assert_one_line_error(p, "unknown key(s) colour")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["route", TRANG_TIEN, VAN_MIEU, "--at", "25:00"], ["--at '25:00' is not a time of day", "HH:MM"]),
        (["eta", TRANG_TIEN, VAN_MIEU, "--at", "8"], ["--at '8' is not a time of day"]),
        (["isochrone", TRANG_TIEN, "--minutes", "0"], ["--minutes '0' is not allowed", "more than 0"]),
        (["isochrone", TRANG_TIEN, "--minutes", "four"], ["--minutes 'four' is not a list of numbers"]),
        (["route", TRANG_TIEN, VAN_MIEU, "--max-snap-m", "-1"], ["max_snap_m = -1.0 is not allowed"]),
        (["route", TRANG_TIEN, VAN_MIEU, "--max-snap-m", "far"], ["--max-snap-m", "'far'"]),
        (["route", TRANG_TIEN], ["the following arguments are required"]),
        (
            ["route", TRANG_TIEN, VAN_MIEU, "--close-area", "/nonexistent/closed.geojson"],
            ["--close-area /nonexistent/closed.geojson: not a readable GeoJSON file"],
        ),
    ],
    ids=["at-25", "at-8", "minutes-0", "minutes-word", "snap-negative", "snap-word", "missing-arg", "close-area"],
)
def test_bad_options(cache: Path, args: list[str], needles: list[str]) -> None:
    assert_one_line_error(run(args, cache), *needles)


def test_closure_area_that_touches_no_road(files: dict[str, Path], cache: Path) -> None:
    p = run(["route", TRANG_TIEN, VAN_MIEU, "--close-area", files["far-away.geojson"]], cache)
    assert_one_line_error(p, "touches no road")


def test_bad_max_snap_from_the_environment(cache: Path) -> None:
    p = run(["route", TRANG_TIEN, VAN_MIEU], cache, env={"DISPATCH_MAX_SNAP_M": "wide"})
    assert_one_line_error(p, "DISPATCH_MAX_SNAP_M")


def test_cache_dir_that_is_a_file(files: dict[str, Path]) -> None:
    blocker = files["a-file-not-a-directory"]
    p = run(["graph", "build", TINY_OSM], blocker.parent, env={"DISPATCH_CACHE_DIR": str(blocker)})
    assert_one_line_error(p, "a-file-not-a-directory")


def test_isochrone_in_the_west_of_hanoi(cache: Path) -> None:
    """Hoàng Quốc Việt: the 15-minute area reaches a road between two OSM nodes at one place."""
    p = run(["isochrone", "21.0460,105.8000", "--minutes", "15", "--at", "10:00"], cache)
    assert_ok(p)
    assert json.loads(p.stdout)["features"][0]["properties"]["area_km2"] > 0


# ---- units device: the phone that reports a unit's position ------------------------------------------------------
def test_units_device_registers_and_clears_a_phone(tmp_path: Path) -> None:
    from sqlmodel import Session, select

    from dispatch.db.engine import make_engine, migrate
    from dispatch.db.models import Unit

    url = f"sqlite:///{tmp_path / 'dispatch.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as s, s.begin():
        s.add_all([Unit(callsign="A01", type="als_ambulance"), Unit(callsign="A02", type="als_ambulance")])

    def devices() -> dict[str, str | None]:
        with Session(engine) as s:
            return {u.callsign: u.device_id for u in s.exec(select(Unit))}

    env = {"DISPATCH_DATABASE_URL": url}
    try:
        p = run(["units", "device", "A01", "358240051111110"], tmp_path, env)
        assert_ok(p)
        assert "A01" in p.stdout and "358240051111110" in p.stdout
        assert devices() == {"A01": "358240051111110", "A02": None}
        taken = run(["units", "device", "A02", "358240051111110"], tmp_path, env)
        assert_one_line_error(taken, "registered to unit A01")
        assert_one_line_error(run(["units", "device", "Z99", "x"], tmp_path, env), "'Z99'", "known units: A01, A02")
        assert_one_line_error(run(["units", "device", "A02", "bad id!"], tmp_path, env), "'bad id!' is not allowed")
        assert_one_line_error(run(["units", "device", "A02"], tmp_path, env), "DEVICE_ID or --clear")
        assert devices() == {"A01": "358240051111110", "A02": None}
        assert_ok(run(["units", "device", "A01", "--clear"], tmp_path, env))
        assert devices() == {"A01": None, "A02": None}
    finally:
        engine.dispose()
