"""Seeded synthetic calls: a Poisson process by hour of day and by place.

The number of calls in each hour of each day is Poisson with mean ``calls_per_day x HOURLY[hour]``; each call
falls at a uniform moment of its hour and at a junction drawn in proportion to the demand there (so each cell
of the map receives a Poisson stream with a rate in proportion to its demand: the road-length proxy, a call
log's history or a population file). Priorities follow ``mix``; each call gets a triage card of its priority.

The defaults are documented assumptions (docs/simulation.md), to be replaced by a service's own figures:
:data:`HOURLY` is the usual urban EMS day (fewest calls at 4-6 am, most late morning and early evening),
:data:`PRIORITY_MIX` a mix in which one call in four needs a delta response.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from dispatch.core.errors import InvalidInput
from dispatch.core.types import LatLon, Priority
from dispatch.sim.model import SimCall, card_for

_RAW: tuple[float, ...] = (2.9, 2.5, 2.2, 2.0, 1.9, 2.0, 2.6, 3.6, 4.6, 5.2, 5.5, 5.6)
_RAW += (5.4, 5.2, 5.1, 5.0, 5.0, 5.1, 5.2, 5.0, 4.6, 4.1, 3.6, 3.1)
#: share of a day's calls in each hour 0..23 (sums to 1)
HOURLY: tuple[float, ...] = tuple(v / sum(_RAW) for v in _RAW)
PRIORITY_MIX: dict[Priority, float] = {
    Priority.ECHO: 0.02,
    Priority.DELTA: 0.25,
    Priority.CHARLIE: 0.20,
    Priority.BRAVO: 0.15,
    Priority.ALPHA: 0.30,
    Priority.OMEGA: 0.08,
}


def check_mix(mix: Mapping[Priority, float]) -> dict[Priority, float]:
    if not mix or any(not (math.isfinite(v) and v >= 0) for v in mix.values()) or sum(mix.values()) <= 0:
        raise InvalidInput("the priority mix needs shares >= 0 that add up to more than 0, e.g. echo=2,delta=25")
    total = sum(mix.values())
    return {p: v / total for p, v in mix.items() if v > 0}


def parse_mix(text: str) -> dict[Priority, float]:
    """``echo=2,delta=25,charlie=20,...`` (shares, scaled to add up to 1)."""
    out: dict[Priority, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[Priority(name.strip().lower())] = float(value)
        except ValueError:
            raise InvalidInput(
                f"priority mix {text!r}: {part.strip()!r} is not PRIORITY=SHARE with a priority of "
                f"{', '.join(p.value for p in Priority)}"
            ) from None
    return check_mix(out)


def generate_calls(
    points: Sequence[LatLon],
    weights: Sequence[float] | npt.NDArray[np.float64],
    *,
    calls_per_day: float,
    days: float,
    seed: int = 1,
    hourly: Sequence[float] = HOURLY,
    mix: Mapping[Priority, float] = PRIORITY_MIX,
    start_s_of_day: float = 0.0,
) -> list[SimCall]:
    """Calls over ``days`` days (fractions of a day end the stream early), numbered from 1 in time order, in
    seconds after the start; ``start_s_of_day`` says when in the local day the start falls (the hourly profile
    follows the clock: a start at noon begins with the noon rate)."""
    if not 0.0 <= start_s_of_day < 86400.0:
        raise InvalidInput(f"start_s_of_day = {start_s_of_day}: give seconds after midnight, 0 to 86399")
    if not 0 < calls_per_day <= 1_000_000:
        raise InvalidInput(f"calls per day = {calls_per_day:g}: give more than 0 and at most 1,000,000")
    if not 0 < days <= 3660:
        raise InvalidInput(f"days = {days:g}: give more than 0 and at most 3660")
    if len(hourly) != 24 or any(v < 0 for v in hourly) or sum(hourly) <= 0:
        raise InvalidInput("the hourly profile needs 24 shares >= 0, not all 0")
    w = np.asarray(weights, dtype=np.float64)
    if len(points) == 0 or w.shape != (len(points),) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise InvalidInput("demand needs one finite weight >= 0 per place, not all 0")
    shares = check_mix(mix)
    rng = np.random.default_rng(seed)
    hour_share = np.asarray(hourly, dtype=np.float64) / float(sum(hourly))
    # hours of the clock from the midnight before the start, then shifted so that 0 is the start
    n_hours = math.ceil((days * 86400.0 + start_s_of_day) / 3600.0)
    rate = np.tile(hour_share, math.ceil(n_hours / 24))[:n_hours] * calls_per_day
    counts = rng.poisson(rate)
    starts = np.repeat(np.arange(n_hours) * 3600.0, counts)
    times = starts + rng.uniform(0.0, 3600.0, size=len(starts)) - start_s_of_day
    times = np.sort(times[(times >= 0.0) & (times < days * 86400.0)])
    where = rng.choice(len(points), size=len(times), p=w / w.sum())
    prios = list(shares)
    which = rng.choice(len(prios), size=len(times), p=np.array([shares[p] for p in prios]))
    cards = random.Random(seed)
    return [
        SimCall(i + 1, float(t), points[int(k)], prios[int(q)], card_for(prios[int(q)], cards))
        for i, (t, k, q) in enumerate(zip(times.tolist(), where.tolist(), which.tolist(), strict=True))
    ]
