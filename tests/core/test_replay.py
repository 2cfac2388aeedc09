"""Rebuilding an incident from its events alone (the log is the record, the tables its projection).

The events here have the shapes the services write (dispatch/services/incidents.py and units.py); the API
suite rebuilds incidents from the real log of a running app and compares them with GET /incidents/{id}.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dispatch.core.errors import InvalidInput
from dispatch.core.replay import rebuild_incident

INCIDENT = {
    "id": 7,
    "status": "received",
    "caller_number": "0912345678",
    "location": {"lat": 21.0287, "lon": 105.8524, "address": "Hoan Kiem"},
    "complaint": "cardiac_arrest",
    "priority": "echo",
    "capability": "als",
    "notes": "",
    "cancel_reason": None,
}


def ev(seq: int, kind: str, unit_id: int | None = None, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "incident_id": 7, "unit_id": unit_id, "data": data}


def created(seq: int = 1, **fields: Any) -> dict[str, Any]:
    return ev(seq, "incident.created", incident={**INCIDENT, **fields})


def status(seq: int, unit_id: int, s: str, incident_status: str | None) -> dict[str, Any]:
    return ev(seq, "unit.status", unit_id, status=s, previous="x", incident_status=incident_status)


def test_a_call_from_intake_to_closed() -> None:
    log = [
        created(3),
        ev(5, "unit.assigned", 1, unit_status="dispatched", incident_status="dispatched", eta_s=300.0),
        status(6, 1, "en_route", "dispatched"),
        ev(8, "unit.position", 1, lat=21.03, lon=105.85),
        status(9, 1, "on_scene", "on_scene"),
        ev(10, "incident.note", text="patient breathing"),
        status(11, 1, "transporting", "transporting"),
        status(12, 1, "at_hospital", "at_hospital"),
        status(14, 1, "available", "closed"),
    ]
    state = rebuild_incident(log)
    assert state["status"] == "closed"
    assert state["units"] == {1: "available"}
    assert state["notes"] == "patient breathing"
    assert state["last_seq"] == 14
    assert {k: state[k] for k in ("id", "complaint", "priority", "caller_number", "location")} == {
        "id": 7,
        "complaint": "cardiac_arrest",
        "priority": "echo",
        "caller_number": "0912345678",
        "location": INCIDENT["location"],
    }


def test_notes_append_to_those_taken_at_intake() -> None:
    log = [
        created(notes="caller at the lake"),
        ev(2, "incident.note", text="door code 12"),
        ev(3, "incident.note", text="dog"),
    ]
    assert rebuild_incident(log)["notes"] == "caller at the lake\ndoor code 12\ndog"


def test_cancel_releases_and_records_the_reason() -> None:
    log = [
        created(),
        ev(2, "unit.assigned", 4, unit_status="dispatched", incident_status="dispatched"),
        ev(3, "incident.cancelled", reason="false alarm", released_units=[4]),
        ev(4, "unit.status", 4, status="available", cause="incident cancelled"),
    ]
    state = rebuild_incident(log)
    assert (state["status"], state["cancel_reason"], state["units"]) == ("cancelled", "false alarm", {4: "available"})


def test_two_units_the_incident_follows_the_events() -> None:
    log = [
        created(),
        ev(2, "unit.assigned", 1, unit_status="dispatched", incident_status="dispatched"),
        ev(3, "unit.assigned", 2, unit_status="dispatched", incident_status="dispatched"),
        status(4, 2, "on_scene", "on_scene"),
        status(5, 1, "en_route", "on_scene"),
        status(6, 2, "available", None),  # the first unit leaves; the incident is still open
    ]
    state = rebuild_incident(log)
    assert state["status"] == "on_scene" and state["units"] == {1: "en_route", 2: "available"}


def test_unknown_kinds_are_skipped_but_counted() -> None:
    state = rebuild_incident([created(), ev(2, "hospital.diversion", diversion=True), ev(3, "unit.position")])
    assert state["status"] == "received" and state["last_seq"] == 3


def test_input_events_are_not_changed() -> None:
    log = [created(notes="a"), ev(2, "incident.note", text="b"), ev(3, "incident.cancelled", reason="r")]
    before = copy.deepcopy(log)
    rebuild_incident(log)
    assert log == before


def test_events_are_read_from_any_iterable_once() -> None:
    state = rebuild_incident(e for e in [created(), ev(2, "incident.note", text="x")])
    assert state["notes"] == "x"


@pytest.mark.parametrize(
    ("log", "words"),
    [
        ([created(5), ev(4, "incident.note", text="x")], "events out of order: seq 4 after 5"),
        ([created(5), ev(5, "incident.note", text="x")], "events out of order: seq 5 after 5"),
        ([ev(1, "incident.note", text="x"), created(2)], "event 1 (incident.note) comes before incident.created"),
        ([], "no incident.created event"),
        ([created(0)], "events out of order: seq 0 after 0"),
    ],
)
def test_bad_logs_are_refused_with_the_reason(log: list[dict[str, Any]], words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        rebuild_incident(log)
    assert words in str(info.value)
