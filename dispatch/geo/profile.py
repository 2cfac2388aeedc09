"""Vehicle speed profiles: which roads a vehicle may use and how fast it drives them, by hour of day.

A profile is a small TOML file (see ``dispatch/geo/profiles/*.toml`` and ``docs/profiles.md``).
Every problem in a profile is reported as a :class:`ProfileError` naming the key and the allowed values.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dispatch.core.errors import InvalidInput

#: highway classes a profile may name (OSM ``highway=*`` values that can carry motor traffic)
ROAD_CLASSES = (
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "road",
    "track",
    "pedestrian",
)
#: OSM access values that let a vehicle through, and those that keep it out
ACCESS_ALLOWED = frozenset(
    {
        "yes",
        "designated",
        "permissive",
        "destination",
        "customers",
        "delivery",
        "emergency",
        "official",
        "discouraged",
    }
)
ACCESS_DENIED = frozenset({"no", "private", "permit", "agricultural", "forestry", "use_sidepath"})
BUILTIN = ("ambulance", "motorbike")


class ProfileError(InvalidInput):
    """A speed profile file is missing a key, has a wrong type or an out-of-range value."""


@dataclass(frozen=True)
class Period:
    """A part of the day whose traffic makes every speed ``speed_factor`` times the base speed."""

    name: str
    hours: tuple[int, ...]
    speed_factor: float


@dataclass(frozen=True)
class Profile:
    name: str
    vehicle: str
    description: str
    speeds_kph: dict[str, float]
    maxspeed_factor: float
    max_speed_kph: float
    access_tags: tuple[str, ...]
    oneway_tags: tuple[str, ...]
    exclude_service: tuple[str, ...]
    min_width_m: float
    periods: tuple[Period, ...]

    def period_index(self, hour: int) -> int:
        """The index in :attr:`periods` of the period that holds ``hour`` (0-23)."""
        if not 0 <= hour <= 23:
            raise InvalidInput(f"hour {hour} is out of range: it must be 0-23")
        for i, period in enumerate(self.periods):
            if hour in period.hours:
                return i
        raise AssertionError("periods cover every hour")  # guaranteed by _periods()

    def digest(self) -> str:
        """A hash of everything that changes travel times: the cache key's profile part."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def load_profile(spec: str | Path) -> Profile:
    """Load a profile by built-in name (``ambulance``, ``motorbike``) or from a TOML file."""
    if isinstance(spec, str) and spec in BUILTIN:
        text = resources.files("dispatch.geo").joinpath(f"profiles/{spec}.toml").read_text("utf-8")
        return parse_profile(text, source=f"built-in profile {spec!r}")
    path = Path(spec)
    if not path.is_file():
        raise ProfileError(
            f"profile {str(spec)!r} not found: give a TOML file or one of the built-in names {', '.join(BUILTIN)}"
        )
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{path} is not a UTF-8 text file: a profile is TOML text") from None
    return parse_profile(text, source=str(path))


def parse_profile(text: str, *, source: str = "profile") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source} is not valid TOML: {exc}") from None
    known = {
        "name",
        "vehicle",
        "description",
        "speeds_kph",
        "maxspeed_factor",
        "max_speed_kph",
        "access_tags",
        "oneway_tags",
        "exclude_service",
        "min_width_m",
        "periods",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    speeds = _table(data, "speeds_kph", source)
    if not speeds:
        raise ProfileError(f"{source}: speeds_kph is empty: give a speed for at least one road class")
    for road, speed in speeds.items():
        if road not in ROAD_CLASSES:
            raise ProfileError(f"{source}: speeds_kph.{road} is not a road class; allowed: {', '.join(ROAD_CLASSES)}")
        _positive(speed, f"speeds_kph.{road}", source, upper=200, lower=1)
    return Profile(
        name=_str(data, "name", source),
        vehicle=_str(data, "vehicle", source),
        description=str(data.get("description", "")),
        speeds_kph={k: float(v) for k, v in speeds.items()},
        maxspeed_factor=_positive(data.get("maxspeed_factor", 1.0), "maxspeed_factor", source, upper=1.5, lower=0.05),
        max_speed_kph=_positive(data.get("max_speed_kph", 130.0), "max_speed_kph", source, upper=200, lower=1),
        access_tags=_str_list(data, "access_tags", source, default=["access"]),
        oneway_tags=_str_list(data, "oneway_tags", source, default=["oneway"]),
        exclude_service=_str_list(data, "exclude_service", source, default=[]),
        min_width_m=_positive(data.get("min_width_m", 0.0), "min_width_m", source, upper=20, allow_zero=True),
        periods=_periods(data.get("periods", []), source),
    )


def parse_hours(text: str, where: str) -> tuple[int, ...]:
    """``"7-9,16-19"`` -> hours 7, 8, 16, 17, 18 (end exclusive); ``"22-5"`` wraps past midnight."""
    hours: list[int] = []
    for part in str(text).split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) != 2:
                raise ValueError
            start, end = int(bounds[0]), int(bounds[1])
            if not (0 <= start <= 23 and 0 <= end <= 24 and start != end):
                raise ValueError
        except ValueError:
            raise ProfileError(
                f"{where}: {part.strip()!r} is not an hour range: write START-END in whole hours 0-24, "
                'end exclusive, e.g. "7-9,16-19" or "22-5"'
            ) from None
        h = start
        while h != end % 24:
            hours.append(h)
            h = (h + 1) % 24
    return tuple(hours)


def _periods(raw: Any, source: str) -> tuple[Period, ...]:
    if not isinstance(raw, list):
        raise ProfileError(f"{source}: periods must be a list of [[periods]] tables with name, hours, speed_factor")
    periods: list[Period] = []
    taken: dict[int, str] = {}
    for i, item in enumerate(raw):
        where = f"{source}: periods[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "hours", "speed_factor"}:
            raise ProfileError(f"{where} must have exactly the keys name, hours, speed_factor")
        name = str(item["name"])
        hours = parse_hours(item["hours"], f"{where}.hours")
        for h in hours:
            if h in taken:
                raise ProfileError(f"{where}.hours: hour {h} is already in period {taken[h]!r}")
            taken[h] = name
        factor = _positive(item["speed_factor"], f"{where}.speed_factor", source, 3, lower=0.05)
        periods.append(Period(name, hours, factor))
    rest = tuple(h for h in range(24) if h not in taken)
    if rest:
        periods.insert(0, Period("base", rest, 1.0))
    return tuple(periods)


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProfileError(f"{source}: {key} is missing or not a table")
    return value


def _str(data: dict[str, Any], key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{source}: {key} is missing or not a string")
    return value


def _str_list(data: dict[str, Any], key: str, source: str, *, default: list[str]) -> tuple[str, ...]:
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{source}: {key} must be a list of strings")
    return tuple(value)


def _positive(
    value: Any, key: str, source: str, upper: float, *, allow_zero: bool = False, lower: float = 0.0
) -> float:
    """A number in (lower, upper] ([0, upper] with allow_zero; [lower, upper] when lower > 0)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        if allow_zero and 0 <= value <= upper:
            return float(value)
        if (lower <= value if lower > 0 else value > 0) and value <= upper:
            return float(value)
    low = "0" if allow_zero else (f"{lower:g}" if lower > 0 else "more than 0")
    raise ProfileError(f"{source}: {key} = {value!r} is not allowed: it must be a number from {low} to {upper:g}")
