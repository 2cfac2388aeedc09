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
