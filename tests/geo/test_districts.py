"""Coverage per district on the Hanoi graph: a planner's polygons, in degrees or in a projected CRS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyproj import Transformer

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon
from dispatch.geo.coverage import Station, coverage
from dispatch.geo.districts import load_districts
from dispatch.geo.routing import Router

STATIONS = [Station("115", LatLon(21.0236, 105.8566)), Station("Kim Ma", LatLon(21.0318, 105.8220))]
WEST = [(105.77, 21.00), (105.83, 21.00), (105.83, 21.09), (105.77, 21.09)]
EAST = [(105.83, 21.00), (105.89, 21.00), (105.89, 21.09), (105.83, 21.09)]


def _file(path: Path, polys: dict[str, list[tuple[float, float]]], crs: str | None = None, **extra: object) -> Path:
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True) if crs else None
    feats = []
    for name, ring in polys.items():
        pts = [list(to.transform(x, y)) if to else [x, y] for x, y in [*ring, ring[0]]]
        feats.append({"type": "Feature", "properties": {"name": name, **extra},
                      "geometry": {"type": "Polygon", "coordinates": [pts]}})  # fmt: skip
    doc: dict[str, object] = {"type": "FeatureCollection", "features": feats}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:{crs.replace(':', '::')}"}}
    path.write_text(json.dumps(doc))
    return path


def test_districts_split_the_demand_and_average_to_the_whole(hanoi_router: Router, tmp_path: Path) -> None:
    d = load_districts(hanoi_router, _file(tmp_path / "d.geojson", {"West": WEST, "East": EAST}))
    assert d.names == ["West", "East"] and (d.of_node >= 0).all()
    rep = coverage(hanoi_router, STATIONS, [4, 8], cell_m=1000, districts=d)
    assert rep.districts is not None and [x["district"] for x in rep.districts] == ["West", "East"]
    assert sum(x["demand"] for x in rep.districts) == pytest.approx(rep.total_demand, rel=1e-6)
    for key, t in (("4", 240.0), ("8", 480.0)):
        avg = sum(x["demand"] * x["covered"][key] for x in rep.districts) / rep.total_demand
        assert avg == pytest.approx(rep.covered[t], abs=1e-3)
        assert all(x["backup"][key] <= x["covered"][key] for x in rep.districts)
    assert rep.as_dict()["districts"] == rep.districts


def test_a_projected_file_gives_the_same_districts(hanoi_router: Router, tmp_path: Path) -> None:
    plain = load_districts(hanoi_router, _file(tmp_path / "a.geojson", {"West": WEST, "East": EAST}))
    utm = load_districts(hanoi_router, _file(tmp_path / "b.geojson", {"West": WEST, "East": EAST}, "EPSG:32648"))
    assert "EPSG:32648 reprojected" in utm.source
    # straight lines in UTM bend a little in degrees: junctions on the border may change side
    assert (plain.of_node == utm.of_node).mean() > 0.995


def test_a_part_of_the_map_outside_every_district(hanoi_router: Router, tmp_path: Path) -> None:
    d = load_districts(hanoi_router, _file(tmp_path / "w.geojson", {"West": WEST}))
    rep = coverage(hanoi_router, STATIONS, [8], cell_m=1000, districts=d)
    assert rep.districts is not None and rep.districts[-1]["district"] is None
    assert 0 < rep.districts[-1]["demand"] < rep.total_demand


def test_bad_district_files(hanoi_router: Router, tmp_path: Path) -> None:
    metres = tmp_path / "metres.geojson"  # UTM coordinates with no CRS declared
    _file(metres, {"West": WEST}, "EPSG:32648")
    doc = json.loads(metres.read_text())
    del doc["crs"]
    metres.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="Wrong CRS"):
        load_districts(hanoi_router, metres)
    with pytest.raises(InvalidInput, match="no column 'ward'"):
        load_districts(hanoi_router, _file(tmp_path / "n.geojson", {"West": WEST}), name_column="ward")
    mixed = tmp_path / "mixed.geojson"
    west = {"type": "Polygon", "coordinates": [[*map(list, WEST), list(WEST[0])]]}
    east = {"type": "Polygon", "coordinates": [[*map(list, EAST), list(EAST[0])]]}
    feats = [
        {"type": "Feature", "properties": {"name": "West"}, "geometry": west},
        {"type": "Feature", "properties": {"name": "West"}, "geometry": east},
        {"type": "Feature", "properties": {"name": "pt"}, "geometry": {"type": "Point", "coordinates": [105.8, 21.0]}},
        {"type": "Feature", "properties": {"name": None}, "geometry": east},
    ]
    mixed.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    d = load_districts(hanoi_router, mixed)
    assert d.names == ["West"]
    assert d.skipped == {
        "a second polygon with a name already used (give each district one name)": 1,
        "not a polygon": 1,
        "no name in column 'name'": 1,
    }
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": feats[2:3]}))
    with pytest.raises(InvalidInput, match="no usable district"):
        load_districts(hanoi_router, points)


@pytest.mark.slow
@pytest.mark.usefixtures("hanoi")  # the graph built into geo_cache first
def test_dispatch_coverage_prints_the_districts(geo_cache: Path, tmp_path: Path) -> None:
    from tests.test_cli import assert_ok, run

    stations = tmp_path / "s.geojson"
    point = {"type": "Point", "coordinates": [105.8566, 21.0236]}
    stations.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": point, "properties": {"name": "115"}}
    ]}))  # fmt: skip
    d = _file(tmp_path / "d.geojson", {"West": WEST, "East": EAST})
    p = run(["coverage", "--stations", stations, "--minutes", "4,8", "--districts", d], geo_cache)
    assert_ok(p)
    assert "by district (d.geojson: 2 districts, EPSG:4326), covered / backup:" in p.stdout
    east = next(line for line in p.stdout.splitlines() if line.strip().startswith("East"))
    west = next(line for line in p.stdout.splitlines() if line.strip().startswith("West"))
    assert "4 min" in east and "8 min" in west
    out = json.loads(run(["coverage", "--stations", stations, "--districts", d, "--json"], geo_cache).stdout)
    assert [x["district"] for x in out["districts"]] == ["West", "East"]
    # the station is in the east: the east is better covered
    assert out["districts"][1]["covered"]["8"] > out["districts"][0]["covered"]["8"]


def test_a_junction_on_a_shared_border_is_counted(hanoi_router: Router, tmp_path: Path) -> None:
    """Borders often run along streets: a junction on the line between two districts belongs to one of them."""
    g = hanoi_router.graph
    lon = float(g.node_lon[100])  # the border passes exactly through this junction
    west = [(105.70, 20.95), (lon, 20.95), (lon, 21.15), (105.70, 21.15)]
    east = [(lon, 20.95), (105.95, 20.95), (105.95, 21.15), (lon, 21.15)]
    d = load_districts(hanoi_router, _file(tmp_path / "b.geojson", {"West": west, "East": east}))
    assert (d.of_node >= 0).all() and d.of_node[100] == 0  # the first polygon in the file takes it


def test_worst_cells_are_only_cells_with_demand_left_out(hanoi_router: Router) -> None:
    rep = coverage(hanoi_router, STATIONS, [60], cell_m=1000)  # an hour: everything is reached
    assert rep.covered[3600.0] == pytest.approx(1.0) and rep.worst(3600.0) == []
    with pytest.raises(InvalidInput, match="an H3 resolution goes with H3 cells"):
        coverage(hanoi_router, STATIONS, [8], h3_resolution=8)
