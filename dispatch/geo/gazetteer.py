"""A local gazetteer for call intake: streets, intersections and named points, searched without diacritics.

Everything comes from the road graph compiled from the OSM extract and from points handed in (hospitals and
stations from the database, named nodes of the extract): no geocoding service is asked at run time.

- **Names are folded** for matching (:func:`fold`): Unicode NFD, combining marks dropped, đ/Đ -> d, lower
  case, anything but letters and digits -> a space. "Bệnh viện Bạch Mai" and "benh vien bach mai" are equal.
- **Generic words are optional**: street types (đường, phố, ngõ, ngách, hẻm, "p.", "đ.", street, road, ...),
  "bệnh viện"/"bv"/"đa khoa"/hospital and "trạm"/station. A name is indexed with and without them, so "hue"
  and "pho hue" both find "Phố Huế"; a generic word in the query prefers results of its kind.
- **Typing**: the last word of a query matches as a prefix ("nguyen chi th" finds "Nguyễn Chí Thanh").
- **Ranking**, best first: the whole name equal to the query, then names starting with it, then names
  holding all its words anywhere; within each, the more important first (a street's length weighted by its
  OSM class; hospitals and stations count as a long main road), divided by (1 + distance / 500 m)² when
  the query gives a point to prefer.
- **Streets** are the named edges of the graph grouped by name and by place: edges of one name that touch,
  or whose extents lie within :data:`MERGE_M` of each other (the two carriageways of a divided road), are
  one street; the many "Ngõ 1" of a city stay apart. A street's point is the middle of its longest edge, on
  the road, so that it snaps; its bbox spans all its edges.
- **Intersections** are asked as "A x B" (also ``&``, ``×``, `` / ``, ``và``, ``and``, ``giao``): graph nodes
  where a street matching A meets a street matching B, clustered within :data:`CLUSTER_M` (dual carriageways
  cross at several nodes) and at most :data:`MAX_CROSSINGS` points per pair of streets.
- **Places**: the bundled central-Hanoi extract holds road ways and their nodes only; 40 of its nodes carry a
  name (gates such as "Cổng 1 Bệnh viện Giao thông vận tải", railway level crossings "Chắn 1".."Chắn 5", the
  Citadel's gates, a few shops and artworks), and no ``place=*`` node. :func:`read_named_nodes` reads them as
  kind ``place``, leaving out numbered subway exits ("Lối ra 1"), whose names say nowhere.

A query costs a few bisections in sorted lists and numpy slices, never a loop over every name, and ranks at
most :data:`MAX_CANDIDATES` matches of each tier. On central Hanoi the build takes about 0.1 s and a query
0.1-3 ms; on a synthetic graph of a million nodes and 180,000 street names (82 shifted copies of Hanoi's),
queries took 0.1-13 ms but the build about 12 s: a region that large wants it built at start, not lazily.
"""

from __future__ import annotations

import math
import re
import threading
import time
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import osmium
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dispatch.geo.graph import EARTH_RADIUS_M, RoadGraph, haversine_m

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: with a point to prefer, an answer this far away needs (1 + 1)**2 = 4 times the importance of one at the point
NEAR_HALF_M = 500.0
KINDS = ("street", "intersection", "hospital", "station", "place")
#: edges of one name whose extents are closer than this are one street (the two halves of a divided road)
MERGE_M = 100.0
#: nodes where two streets meet that lie closer than this are one crossing
CLUSTER_M = 60.0
#: crossings reported per pair of streets at most, the ones with most nodes first
MAX_CROSSINGS = 3
#: matches of one kind (equal, starting with, holding) ranked at most per query, the most important ones
MAX_CANDIDATES = 2000
#: streets tried per side of an "A x B" query
SIDE_CANDIDATES = 30
#: importance of a hospital, a station and a named OSM node; a street's is its length in m times its class weight
KIND_IMPORTANCE = {"hospital": 60_000.0, "station": 50_000.0, "place": 500.0}
CLASS_WEIGHT = {
    "motorway": 10.0,
    "trunk": 10.0,
    "primary": 8.0,
    "secondary": 6.0,
    "tertiary": 4.0,
    "unclassified": 2.0,
    "residential": 2.0,
}
#: generic words (folded) that a query may leave out, and the kind of result a query using them asks for
GENERIC: dict[tuple[str, ...], str] = {
    **{(w,): "street" for w in ("duong", "pho", "ngo", "ngach", "hem", "kiet", "p", "d")},
    **{(w,): "street" for w in ("street", "st", "road", "rd", "alley", "lane", "avenue")},
    ("benh", "vien"): "hospital",
    ("da", "khoa"): "hospital",
    ("bv",): "hospital",
    ("hospital",): "hospital",
    ("tram",): "station",
    ("station",): "station",
}
_GENERIC_BY_FIRST: dict[str, list[tuple[tuple[str, ...], str]]] = {}
for _phrase, _kind in sorted(GENERIC.items(), key=lambda kv: -len(kv[0])):
    _GENERIC_BY_FIRST.setdefault(_phrase[0], []).append((_phrase, _kind))

_NOT_WORD = re.compile(r"[\W_]+")
#: the Unicode blocks of combining marks (Vietnamese tones and the horn, breve and circumflex are in the first)
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_SEPARATOR = re.compile(r"\s*[&×]\s*|\s+(?:x|/|va|and|giao)\s+")
_MAX_CHAR = "\U0010ffff"


def _bare(text: str) -> str:
    """``text`` in lower case without diacritics, đ -> d, punctuation kept."""
    return _MARKS.sub("", unicodedata.normalize("NFD", text)).replace("đ", "d").replace("Đ", "d").lower()


def fold(text: str) -> str:
    """``text`` for matching: no diacritics, đ -> d, lower case, words separated by one space."""
    return " ".join(_NOT_WORD.sub(" ", _bare(text)).split())


def strip_generic(words: Sequence[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The words without generic ones (all of them if nothing else is left) and the kinds those named."""
    kept: list[str] = []
    kinds: set[str] = set()
    i = 0
    while i < len(words):
        for phrase, kind in _GENERIC_BY_FIRST.get(words[i], ()):
            if tuple(words[i : i + len(phrase)]) == phrase:
                kinds.add(kind)
                i += len(phrase)
                break
        else:
            kept.append(words[i])
            i += 1
    return (tuple(kept) if kept else tuple(words)), frozenset(kinds)


@dataclass(frozen=True)
class Place:
    """A named point to search: a hospital, a station (``id`` is its database id), a named OSM node."""

    kind: str  # hospital, station or place
    name: str
    lat: float
    lon: float
    name_en: str = ""
    id: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Hit:
    """One answer: what it is, where, and a line of context for the dispatcher."""

    kind: str  # street, intersection, hospital, station, place
    name: str
    lat: float
    lon: float
    name_en: str = ""
    bbox: tuple[float, float, float, float] | None = None  # south, west, north, east
    id: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "name_en": self.name_en or None,
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "bbox": [round(v, 6) for v in self.bbox] if self.bbox else None,
            "id": self.id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class _Query:
    full: str  # folded words
    core: str  # without generic words
    words: tuple[str, ...]  # core words; the last one may be unfinished
    kinds: frozenset[str]  # kinds named by generic words

    @classmethod
    def parse(cls, text: str) -> _Query | None:
        words = fold(text).split()
        if not words:
            return None
        core, kinds = strip_generic(words)
        return cls(" ".join(words), " ".join(core), core, kinds)


@dataclass(frozen=True)
class _Ranked:
    """Matching entries of one index, best first, with their sort keys."""

    entries: I64
    tiers: F64
    scores: F64


def _gather(offsets: I64, values: I64, rows: Iterable[int]) -> list[I64]:
    return [values[offsets[r] : offsets[r + 1]] for r in rows]


class NameIndex:
    """Entries with names, kinds, points and importance; :meth:`rank` finds the ones a query names."""

    def __init__(self, hits: Sequence[Hit], importance: Sequence[float] | F64) -> None:
        self.hits = list(hits)
        self.kinds = np.array([KINDS.index(h.kind) for h in self.hits], dtype=np.int8)
        self.lat = np.array([h.lat for h in self.hits], dtype=np.float64)
        self.lon = np.array([h.lon for h in self.hits], dtype=np.float64)
        self.importance = np.asarray(importance, dtype=np.float64)
        keys: set[tuple[str, int]] = set()
        word_pairs: set[tuple[str, int]] = set()
        self.core: list[str] = []  # each entry's name without generic words
        for i, h in enumerate(self.hits):
            cores: list[str] = []
            for name in (h.name, h.name_en):
                words = fold(name).split()
                cores.append(" ".join(strip_generic(words)[0]) if words else "")
                if words:
                    keys.update(((" ".join(words), i), (cores[-1], i)))
                    word_pairs.update((w, i) for w in words)
            self.core.append(cores[0])
        ordered = sorted(keys, key=itemgetter(0))  # by the string alone: far faster than comparing tuples
        self.keys = [k for k, _ in ordered]
        self.key_entry = np.array([e for _, e in ordered], dtype=np.int64)
        pairs = sorted(word_pairs, key=itemgetter(0))
        self.word_entry = np.array([e for _, e in pairs], dtype=np.int64)
        self.words: list[str] = []
        starts: list[int] = []
        for i, (w, _) in enumerate(pairs):
            if not self.words or self.words[-1] != w:
                self.words.append(w)
                starts.append(i)
        self.word_offsets = np.array([*starts, len(pairs)], dtype=np.int64)

    @classmethod
    def of_places(cls, places: Sequence[Place]) -> NameIndex:
        hits = [Hit(p.kind, p.name, p.lat, p.lon, p.name_en, None, p.id, p.detail) for p in places]
        return cls(hits, [KIND_IMPORTANCE.get(p.kind, 0.0) for p in places])

    def _key_range(self, key: str) -> tuple[I64, I64]:
        """Entries with a name equal to ``key`` and entries with a name starting with it."""
        lo, eq = bisect_left(self.keys, key), bisect_right(self.keys, key)
        hi = bisect_left(self.keys, key + _MAX_CHAR, lo=eq)
        return self._most_important(self.key_entry[lo:eq]), self._most_important(self.key_entry[eq:hi])

    def _most_important(self, entries: I64) -> I64:
        """At most :data:`MAX_CANDIDATES` of ``entries``, the most important: a query of one letter matches a
        fifth of all names, and only the best few can be shown."""
        if len(entries) <= MAX_CANDIDATES:
            return entries
        return entries[np.argpartition(-self.importance[entries], MAX_CANDIDATES)[:MAX_CANDIDATES]]

    def _word_match(self, words: tuple[str, ...]) -> I64:
        """Entries holding every word, the last one as a prefix."""
        found: list[I64] = []
        for w in words[:-1]:
            i = bisect_left(self.words, w)
            if i == len(self.words) or self.words[i] != w:
                return np.zeros(0, dtype=np.int64)
            found.append(self.word_entry[self.word_offsets[i] : self.word_offsets[i + 1]])
        lo = bisect_left(self.words, words[-1])
        hi = bisect_left(self.words, words[-1] + _MAX_CHAR, lo=lo)
        last = self.word_entry[self.word_offsets[lo] : self.word_offsets[hi]]
        found.sort(key=len)
        out = found[0] if found else np.unique(self._most_important(last))
        for other in found[1:]:
            out = np.intersect1d(out, other, assume_unique=True)
        if found:  # the whole words first: then only their few entries are looked up among the last word's
            out = out[np.isin(out, last)]
        return self._most_important(out)

    def rank(self, q: _Query, *, near: tuple[float, float] | None = None, kinds: set[str] | None = None) -> _Ranked:
        exact_full, prefix_full = self._key_range(q.full)
        exact_core, prefix_core = self._key_range(q.core)
        parts = [exact_full, exact_core, prefix_full, prefix_core, self._word_match(q.words)]
        tier_of = [0.0, 0.0, 1.0, 1.0, 2.0]
        entries = np.concatenate(parts)
        tiers = np.concatenate([np.full(len(p), t) for p, t in zip(parts, tier_of, strict=True)])
        if kinds is not None:
            keep = np.isin(self.kinds[entries], [KINDS.index(k) for k in kinds])
            entries, tiers = entries[keep], tiers[keep]
        order = np.lexsort((tiers, entries))
        entries, tiers = entries[order], tiers[order]
        first = np.ones(len(entries), dtype=bool)
        first[1:] = entries[1:] != entries[:-1]
        entries, tiers = entries[first], tiers[first]
        if q.kinds:  # "pho ...", "benh vien ...": the kind asked for first
            tiers = tiers + 0.5 * ~np.isin(self.kinds[entries], [KINDS.index(k) for k in q.kinds])
        scores = self.importance[entries]
        if near is not None:
            scores = scores / _remoteness(near, self.lat[entries], self.lon[entries])
        best = np.lexsort((-scores, tiers))
        return _Ranked(entries[best], tiers[best], scores[best])


def _distance_m(p: tuple[float, float], lat: F64, lon: F64) -> F64:
    return haversine_m(np.full(len(lat), p[0]), np.full(len(lat), p[1]), lat, lon)


def _remoteness(near: tuple[float, float], lat: F64, lon: F64) -> F64:
    """What importance is divided by when a point is preferred: 1 at the point, 4 at :data:`NEAR_HALF_M` from it."""
    return np.asarray((1.0 + _distance_m(near, lat, lon) / NEAR_HALF_M) ** 2, dtype=np.float64)


def _merge(ranked: Sequence[tuple[float, float, Hit]], limit: int) -> list[Hit]:
    return [h for _, _, h in sorted(ranked, key=lambda r: (r[0], -r[1]))[:limit]]


def _split(text: str) -> tuple[str, str] | None:
    """The two streets of an intersection query ("A x B", "A & B", "A / B", "A và B", ...), or None."""
    parts = _SEPARATOR.split(_bare(text), maxsplit=1)
    if len(parts) != 2 or not fold(parts[0]) or not fold(parts[1]):
        return None
    return parts[0], parts[1]


def _length_text(length_m: float) -> str:
    return f"{length_m / 1000:.1f} km" if length_m >= 1000 else f"{length_m:.0f} m"


class Gazetteer:
    """The streets and named points of one road graph, and where the streets meet."""

    def __init__(self, index: NameIndex, street_node_offsets: I64, street_nodes: I64, graph: RoadGraph) -> None:
        self.index = index  # streets first (entry i < n_streets is street i), then places
        self.street_node_offsets = street_node_offsets
        self.street_nodes = street_nodes
        self.n_streets = len(street_node_offsets) - 1
        self.node_lat = graph.node_lat
        self.node_lon = graph.node_lon
        self.build_s = 0.0
        core_ids: dict[str, int] = {}
        self.core_id = np.array([core_ids.setdefault(c, len(core_ids)) for c in index.core], dtype=np.int64)

    @classmethod
    def from_graph(cls, graph: RoadGraph, places: Sequence[Place] = ()) -> Gazetteer:
        started = time.perf_counter()
        hits, importance, offsets, nodes = _streets(graph)
        place_index = NameIndex.of_places(places)
        index = NameIndex(hits + place_index.hits, np.concatenate([importance, place_index.importance]))
        gazetteer = cls(index, offsets, nodes, graph)
        gazetteer.build_s = time.perf_counter() - started
        return gazetteer

    @classmethod
    def from_graphs(cls, graphs: Iterable[RoadGraph]) -> Gazetteer:
        """From the graph with the most edges (the motorbike one reaches the alleys), with the named nodes of
        its OSM file when that file is still where the graph was built from."""
        graph = max(graphs, key=lambda g: g.n_edges)
        source = Path(str(graph.stats.get("source") or ""))
        return cls.from_graph(graph, read_named_nodes(source) if source.is_file() else [])

    def search(
        self, text: str, *, limit: int = 10, near: tuple[float, float] | None = None, extra: NameIndex | None = None
    ) -> list[Hit]:
        """The ``limit`` best answers to ``text``: intersections first when it names two streets, then streets,
        places and the ``extra`` index's points (hospitals, stations) in one ranking."""
        q = _Query.parse(text)
        if q is None:
            return []
        ranked: list[tuple[float, float, Hit]] = []
        for index in (self.index, extra):
            if index is not None:
                r = index.rank(q, near=near)
                ranked += [
                    (float(t), float(s), index.hits[int(e)])
                    for e, t, s in zip(r.entries[:limit], r.tiers[:limit], r.scores[:limit], strict=True)
                ]
        hits = _merge(ranked, limit)
        sides = _split(text)
        if sides is not None:
            crossings, each_side = self._crossings(*sides, near=near, limit=limit)
            if crossings:
                hits = (_merge(crossings, limit) + hits)[:limit]
            elif not hits:
                hits = [h for _, _, h in each_side]
        return hits

    def _crossings(
        self, a: str, b: str, *, near: tuple[float, float] | None, limit: int
    ) -> tuple[list[tuple[float, float, Hit]], list[tuple[float, float, Hit]]]:
        """Where streets matching ``a`` meet streets matching ``b``, and the best street of each side (to show
        what was understood when they do not meet)."""
        qa, qb = _Query.parse(a), _Query.parse(b)
        if qa is None or qb is None:
            return [], []
        ra, rb = self.index.rank(qa, kinds={"street"}), self.index.rank(qb, kinds={"street"})
        ea, eb = ra.entries[:SIDE_CANDIDATES], rb.entries[:SIDE_CANDIDATES]
        pair_i, pair_j, pair_node = self._meetings(ea, eb)
        sa, sb = ea[pair_i], eb[pair_j]
        keep = self.core_id[sa] != self.core_id[sb]  # not "Đường X × X"
        pair_i, pair_j, pair_node, sa, sb = pair_i[keep], pair_j[keep], pair_node[keep], sa[keep], sb[keep]
        # one pair of streets however it was asked ("A x B" where both sides also match the other street)
        key = np.minimum(sa, sb) * len(self.index.hits) + np.maximum(sa, sb)
        tier = np.maximum(ra.tiers[:SIDE_CANDIDATES][pair_i], rb.tiers[:SIDE_CANDIDATES][pair_j])
        score = self.index.importance[sa] + self.index.importance[sb]
        if near is not None:
            score = score / _remoteness(near, self.node_lat[pair_node], self.node_lon[pair_node])
        order = np.lexsort((-score, tier, key))
        first = order[np.concatenate([[True], key[order][1:] != key[order][:-1]])] if len(order) else order
        best = first[np.lexsort((-score[first], tier[first]))][:limit]
        out: list[tuple[float, float, Hit]] = []
        for p in best:
            street_a, street_b = self.index.hits[int(sa[p])], self.index.hits[int(sb[p])]
            name = f"{street_a.name} × {street_b.name}"
            name_en = f"{street_a.name_en} × {street_b.name_en}" if street_a.name_en and street_b.name_en else ""
            points, total = self._cluster(pair_node[key == key[p]])
            for k, node in enumerate(points):
                detail = name if total == 1 else f"{name}, crossing {k + 1} of {total}"
                hit = Hit("intersection", name, float(self.node_lat[node]), float(self.node_lon[node]), name_en)
                out.append((float(tier[p]), float(score[p]), replace(hit, detail=detail)))
        each_side: list[tuple[float, float, Hit]] = []
        for r, other in ((ra, b), (rb, a)):
            if len(r.entries):
                s = self.index.hits[int(r.entries[0])]
                note = f"{s.detail}; does not meet a street named like {other.strip()!r} in the map"
                each_side.append((float(r.tiers[0]), float(r.scores[0]), replace(s, detail=note)))
        return out, each_side

    def _meetings(self, ea: I64, eb: I64) -> tuple[I64, I64, I64]:
        """Every (position in ``ea``, position in ``eb``, node) where a street of ``ea`` meets one of ``eb``."""
        a_nodes, a_pos = self._nodes_of(ea)
        b_nodes, b_pos = self._nodes_of(eb)
        keep = np.isin(a_nodes, b_nodes)
        a_nodes, a_pos = a_nodes[keep], a_pos[keep]
        keep = np.isin(b_nodes, a_nodes)
        order = np.argsort(b_nodes[keep], kind="stable")
        b_nodes, b_pos = b_nodes[keep][order], b_pos[keep][order]
        lo = np.searchsorted(b_nodes, a_nodes, "left")
        count = np.searchsorted(b_nodes, a_nodes, "right") - lo
        within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return np.repeat(a_pos, count), b_pos[np.repeat(lo, count) + within], np.repeat(a_nodes, count)

    def _nodes_of(self, streets: I64) -> tuple[I64, I64]:
        """The graph nodes of ``streets`` and, for each, the position in ``streets`` of its street."""
        chunks = _gather(self.street_node_offsets, self.street_nodes, (int(s) for s in streets))
        if not chunks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pos = np.repeat(np.arange(len(chunks), dtype=np.int64), [len(c) for c in chunks])
        return np.concatenate(chunks), pos

    def _cluster(self, nodes: I64) -> tuple[list[int], int]:
        """The nodes grouped by :data:`CLUSTER_M` (single linkage): one node per group (the nearest to its
        centre), the groups with most nodes first, at most :data:`MAX_CROSSINGS`; and how many groups there are."""
        ids = np.unique(nodes)
        lat, lon = self.node_lat[ids], self.node_lon[ids]
        label = _linked(haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) <= CLUSTER_M)
        groups: list[tuple[int, int]] = []  # (size, representative node)
        for seed in np.unique(label):
            members = np.nonzero(label == seed)[0]
            centre = (float(lat[members].mean()), float(lon[members].mean()))
            nearest = members[int(np.argmin(_distance_m(centre, lat[members], lon[members])))]
            groups.append((len(members), int(ids[nearest])))
        groups.sort(key=lambda g: -g[0])
        return [node for _, node in groups[:MAX_CROSSINGS]], len(groups)


def _streets(graph: RoadGraph) -> tuple[list[Hit], F64, I64, I64]:
    """The streets of ``graph``: hits, importance, and their nodes as offsets into a node array."""
    named = np.nonzero(graph.edge_name >= 0)[0]
    group_of: dict[str, int] = {}
    name_group = np.array([group_of.setdefault(n, len(group_of)) for n in graph.names], dtype=np.int64)
    group_en = [""] * len(group_of)
    for g, en in zip(name_group, graph.names_en, strict=True):
        group_en[g] = group_en[g] or en
    group_name = list(group_of)
    group = name_group[graph.edge_name[named]]
    arc = np.where(graph.edge_fwd_arc[named] >= 0, graph.edge_fwd_arc[named], graph.edge_bwd_arc[named])
    u, v = graph.arc_tail[arc].astype(np.int64), graph.arc_head[arc].astype(np.int64)

    # edge lengths, extents and middles from the polylines
    glat, glon, goff = graph.geom_lat, graph.geom_lon, graph.geom_offsets
    seg = haversine_m(glat[:-1], glon[:-1], glat[1:], glon[1:])
    seg[goff[1:-1] - 1] = 0.0  # no length between one edge's last point and the next edge's first
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    first, last = goff[:-1][named], goff[1:][named] - 1
    length = cum[last] - cum[first]
    s, w = np.minimum.reduceat(glat, goff[:-1])[named], np.minimum.reduceat(glon, goff[:-1])[named]
    n, e = np.maximum.reduceat(glat, goff[:-1])[named], np.maximum.reduceat(glon, goff[:-1])[named]

    # streets: edges of one name joined by a node, then parts of one name lying within MERGE_M
    nn = graph.n_nodes
    keys, inv = np.unique(np.concatenate([group * nn + u, group * nn + v]), return_inverse=True)
    m = len(named)
    _, part = connected_components(coo_matrix((np.ones(m), (inv[:m], inv[m:])), shape=(len(keys),) * 2), directed=False)
    part = part[inv[:m]]
    n_parts = int(part.max()) + 1 if m else 0
    ps, pw, pn, pe = _extents(part, n_parts, s, w, n, e)
    part_group = np.zeros(n_parts, dtype=np.int64)
    part_group[part] = group
    street = _join_close_parts(part_group, ps, pw, pn, pe)[part]
    n_streets = int(street.max()) + 1 if m else 0

    weight = np.array([CLASS_WEIGHT.get(c, 1.0) for c in graph.classes])[graph.edge_class[named]]
    total_m = np.bincount(street, weights=length, minlength=n_streets)
    importance = np.bincount(street, weights=length * weight, minlength=n_streets)
    longest = _first_per(street, np.lexsort((-length, street)))
    main = _first_per(street, np.lexsort((-length, -weight, street)))
    sb, wb, nb, eb = _extents(street, n_streets, s, w, n, e)

    # the middle of each street's longest edge, on its polyline
    lo, hi = first[longest], last[longest]
    target = cum[lo] + length[longest] / 2
    k = np.clip(np.searchsorted(cum, target), lo + 1, hi)
    frac = np.clip((target - cum[k - 1]) / np.maximum(cum[k] - cum[k - 1], 1e-9), 0.0, 1.0)
    mid_lat = glat[k - 1] + frac * (glat[k] - glat[k - 1])
    mid_lon = glon[k - 1] + frac * (glon[k] - glon[k - 1])

    hits: list[Hit] = []
    for i in range(n_streets):
        g = int(group[main[i]])
        cls = graph.classes[int(graph.edge_class[named[main[i]]])].replace("_", " ")
        detail = f"{cls if cls == 'road' else cls + ' road'}, {_length_text(float(total_m[i]))}"
        bbox = (float(sb[i]), float(wb[i]), float(nb[i]), float(eb[i]))
        hits.append(Hit("street", group_name[g], float(mid_lat[i]), float(mid_lon[i]), group_en[g], bbox, None, detail))

    node_keys = np.unique(np.concatenate([street * nn + u, street * nn + v]))
    offsets = np.searchsorted(node_keys // nn, np.arange(n_streets + 1)).astype(np.int64)
    return hits, importance.astype(np.float64), offsets, (node_keys % nn).astype(np.int64)


def _extents(label: I64, n_labels: int, s: F64, w: F64, n: F64, e: F64) -> tuple[F64, F64, F64, F64]:
    """South, west, north and east of the extents that carry each label 0..n_labels-1."""
    out = tuple(np.full(n_labels, fill) for fill in (np.inf, np.inf, -np.inf, -np.inf))
    np.minimum.at(out[0], label, s)
    np.minimum.at(out[1], label, w)
    np.maximum.at(out[2], label, n)
    np.maximum.at(out[3], label, e)
    return out[0], out[1], out[2], out[3]


def _first_per(labels: I64, order: I64) -> I64:
    """For each label 0..n-1, the first index of ``order`` that carries it."""
    out = np.zeros(int(labels.max()) + 1 if len(labels) else 0, dtype=np.int64)
    out[labels[order[::-1]]] = order[::-1]  # later writes win: the first in order is written last
    return out


def _join_close_parts(group: I64, s: F64, w: F64, n: F64, e: F64) -> I64:
    """Street labels: parts of one name whose extents lie within :data:`MERGE_M` of each other are joined."""
    label = np.arange(len(group), dtype=np.int64)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(order)]])
    m_per_deg = math.pi * EARTH_RADIUS_M / 180.0
    for a, b in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
        p = order[a:b]
        gap_lat = np.maximum(0.0, np.maximum(s[p][:, None] - n[p][None, :], s[p][None, :] - n[p][:, None]))
        gap_lon = np.maximum(0.0, np.maximum(w[p][:, None] - e[p][None, :], w[p][None, :] - e[p][:, None]))
        cos_lat = math.cos(math.radians(float(s[p].mean())))
        close = np.hypot(gap_lat * m_per_deg, gap_lon * m_per_deg * cos_lat) <= MERGE_M
        label[p] = p[_linked(close)]
    return np.unique(label, return_inverse=True)[1].astype(np.int64)


def _linked(close: npt.NDArray[np.bool_]) -> I64:
    """Single linkage over a small symmetric "is close" matrix: each item's label is the first item of its group."""
    label = np.full(len(close), -1, dtype=np.int64)
    for seed in range(len(close)):
        if label[seed] >= 0:
            continue
        label[seed], todo = seed, [seed]
        while todo:
            for j in np.nonzero(close[todo.pop()] & (label < 0))[0]:
                label[j] = seed
                todo.append(int(j))
    return label


def read_named_nodes(path: str | Path) -> list[Place]:
    """The named nodes of an OSM file as places, without numbered subway exits ("Lối ra 1", "Exit 1")."""
    places: list[Place] = []
    for node in osmium.FileProcessor(str(path), osmium.osm.NODE).with_filter(osmium.filter.KeyFilter("name")):
        if not isinstance(node, osmium.osm.Node):
            continue
        tags = {t.k: t.v for t in node.tags}
        name_en = tags.get("name:en", "")
        if tags.get("railway") == "subway_entrance" or name_en.startswith("Exit "):
            continue
        key = next((k for k in _PLACE_KEYS if k in tags), "")
        value = tags.get(key, "named point").replace("_", " ")
        what = key if value == "yes" else f"{value} {key}" if key == "entrance" else value
        places.append(Place("place", tags["name"], node.location.lat, node.location.lon, name_en, None, what))
    return places


_PLACE_KEYS = ("amenity", "barrier", "railway", "historic", "tourism", "man_made", "entrance", "highway", "shop")


class GazetteerCache:
    """A process's gazetteer (``Ctx.gazetteer``): the streets built once, on first use, by one thread while
    the others wait; the database's points (hospitals, stations) kept for ``points_ttl_s`` only, so that a
    new station is found seconds after it is added."""

    def __init__(self, points_ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.points_ttl_s = points_ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._gazetteer: Gazetteer | None = None
        self._points: tuple[float, NameIndex] | None = None

    def gazetteer(self, build: Callable[[], Gazetteer]) -> Gazetteer:
        if self._gazetteer is None:
            with self._lock:
                if self._gazetteer is None:
                    self._gazetteer = build()
        return self._gazetteer

    def points(self, load: Callable[[], Sequence[Place]]) -> NameIndex:
        cached, now = self._points, self.clock()
        if cached is None or now - cached[0] > self.points_ttl_s:
            cached = (now, NameIndex.of_places(load()))  # two threads may both load: the same answer
            self._points = cached
        return cached[1]
