"""Response-time reports and the NEMSIS-named CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from dispatch.core.errors import InvalidInput
from dispatch.core.stats import percentile
from dispatch.core.types import Priority
from dispatch.db.models import Assignment, Incident, Unit
from dispatch.services.context import Ctx

#: NEMSIS v3.5 element names for the CSV columns
ETIMES = (
    ("eTimes.01 PSAP Call Date/Time", None, "psap_call_at"),
    ("eTimes.03 Unit Notified by Dispatch Date/Time", "unit_notified_at", None),
    ("eTimes.04 Dispatch Acknowledged Date/Time", "acknowledged_at", None),
    ("eTimes.05 Unit En Route Date/Time", "en_route_at", None),
    ("eTimes.06 Unit Arrived on Scene Date/Time", "on_scene_at", None),
    ("eTimes.09 Unit Left Scene Date/Time", "left_scene_at", None),
    ("eTimes.11 Patient Arrived at Destination Date/Time", "at_destination_at", None),
    ("eTimes.12 Destination Patient Transfer of Care Date/Time", "transfer_of_care_at", None),
    ("eTimes.13 Unit Back in Service Date/Time", "back_in_service_at", None),
    ("eTimes.14 Unit Canceled Date/Time", "cancelled_at", "cancelled_at"),
)


def _window(since: datetime | None, until: datetime | None) -> None:
    for name, v in (("since", since), ("until", until)):
        if v is not None and v.tzinfo is None:
            raise InvalidInput(f"{name} must carry a time zone, e.g. 2026-11-01T00:00:00+07:00")
    if since and until and since >= until:
        raise InvalidInput("since must be before until")


def response_times(
    ctx: Ctx, *, since: datetime | None = None, until: datetime | None = None, standard_s: float = 480.0
) -> dict[str, Any]:
    """Per priority: call-to-first-arrival times (mean, median, 90th percentile) and their parts."""
    _window(since, until)
    with ctx.reader() as s:
        q = select(Incident).where(Incident.status != "cancelled")
        if since:
            q = q.where(col(Incident.psap_call_at) >= since)
        if until:
            q = q.where(col(Incident.psap_call_at) < until)
        incidents = list(s.exec(q))
        ids = [i.id for i in incidents]
        by_inc: dict[int, list[Assignment]] = {}
        if ids:
            for a in s.exec(select(Assignment).where(col(Assignment.incident_id).in_(ids))):
                by_inc.setdefault(a.incident_id, []).append(a)
    rows: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for inc in incidents:
        counts[inc.priority] = counts.get(inc.priority, 0) + 1
        arrived = [a for a in by_inc.get(inc.id or 0, []) if a.on_scene_at is not None]
        if not arrived:
            continue
        first = min(arrived, key=lambda a: a.on_scene_at or inc.psap_call_at)
        assert first.on_scene_at is not None
        parts = rows.setdefault(
            inc.priority, {"response_s": [], "call_to_notified_s": [], "turnout_s": [], "travel_s": []}
        )
        parts["response_s"].append((first.on_scene_at - inc.psap_call_at).total_seconds())
        parts["call_to_notified_s"].append((first.unit_notified_at - inc.psap_call_at).total_seconds())
        if first.en_route_at is not None:
            parts["turnout_s"].append((first.en_route_at - first.unit_notified_at).total_seconds())
            parts["travel_s"].append((first.on_scene_at - first.en_route_at).total_seconds())
    out = []
    for p in Priority:
        parts = rows.get(p.value, {})
        resp = parts.get("response_s", [])
        entry: dict[str, Any] = {"priority": p.value, "incidents": counts.get(p.value, 0), "arrived": len(resp)}
        for name, values in parts.items():
            entry[name] = {
                "mean": round(sum(values) / len(values), 1) if values else None,
                "p50": percentile(values, 50),
                "p90": percentile(values, 90),
            }
        if resp:
            entry["within_standard_share"] = round(sum(v <= standard_s for v in resp) / len(resp), 3)
        out.append(entry)
    return {
        "standard_s": standard_s,
        "method": "nearest-rank percentiles of PSAP call (eTimes.01) to first unit on scene (eTimes.06)",
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "by_priority": out,
    }


def export_csv(ctx: Ctx, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[str]:
    """One row per unit response (assignment), incidents without one get a row of their own."""
    _window(since, until)
    with ctx.reader() as s:
        q = select(Incident).order_by(col(Incident.id))
        if since:
            q = q.where(col(Incident.psap_call_at) >= since)
        if until:
            q = q.where(col(Incident.psap_call_at) < until)
        incidents = list(s.exec(q))
        assignments: dict[int, list[Assignment]] = {}
        for a in s.exec(select(Assignment).order_by(col(Assignment.id))):
            assignments.setdefault(a.incident_id, []).append(a)
        callsigns = {u.id: u.callsign for u in s.exec(select(Unit))}
    head = [
        "incident_id",
        "priority",
        "complaint",
        "capability",
        "status",
        "lat",
        "lon",
        "address",
        "unit",
        "assignment_id",
    ] + [name for name, _, _ in ETIMES]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    yield buf.getvalue()
    for inc in incidents:
        rows: list[Assignment | None] = list(assignments.get(inc.id or 0, [])) or [None]
        for asg in rows:
            buf.seek(0)
            buf.truncate()
            times = []
            for _, a_field, i_field in ETIMES:
                v = getattr(asg, a_field) if asg is not None and a_field else None
                if v is None and i_field:
                    v = getattr(inc, i_field)
                times.append(v.isoformat() if v else "")
            w.writerow(
                [
                    inc.id,
                    inc.priority,
                    inc.complaint,
                    inc.capability,
                    inc.status,
                    inc.lat,
                    inc.lon,
                    inc.address,
                    callsigns.get(asg.unit_id, "") if asg else "",
                    asg.id if asg else "",
                ]
                + times
            )
            yield buf.getvalue()
