"""``dispatch coverage`` with demand from a call log, a population file or the database's incident history, and
H3 cells: the real command as a subprocess, on the real Hanoi graph and a real SQLite file."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatch.core.types import LatLon
from dispatch.db.engine import make_engine, migrate
from dispatch.geo.routing import Router
from dispatch.geo.store import LoadedGraph
from dispatch.services.context import SYSTEM, Ctx
from dispatch.services.demand import incident_history
from dispatch.services.incidents import NewIncident, create_incident
from tests.conftest import DATA
from tests.test_cli import assert_ok, assert_one_line_error, run

pytestmark = pytest.mark.slow

SF = DATA / "calls-sf-format.csv"
SF_COLUMNS = "time=Received DtTm,point=case_location,priority=Priority,id=Call Number"
OUTSIDE = "outside road coverage (more than 250 m from a road the ambulance profile may drive)"
#: taken at these times (UTC), at these places
CALLS = [
    (datetime(2024, 3, 1, 2, 0, tzinfo=UTC), LatLon(21.0287, 105.8524)),  # Hoan Kiem Lake
    (datetime(2024, 3, 20, 9, 30, tzinfo=UTC), LatLon(21.0368, 105.8342)),  # Ba Dinh Square
    (datetime(2024, 4, 10, 16, 0, tzinfo=UTC), LatLon(21.0253, 105.8539)),  # Trang Tien
]


@pytest.fixture(scope="module")
def cache(hanoi: LoadedGraph, geo_cache: Path) -> Path:
    assert hanoi.cache_path is not None and hanoi.cache_path.parent == geo_cache
    return geo_cache


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stations") / "stations.geojson"
    points = {"Trung tâm 115": [105.8566, 21.0236], "Việt Đức": [105.8470, 21.0286]}
    features = [
        {"type": "Feature", "properties": {"name": n}, "geometry": {"type": "Point", "coordinates": c}}
        for n, c in points.items()
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    return path


def _fixed(at: datetime) -> datetime:
    return at


@pytest.fixture(scope="module")
def history_db(hanoi_router: Router, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite database holding three incidents taken through the dispatch service, at known times."""
    url = f"sqlite:///{tmp_path_factory.mktemp('history') / 'dispatch.db'}"
    engine = make_engine(url)
    migrate(engine)
    for at, where in CALLS:
        ctx = Ctx(engine=engine, routers={"ambulance": hanoi_router}, clock=functools.partial(_fixed, at))
        create_incident(ctx, actor=SYSTEM, new=NewIncident(lat=where.lat, lon=where.lon, complaint="cardiac_arrest"))
    engine.dispose()
    yield url


def test_a_call_log_export_on_h3_cells(cache: Path, stations: Path) -> None:
    p = run(
        ["coverage", "--stations", stations, "--minutes", "4,8", "--calls", SF, "--columns", SF_COLUMNS,
         "--priority-map", "3=delta,2=alpha,E=echo", "--cells", "h3", "--json"],
        cache,
    )  # fmt: skip
    assert_ok(p)
    report = json.loads(p.stdout)
    assert report["demand_source"] == "call log calls-sf-format.csv: 11 calls, 2019-01-01..2019-01-31"
    assert report["total_demand"] == 11 and report["cell_kind"] == "h3" and report["h3_resolution"] == 9
    assert report["demand_skipped"] == {
        "duplicate call id (one row per responding unit)": 2,
        "no coordinates (empty cell)": 1,
        "coordinates 0,0 (no location recorded)": 1,
        "no time (empty cell)": 1,
        "unparsable time": 1,
        OUTSIDE: 1,
    }
    assert report["demand_notes"] == {"kept without a priority: 'I' is not in the priority map": 1}
    assert f"skipped 2 of {SF}: duplicate call id (one row per responding unit)" in p.stderr.splitlines()
    assert f"skipped 1 of {SF}: {OUTSIDE}" in p.stderr.splitlines()


def test_a_population_file_in_vn2000(cache: Path, stations: Path) -> None:
    p = run(
        ["coverage", "--stations", stations, "--minutes", "8", "--population", DATA / "population-vn2000.geojson"],
        cache,
    )
    assert_ok(p)
    head = p.stdout.splitlines()[0]
    assert head == (
        "2 stations, demand: population population-vn2000.geojson: 20,800 people in 4 features (column "
        "'population', EPSG:3405 reprojected to EPSG:4326), cells of 500 m"
    )
    assert sorted(line.split(": ", 1)[1] for line in p.stderr.splitlines()) == [
        "no number in column 'population'",
        "not a point or polygon",
        OUTSIDE,
    ]


def test_the_incident_history_of_the_database(cache: Path, stations: Path, history_db: str) -> None:
    env = {"DISPATCH_DATABASE_URL": history_db}
    p = run(["coverage", "--stations", stations, "--minutes", "8", "--history", "--json"], cache, env)
    assert_ok(p)
    report = json.loads(p.stdout)
    assert report["demand_source"] == "incident history (database): 3 calls, 2024-03-01..2024-04-10"
    assert report["total_demand"] == 3 and report["demand_skipped"] == {}
    # March only, in the region's time zone (the third call is on 10 April, 23:00 in Hanoi)
    p = run(
        ["coverage", "--stations", stations, "--history", "--since", "2024-03-01", "--until", "2024-04-01", "--json"],
        cache,
        env,
    )
    assert_ok(p)
    report = json.loads(p.stdout)
    assert report["total_demand"] == 2
    assert (
        report["demand_source"]
        == "incident history (database, 2024-03-01 to 2024-04-01): 2 calls, 2024-03-01..2024-03-20"
    )
    p = run(["coverage", "--stations", stations, "--history", "--since", "2030-01-01"], cache, env)
    assert_one_line_error(p, "incident history (database, 2030-01-01 to ...) has no usable call (it holds no rows)")


def test_incident_history_reads_every_incident_in_the_range(hanoi_router: Router, history_db: str) -> None:
    engine = make_engine(history_db)
    try:
        ctx = Ctx(engine=engine, routers={"ambulance": hanoi_router})
        log = incident_history(ctx, router=hanoi_router)
        assert [c.at for c in log.calls] == [at for at, _ in CALLS]
        assert [c.where for c in log.calls] == [where for _, where in CALLS]
        assert {c.priority.value for c in log.calls if c.priority} == {"echo"} and log.skipped == {}
        april = incident_history(ctx, router=hanoi_router, since=datetime(2024, 4, 1, tzinfo=UTC))
        assert len(april.calls) == 1 and april.node.tolist() == log.node[2:].tolist()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--calls", SF, "--columns", "time=Recieved DtTm,point=case_location"],
         ["no column 'Recieved DtTm'; its columns are: 'Call Number', 'Unit ID'"]),
        (["--calls", SF], ["--calls needs --columns"]),
        (["--columns", "time=x,point=y"], ["--time-format, --timezone and --priority-map go with --calls FILE"]),
        (["--calls", SF, "--population", SF], ["not allowed with argument"]),
        (["--calls", SF, "--columns", SF_COLUMNS, "--priority-map", "3=urgent"], ["'urgent' is not a priority"]),
        (["--population", DATA / "population-no-crs.geojson"], ["Wrong CRS?", "lon 586043.9500..588755.0900"]),
        (["--cells", "hex"], ["invalid choice: 'hex'"]),
        (["--cells", "h3", "--h3-resolution", "16"], ["H3 resolution 16 is out of range"]),
        (["--since", "2024-01-01"], ["--since and --until go with --history"]),
    ],
)  # fmt: skip
def test_bad_demand_options_get_one_line(
    cache: Path, stations: Path, args: list[str | Path], needles: list[str]
) -> None:
    assert_one_line_error(run(["coverage", "--stations", stations, *args], cache), *needles)
