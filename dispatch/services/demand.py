"""Demand for planning from the database: the incident history, read into the same calls as a call log file."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlmodel import col, select

from dispatch.core.errors import InvalidInput
from dispatch.core.types import Priority
from dispatch.db.models import Incident
from dispatch.geo.demand import CallLog, locate_calls
from dispatch.geo.routing import Router
from dispatch.services.context import Ctx

HISTORY = "incident history (database)"


def incident_history(
    ctx: Ctx, *, router: Router, since: datetime | None = None, until: datetime | None = None
) -> CallLog:
    """Every incident taken (cancelled ones too: each was a call), by its PSAP call time (eTimes.01), optionally
    from ``since`` (inclusive) to ``until`` (exclusive), placed on ``router``'s road graph."""
    for name, t in (("since", since), ("until", until)):
        if t is not None and t.tzinfo is None:
            raise InvalidInput(f"{name} must carry a time zone (e.g. 2024-01-01T00:00:00+07:00)")
    if since is not None and until is not None and until <= since:
        raise InvalidInput(f"the date range is empty: until {until.isoformat()} is not after since {since.isoformat()}")
    call_at = col(Incident.psap_call_at)
    q = select(  # type: ignore[call-overload]  # sqlmodel types select() up to four columns
        call_at, col(Incident.lat), col(Incident.lon), col(Incident.priority), col(Incident.complaint)
    ).order_by(call_at)
    if since is not None:
        q = q.where(call_at >= since)
    if until is not None:
        q = q.where(call_at < until)
    with ctx.reader() as s:
        rows = list(s.exec(q))
    known = {p.value: p for p in Priority}
    times = np.array([np.datetime64(r[0].replace(tzinfo=None), "ns") for r in rows], dtype="datetime64[ns]")
    window = ""
    if since is not None or until is not None:
        window = f", {since.date() if since else '...'} to {until.date() if until else '...'}"
    return locate_calls(
        router,
        times=times,
        lat=np.array([r[1] for r in rows], dtype=np.float64),
        lon=np.array([r[2] for r in rows], dtype=np.float64),
        priorities=[known.get(r[3]) for r in rows],
        priority_text=[r[3] for r in rows],
        source=HISTORY[:-1] + window + ")" if window else HISTORY,
        timezone=router.tz.key,
        complaints=[r[4] for r in rows],
    )
