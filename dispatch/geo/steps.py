"""Route geometry (GeoJSON LineString) and turn-by-turn steps with street names."""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dispatch.geo.graph import F64, I64, RoadGraph
from dispatch.geo.snap import Snap

if TYPE_CHECKING:
    from dispatch.geo.routing import End, Router


@dataclass(slots=True)
class Piece:
    """A stretch of the route along one arc (a part of it at the route's two ends)."""

    arc: int
    x: F64
    y: F64
    length_m: float
    time_ms: float


#: per graph (keyed by id, dropped when the graph is collected): the street-name *text* id of each name id,
#: shifted by one so that index 0 is the unnamed road (name id -1); names spelled alike share a text id
_TEXT_IDS: dict[int, I64] = {}
_TEXT_LOCK = threading.Lock()


def _text_ids(g: RoadGraph) -> I64:
    ids = _TEXT_IDS.get(id(g))
    if ids is None:
        texts: dict[str, int] = {"": 0}
        ids = np.fromiter(
            (texts.setdefault(name, len(texts)) for name in ["", *g.names]), dtype=np.int64, count=len(g.names) + 1
        )
        with _TEXT_LOCK:
            if id(g) not in _TEXT_IDS:
                _TEXT_IDS[id(g)] = ids
                weakref.finalize(g, _TEXT_IDS.pop, id(g), None)
    return ids


def _cut(router: Router, edge: int, f_from: float, f_to: float) -> tuple[F64, F64]:
    """The edge's polyline (local metres) between two fractions of its length, in travel order."""
    x, y = router.snapper.edge_xy(edge)
    seg = np.hypot(np.diff(x), np.diff(y))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    lo, hi = sorted((f_from * total, f_to * total))
    inner = (cum > lo) & (cum < hi)
    xs = np.concatenate([[np.interp(lo, cum, x)], x[inner], [np.interp(hi, cum, x)]])
    ys = np.concatenate([[np.interp(lo, cum, y)], y[inner], [np.interp(hi, cum, y)]])
    if f_from > f_to:
        xs, ys = xs[::-1], ys[::-1]
    return xs, ys


def _full_arcs(router: Router, arcs: I64) -> tuple[F64, F64, I64]:
    """The whole polylines of ``arcs`` in travel order, end to end in one array pair, and where each starts.

    One gather over the edge geometry: arc k's points are ``x[bounds[k]:bounds[k + 1]]``.
    """
    g = router.graph
    edges = g.arc_edge[arcs]
    first = g.geom_offsets[edges]
    count = g.geom_offsets[edges + 1] - first
    bounds = np.zeros(len(arcs) + 1, dtype=np.int64)
    np.cumsum(count, out=bounds[1:])
    rev = g.arc_reversed[arcs]
    # a reversed arc walks its edge's points from the last one down
    base = np.where(rev, first + count - 1, first)
    step = np.where(rev, -1, 1)
    owner = np.repeat(np.arange(len(arcs)), count)
    along = np.arange(int(bounds[-1]), dtype=np.int64) - bounds[owner]
    src = base[owner] + step[owner] * along
    return router.snapper.x[src], router.snapper.y[src], bounds


def route_pieces(
    router: Router,
    o: Snap,
    d: Snap,
    a: End | None,
    arcs: list[int],
    b: End | None,
    direct: tuple[float, float, int] | None,
    w: npt.NDArray[np.int32],
) -> list[Piece]:
    g = router.graph
    if a is None or b is None:
        assert direct is not None
        x, y = _cut(router, o.edge, o.fraction, d.fraction)
        return [Piece(direct[2], x, y, direct[1], direct[0])]
    x, y = _cut(router, o.edge, o.fraction, 0.0 if a.reversed else 1.0)
    pieces = [Piece(a.arc, x, y, a.length_m, a.cost_ms)]
    if arcs:
        ids = np.asarray(arcs, dtype=np.int64)
        lengths = g.arc_length_m[ids]
        keep = lengths > 0.05  # a stretch of no length adds nothing to the line or the steps
        ids, lengths = ids[keep], lengths[keep]
        xs, ys, bounds = _full_arcs(router, ids)
        starts = bounds.tolist()
        for k, (arc, metres, ms) in enumerate(zip(ids.tolist(), lengths.tolist(), w[ids].tolist(), strict=True)):
            lo, hi = starts[k], starts[k + 1]
            pieces.append(Piece(arc, xs[lo:hi], ys[lo:hi], metres, float(ms)))
    if b.length_m > 0.05:
        x, y = _cut(router, d.edge, 1.0 if b.reversed else 0.0, d.fraction)
        pieces.append(Piece(b.arc, x, y, b.length_m, b.cost_ms))
    return pieces


def route_geometry(router: Router, pieces: list[Piece]) -> dict[str, Any]:
    xs = np.concatenate([p.x for p in pieces])
    ys = np.concatenate([p.y for p in pieces])
    keep = np.ones(len(xs), dtype=bool)
    keep[1:] = (np.abs(np.diff(xs)) > 1e-6) | (np.abs(np.diff(ys)) > 1e-6)
    lat, lon = router.snapper.proj.inverse(xs[keep], ys[keep])
    coords: list[list[float]] = np.column_stack([_round7(lon), _round7(lat)]).tolist()
    if len(coords) == 1:
        coords.append(coords[0])
    return {"type": "LineString", "coordinates": coords}


def _round7(v: F64) -> F64:
    """``round(x, 7)`` of every value, as Python rounds it (the nearest double to the decimal rounded from the
    exact value), vectorised: rint(x * 1e7) / 1e7 agrees except where x * 1e7 lies within its own rounding
    error of a half (at most 1.2e-7 for |x| <= 180); those few are rounded one by one."""
    scaled = v * 1e7
    out: F64 = np.rint(scaled) / 1e7
    near_half = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    for k in near_half.tolist():
        out[k] = round(float(v[k]), 7)
    return out


def _bearing(dx: float, dy: float) -> float:
    return (math.degrees(math.atan2(dx, dy)) + 360.0) % 360.0


def modifier(turn_deg: float) -> str:
    """OSRM-style turn modifier for a heading change in degrees (-180..180, positive to the right)."""
    a = abs(turn_deg)
    side = "right" if turn_deg > 0 else "left"
    if a < 20:
        return "straight"
    if a < 45:
        return f"slight {side}"
    if a < 135:
        return side
    if a < 170:
        return f"sharp {side}"
    return "uturn"


def route_steps(router: Router, pieces: list[Piece]) -> list[dict[str, Any]]:
    """Group pieces by street name; one step per street, with the turn onto it.

    The heading onto a street is that of its first segment longer than 1 cm, the heading off it that of its
    last one (segments between two pieces do not count); only the group ends are looked at.
    """
    g = router.graph
    n = len(pieces)
    arc_ids = np.fromiter((p.arc for p in pieces), dtype=np.int64, count=n)
    name_ids = g.edge_name[g.arc_edge[arc_ids]].astype(np.int64)
    text = _text_ids(g)[name_ids + 1]
    first = np.flatnonzero(np.concatenate([[True], text[1:] != text[:-1]]))  # first piece of each group
    group_end = [*first[1:].tolist(), n]
    # every point of the route, piece after piece; segment k runs from point k to point k + 1
    xs = np.concatenate([p.x for p in pieces])
    ys = np.concatenate([p.y for p in pieces])
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(p.x) for p in pieces), dtype=np.int64, count=n), out=bounds[1:])
    dx, dy = np.diff(xs), np.diff(ys)
    real = np.hypot(dx, dy) > 0.01
    real[bounds[1:-1] - 1] = False  # from one piece's last point to the next piece's first
    segs = np.flatnonzero(real)
    bounds_l = bounds.tolist()
    lengths = [p.length_m for p in pieces]
    times = [p.time_ms for p in pieces]

    def heading(k: int) -> float:
        return _bearing(float(dx[k]), float(dy[k]))

    steps: list[dict[str, Any]] = []
    prev_bearing: float | None = None
    for i, (s, e) in enumerate(zip(first.tolist(), group_end, strict=True)):
        lo, hi = bounds_l[s], bounds_l[e] - 1  # the group's segments: lo <= k < hi
        j = int(np.searchsorted(segs, lo))
        after = heading(int(segs[j])) if j < len(segs) and segs[j] < hi else None
        name_id = int(name_ids[s])
        name = g.names[name_id] if name_id >= 0 else ""
        name_en = g.names_en[name_id] if name_id >= 0 else ""
        if i == 0:
            kind, mod = "depart", None
            text_ = f"Head {_compass(after)} on {name or 'the unnamed road'}"
        else:
            turn = 0.0 if prev_bearing is None or after is None else ((after - prev_bearing + 540) % 360) - 180
            mod = modifier(turn)
            kind = "continue" if mod == "straight" else "turn"
            onto = name or "the unnamed road"
            text_ = f"Continue onto {onto}" if kind == "continue" else f"Turn {mod} onto {onto}"
            if mod == "uturn":
                text_ = f"Make a U-turn onto {onto}"
        steps.append(
            _step(
                router,
                pieces[s],
                kind,
                mod,
                prev_bearing,
                after,
                name,
                name_en,
                text_,
                sum(lengths[s:e]),
                sum(times[s:e]),
            )
        )
        j = int(np.searchsorted(segs, hi)) - 1
        if j >= 0 and segs[j] >= lo:
            prev_bearing = heading(int(segs[j]))
    last = pieces[-1]
    steps.append(
        _step(
            router,
            last,
            "arrive",
            None,
            prev_bearing,
            None,
            "",
            "",
            "Arrive at the destination",
            0.0,
            0.0,
            at_end=True,
        )
    )
    return steps


def _step(
    router: Router,
    p: Piece,
    kind: str,
    mod: str | None,
    before: float | None,
    after: float | None,
    name: str,
    name_en: str,
    text: str,
    metres: float,
    ms: float,
    *,
    at_end: bool = False,
) -> dict[str, Any]:
    i = -1 if at_end else 0
    lat, lon = router.snapper.proj.inverse(np.array(p.x[i]), np.array(p.y[i]))
    maneuver: dict[str, Any] = {"type": kind, "location": [round(float(lon), 7), round(float(lat), 7)]}
    if mod:
        maneuver["modifier"] = mod
    if before is not None:
        maneuver["bearing_before"] = round(before)
    if after is not None:
        maneuver["bearing_after"] = round(after)
    return {
        "instruction": text,
        "name": name,
        "name_en": name_en,
        "distance_m": round(metres, 1),
        "duration_s": round(ms / 1000.0, 1),
        "maneuver": maneuver,
    }


def _compass(bearing: float | None) -> str:
    if bearing is None:
        return "off"
    names = ["north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest"]
    return names[int((bearing + 22.5) // 45) % 8]
