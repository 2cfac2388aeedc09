"""Road closures through the API: the next route avoids them, they survive a restart, reopening restores."""

from __future__ import annotations

from tests.api.conftest import BA_DINH, HOAN_KIEM, Api, running_app

ROUTE = f"/route?from={HOAN_KIEM[0]},{HOAN_KIEM[1]}&to={BA_DINH[0]},{BA_DINH[1]}&at=10:00"


def _route(api: Api) -> dict:
    return api.ok(api.get(ROUTE))


def test_closing_a_road_on_the_route_makes_the_next_route_avoid_it(api: Api, graph_cache) -> None:
    before = _route(api)
    coords = before["geometry"]["coordinates"]
    k = len(coords) // 2  # halfway along a segment of the route, not at a junction
    lon, lat = (coords[k][0] + coords[k + 1][0]) / 2, (coords[k][1] + coords[k + 1][1]) / 2
    closure = api.ok(api.post("/closures", json={"reason": "flooding", "lat": lat, "lon": lon}), 201)
    assert closure["segments_closed"]["ambulance"] == 1
    after = _route(api)
    assert after["eta_s"] > before["eta_s"]
    assert after["geometry"]["coordinates"] != coords
    layer = api.ok(api.get("/layers/closures.geojson"))
    assert [f["properties"]["id"] for f in layer["features"]] == [closure["id"]]
    # a restart on the same database closes the road again
    api.client.__exit__(None, None, None)
    with running_app(api.db, graph_cache) as again:
        assert _route(again)["eta_s"] == after["eta_s"]
        assert [c["id"] for c in again.ok(again.get("/closures"))] == [closure["id"]]
        again.ok(again.post(f"/closures/{closure['id']}/reopen"))
        assert _route(again)["eta_s"] == before["eta_s"]
        assert again.ok(again.get("/closures")) == []
        assert len(again.ok(again.get("/closures?all=true"))) == 1
        r = again.post(f"/closures/{closure['id']}/reopen")
        assert r.status_code == 422 and "already" in r.json()["detail"]


def test_area_closure_and_bad_closures(api: Api) -> None:
    lat, lon = HOAN_KIEM
    square = {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - 0.002, lat - 0.002],
                [lon + 0.002, lat - 0.002],
                [lon + 0.002, lat + 0.002],
                [lon - 0.002, lat + 0.002],
                [lon - 0.002, lat - 0.002],
            ]
        ],
    }
    c = api.ok(api.post("/closures", json={"reason": "festival", "area": square}), 201)
    assert c["kind"] == "area" and c["segments_closed"]["ambulance"] > 5
    r = api.post("/closures", json={"reason": "x"})
    assert r.status_code == 422 and "lat and lon" in r.json()["detail"]
    r = api.post("/closures", json={"reason": "x", "area": {"type": "Point", "coordinates": [lon, lat]}})
    assert r.status_code == 422 and "Polygon" in r.json()["detail"]
    r = api.post("/closures", json={"reason": "x", "lat": 21.0018, "lon": 105.8394})  # Bach Mai, off the roads
    assert r.status_code == 422 and r.json()["distance_m"] > 250
    assert api.post("/closures/999/reopen").status_code == 404
    assert api.post("/closures", json={"reason": "x", "lat": lat, "lon": lon}, user="planner").status_code == 403
