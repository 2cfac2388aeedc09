"""Demand for planning on the real Hanoi graph: call logs in two real export formats (San Francisco's "Fire
Department Calls for Service", Seattle's "Real Time Fire 911 Calls", positions moved into central Hanoi), population
files in a projected CRS, and H3 cells in coverage."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import h3
import numpy as np
import pytest

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon, Priority
from dispatch.geo.coverage import Station, coverage, h3_resolution_for, road_length_demand
from dispatch.geo.demand import (
    BAD_COORDINATES,
    BAD_TIME,
    DUPLICATE,
    MALFORMED,
    NO_COORDINATES,
    NO_TIME,
    ZERO_COORDINATES,
    demand_from_calls,
    load_calls,
    load_population,
    outside_reason,
    parse_columns,
    parse_priority_map,
)
from dispatch.geo.graph import haversine_m
from dispatch.geo.routing import Router
from tests.conftest import DATA, HANOI_PBF

SF = DATA / "calls-sf-format.csv"
SEATTLE = DATA / "calls-seattle-format.csv"
SF_COLUMNS = "time=Received DtTm,point=case_location,priority=Priority,id=Call Number"
SF_PRIORITIES = "3=delta,2=alpha,E=echo"
VN2000 = DATA / "population-vn2000.geojson"
NO_CRS = DATA / "population-no-crs.geojson"
HANOI = timezone(timedelta(hours=7))
CENTRE = Station("Trung tâm 115", LatLon(21.0236, 105.8566))
VIET_DUC = Station("Việt Đức", LatLon(21.0286, 105.8470))


def test_a_san_francisco_export_loads_with_a_column_mapping(hanoi_router: Router) -> None:
    raw = SF.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # as exported: BOM, CRLF, 36 columns
    log = load_calls(hanoi_router, SF, SF_COLUMNS, priority_map=SF_PRIORITIES)
    assert log.rows == 18 and len(log.calls) == 11
    assert log.skipped == {
        DUPLICATE: 2,
        NO_COORDINATES: 1,
        ZERO_COORDINATES: 1,
        outside_reason(hanoi_router): 1,  # San Francisco itself
        NO_TIME: 1,
        BAD_TIME: 1,
    }
    assert sum(log.skipped.values()) + len(log.calls) == log.rows  # nothing dropped silently
    assert log.unmapped_priority == {"I": 1}
    assert log.time_format == "%m/%d/%Y %I:%M:%S %p"  # guessed: Socrata's US format
    first = log.calls[0]
    assert first.at == datetime(2019, 1, 1, 1, 10, 17, tzinfo=HANOI) and first.at.utcoffset() == timedelta(0)
    assert first.where == LatLon(21.023275, 105.850908) and first.priority is Priority.DELTA
    assert [c.priority for c in log.calls].count(None) == 1
    assert {c.priority for c in log.calls} == {Priority.DELTA, Priority.ALPHA, Priority.ECHO, None}
    assert log.label == "call log calls-sf-format.csv: 11 calls, 2019-01-01..2019-01-31"
    # without the id column the second unit's rows count as calls of their own
    every_row = load_calls(hanoi_router, SF, "time=Received DtTm,point=case_location")
    assert len(every_row.calls) == 13 and DUPLICATE not in every_row.skipped


@pytest.mark.parametrize(
    "columns", ["time=Datetime,point=Report Location,priority=Type", "time=Datetime,lat=Latitude,lon=Longitude"]
)
def test_a_seattle_export_loads_with_a_point_or_two_columns(hanoi_router: Router, columns: str) -> None:
    log = load_calls(
        hanoi_router, SEATTLE, columns, priority_map="Medic Response=echo,Aid Response=charlie", timezone="UTC"
    )
    assert len(log.calls) == 8 and log.rows == 13
    assert log.skipped == {
        NO_COORDINATES: 1,
        BAD_COORDINATES: 1,  # latitude 95
        MALFORMED: 1,  # an address with an unquoted comma
        BAD_TIME: 1,  # "not recorded"
        outside_reason(hanoi_router): 1,  # Bach Mai Hospital, about 1 km off the extract's roads
    }
    assert log.calls[0].at == datetime(2020, 3, 1, 13, 20, tzinfo=UTC)
    assert log.calls[0].where == LatLon(21.022978, 105.854422)
    if "priority" in columns:
        assert [c.priority for c in log.calls[:2]] == [Priority.CHARLIE, Priority.ECHO]
        assert log.unmapped_priority == {"Auto Fire Alarm": 1}
    else:
        assert all(c.priority is None for c in log.calls) and log.unmapped_priority == {}


def test_each_call_is_one_unit_of_demand_at_a_junction_near_it(hanoi_router: Router) -> None:
    g = hanoi_router.graph
    log = load_calls(hanoi_router, SF, SF_COLUMNS, priority_map=SF_PRIORITIES)
    demand = demand_from_calls(g, log)
    assert demand.per_junction.shape == (g.n_nodes,) and demand.per_junction.sum() == 11
    assert demand.source == log.label and demand.skipped == log.skipped
    assert demand.notes == {"kept without a priority: 'I' is not in the priority map": 1}
    lat = np.array([c.where.lat for c in log.calls])
    lon = np.array([c.where.lon for c in log.calls])
    away = haversine_m(lat, lon, g.node_lat[log.node], g.node_lon[log.node])
    assert np.all(away < 300), away  # on the road it snaps to (<= 250 m), at that road's nearer end
    # the junction is an end of the edge the router snaps the call to, as it would for a dispatcher's call
    for call, node in zip(log.calls, log.node.tolist(), strict=True):
        snap = hanoi_router.snap(call.where)
        arcs = [a for a in (g.edge_fwd_arc[snap.edge], g.edge_bwd_arc[snap.edge]) if a >= 0]
        assert node in {int(g.arc_tail[a]) for a in arcs} | {int(g.arc_head[a]) for a in arcs}
    report = coverage(hanoi_router, [CENTRE, VIET_DUC], [4, 8], demand=demand.per_junction, demand_source=demand.source)
    assert report.total_demand == 11 and report.demand_source.startswith("call log calls-sf-format.csv: 11 calls")


def test_a_missing_column_is_named_with_the_columns_present(hanoi_router: Router) -> None:
    with pytest.raises(InvalidInput, match="no column 'Recieved DtTm'; its columns are: 'Call Number', ") as e:
        load_calls(hanoi_router, SF, "time=Recieved DtTm,point=case_location")
    assert "'case_location'" in str(e.value) and "'Neighborhooods - Analysis Boundaries'" in str(e.value)
    # names match without regard to case or surrounding blanks
    assert len(load_calls(hanoi_router, SF, "time= received dttm ,point=CASE_LOCATION").calls) == 13


@pytest.mark.parametrize(
    ("columns", "words"),
    [
        ("point=case_location", "give the time column"),
        ("time=Received DtTm,lat=Latitude", "give lat= and lon= columns, or one point="),
        ("time=Received DtTm,point=case_location,where=Address", "where not known; allowed: time, lat, lon"),
        ("time=Received DtTm,case_location", "is not KEY=VALUE"),
        ({"point": "case_location"}, "give the time column"),
    ],
)
def test_bad_column_mappings_say_what_to_write(columns: str | dict[str, str], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_columns(columns)


def test_bad_priority_maps_and_zones_are_refused(hanoi_router: Router) -> None:
    assert parse_priority_map("1=ECHO, A = alpha") == {"1": Priority.ECHO, "A": Priority.ALPHA}
    with pytest.raises(InvalidInput, match="'urgent' is not a priority; allowed: echo, delta"):
        parse_priority_map("1=urgent")
    with pytest.raises(InvalidInput, match="time zone 'Mars/Olympus' is not known"):
        load_calls(hanoi_router, SF, SF_COLUMNS, timezone="Mars/Olympus")


def test_a_wrong_time_format_skips_every_row_and_says_so(hanoi_router: Router) -> None:
    log = load_calls(hanoi_router, SEATTLE, "time=Datetime,point=Report Location", time_format="%Y-%m-%d %H:%M:%S")
    assert log.calls == [] and log.skipped["time not in the format '%Y-%m-%d %H:%M:%S'"] == 10
    with pytest.raises(InvalidInput, match="has no usable call \\(10 time not in the format .*, 1 no coordinates"):
        demand_from_calls(hanoi_router.graph, log)


def test_files_that_are_not_csv_are_refused(hanoi_router: Router, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load_calls(hanoi_router, HANOI_PBF, SF_COLUMNS)
    with pytest.raises(InvalidInput, match="cannot read the call log"):
        load_calls(hanoi_router, tmp_path / "missing.csv", SF_COLUMNS)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="not a readable CSV file"):
        load_calls(hanoi_router, empty, SF_COLUMNS)


# ---- population ----------------------------------------------------------------------------------------------
def _inside(router: Router, lat0: float, lon0: float, lat1: float, lon1: float, pad_m: float = 30.0) -> np.ndarray:
    g = router.graph
    dlat, dlon = pad_m / 111_320, pad_m / (111_320 * math.cos(math.radians(lat0)))
    return np.asarray(
        (g.node_lat >= lat0 - dlat)
        & (g.node_lat <= lat1 + dlat)
        & (g.node_lon >= lon0 - dlon)
        & (g.node_lon <= lon1 + dlon)
    )


def test_a_population_file_in_vn2000_utm_is_reprojected(hanoi_router: Router) -> None:
    assert json.loads(VN2000.read_text())["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::3405"
    demand = load_population(hanoi_router, VN2000)
    per = demand.per_junction
    assert demand.skipped == {
        outside_reason(hanoi_router): 1,  # the Bach Mai point
        "no number in column 'population'": 1,
        "not a point or polygon": 1,
    }
    assert demand.source == (
        "population population-vn2000.geojson: 20,800 people in 4 features "
        "(column 'population', EPSG:3405 reprojected to EPSG:4326)"
    )
    assert per.sum() == pytest.approx(20_800)
    # each block's people (and the point inside it) land on the junctions inside the block as drawn in WGS84
    hoan_kiem = _inside(hanoi_router, 21.0240, 105.8480, 21.0320, 105.8560)
    ba_dinh = _inside(hanoi_router, 21.0330, 105.8300, 21.0400, 105.8380)
    assert per[hoan_kiem].sum() == pytest.approx(12_500) and per[ba_dinh].sum() == pytest.approx(8_300)
    assert np.count_nonzero(per[hoan_kiem]) > 20


def test_a_population_file_in_the_wrong_crs_is_refused_with_both_extents(hanoi_router: Router, tmp_path: Path) -> None:
    # the same VN-2000 metres, with no CRS declared: GeoJSON then means longitude/latitude
    with pytest.raises(InvalidInput, match="Wrong CRS\\?") as e:
        load_population(hanoi_router, NO_CRS)
    assert "lon 586043.9500..588755.0900" in str(e.value) and "lon 105.7751..105.8680" in str(e.value)
    # degrees declared as VN-2000 metres: a few metres from the false origin, far from Hanoi
    doc = json.loads(VN2000.read_text())
    for f in doc["features"]:
        f["geometry"] = {"type": "Point", "coordinates": [105.85, 21.03]}
    wrong = tmp_path / "degrees-as-metres.geojson"
    wrong.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="EPSG:3405 reprojected to EPSG:4326\\): its features span lon 100\\.5"):
        load_population(hanoi_router, wrong)


def test_a_polygon_spreads_its_people_by_road_length(hanoi_router: Router, tmp_path: Path) -> None:
    g = hanoi_router.graph
    lat0, lon0, lat1, lon1 = 21.0250, 105.8400, 21.0300, 105.8460
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    tiny = [[105.85241, 21.02871], [105.85243, 21.02871], [105.85243, 21.02873], [105.85241, 21.02871]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"dan_so": 1000}, "geometry": {"type": "Polygon", "coordinates": [ring]}},
            {"type": "Feature", "properties": {"dan_so": 40}, "geometry": {"type": "Polygon", "coordinates": [tiny]}},
            {
                "type": "Feature",
                "properties": {"dan_so": -5},
                "geometry": {"type": "Point", "coordinates": [105.85, 21.03]},
            },
        ],
    }
    path = tmp_path / "wards.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="has no column 'population'; its columns are: 'dan_so'"):
        load_population(hanoi_router, path)
    demand = load_population(hanoi_router, path, column="dan_so")
    assert demand.skipped == {"negative number in column 'dan_so'": 1}
    assert demand.notes == {"polygons holding no junction (their population went to the junction at their centre)": 1}
    per, length = demand.per_junction, road_length_demand(g)
    inside = (g.node_lat > lat0) & (g.node_lat < lat1) & (g.node_lon > lon0) & (g.node_lon < lon1)
    assert per[inside].sum() == pytest.approx(1000) and per.sum() == pytest.approx(1040)
    # in proportion to the road length around each junction inside
    assert np.allclose(per[inside], 1000 * length[inside] / length[inside].sum(), rtol=1e-6)
    assert np.count_nonzero(per[~inside]) == 1  # the tiny polygon's junction


def test_a_population_csv_of_points(hanoi_router: Router, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("lat,lon,population\n21.0287,105.8524,100\n21.0368,105.8342,50\nnan,105.85,7\n21.0300,105.8500,\n")
    demand = load_population(hanoi_router, path)
    assert demand.per_junction.sum() == 150 and np.count_nonzero(demand.per_junction) == 2
    assert demand.skipped == {BAD_COORDINATES: 1, "no number in column 'population'": 1}
    assert demand.source.endswith("150 people in 2 features (column 'population', CSV in degrees)")


# ---- H3 cells ------------------------------------------------------------------------------------------------
def test_h3_cells_add_up_like_the_grid(hanoi_router: Router) -> None:
    assert h3_resolution_for(500) == 9 and h3_resolution_for(1000) == 8 and h3_resolution_for(100) == 10
    grid = coverage(hanoi_router, [CENTRE, VIET_DUC], [4, 8], cell_m=500)
    hexes = coverage(hanoi_router, [CENTRE, VIET_DUC], [4, 8], cell_m=500, cells="h3")
    assert hexes.cell_kind == "h3" and hexes.h3_resolution == 9 and grid.h3_resolution is None
    # the overall shares do not depend on the cells; the cells' shares add up to them
    assert hexes.total_demand == pytest.approx(grid.total_demand)
    assert hexes.covered == pytest.approx(grid.covered) and hexes.backup == pytest.approx(grid.backup)
    assert sum(c.demand for c in hexes.cells) == pytest.approx(hexes.total_demand)
    for t in hexes.thresholds_s:
        covered = sum(c.demand * c.covered[t] for c in hexes.cells) / hexes.total_demand
        assert covered == pytest.approx(hexes.covered[t])
    assert len({c.h3 for c in hexes.cells}) == len(hexes.cells) > 50
    assert all(h3.is_valid_cell(c.h3) and h3.get_resolution(c.h3) == 9 for c in hexes.cells)
    feature = hexes.geojson()["features"][0]
    ring = feature["geometry"]["coordinates"][0]
    assert len(ring) == 7 and ring[0] == ring[-1]  # a hexagon, closed
    assert feature["properties"]["cell"] == hexes.cells[0].h3
    assert h3.latlng_to_cell(hexes.cells[0].lat, hexes.cells[0].lon, 9) == hexes.cells[0].h3
    d = hexes.as_dict(worst=2)
    assert d["cell_kind"] == "h3" and d["h3_resolution"] == 9 and len(d["worst_cells"]["8"]) == 2
    coarse = coverage(hanoi_router, [CENTRE], [8], cells="h3", h3_resolution=7)
    assert coarse.h3_resolution == 7 and len(coarse.cells) < len(hexes.cells)


def test_h3_cells_of_call_demand(hanoi_router: Router) -> None:
    demand = demand_from_calls(hanoi_router.graph, load_calls(hanoi_router, SF, SF_COLUMNS))
    report = coverage(hanoi_router, [CENTRE], [8], demand=demand.per_junction, cells="h3", cell_m=1000)
    assert report.total_demand == 11 and sum(c.demand for c in report.cells) == 11
    assert all(c.demand >= 1 for c in report.cells)  # only cells that hold a call


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"cells": "hex"}, "cells 'hex' is not known; allowed: grid, h3"),
        ({"cells": "h3", "h3_resolution": 16}, "0 to 15"),
    ],
)
def test_bad_cell_options_are_refused(hanoi_router: Router, kw: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        coverage(hanoi_router, [CENTRE], [8], **kw)  # type: ignore[arg-type]
