"""GET /api/v1/coverage over the demo stations, on both databases."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


def test_coverage_of_the_demo_stations(api: Api) -> None:
    report = api.ok(api.get("/coverage", params={"minutes": "8,4", "cell_m": 1000}, user="planner"))
    assert report["thresholds_min"] == [4, 8] and len(report["stations"]) == 7
    assert 0 < report["covered"]["4"] < report["covered"]["8"] <= 1
    assert 0 <= report["backup"]["8"] <= report["covered"]["8"]
    assert report["demand_source"].startswith("proxy") and report["cell_m"] == 1000
    cells = api.ok(api.get("/coverage", params={"minutes": "8", "format": "geojson"}))
    assert cells["type"] == "FeatureCollection" and len(cells["features"]) > 20
    # a crew does not plan
    assert api.get("/coverage", user="crew-a01").status_code == 403


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"minutes": "soon"}, "not a list of numbers"),
        ({"minutes": "0"}, "above 0"),
        ({"cell_m": 5}, "50 to 20000"),
        ({"format": "pdf"}, "allowed: json, geojson"),
        ({"vehicle": "boat"}, "allowed: ambulance, motorbike"),
    ],
)
def test_bad_coverage_questions_get_422(api: Api, params: dict[str, object], words: str) -> None:
    r = api.get("/coverage", params=params)
    assert r.status_code == 422 and words in r.json()["detail"], r.text
