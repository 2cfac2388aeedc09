"""Incident and unit lifecycles as explicit state machines.

``apply_unit(state, event)`` and ``apply_incident(state, event)`` return the next state or raise
:class:`InvalidTransition` naming the current state and the events allowed in it.
"""

from __future__ import annotations

from enum import StrEnum

from dispatch.core.errors import InvalidTransition
from dispatch.core.types import IncidentStatus as I
from dispatch.core.types import UnitStatus as U


class UnitEvent(StrEnum):
    ASSIGN = "assign"  # a dispatcher assigns the unit to an incident
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    TRANSPORTING = "transporting"  # patient loaded, leaving the scene
    AT_HOSPITAL = "at_hospital"
    RETURNING = "returning"  # handed over, driving back
    AVAILABLE = "available"  # back in service (from the scene, the hospital, the road or the station)
    RELEASE = "release"  # the assignment is cancelled: free again
    OUT_OF_SERVICE = "out_of_service"


UNIT_TRANSITIONS: dict[U, dict[UnitEvent, U]] = {
    U.AVAILABLE: {UnitEvent.ASSIGN: U.DISPATCHED, UnitEvent.OUT_OF_SERVICE: U.OUT_OF_SERVICE},
    U.DISPATCHED: {UnitEvent.EN_ROUTE: U.EN_ROUTE, UnitEvent.ON_SCENE: U.ON_SCENE, UnitEvent.RELEASE: U.AVAILABLE},
    U.EN_ROUTE: {UnitEvent.ON_SCENE: U.ON_SCENE, UnitEvent.RELEASE: U.AVAILABLE},
    U.ON_SCENE: {
        UnitEvent.TRANSPORTING: U.TRANSPORTING,
        UnitEvent.AVAILABLE: U.AVAILABLE,
        UnitEvent.RETURNING: U.RETURNING,
    },
    U.TRANSPORTING: {UnitEvent.AT_HOSPITAL: U.AT_HOSPITAL},
    U.AT_HOSPITAL: {UnitEvent.RETURNING: U.RETURNING, UnitEvent.AVAILABLE: U.AVAILABLE},
    U.RETURNING: {
        UnitEvent.ASSIGN: U.DISPATCHED,
        UnitEvent.AVAILABLE: U.AVAILABLE,
        UnitEvent.OUT_OF_SERVICE: U.OUT_OF_SERVICE,
    },
    U.OUT_OF_SERVICE: {UnitEvent.AVAILABLE: U.AVAILABLE},
}

#: statuses from which a unit can take a new call (recommendation considers only these)
ASSIGNABLE = frozenset({U.AVAILABLE, U.RETURNING})
#: statuses in which a unit is bound to an incident
BUSY = frozenset({U.DISPATCHED, U.EN_ROUTE, U.ON_SCENE, U.TRANSPORTING, U.AT_HOSPITAL})


class IncidentEvent(StrEnum):
    ASSIGN = "assign"
    ON_SCENE = "on_scene"
    TRANSPORTING = "transporting"
    AT_HOSPITAL = "at_hospital"
    CLOSE = "close"
    CANCEL = "cancel"
    UNASSIGNED = "unassigned"  # the last assigned unit was released before arriving


_OPEN = (I.RECEIVED, I.DISPATCHED, I.ON_SCENE, I.TRANSPORTING, I.AT_HOSPITAL)
INCIDENT_TRANSITIONS: dict[I, dict[IncidentEvent, I]] = {
    I.RECEIVED: {IncidentEvent.ASSIGN: I.DISPATCHED, IncidentEvent.CANCEL: I.CANCELLED},
    I.DISPATCHED: {
        IncidentEvent.ASSIGN: I.DISPATCHED,
        IncidentEvent.ON_SCENE: I.ON_SCENE,
        IncidentEvent.CANCEL: I.CANCELLED,
        IncidentEvent.UNASSIGNED: I.RECEIVED,
    },
    I.ON_SCENE: {
        IncidentEvent.ASSIGN: I.ON_SCENE,
        IncidentEvent.ON_SCENE: I.ON_SCENE,
        IncidentEvent.TRANSPORTING: I.TRANSPORTING,
        IncidentEvent.CLOSE: I.CLOSED,
    },
    I.TRANSPORTING: {IncidentEvent.TRANSPORTING: I.TRANSPORTING, IncidentEvent.AT_HOSPITAL: I.AT_HOSPITAL},
    I.AT_HOSPITAL: {IncidentEvent.AT_HOSPITAL: I.AT_HOSPITAL, IncidentEvent.CLOSE: I.CLOSED},
    I.CLOSED: {},
    I.CANCELLED: {},
}
OPEN_INCIDENT = frozenset(_OPEN)


def apply_unit(state: U, event: UnitEvent) -> U:
    allowed = UNIT_TRANSITIONS[state]
    if event not in allowed:
        raise InvalidTransition("unit", state.value, event.value, [e.value for e in allowed])
    return allowed[event]


def apply_incident(state: I, event: IncidentEvent) -> I:
    allowed = INCIDENT_TRANSITIONS[state]
    if event not in allowed:
        raise InvalidTransition("incident", state.value, event.value, [e.value for e in allowed])
    return allowed[event]


#: the unit status a crew reports, as the event it applies
STATUS_EVENT: dict[U, UnitEvent] = {
    U.EN_ROUTE: UnitEvent.EN_ROUTE,
    U.ON_SCENE: UnitEvent.ON_SCENE,
    U.TRANSPORTING: UnitEvent.TRANSPORTING,
    U.AT_HOSPITAL: UnitEvent.AT_HOSPITAL,
    U.RETURNING: UnitEvent.RETURNING,
    U.AVAILABLE: UnitEvent.AVAILABLE,
    U.OUT_OF_SERVICE: UnitEvent.OUT_OF_SERVICE,
}
#: what a unit's status change means for its incident (None: nothing)
INCIDENT_EVENT_FOR_UNIT: dict[U, IncidentEvent] = {
    U.ON_SCENE: IncidentEvent.ON_SCENE,
    U.TRANSPORTING: IncidentEvent.TRANSPORTING,
    U.AT_HOSPITAL: IncidentEvent.AT_HOSPITAL,
}
