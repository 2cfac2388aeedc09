"""The offline basemap's vector tiles on the real central-Hanoi graph (dispatch.geo.basemap)."""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import numpy as np
import pytest
import shapely

from dispatch.geo.basemap import (
    BUFFER,
    EXTENT,
    LABEL_PX_PER_CHAR,
    MAJOR_FIRST,
    SIMPLIFY_PX,
    UNITS_PER_PX,
    Basemap,
    LazyBasemap,
    tile_xy,
    world_x,
    world_y,
)
from dispatch.geo.graph import RoadGraph
from dispatch.geo.store import LoadedGraph

HOAN_KIEM = (21.0287, 105.8524)
SAIGON = (10.7769, 106.7009)  # Ho Chi Minh City: 1,150 km south of the extract
#: streets by Hoan Kiem Lake: its east shore, its west shore, and the cathedral's street west of it
LAKE_STREETS = {"Phố Đinh Tiên Hoàng", "Phố Lê Thái Tổ", "Phố Nhà Thờ"}
MINOR = {"residential", "unclassified", "living_street", "road", "service"}


@pytest.fixture(scope="module")
def basemap(hanoi: LoadedGraph, hanoi_motorbike: LoadedGraph) -> Basemap:
    return LazyBasemap().get([hanoi.graph, hanoi_motorbike.graph])


def _tile(basemap: Basemap, z: int, place: tuple[float, float] = HOAN_KIEM) -> dict[str, Any]:
    return basemap.tile(z, *tile_xy(*place, z))


def _lines(tile: dict[str, Any]) -> list[shapely.LineString]:
    return [shapely.LineString(np.reshape(r["p"], (-1, 2))) for r in tile["roads"]]


def _around(z: int, radius: int = 1) -> list[tuple[int, int, int]]:
    x, y = tile_xy(*HOAN_KIEM, z)
    return [(z, x + dx, y + dy) for dx in range(-radius, radius + 1) for dy in range(-radius, radius + 1)]


def test_the_most_detailed_graph_is_drawn(basemap: Basemap, hanoi: LoadedGraph, hanoi_motorbike: LoadedGraph) -> None:
    # motorbikes may ride alleys that ambulances may not: that graph has the most edges
    assert hanoi_motorbike.graph.n_edges > hanoi.graph.n_edges
    assert basemap.graph is hanoi_motorbike.graph


def test_a_tile_over_hoan_kiem_holds_the_named_streets_of_the_graph(basemap: Basemap) -> None:
    tile = _tile(basemap, 16)
    assert (tile["z"], tile["extent"]) == (16, EXTENT)
    names = {r["n"] for r in tile["roads"] if r["n"] is not None}
    assert names >= LAKE_STREETS
    assert names <= set(basemap.graph.names)
    assert {r["c"] for r in tile["roads"]} <= set(basemap.graph.classes)


def test_a_tile_far_from_the_graph_is_empty(basemap: Basemap) -> None:
    for z in (8, 12, 16):
        tile = _tile(basemap, z, SAIGON)
        assert tile["roads"] == [] and tile["labels"] == [], z
    # the tile of the easternmost road point has roads; two tiles further east, past the extract, none
    g = basemap.graph
    east = int(np.argmax(g.geom_lon))
    x, y = tile_xy(float(g.geom_lat[east]), float(g.geom_lon[east]), 16)
    assert basemap.tile(16, x, y)["roads"]
    assert basemap.tile(16, x + 2, y)["roads"] == []


def test_minor_classes_appear_only_at_street_zoom(basemap: Basemap) -> None:
    def classes(z: int) -> set[str]:
        return {r["c"] for z_, x, y in _around(z) for r in basemap.tile(z_, x, y)["roads"]}

    assert classes(12) <= {"motorway", "trunk", "primary", "motorway_link", "trunk_link"}
    assert "primary" in classes(12)
    assert "secondary" in classes(13) and not classes(13) & ({"tertiary"} | MINOR)
    assert "tertiary" in classes(14) and not classes(14) & MINOR
    assert "residential" in classes(15) and "service" not in classes(15)
    assert {"residential", "service"} <= classes(16)


def test_a_low_zoom_tile_never_reads_minor_roads(basemap: Basemap) -> None:
    g = basemap.graph
    minor = np.array([c in MINOR for c in g.classes])
    z, x, y = _around(12, 0)[0]
    assert len(basemap.edges_in(z, x, y)) > 0
    assert not minor[g.edge_class[basemap.edges_in(z, x, y)]].any()
    assert minor[g.edge_class[basemap.edges_in(16, *tile_xy(*HOAN_KIEM, 16))]].any()


def test_roads_are_drawn_minor_first_major_last(basemap: Basemap) -> None:
    rank = {c: i for i, c in enumerate(MAJOR_FIRST)}
    for z in (13, 15, 16):
        tile = _tile(basemap, z)
        ranks = [rank.get(r["c"], len(MAJOR_FIRST)) for r in tile["roads"]]
        assert len(set(ranks)) >= 3, z
        assert ranks == sorted(ranks, reverse=True), z


def test_coordinates_are_integers_within_the_buffered_tile(basemap: Basemap) -> None:
    crossing = 0
    for z, x, y in _around(15) + _around(17):
        for road in basemap.tile(z, x, y)["roads"]:
            p = road["p"]
            assert len(p) >= 4 and len(p) % 2 == 0
            assert all(isinstance(v, int) and -BUFFER <= v <= EXTENT + BUFFER for v in p), (z, x, y, road)
            crossing += any(v < 0 or v > EXTENT for v in p)
    assert crossing > 50  # lines do run on into the buffer, so that they join the next tile's


def test_merged_simplified_lines_keep_the_geometry_of_the_edges(basemap: Basemap) -> None:
    g: RoadGraph = basemap.graph
    z, x, y = 16, *tile_xy(*HOAN_KIEM, 16)
    tile = basemap.tile(z, x, y)
    ids = basemap.edges_in(z, x, y)
    off = g.geom_offsets
    edges = [
        shapely.LineString(
            np.column_stack(
                [
                    (world_x(g.geom_lon[off[e] : off[e + 1]]) * 2**z - x) * EXTENT,
                    (world_y(g.geom_lat[off[e] : off[e + 1]]) * 2**z - y) * EXTENT,
                ]
            )
        )
        for e in ids.tolist()
    ]
    inside = shapely.box(0, 0, EXTENT, EXTENT)
    edges_in = [e for e in shapely.intersection(edges, inside) if not e.is_empty]
    drawn = shapely.intersection(_lines(tile), inside)
    # merging: a named street is one line, or a few (it forks, or leaves the tile and comes back), not an edge each
    named = [
        (g.names[g.edge_name[e]], g.edge_class[e])
        for e, line in zip(ids.tolist(), edges, strict=True)
        if g.edge_name[e] >= 0 and line.intersects(inside)
    ]
    named_lines = sum(1 for r in tile["roads"] if r["n"] is not None)
    assert named_lines <= 1.25 * len(set(named)) and named_lines < 0.6 * len(named), (named_lines, len(named))
    # the same length of road (corners cut by the simplification cost a little), every vertex within tolerance
    edge_m, drawn_m = sum(e.length for e in edges_in), float(shapely.length(drawn).sum())
    assert 0.97 * edge_m <= drawn_m <= edge_m * 1.001, (drawn_m, edge_m)
    tolerance = SIMPLIFY_PX * UNITS_PER_PX + 1  # + rounding to integers
    all_drawn = shapely.union_all(drawn)
    vertices = shapely.points(np.concatenate([shapely.get_coordinates(e) for e in edges_in]))
    assert float(shapely.distance(all_drawn, vertices).max()) <= tolerance
    # and nothing is drawn where there is no road
    all_edges = shapely.union_all(edges_in)
    drawn_vertices = shapely.points(shapely.get_coordinates(drawn))
    assert float(shapely.distance(all_edges, drawn_vertices).max()) <= tolerance


def test_labels_are_on_their_road_upright_and_long_enough(basemap: Basemap) -> None:
    labels = 0
    along = []
    for z, x, y in _around(15) + _around(16) + _around(17):
        tile = basemap.tile(z, x, y)
        names = [lab["n"] for lab in tile["labels"]]
        assert len(names) == len(set(names)), "one label per road name and tile"
        for lab in tile["labels"]:
            labels += 1
            assert -math.pi / 2 <= lab["a"] <= math.pi / 2, lab
            assert 0 <= lab["x"] <= EXTENT and 0 <= lab["y"] <= EXTENT, lab
            road = shapely.union_all(
                [line for line, r in zip(_lines(tile), tile["roads"], strict=True) if r["n"] == lab["n"]]
            )
            anchor = shapely.Point(lab["x"], lab["y"])
            assert road.distance(anchor) <= 1.0, lab
            assert lab["c"] in {r["c"] for r in tile["roads"] if r["n"] == lab["n"]}
            # the name fits: the road runs on for half the text's length on both sides of the anchor
            half = len(lab["n"]) * LABEL_PX_PER_CHAR * UNITS_PER_PX / 2
            assert road.intersection(anchor.buffer(half * 1.01)).length >= 2 * half * 0.8, lab
            # the text follows the road: the road's direction at the anchor, within half a right angle
            piece = road.intersection(anchor.buffer(3 * UNITS_PER_PX))
            (ax, ay), (bx, by) = shapely.get_coordinates(piece)[[0, -1]]
            turn = abs(math.atan2(by - ay, bx - ax) - lab["a"]) % math.pi
            along.append(min(turn, math.pi - turn))
    assert labels >= 30
    assert np.percentile(along, 90) < math.pi / 8, sorted(along)[-5:]


def test_labels_only_at_street_zoom(basemap: Basemap) -> None:
    assert all(not basemap.tile(*t)["labels"] for t in _around(14))
    assert any(basemap.tile(*t)["labels"] for t in _around(15))


def test_the_lazy_basemap_is_built_once_for_all_threads(hanoi: LoadedGraph, hanoi_motorbike: LoadedGraph) -> None:
    lazy = LazyBasemap()
    got: list[Basemap] = []
    start = threading.Barrier(6)

    def worker() -> None:
        start.wait()
        got.append(lazy.get([hanoi.graph, hanoi_motorbike.graph]))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(b is got[0] for b in got)


def test_the_etag_follows_the_road_graph(basemap: Basemap, hanoi: LoadedGraph) -> None:
    assert Basemap(basemap.graph).etag == basemap.etag
    assert Basemap(hanoi.graph).etag != basemap.etag


def test_a_graph_without_major_roads_has_empty_low_zoom_tiles(hanoi: LoadedGraph) -> None:
    g = hanoi.graph
    service = dataclasses.replace(g, edge_class=np.full_like(g.edge_class, g.classes.index("service")))
    basemap = Basemap(service)
    assert basemap.tile(12, *tile_xy(*HOAN_KIEM, 12))["roads"] == []
    assert {r["c"] for r in basemap.tile(16, *tile_xy(*HOAN_KIEM, 16))["roads"]} == {"service"}
