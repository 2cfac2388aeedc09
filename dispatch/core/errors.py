"""Domain errors. Every message names the bad value and what is allowed instead."""

from __future__ import annotations


class DispatchError(Exception):
    """Base class for every error the product reports to a person."""


class InvalidInput(DispatchError, ValueError):
    """A value given by a user (coordinates, a time, a file) is malformed or out of range."""


class OutsideCoverage(DispatchError):
    """A location is too far from any road the vehicle may drive."""

    def __init__(self, message: str, *, distance_m: float, max_distance_m: float) -> None:
        super().__init__(message)
        self.distance_m = distance_m
        self.max_distance_m = max_distance_m


class NoRoute(DispatchError):
    """No drivable route joins two places (closed roads, one-way traps)."""


class InvalidTransition(DispatchError):
    """A lifecycle event that the current state does not allow."""

    def __init__(self, what: str, state: str, event: str, allowed: list[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (the lifecycle has ended)"
        super().__init__(f"{what} is {state}: '{event}' is not allowed; allowed from {state}: {allowed_text}")
        self.state = state
        self.event = event
        self.allowed = allowed


class NotFound(DispatchError):
    """An id that names nothing."""


class Conflict(DispatchError):
    """The action collides with what another user did first (the unit was assigned meanwhile)."""

    def __init__(self, message: str, *, current: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.current = current or {}


class Forbidden(DispatchError):
    """The user's role does not allow the action."""


class Unauthorized(DispatchError):
    """No token, a wrong one or an expired one."""


class Unavailable(DispatchError):
    """The server cannot take the request now (it is stopping); nothing was recorded."""
