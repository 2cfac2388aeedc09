"""Rebuild an incident's state from the event log alone (the log is the record; tables are its projection)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dispatch.core.errors import InvalidInput


def rebuild_incident(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Fold the events of one incident, in sequence order, into its state.

    Returns the incident as ``incident.created`` recorded it, with ``status``, ``notes``, ``cancel_reason``,
    the assigned ``units`` (unit id -> last status) and the ``last_seq`` applied.
    """
    state: dict[str, Any] | None = None
    last = 0
    for ev in events:
        seq = int(ev["seq"])
        if seq <= last:
            raise InvalidInput(f"events out of order: seq {seq} after {last}")
        last = seq
        kind, data = ev["kind"], ev.get("data") or {}
        if kind == "incident.created":
            state = dict(data["incident"])
            state["units"] = {}
        elif state is None:
            raise InvalidInput(f"event {seq} ({kind}) comes before incident.created")
        elif kind == "unit.assigned":
            state["units"][ev["unit_id"]] = data["unit_status"]
            state["status"] = data["incident_status"]
        elif kind == "unit.status":
            state["units"][ev["unit_id"]] = data["status"]
            if data.get("incident_status"):
                state["status"] = data["incident_status"]
        elif kind == "incident.cancelled":
            state["status"] = "cancelled"
            state["cancel_reason"] = data["reason"]
        elif kind == "incident.note":
            state["notes"] = (state["notes"] + "\n" if state.get("notes") else "") + data["text"]
        if state is not None:
            state["last_seq"] = seq
    if state is None:
        raise InvalidInput("no incident.created event: nothing to rebuild")
    return state
