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


def test_coverage_at_a_time_of_day_uses_that_traffic_period(api: Api) -> None:
    # the evening peak (16-19 h) is slower than the night (22-5 h): fewer places within 8 minutes, on the same
    # stations; the isochrones shrink with it
    def share(at: str) -> float:
        return float(api.ok(api.get("/coverage", params={"minutes": "8", "at": at}, user="planner"))["covered"]["8"])

    def area(at: str) -> float:
        fc = api.ok(api.get("/coverage/isochrones", params={"minutes": "8", "at": at}, user="planner"))
        return sum(f["properties"]["area_km2"] for f in fc["features"])

    assert 0 < share("17:30") < share("03:00") <= 1
    assert 0 < area("17:30") < area("03:00")
    for path in ("/coverage", "/coverage/isochrones", "/coverage/siting"):
        r = api.get(path, params={"at": "25:99"}, user="planner")
        assert r.status_code == 422 and "at '25:99' is not a time of day: write HH:MM" in r.json()["detail"], r.text
