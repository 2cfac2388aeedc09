"""The unit and incident state machines, exhaustively: every state x every event.

The expected tables below are the specification written out by hand (what a dispatcher and a crew may do
in each state); the test holds the code's tables to it, and checks that each refused event raises
InvalidTransition naming the current state, the event and the events allowed instead.
"""

from __future__ import annotations

from collections import deque

import pytest

from dispatch.core.errors import InvalidTransition
from dispatch.core.lifecycle import (
    ASSIGNABLE,
    BUSY,
    INCIDENT_EVENT_FOR_UNIT,
    INCIDENT_TRANSITIONS,
    OPEN_INCIDENT,
    STATUS_EVENT,
    UNIT_TRANSITIONS,
    IncidentEvent,
    UnitEvent,
    apply_incident,
    apply_unit,
)
from dispatch.core.types import IncidentStatus, UnitStatus

UNIT_SPEC: dict[str, dict[str, str]] = {
    "available": {"assign": "dispatched", "out_of_service": "out_of_service"},
    "dispatched": {"en_route": "en_route", "on_scene": "on_scene", "release": "available"},
    "en_route": {"on_scene": "on_scene", "release": "available"},
    "on_scene": {"transporting": "transporting", "available": "available", "returning": "returning"},
    "transporting": {"at_hospital": "at_hospital"},
    "at_hospital": {"returning": "returning", "available": "available"},
    "returning": {"assign": "dispatched", "available": "available", "out_of_service": "out_of_service"},
    "out_of_service": {"available": "available"},
}
INCIDENT_SPEC: dict[str, dict[str, str]] = {
    "received": {"assign": "dispatched", "cancel": "cancelled"},
    "dispatched": {"assign": "dispatched", "on_scene": "on_scene", "cancel": "cancelled", "unassigned": "received"},
    "on_scene": {"assign": "on_scene", "on_scene": "on_scene", "transporting": "transporting", "close": "closed"},
    "transporting": {"transporting": "transporting", "at_hospital": "at_hospital"},
    "at_hospital": {"at_hospital": "at_hospital", "close": "closed"},
    "closed": {},
    "cancelled": {},
}

UNIT_PAIRS = [(s, e) for s in UnitStatus for e in UnitEvent]
INCIDENT_PAIRS = [(s, e) for s in IncidentStatus for e in IncidentEvent]


def test_the_spec_covers_every_state() -> None:
    assert set(UNIT_SPEC) == {s.value for s in UnitStatus} == {s.value for s in UNIT_TRANSITIONS}
    assert set(INCIDENT_SPEC) == {s.value for s in IncidentStatus} == {s.value for s in INCIDENT_TRANSITIONS}
    assert len(UNIT_PAIRS) == 8 * 9 and len(INCIDENT_PAIRS) == 7 * 7


def _check_refusal(exc: InvalidTransition, what: str, state: str, event: str, allowed: list[str]) -> None:
    assert (exc.state, exc.event) == (state, event)
    assert sorted(exc.allowed) == sorted(allowed)
    msg = str(exc)
    assert msg.startswith(f"{what} is {state}: '{event}' is not allowed; allowed from {state}: "), msg
    if allowed:
        for e in allowed:
            assert e in msg.rsplit(": ", 1)[1], msg
    else:
        assert msg.endswith("none (the lifecycle has ended)"), msg


@pytest.mark.parametrize(("state", "event"), UNIT_PAIRS, ids=[f"{s.value}-{e.value}" for s, e in UNIT_PAIRS])
def test_every_unit_state_and_event(state: UnitStatus, event: UnitEvent) -> None:
    allowed = UNIT_SPEC[state.value]
    if event.value in allowed:
        assert apply_unit(state, event) is UnitStatus(allowed[event.value])
    else:
        with pytest.raises(InvalidTransition) as info:
            apply_unit(state, event)
        _check_refusal(info.value, "unit", state.value, event.value, list(allowed))


@pytest.mark.parametrize(("state", "event"), INCIDENT_PAIRS, ids=[f"{s.value}-{e.value}" for s, e in INCIDENT_PAIRS])
def test_every_incident_state_and_event(state: IncidentStatus, event: IncidentEvent) -> None:
    allowed = INCIDENT_SPEC[state.value]
    if event.value in allowed:
        assert apply_incident(state, event) is IncidentStatus(allowed[event.value])
    else:
        with pytest.raises(InvalidTransition) as info:
            apply_incident(state, event)
        _check_refusal(info.value, "incident", state.value, event.value, list(allowed))


def _reachable(start: str, spec: dict[str, dict[str, str]]) -> set[str]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in spec[todo.popleft()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_unit_state_is_reachable_and_leads_back_to_available() -> None:
    assert _reachable("available", UNIT_SPEC) == set(UNIT_SPEC)
    for state in UNIT_SPEC:
        assert "available" in _reachable(state, UNIT_SPEC), f"a unit in {state} can never be free again"


def test_every_open_incident_can_end_and_ended_ones_stay_ended() -> None:
    assert _reachable("received", INCIDENT_SPEC) == set(INCIDENT_SPEC)
    for state in OPEN_INCIDENT:
        assert {"closed", "cancelled"} & _reachable(state.value, INCIDENT_SPEC), state
    assert set(IncidentStatus) - OPEN_INCIDENT == {IncidentStatus.CLOSED, IncidentStatus.CANCELLED}
    for state in (IncidentStatus.CLOSED, IncidentStatus.CANCELLED):
        for event in IncidentEvent:
            with pytest.raises(InvalidTransition):
                apply_incident(state, event)


def test_assignable_and_busy_partition_the_unit_states() -> None:
    assert {s for s in UnitStatus if UnitEvent.ASSIGN in UNIT_TRANSITIONS[s]} == ASSIGNABLE
    assert ASSIGNABLE.isdisjoint(BUSY)
    assert set(UnitStatus) - ASSIGNABLE - BUSY == {UnitStatus.OUT_OF_SERVICE}
    # a busy unit is released only through its incident (cancel), never taken off the road by a status
    for state in BUSY:
        assert UnitEvent.OUT_OF_SERVICE not in UNIT_TRANSITIONS[state]


def test_reported_statuses_map_to_their_events() -> None:
    """Every status a crew can report is an event whose target is that status, wherever it is allowed."""
    assert set(STATUS_EVENT) == set(UnitStatus) - {UnitStatus.DISPATCHED}
    for status, event in STATUS_EVENT.items():
        targets = {table[event] for table in UNIT_TRANSITIONS.values() if event in table}
        assert targets == {status}, (status, targets)


def test_unit_statuses_move_the_incident_where_the_incident_allows_it() -> None:
    """The unit arriving, leaving with the patient and reaching the hospital moves a dispatched incident
    along the same path."""
    state = IncidentStatus.DISPATCHED
    for unit_status in (UnitStatus.ON_SCENE, UnitStatus.TRANSPORTING, UnitStatus.AT_HOSPITAL):
        state = apply_incident(state, INCIDENT_EVENT_FOR_UNIT[unit_status])
        assert state.value == unit_status.value
    assert apply_incident(state, IncidentEvent.CLOSE) is IncidentStatus.CLOSED


def test_refusal_message_is_readable() -> None:
    with pytest.raises(InvalidTransition) as info:
        apply_unit(UnitStatus.TRANSPORTING, UnitEvent.RELEASE)
    assert str(info.value) == "unit is transporting: 'release' is not allowed; allowed from transporting: at_hospital"
    with pytest.raises(InvalidTransition) as info2:
        apply_incident(IncidentStatus.CLOSED, IncidentEvent.CANCEL)
    assert str(info2.value) == (
        "incident is closed: 'cancel' is not allowed; allowed from closed: none (the lifecycle has ended)"
    )
