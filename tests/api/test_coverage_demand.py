"""GET /api/v1/coverage?demand=history&cells=h3: the incidents in the database as demand, on both databases."""

from __future__ import annotations

import pytest

from tests.api.conftest import BA_DINH, HOAN_KIEM, Api


def test_coverage_of_the_incident_history_on_h3_cells(api: Api) -> None:
    # a database with no incident has no history to plan with: say so, and what to use instead
    r = api.get("/coverage", params={"demand": "history"}, user="planner")
    assert r.status_code == 422 and "incident history (database) has no usable call" in r.json()["detail"], r.text
    for lat, lon in (HOAN_KIEM, HOAN_KIEM, BA_DINH):
        api.create_incident(lat=lat, lon=lon)
    params = {"demand": "history", "minutes": "4,8", "cells": "h3", "cell_m": 1000, "at": "10:00"}  # off-peak
    report = api.ok(api.get("/coverage", params=params, user="planner"))
    assert report["demand_source"].startswith("incident history (database): 3 calls, ")
    assert report["total_demand"] == 3 and report["cell_kind"] == "h3" and report["h3_resolution"] == 8
    assert 0 < report["covered"]["4"] <= report["covered"]["8"] <= 1
    cells = api.ok(api.get("/coverage", params={**params, "format": "geojson"}, user="planner"))
    assert sum(f["properties"]["demand"] for f in cells["features"]) == 3
    assert all(len(f["geometry"]["coordinates"][0]) == 7 for f in cells["features"])  # hexagons
    # Hoan Kiem's two calls share a cell; Ba Dinh is about 2 km away, in another one
    assert sorted(f["properties"]["demand"] for f in cells["features"]) == [1, 2]
    proxy = api.ok(api.get("/coverage", params={"minutes": "8"}, user="planner"))
    assert proxy["demand_source"].startswith("proxy") and proxy["cell_kind"] == "grid"


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"demand": "census"}, "demand='census' is not known; allowed: proxy, history"),
        ({"cells": "hex"}, "cells 'hex' is not known; allowed: grid, h3"),
        ({"cells": "h3", "h3_resolution": 20}, "H3 resolution 20 is out of range"),
    ],
)
def test_bad_demand_questions_get_422(api: Api, params: dict[str, object], words: str) -> None:
    r = api.get("/coverage", params=params)
    assert r.status_code == 422 and words in r.json()["detail"], r.text
