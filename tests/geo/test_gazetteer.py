"""The local gazetteer on the real central-Hanoi extract: names typed without diacritics, intersections that
really exist in the road graph, prefixes while typing, English names, named nodes, and nothing for nonsense."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from dispatch.core.types import LatLon
from dispatch.geo.gazetteer import CLUSTER_M, Gazetteer, Hit, NameIndex, Place, fold, read_named_nodes, strip_generic
from dispatch.geo.graph import RoadGraph
from dispatch.geo.snap import Snapper
from dispatch.geo.store import LoadedGraph
from tests.conftest import HANOI_PBF, HOSPITALS


def _m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (a[0] - b[0]) * 111_195.0
    dx = (a[1] - b[1]) * 111_195.0 * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def meeting_nodes(graph: RoadGraph, a: str, b: str) -> list[tuple[float, float]]:
    """Straight from the graph arrays: the nodes where an edge named ``a`` and an edge named ``b`` end."""

    def ends(name: str) -> set[int]:
        ids = [i for i, n in enumerate(graph.names) if n == name]
        edges = np.nonzero(np.isin(graph.edge_name, ids))[0]
        arcs = np.where(graph.edge_fwd_arc[edges] >= 0, graph.edge_fwd_arc[edges], graph.edge_bwd_arc[edges])
        return set(graph.arc_tail[arcs].tolist()) | set(graph.arc_head[arcs].tolist())

    return [(float(graph.node_lat[n]), float(graph.node_lon[n])) for n in sorted(ends(a) & ends(b))]


def street_extent(graph: RoadGraph, name: str) -> tuple[float, float, float, float]:
    """Straight from the graph arrays: south, west, north, east of every edge named ``name``."""
    ids = [i for i, n in enumerate(graph.names) if n == name]
    points = np.concatenate(
        [
            np.arange(graph.geom_offsets[e], graph.geom_offsets[e + 1])
            for e in np.nonzero(np.isin(graph.edge_name, ids))[0]
        ]
    )
    lat, lon = graph.geom_lat[points], graph.geom_lon[points]
    return float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max())


@pytest.fixture(scope="module")
def graphs(hanoi: LoadedGraph, hanoi_motorbike: LoadedGraph) -> list[RoadGraph]:
    return [hanoi.graph, hanoi_motorbike.graph]


@pytest.fixture(scope="module")
def motorbike(hanoi_motorbike: LoadedGraph) -> RoadGraph:
    return hanoi_motorbike.graph


@pytest.fixture(scope="module")
def gaz(graphs: list[RoadGraph]) -> Gazetteer:
    return Gazetteer.from_graphs(graphs)


@pytest.fixture(scope="module")
def hospitals() -> NameIndex:
    features = json.loads(HOSPITALS.read_text("utf-8"))["features"]
    places = [
        Place(
            "hospital",
            f["properties"]["name"],
            *f["geometry"]["coordinates"][::-1],
            f["properties"].get("name_en") or "",
            i,
        )
        for i, f in enumerate(features, start=1)
    ]
    return NameIndex.of_places(places)


def first(gaz: Gazetteer, query: str, **kw: object) -> Hit:
    hits = gaz.search(query, **kw)  # type: ignore[arg-type]
    assert hits, f"nothing found for {query!r}"
    return hits[0]


# ---- normalisation ------------------------------------------------------------------------------------------
def test_fold_drops_diacritics_case_and_punctuation() -> None:
    assert fold("Đường Giải Phóng") == "duong giai phong"
    assert fold("ĐẠI CỒ VIỆT") == "dai co viet"
    assert fold("Bệnh viện Bạch Mai") == "benh vien bach mai"
    assert fold("Phố Hàng Đường") == "pho hang duong"
    assert fold("Ngách 294/2 Phố Kim Mã") == "ngach 294 2 pho kim ma"
    assert fold("  p. Trường   Chinh, Q.Đống Đa ") == "p truong chinh q dong da"
    assert fold("Ư ơ ữ ỹ") == "u o u y"
    assert fold("—!?") == ""


def test_generic_words_are_optional_and_name_a_kind() -> None:
    assert strip_generic(fold("Phố Huế").split()) == (("hue",), frozenset({"street"}))
    assert strip_generic(fold("Bệnh viện Đa khoa Xanh Pôn").split()) == (("xanh", "pon"), frozenset({"hospital"}))
    assert strip_generic(fold("Trạm 115 Hữu nghị").split()) == (("115", "huu", "nghi"), frozenset({"station"}))
    assert strip_generic(["duong"]) == (("duong",), frozenset({"street"}))  # a name of generic words only stays


# ---- streets ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["hue", "pho hue", "Phố Huế", "PHO HUE", "duong hue", "p. hue", "hue street"])
def test_pho_hue_without_diacritics_or_street_word(gaz: Gazetteer, motorbike: RoadGraph, query: str) -> None:
    hit = first(gaz, query)
    assert (hit.kind, hit.name, hit.name_en) == ("street", "Phố Huế", "Hue Street")
    assert hit.bbox is not None
    s, w, n, e = hit.bbox
    assert s <= hit.lat <= n and w <= hit.lon <= e
    # the extract holds Phố Huế's northern half: 520 m running north-south from Hàm Long to the extract's edge
    assert hit.bbox == pytest.approx(street_extent(motorbike, "Phố Huế"))
    assert _m((s, w), (n, w)) == pytest.approx(512, abs=5) and _m((s, w), (s, e)) < 60
    assert Snapper(motorbike).snap(LatLon(hit.lat, hit.lon)).distance_m < 0.5  # on the road itself


def test_exact_name_before_names_holding_it(gaz: Gazetteer) -> None:
    hits = gaz.search("kim ma", limit=10)
    assert hits[0].name == "Phố Kim Mã" and hits[0].detail.startswith("secondary road, 3.")
    assert {"Ngõ 294 Phố Kim Mã", "Ngõ 409 Kim Mã"} <= {h.name for h in hits}


def test_one_name_in_two_places_is_two_streets_and_near_picks(gaz: Gazetteer) -> None:
    """Phố Kim Mã's western stretch is not joined to the rest in the extract (about 650 m apart)."""
    parts = [h for h in gaz.search("pho kim ma", limit=10) if h.name == "Phố Kim Mã"]
    assert len(parts) == 2
    assert parts[0].bbox and parts[1].bbox and parts[1].bbox[3] < parts[0].bbox[1]  # the second lies west
    near_west = first(gaz, "pho kim ma", near=(21.0290, 105.8070))
    assert near_west.name == "Phố Kim Mã" and near_west.lon < 105.81


def test_prefix_while_typing(gaz: Gazetteer) -> None:
    assert first(gaz, "nguyen chi th").name == "Đường Nguyễn Chí Thanh"
    assert first(gaz, "nguyen chi thanh").name == "Đường Nguyễn Chí Thanh"
    assert first(gaz, "tran hung d").name == "Phố Trần Hưng Đạo"
    assert first(gaz, "hang b").name.startswith("Phố Hàng B")
    assert gaz.search("nguyen chi tx") == []  # only the last word may be unfinished


def test_english_names(gaz: Gazetteer) -> None:
    assert first(gaz, "hang cot street").name == "Phố Hàng Cót"
    assert first(gaz, "Lang Road").name == "Đường Láng"
    assert first(gaz, "hang bot alley").name == "Ngõ Hàng Bột"


def test_nonsense_finds_nothing(gaz: Gazetteer, hospitals: NameIndex) -> None:
    assert gaz.search("xyzzy qwv", extra=hospitals) == []
    assert gaz.search("   ", extra=hospitals) == []
    assert gaz.search("xyzzy x qwv", extra=hospitals) == []
    # Giải Phóng and Trường Chinh lie south of the extract
    assert gaz.search("giai phong x truong chinh", extra=hospitals) == []


# ---- intersections ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "a", "b"),
    [
        ("le duan x kham thien", "Đường Lê Duẩn", "Phố Khâm Thiên"),
        ("Lê Duẩn & Khâm Thiên", "Đường Lê Duẩn", "Phố Khâm Thiên"),
        ("tran hung dao / le duan", "Phố Trần Hưng Đạo", "Đường Lê Duẩn"),
        ("lang và cau giay", "Đường Láng", "Đường Cầu Giấy"),
        ("dien bien phu and hoang dieu", "Đường Điện Biên Phủ", "Đường Hoàng Diệu"),
        ("nguyen chi thanh giao chua lang", "Đường Nguyễn Chí Thanh", "Phố Chùa Láng"),
        ("pho hue × tran nhan tong", "Phố Huế", "Phố Trần Nhân Tông"),
    ],
)
def test_intersection_at_a_node_both_streets_share(
    gaz: Gazetteer, motorbike: RoadGraph, query: str, a: str, b: str
) -> None:
    shared = meeting_nodes(motorbike, a, b)
    assert shared, f"{a} and {b} do not meet in the graph"
    hit = first(gaz, query)
    assert hit.kind == "intersection"
    assert hit.name == f"{a} × {b}" and hit.detail == f"{a} × {b}"
    assert (hit.lat, hit.lon) in shared


def test_dual_carriageway_crossing_is_one_point(gaz: Gazetteer, motorbike: RoadGraph) -> None:
    a, b = "Đường Nguyễn Văn Huyên", "Đường Nguyễn Khánh Toàn"
    shared = meeting_nodes(motorbike, a, b)
    assert len(shared) == 4 and max(_m(p, q) for p in shared for q in shared) < 3 * CLUSTER_M
    hits = [h for h in gaz.search("nguyen van huyen x nguyen khanh toan") if h.name in (f"{a} × {b}", f"{b} × {a}")]
    assert len(hits) == 1  # both sides also match the other street: still one answer
    assert (hits[0].lat, hits[0].lon) in shared and hits[0].name == f"{a} × {b}"


def test_streets_meeting_twice_give_two_crossings(gaz: Gazetteer, motorbike: RoadGraph) -> None:
    a, b = "Đường Trần Quang Khải", "Đường Trần Khánh Dư"
    shared = meeting_nodes(motorbike, a, b)
    hits = [h for h in gaz.search("tran quang khai x tran khanh du") if h.kind == "intersection"]
    assert [h.detail for h in hits] == [f"{a} × {b}, crossing 1 of 2", f"{a} × {b}, crossing 2 of 2"]
    assert all((h.lat, h.lon) in shared for h in hits)
    assert _m((hits[0].lat, hits[0].lon), (hits[1].lat, hits[1].lon)) > CLUSTER_M


def test_streets_that_do_not_meet_are_each_shown(gaz: Gazetteer, motorbike: RoadGraph) -> None:
    assert meeting_nodes(motorbike, "Phố Bà Triệu", "Phố Huế") == []  # parallel streets
    hits = gaz.search("ba trieu x hue")
    assert [(h.kind, h.name) for h in hits] == [("street", "Phố Bà Triệu"), ("street", "Phố Huế")]
    assert "does not meet a street named like 'hue'" in hits[0].detail


def test_a_name_holding_giao_still_found(gaz: Gazetteer) -> None:
    """'giao' separates intersections, but "Giao thông" is also a word: the whole query is searched too."""
    hit = first(gaz, "cong 1 benh vien giao thong")
    assert (hit.kind, hit.name) == ("place", "Cổng 1 Bệnh viện Giao thông vận tải")


# ---- places, hospitals --------------------------------------------------------------------------------------
def test_named_nodes_of_the_extract(gaz: Gazetteer) -> None:
    places = read_named_nodes(HANOI_PBF)
    assert len(places) == 23  # 40 named nodes, less 17 numbered subway exits
    assert not any(p.name.startswith("Lối ra") for p in places)
    hit = first(gaz, "chan 1")
    assert (hit.kind, hit.name, hit.detail) == ("place", "Chắn 1", "level crossing")
    assert _m((hit.lat, hit.lon), (21.02766, 105.84114)) < 5
    assert [(h.name, h.detail) for h in gaz.search("doan mon")] == [
        ("Đoan Môn", "main entrance"),  # the Imperial Citadel's south gate, and its two side gates
        ("Tả Đoan Môn", "entrance"),
        ("Hữu Đoan Môn", "entrance"),
    ]


def test_hospitals_by_name_and_english_name(gaz: Gazetteer, hospitals: NameIndex) -> None:
    hit = first(gaz, "xanh pon", extra=hospitals)
    assert (hit.kind, hit.name, hit.id) == ("hospital", "Bệnh viện Đa khoa Xanh Pôn", 7)
    assert (hit.lat, hit.lon) == (21.031229, 105.835155)
    assert first(gaz, "saint paul", extra=hospitals).name == "Bệnh viện Đa khoa Xanh Pôn"
    assert first(gaz, "bv viet duc", extra=hospitals).name == "Bệnh viện Hữu nghị Việt Đức"
    assert first(gaz, "benh vien k", extra=hospitals).name == "Bệnh viện K"


def test_hospital_word_prefers_hospitals(gaz: Gazetteer, hospitals: NameIndex) -> None:
    """ "Giao thông" names a hospital and two of its gates; asking for the hospital puts it first."""
    hits = gaz.search("benh vien giao thong", extra=hospitals)
    assert hits[0].kind == "hospital" and hits[0].name == "Bệnh viện Giao thông Vận tải"
    assert {h.name for h in hits[1:3]} == {"Cổng 1 Bệnh viện Giao thông vận tải", "Cổng 2 Bệnh viện Giao thông vận tải"}


# ---- cost ---------------------------------------------------------------------------------------------------
def test_built_in_well_under_a_second_and_queries_in_milliseconds(graphs: list[RoadGraph]) -> None:
    started = time.perf_counter()
    gaz = Gazetteer.from_graphs(graphs)
    build_s = time.perf_counter() - started
    queries = ["hue", "n", "ngo", "nguyen chi th", "le duan x kham thien", "n x n", "p x d", "xyzzy", "kim ma"]
    started = time.perf_counter()
    for _ in range(20):
        for q in queries:
            gaz.search(q)
    per_query_ms = (time.perf_counter() - started) / (20 * len(queries)) * 1000
    # typically 0.2 s and 1 ms on one core; the bounds leave room for a busy machine
    assert build_s < 3.0 and per_query_ms < 10.0, (build_s, per_query_ms)
