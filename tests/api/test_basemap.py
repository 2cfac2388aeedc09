"""GET /api/v1/basemap/{z}/{x}/{y}.json and GET /api/v1/region: the console's offline basemap, without a token."""

from __future__ import annotations

import gzip
import json
import math

from fastapi.testclient import TestClient

from dispatch.app import create_app
from dispatch.config import Settings
from dispatch.geo.basemap import EXTENT, tile_xy
from tests.api.conftest import API, HOAN_KIEM, Api

Z = 16
HK_TILE = f"/basemap/{Z}/{tile_xy(*HOAN_KIEM, Z)[0]}/{tile_xy(*HOAN_KIEM, Z)[1]}.json"


def test_a_tile_answers_without_a_token_and_may_be_cached(shared_api: Api) -> None:
    api = shared_api
    r = api.get(HK_TILE, user=None)
    body = api.ok(r)
    assert (body["z"], body["extent"]) == (Z, EXTENT)
    assert "Phố Đinh Tiên Hoàng" in {road["n"] for road in body["roads"]}
    assert body["labels"], "a street-zoom tile over the Old Quarter has names to show"
    assert r.headers["cache-control"] == "public, max-age=86400"
    assert r.headers["etag"].startswith('W/"') and len(r.headers["etag"]) > 10
    assert r.headers["content-type"] == "application/json"


def test_a_tile_is_gzipped_for_clients_that_accept_it(shared_api: Api) -> None:
    api = shared_api
    url = API + HK_TILE
    plain = api.client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert b": " not in plain.content and b", " not in plain.content  # compact JSON
    with api.client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as zipped:
        assert zipped.headers["content-encoding"] == "gzip"
        raw = b"".join(zipped.iter_raw())
    assert len(raw) < len(plain.content) / 2
    assert json.loads(gzip.decompress(raw)) == plain.json()


def test_if_none_match_with_the_etag_answers_304(shared_api: Api) -> None:
    api = shared_api
    etag = api.get(HK_TILE, user=None).headers["etag"]
    again = api.client.get(API + HK_TILE, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    # the ETag is the road graph's: it holds for every tile, also when named strong or in a list
    other = api.client.get(API + "/basemap/15/26018/14425.json", headers={"If-None-Match": f'"x", {etag[2:]}'})
    assert other.status_code == 304
    stale = api.client.get(API + HK_TILE, headers={"If-None-Match": 'W/"an-older-road-graph"'})
    assert stale.status_code == 200 and stale.json()["roads"]


def test_tiles_out_of_range_are_422_naming_the_allowed_range(shared_api: Api) -> None:
    api = shared_api
    for path, words in (
        ("/basemap/25/0/0.json", "z must be from 0 to 20"),
        ("/basemap/-1/0/0.json", "z must be from 0 to 20"),
        ("/basemap/3/8/0.json", "x must be from 0 to 7"),
        ("/basemap/3/0/-1.json", "y must be from 0 to 7"),
        ("/basemap/16/0/65536.json", "y must be from 0 to 65535"),
    ):
        r = api.get(path, user=None)
        assert r.status_code == 422, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert words in r.json()["detail"], (path, r.json())


def test_a_tile_far_from_the_roads_is_empty(shared_api: Api) -> None:
    body = shared_api.ok(shared_api.get("/basemap/16/0/0.json", user=None))
    assert body == {"z": 16, "x": 0, "y": 0, "extent": EXTENT, "roads": [], "labels": []}


def test_the_region_covers_hoan_kiem(shared_api: Api) -> None:
    api = shared_api
    body = api.ok(api.get("/region", user=None))
    south, west, north, east = body["bounds"]
    assert south < HOAN_KIEM[0] < north and west < HOAN_KIEM[1] < east
    assert south < body["center"][0] < north and west < body["center"][1] < east
    # the whole extract (about 8 x 10 km) fits a console at the minimum zoom, and street level is allowed
    assert 10 <= body["min_zoom"] <= 13 and body["max_zoom"] >= 18
    assert (body["attribution"], body["online_tiles"]) == ("© OpenStreetMap contributors (ODbL)", None)
    # tiles there hold roads: the region is the basemap's
    x, y = tile_xy(*body["center"], 14)
    assert api.ok(api.get(f"/basemap/14/{x}/{y}.json", user=None))["roads"]
    assert math.isclose(body["center"][0], (south + north) / 2)


def test_the_region_names_the_online_tiles_when_configured(shared_api: Api) -> None:
    url = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    app = create_app(Settings(online_tile_url=url), ctx=shared_api.ctx)
    client = TestClient(app)  # no lifespan: the shared app's context is borrowed, not closed
    assert client.get(API + "/region").json()["online_tiles"] == url
