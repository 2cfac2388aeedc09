"""Response-time statistics, as EMS reports them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (the method NFPA 1710 and NHS ARP reports use): the smallest value with at least
    q % of the values at or below it. None for no values."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is out of range: it must be more than 0 and at most 100")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
