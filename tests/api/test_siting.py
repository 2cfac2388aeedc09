"""GET /api/v1/coverage/siting over the demo stations, on both databases."""

from __future__ import annotations

import csv
import io

import pytest

from tests.api.conftest import Api


def test_siting_around_the_demo_stations(shared_api: Api) -> None:
    api = shared_api
    plan = api.ok(
        api.get(
            "/coverage/siting",
            params={"model": "mclp", "minutes": 4, "p": 9, "cell_m": 1000, "keep_existing": "true"},
            user="planner",
        )
    )
    assert plan["solver"]["status"] == "Optimal" and plan["solver"]["mip_gap"] == 0
    kept = [s for s in plan["sites"] if s["locked"]]
    new = [s for s in plan["sites"] if not s["existing"]]
    assert len(kept) == 7 and len(new) == 2 and plan["new_sites"] == 2
    assert all(s["order"] == 0 for s in kept) and [s["order"] for s in new] == [1, 2]
    assert new[0]["gain"] >= new[1]["gain"] > 0
    assert plan["covered_before"] < plan["covered_after"] <= 1
    assert plan["demand_source"].startswith("proxy") and plan["objective_unit"] == "covered demand"
    # free to move: the same number of sites covers at least as much
    free = api.ok(api.get("/coverage/siting", params={"minutes": 4, "p": 9, "cell_m": 1000}))
    assert free["covered_after"] >= plan["covered_after"] and free["covered_before"] == plan["covered_before"]


def test_siting_formats_and_roles(shared_api: Api) -> None:
    api = shared_api
    params = {"model": "pmedian", "p": 3, "cell_m": 2000}
    fc = api.ok(api.get("/coverage/siting", params={**params, "format": "geojson"}))
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    assert fc["features"][0]["properties"]["model"] == "pmedian"
    r = api.get("/coverage/siting", params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 3
    lscp = api.ok(api.get("/coverage/siting", params={"model": "lscp", "minutes": 15, "cell_m": 2000}))
    assert lscp["covered_after"] == 1.0 and lscp["objective"] == len(lscp["sites"])
    assert api.get("/coverage/siting", params=params, user="crew-a01").status_code == 403
    assert api.get("/coverage/siting", params=params, user=None).status_code == 401


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"model": "center", "p": 2}, "allowed: mclp, lscp, pmedian"),
        ({"model": "mclp"}, "mclp needs p"),
        ({"model": "lscp", "p": 3}, "do not give p"),
        ({"p": 3, "keep_existing": "true"}, "fewer than the 7 existing stations"),
        ({"p": 100000}, "more than the"),
        ({"p": 2, "minutes": 0}, "above 0"),
        ({"p": 2, "minutes": 200}, "at most 180"),
        ({"p": 2, "cell_m": 5}, "50 to 20000"),
        ({"p": 2, "format": "png"}, "allowed: json, geojson, csv"),
        ({"p": 2, "vehicle": "boat"}, "allowed: ambulance, motorbike"),
    ],
)
def test_bad_siting_questions_get_422(shared_api: Api, params: dict[str, object], words: str) -> None:
    r = shared_api.get("/coverage/siting", params=params)
    assert r.status_code == 422 and words in r.json()["detail"], r.text
