"""Read OpenStreetMap road ways (.osm, .osm.bz2, .osm.pbf) and decide what a vehicle profile may drive.

pyosmium (libosmium) reads all three formats with one code path, so XML and PBF extracts give the same graph.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import osmium

from dispatch.core.errors import InvalidInput
from dispatch.geo.profile import ACCESS_ALLOWED, ACCESS_DENIED, Profile

SUFFIXES = (".osm", ".osm.bz2", ".osm.pbf", ".osm.gz")


class OsmReadError(InvalidInput):
    """The file is missing, is not OSM data, or holds no road the profile may drive."""


@dataclass
class RawWays:
    """Every ``highway=*`` way of a file, its tags and its node chain with coordinates."""

    way_ids: npt.NDArray[np.int64]
    tags: list[dict[str, str]]
    node_offsets: npt.NDArray[np.int64]
    node_ids: npt.NDArray[np.int64]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    missing_nodes: int = 0


def read_osm(path: str | Path) -> RawWays:
    path = Path(path)
    if not path.is_file():
        raise OsmReadError(f"{path}: no such file; give an OpenStreetMap extract ({', '.join(SUFFIXES)})")
    if not path.name.endswith(SUFFIXES):
        raise OsmReadError(f"{path}: not an OpenStreetMap file name; allowed endings: {', '.join(SUFFIXES)}")
    way_ids: list[int] = []
    tags: list[dict[str, str]] = []
    offsets: list[int] = [0]
    node_ids: list[int] = []
    lat: list[float] = []
    lon: list[float] = []
    missing = 0
    try:
        processor = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
        for way in processor:
            if not isinstance(way, osmium.osm.Way) or "highway" not in way.tags:
                continue
            count = 0
            for node in way.nodes:
                loc = node.location
                if not loc.valid():
                    missing += 1
                    continue
                node_ids.append(node.ref)
                lat.append(loc.lat)
                lon.append(loc.lon)
                count += 1
            if count < 2:
                del node_ids[len(node_ids) - count :], lat[len(lat) - count :], lon[len(lon) - count :]
                continue
            way_ids.append(way.id)
            tags.append({t.k: t.v for t in way.tags})
            offsets.append(offsets[-1] + count)
    except RuntimeError as exc:
        raise OsmReadError(f"{path}: could not be read as OpenStreetMap data ({exc})") from None
    if not way_ids:
        raise OsmReadError(f"{path}: holds no road (no way tagged highway=* with located nodes)")
    return RawWays(
        way_ids=np.asarray(way_ids, dtype=np.int64),
        tags=tags,
        node_offsets=np.asarray(offsets, dtype=np.int64),
        node_ids=np.asarray(node_ids, dtype=np.int64),
        lat=np.asarray(lat, dtype=np.float64),
        lon=np.asarray(lon, dtype=np.float64),
        missing_nodes=missing,
    )


@dataclass(frozen=True)
class WayRule:
    """How a profile may use one way."""

    forward: bool
    backward: bool
    speed_kph: float
    maxspeed_used: bool
    closed_periods: frozenset[int] = frozenset()


@dataclass
class FilterReport:
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    conditional_applied: int = 0
    conditional_not_modelled: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ways_kept": self.kept,
            "ways_dropped": dict(self.dropped),
            "conditional_restrictions_applied": self.conditional_applied,
            "conditional_restrictions_not_modelled": self.conditional_not_modelled,
        }


_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph|m|')?\s*$")
_TIME_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse_maxspeed(value: str) -> float | None:
    """OSM maxspeed in km/h (``50``, ``30 mph``, ``walk``); None for values that give no number."""
    if value == "walk":
        return 6.0
    m = _NUMBER.match(value)
    if not m or m.group(2) not in (None, "mph", "km/h", "kmh", "kph"):
        return None
    speed = float(m.group(1)) * (1.609344 if m.group(2) == "mph" else 1.0)
    return speed if speed > 0 else None


def parse_width_m(value: str) -> float | None:
    m = _NUMBER.match(value.replace(",", "."))
    if not m or m.group(2) not in (None, "m"):
        return None
    return float(m.group(1))


def access_value(values: str) -> bool | None:
    """True/False for a decisive OSM access value; None if the value says nothing (unknown)."""
    parts = [v.strip() for v in values.split("|")]  # lane-by-lane values: any open lane lets a vehicle in
    if any(p in ACCESS_ALLOWED for p in parts):
        return True
    if parts and all(p in ACCESS_DENIED for p in parts):
        return False
    return None


def daily_closed_hours(condition_value: str) -> frozenset[int] | None:
    """Hours (0-23) a ``no @ (...)`` rule closes every day; None if it depends on dates, weekdays or more.

    An hour counts as closed when the rule covers its midpoint (HH:30).
    """
    closed: set[int] = set()
    for rule in _split_top(condition_value, ";"):
        if "@" not in rule:
            return None
        value, _, cond = rule.partition("@")
        if access_value(value.strip()) is not False:
            continue  # only restrictions matter; "destination @ ..." keeps a way open
        cond = cond.strip().removeprefix("(").removesuffix(")")
        for clause in cond.split(";"):
            words = clause.strip().split()
            if len(words) == 2 and words[0] == "Mo-Su":
                words = words[1:]
            if len(words) != 1:
                return None
            for span in words[0].split(","):
                m = _TIME_RANGE.match(span)
                if not m:
                    return None
                start = int(m.group(1)) * 60 + int(m.group(2))
                end = int(m.group(3)) * 60 + int(m.group(4))
                for h in range(24):
                    mid = h * 60 + 30
                    inside = start <= mid < end if start <= end else (mid >= start or mid < end)
                    if inside:
                        closed.add(h)
    return frozenset(closed)


def _split_top(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def evaluate_way(tags: dict[str, str], profile: Profile, report: FilterReport) -> WayRule | None:
    """Whether and how ``profile`` may drive a way; None (with the reason counted) when it may not."""
    highway = tags.get("highway", "")
    if highway not in profile.speeds_kph:
        report.dropped[f"highway={highway} not in profile"] += 1
        return None
    if tags.get("area") == "yes":
        report.dropped["area=yes"] += 1
        return None
    decided_at = len(profile.access_tags)
    for i, key in enumerate(profile.access_tags):
        if key in tags:
            verdict = access_value(tags[key])
            if verdict is None:
                continue
            if not verdict:
                report.dropped[f"{key}={tags[key]}"] += 1
                return None
            decided_at = i
            break
    service = tags.get("service")
    if highway == "service" and service in profile.exclude_service:
        report.dropped[f"service={service}"] += 1
        return None
    width = parse_width_m(tags["width"]) if "width" in tags else None
    if width is not None and width < profile.min_width_m:
        report.dropped[f"width < {profile.min_width_m:g} m"] += 1
        return None
    forward, backward = True, True
    oneway = next((tags[k] for k in profile.oneway_tags if k in tags), None)
    if oneway is None and (tags.get("junction") in ("roundabout", "circular") or highway == "motorway"):
        oneway = "yes"
    if oneway in ("yes", "true", "1"):
        backward = False
    elif oneway in ("-1", "reverse"):
        forward = False
    maxspeed = parse_maxspeed(tags["maxspeed"]) if "maxspeed" in tags else None
    speed = maxspeed * profile.maxspeed_factor if maxspeed is not None else profile.speeds_kph[highway]
    speed = min(speed, profile.max_speed_kph)
    closed_periods: set[int] = set()
    for key in profile.access_tags[: decided_at + 1]:
        cond = tags.get(f"{key}:conditional")
        if cond is None:
            continue
        hours = daily_closed_hours(cond)
        if hours is None:
            report.conditional_not_modelled += 1
            continue
        report.conditional_applied += 1
        for p, period in enumerate(profile.periods):
            if sum(h in hours for h in period.hours) * 2 > len(period.hours):
                closed_periods.add(p)
    if len(closed_periods) == len(profile.periods):
        report.dropped["closed at every hour (conditional)"] += 1
        return None
    report.kept += 1
    return WayRule(forward, backward, speed, maxspeed is not None, frozenset(closed_periods))
