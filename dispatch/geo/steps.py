"""Route geometry (GeoJSON LineString) and turn-by-turn steps with street names."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from dispatch.geo.graph import F64
from dispatch.geo.snap import Snap

if TYPE_CHECKING:
    from dispatch.geo.routing import End, Router


@dataclass
class Piece:
    """A stretch of the route along one arc (a part of it at the route's two ends)."""

    arc: int
    x: F64
    y: F64
    length_m: float
    time_ms: float


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
    pieces = []
    x, y = _cut(router, o.edge, o.fraction, 0.0 if a.reversed else 1.0)
    pieces.append(Piece(a.arc, x, y, a.length_m, a.cost_ms))
    for arc in arcs:
        e = int(g.arc_edge[arc])
        rev = bool(g.arc_reversed[arc])
        x, y = _cut(router, e, 1.0 if rev else 0.0, 0.0 if rev else 1.0)
        pieces.append(Piece(arc, x, y, float(g.arc_length_m[arc]), float(w[arc])))
    x, y = _cut(router, d.edge, 1.0 if b.reversed else 0.0, d.fraction)
    pieces.append(Piece(b.arc, x, y, b.length_m, b.cost_ms))
    return [p for p in pieces if p.length_m > 0.05 or p is pieces[0]]


def route_geometry(router: Router, pieces: list[Piece]) -> dict[str, Any]:
    xs = np.concatenate([p.x for p in pieces])
    ys = np.concatenate([p.y for p in pieces])
    keep = np.ones(len(xs), dtype=bool)
    keep[1:] = (np.abs(np.diff(xs)) > 1e-6) | (np.abs(np.diff(ys)) > 1e-6)
    lat, lon = router.snapper.proj.inverse(xs[keep], ys[keep])
    coords = [[round(float(lo), 7), round(float(la), 7)] for la, lo in zip(lat, lon, strict=True)]
    if len(coords) == 1:
        coords.append(coords[0])
    return {"type": "LineString", "coordinates": coords}


def _bearing(dx: float, dy: float) -> float:
    return (math.degrees(math.atan2(dx, dy)) + 360.0) % 360.0


def _end_bearing(p: Piece, at_start: bool) -> float | None:
    """Heading of the piece's first (or last) segment longer than 1 cm; None for a piece of no length."""
    dx, dy = np.diff(p.x), np.diff(p.y)
    real = np.nonzero(np.hypot(dx, dy) > 0.01)[0]
    if len(real) == 0:
        return None
    k = int(real[0] if at_start else real[-1])
    return _bearing(float(dx[k]), float(dy[k]))


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
    """Group pieces by street name; one step per street, with the turn onto it."""
    g = router.graph

    def street(p: Piece) -> str:
        name_id = int(g.edge_name[g.arc_edge[p.arc]])
        return g.names[name_id] if name_id >= 0 else ""

    groups: list[list[Piece]] = []
    for p in pieces:
        if groups and street(groups[-1][-1]) == street(p):
            groups[-1].append(p)
        else:
            groups.append([p])
    steps: list[dict[str, Any]] = []
    prev_bearing: float | None = None
    for i, grp in enumerate(groups):
        name_id = int(g.edge_name[g.arc_edge[grp[0].arc]])
        name = g.names[name_id] if name_id >= 0 else ""
        name_en = g.names_en[name_id] if name_id >= 0 else ""
        after = next((b for b in (_end_bearing(p, at_start=True) for p in grp) if b is not None), None)
        if i == 0:
            kind, mod = "depart", None
            text = f"Head {_compass(after)} on {name or 'the unnamed road'}"
        else:
            turn = 0.0 if prev_bearing is None or after is None else ((after - prev_bearing + 540) % 360) - 180
            mod = modifier(turn)
            kind = "continue" if mod == "straight" else "turn"
            onto = name or "the unnamed road"
            text = f"Continue onto {onto}" if kind == "continue" else f"Turn {mod} onto {onto}"
            if mod == "uturn":
                text = f"Make a U-turn onto {onto}"
        steps.append(
            _step(
                router,
                grp[0],
                kind,
                mod,
                prev_bearing,
                after,
                name,
                name_en,
                text,
                sum(p.length_m for p in grp),
                sum(p.time_ms for p in grp),
            )
        )
        for p in reversed(grp):
            b = _end_bearing(p, at_start=False)
            if b is not None:
                prev_bearing = b
                break
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
