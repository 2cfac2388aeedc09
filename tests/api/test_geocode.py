"""GET /api/v1/geocode on a real SQLite file and a real PostgreSQL database: hospitals and stations from the
database, streets and intersections from the bundled extract, the logged-in roles only, and bad input refused
with a problem+json that says what is allowed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import Session

from dispatch.db.models import Hospital, Station
from tests.api.conftest import Api

KEYS = {"kind", "name", "name_en", "lat", "lon", "bbox", "id", "detail"}


def results(api: Api, q: str, *, user: str = "dispatcher", **params: Any) -> list[dict[str, Any]]:
    body = api.ok(api.get("/geocode", params={"q": q, **params}, user=user))
    assert body["query"] == q
    assert all(set(r) == KEYS for r in body["results"])
    found: list[dict[str, Any]] = body["results"]
    return found


def add(api: Api, row: Hospital | Station) -> int:
    with Session(api.ctx.engine) as s, s.begin():
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def problem_detail(r: httpx.Response) -> str:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    detail: str = r.json()["detail"]
    return detail


def test_a_street_without_diacritics(shared_api: Api) -> None:
    hit = results(shared_api, "pho hue")[0]
    assert (hit["kind"], hit["name"], hit["name_en"], hit["id"]) == ("street", "Phố Huế", "Hue Street", None)
    s, w, n, e = hit["bbox"]
    assert s <= hit["lat"] <= n and w <= hit["lon"] <= e
    assert 21.015 < s < n < 21.020 and 105.851 < w < e < 105.852  # the extract's part of Phố Huế


def test_an_intersection(shared_api: Api) -> None:
    hit = results(shared_api, "le duan x kham thien")[0]
    assert hit["kind"] == "intersection"
    assert hit["name"] == hit["detail"] == "Đường Lê Duẩn × Phố Khâm Thiên"
    assert hit["name_en"] == "Le Duan Road × Kham Thien Street"
    assert (hit["lat"], hit["lon"]) == pytest.approx((21.018844, 105.841393), abs=2e-6)


def test_seeded_hospitals_and_stations_with_their_ids(shared_api: Api) -> None:
    hospitals = {h["name"]: h for h in shared_api.ok(shared_api.get("/hospitals"))}
    stations = {s["name"]: s for s in shared_api.ok(shared_api.get("/stations"))}
    hit = results(shared_api, "benh vien xanh pon")[0]
    xanh_pon = hospitals["Bệnh viện Đa khoa Xanh Pôn"]
    assert (hit["kind"], hit["name"], hit["id"]) == ("hospital", xanh_pon["name"], xanh_pon["id"])
    assert (hit["lat"], hit["lon"], hit["name_en"]) == (21.031229, 105.835155, "Saint Paul's Hospital")
    assert results(shared_api, "saint paul")[0]["id"] == xanh_pon["id"]
    hit = results(shared_api, "trung tam cap cuu 115")[0]
    central = stations["Trung tâm Cấp cứu 115 Hà Nội"]
    assert (hit["kind"], hit["id"], hit["lat"], hit["lon"]) == ("station", central["id"], 21.0236, 105.8566)


def test_limit_and_near(shared_api: Api) -> None:
    assert len(results(shared_api, "ngo", limit=3)) == 3
    assert len(results(shared_api, "ngo", limit=50)) == 50
    far, near = results(shared_api, "pho kim ma", limit=2), results(shared_api, "pho kim ma", near="21.029,105.807")
    assert far[0]["name"] == near[0]["name"] == "Phố Kim Mã"
    assert far[0]["lon"] > 105.82 and near[0]["lon"] < 105.81  # the western stretch when the call comes from there


def test_nonsense_finds_nothing(shared_api: Api) -> None:
    assert results(shared_api, "xyzzy qwv") == []


def test_every_logged_in_role_and_no_one_else(shared_api: Api) -> None:
    for user in ("dispatcher", "planner", "admin", "crew-a01"):
        assert results(shared_api, "hue", user=user)[0]["name"] == "Phố Huế"
    r = shared_api.get("/geocode", params={"q": "hue"}, user=None)
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]
    r = shared_api.client.get("/api/v1/geocode", params={"q": "hue"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "q is empty: give a street, an intersection 'A x B', a hospital, a station or a place"),
        ({"q": "   "}, "q is empty"),
        ({"q": "h" * 201}, "q has 201 characters; at most 200 are allowed"),
        ({"q": "hue", "limit": 0}, "limit=0 is out of range: it must be between 1 and 50"),
        ({"q": "hue", "limit": 51}, "limit=51 is out of range: it must be between 1 and 50"),
        ({"q": "hue", "near": "21.03"}, "is not a position: write LAT,LON"),
        ({"q": "hue", "near": "121.03,105.8"}, "latitude 121.03 is out of range"),
    ],
)
def test_bad_input_says_what_is_allowed(shared_api: Api, params: dict[str, Any], expected: str) -> None:
    assert expected in problem_detail(shared_api.get("/geocode", params=params))


def test_a_hospital_added_to_the_database(api: Api) -> None:
    """Bạch Mai is not among the 25 demo hospitals (it lies 0.7 km south of the extract): once the database
    holds it, "bach mai" finds it first, although no road of the extract carries the name."""
    hospital_id = add(api, Hospital(name="Bệnh viện Bạch Mai", name_en="Bach Mai Hospital", lat=21.0018, lon=105.8394))
    hits = results(api, "bach mai")
    assert hits[0] == {
        "kind": "hospital",
        "name": "Bệnh viện Bạch Mai",
        "name_en": "Bach Mai Hospital",
        "lat": 21.0018,
        "lon": 105.8394,
        "bbox": None,
        "id": hospital_id,
        "detail": "hospital",
    }
    assert results(api, "BV Bạch Mai")[0]["id"] == hospital_id


def test_a_new_station_is_found_once_the_cached_points_expire(api: Api) -> None:
    cache = api.ctx.gazetteer
    now = [1000.0]
    cache.clock = lambda: now[0]
    assert results(api, "tram long bien") == []
    station_id = add(api, Station(name="Trạm 115 Long Biên", lat=21.0440, lon=105.8700))
    assert results(api, "tram long bien") == []  # the points read a moment ago are still used
    now[0] += cache.points_ttl_s + 1
    hit = results(api, "tram long bien")[0]
    assert (hit["kind"], hit["name"], hit["id"], hit["detail"]) == (
        "station",
        "Trạm 115 Long Biên",
        station_id,
        "ambulance station",
    )
