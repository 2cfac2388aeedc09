"""Shared fixtures: the real central-Hanoi extract, compiled once per test session into a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.geo.routing import Router
from dispatch.geo.store import LoadedGraph, load_or_build

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
HANOI_PBF = REPO / "geodata" / "hanoi" / "central-hanoi.osm.pbf"
HOSPITALS = REPO / "geodata" / "hanoi" / "hospitals.geojson"
TINY_OSM = DATA / "tiny.osm"
TINY_PROFILE = DATA / "tiny-profile.toml"
FOOTWAYS_ONLY_OSM = DATA / "footways-only.osm"


@pytest.fixture(scope="session")
def geo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One graph cache directory for the whole session (never the user's ~/.cache)."""
    return tmp_path_factory.mktemp("dispatch-cache")


@pytest.fixture(scope="session")
def hanoi(geo_cache: Path) -> LoadedGraph:
    """The ambulance graph of the bundled Hanoi extract, built (cold) once into ``geo_cache``."""
    return load_or_build(HANOI_PBF, "ambulance", cache_dir=geo_cache)


@pytest.fixture(scope="session")
def hanoi_motorbike(geo_cache: Path) -> LoadedGraph:
    return load_or_build(HANOI_PBF, "motorbike", cache_dir=geo_cache)


@pytest.fixture(scope="session")
def hanoi_router(hanoi: LoadedGraph) -> Router:
    """A shared router for read-only queries; tests that close roads make their own."""
    return Router(hanoi.graph, hanoi.chs)
