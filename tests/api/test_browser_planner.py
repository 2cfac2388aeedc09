"""The planner page in a real browser: Debian's Chromium driven by Playwright, against a real server (as
tests/api/test_browser.py runs the console and the crew app). With ``DISPATCH_SCREENSHOTS=docs`` the screenshot
replaces docs/planner.png, which the README shows."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import shapely.geometry
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.api.conftest import PASSWORD, Database, Server
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def server(database: Database, start_server: Callable[..., Server]) -> Server:
    return start_server(database)


@pytest.fixture
def planner(browser: Browser, server: Server) -> Iterator[Page]:
    """The planner page, logged in as the demo planner; page errors fail the test."""
    ctx = browser.new_context(
        base_url=server.base_url, viewport={"width": 1440, "height": 900}, locale="en-GB", accept_downloads=True
    )
    ctx.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/planner")  # the redirect to /planner/
    page.fill("#login-user", "planner")
    page.fill("#login-pass", PASSWORD)
    page.click("#login button[type=submit]")
    expect(page.locator("#login")).to_be_hidden()
    try:
        yield page
    finally:
        ctx.close()
    assert not errors, errors


def shown_share(page: Page, minutes: str) -> float:
    covered = page.locator("#share-covered")
    expect(covered).to_have_attribute("data-minutes", minutes)
    return float(covered.get_attribute("data-value") or "nan")


def test_a_planner_sees_the_coverage_switches_thresholds_and_downloads(
    planner: Page, server: Server, tmp_path: Path
) -> None:
    page = planner
    with server.client("planner") as c:
        report = c.get("/coverage", params={"minutes": "4,8,15"}).raise_for_status().json()
        cells = c.get("/coverage", params={"minutes": "4,8,15", "format": "geojson"}).raise_for_status().json()
        stations = c.get("/stations").raise_for_status().json()
    # the page's security headers, as the console's
    r = page.request.get("/planner/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-cache"

    # the cells and each station's isochrone at the middle threshold are drawn; the stations marked
    expect(page.locator("path.cell")).to_have_count(len(cells["features"]))
    expect(page.locator("path.iso")).to_have_count(len(stations))
    expect(page.locator(".marker-station")).to_have_count(len(stations))
    # the demand is a proxy, and the page says so where it cannot be missed
    expect(page.locator("#demand")).to_have_class("demand proxy")
    expect(page.locator("#demand")).to_contain_text("Demand is a proxy")
    expect(page.locator("#demand-text")).to_have_text(report["demand_source"])
    assert shown_share(page, "8") == report["covered"]["8"]
    expect(page.locator("#share-covered")).to_have_text(f"{report['covered']['8']:.1%}")
    expect(page.locator("#share-backup")).to_have_text(f"{report['backup']['8']:.1%}")
    page.mouse.move(700, 20)  # no cell's tooltip in the picture
    page.screenshot(path=str(tmp_path / "planner.png"))
    if os.environ.get("DISPATCH_SCREENSHOTS") == "docs":
        shutil.copy(tmp_path / "planner.png", DOCS / "planner.png")

    # 4 minutes: the server's figure, other cell colours, the 4-minute isochrones
    fills_8 = page.locator("path.cell").evaluate_all("els => els.map(e => e.getAttribute('fill'))")
    page.select_option("#threshold", "4")
    assert shown_share(page, "4") == report["covered"]["4"] != report["covered"]["8"]
    expect(page.locator("#share-covered")).to_have_text(f"{report['covered']['4']:.1%}")
    fills_4 = page.locator("path.cell").evaluate_all("els => els.map(e => e.getAttribute('fill'))")
    assert fills_4 != fills_8 and fills_4.count("#d7191c") > fills_8.count("#d7191c")
    expect(page.locator("path.iso")).to_have_count(len(stations))
    # the isochrones can be hidden
    page.uncheck("#show-iso")
    expect(page.locator("path.iso")).to_have_count(0)
    page.check("#show-iso")
    expect(page.locator("path.iso")).to_have_count(len(stations))

    # the worst cells are the server's; a click zooms the map onto the cell
    worst = report["worst_cells"]["4"]
    items = page.locator("#worst li")
    expect(items).to_have_count(len(worst))
    assert items.evaluate_all("els => els.map(e => e.dataset.cell)") == [c["cell"] for c in worst]
    zoom_before = float(page.locator("#map").get_attribute("data-zoom") or 0)
    items.first.click()
    expect(items.first).to_have_class("selected")
    target = next(f for f in cells["features"] if f["properties"]["cell"] == worst[0]["cell"])
    box = shapely.geometry.shape(target["geometry"])
    expect(page.locator("#map")).not_to_have_attribute("data-zoom", f"{zoom_before:g}")  # the page's CSP: no eval
    assert float(page.locator("#map").get_attribute("data-zoom") or 0) >= zoom_before + 1
    lat, lon = map(float, (page.locator("#map").get_attribute("data-center") or "").split(","))
    assert box.buffer(1e-4).contains(shapely.geometry.Point(lon, lat)), (lat, lon, box.bounds)

    # downloads carry the token (a bare link would get 401): the CSV and the map come back as files
    with page.expect_download() as d:
        page.click("#downloads button[data-download=csv]")
    csv_text = Path(d.value.path()).read_text("utf-8")
    assert d.value.suggested_filename == "coverage.csv"
    assert csv_text.count("\n") == len(cells["features"]) + 1 and csv_text.startswith("cell,lat,lon,demand")
    with page.expect_download() as d:
        page.click("#downloads button[data-download=png]")
    assert d.value.suggested_filename == "coverage-4min.png"
    assert Path(d.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as d:
        page.click("#downloads button[data-download=isochrones]")
    iso = json.loads(Path(d.value.path()).read_text("utf-8"))
    assert len(iso["features"]) == 3 * len(stations)
    expect(page.locator("#error")).to_have_text("")

    # the question comes from the page's address too: H3 hexagons
    with server.client("planner") as c:
        hexagons = c.get("/coverage", params={"minutes": "4,8", "cells": "h3", "format": "geojson"}).json()
    page.goto("/planner/?minutes=4,8&cells=h3")  # still logged in (the tab's session)
    expect(page.locator("#cells-note")).to_contain_text("H3 hexagons")
    expect(page.locator("path.cell")).to_have_count(len(hexagons["features"]))
    expect(page.locator("#threshold option")).to_have_count(2)

    # Vietnamese at one click
    page.select_option("#lang", "vi")
    expect(page.locator("#demand")).to_contain_text("số liệu thay thế")
    expect(page.locator("#summary-title")).to_have_text("Nhu cầu trong vòng 8 phút từ một trạm")
    expect(page.locator("#downloads button[data-download=html]")).to_have_text("Báo cáo (HTML)")


def test_a_crew_account_cannot_open_the_planner(browser: Browser, server: Server) -> None:
    ctx = browser.new_context(base_url=server.base_url, locale="en-GB")
    try:
        page = ctx.new_page()
        page.goto("/planner/")
        page.fill("#login-user", "crew-a01")
        page.fill("#login-pass", PASSWORD)
        page.click("#login button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("A crew account cannot open the planner")
        expect(page.locator("#login")).to_be_visible()
    finally:
        ctx.close()


def test_a_planner_asks_where_new_stations_help_most(planner: Page, server: Server) -> None:
    page = planner
    with server.client("planner") as c:
        stations = c.get("/stations").raise_for_status().json()
    # the question's defaults: MCLP, the page's middle threshold, 3 new stations
    expect(page.locator("#siting-model")).to_have_value("mclp")
    expect(page.locator("#siting-minutes")).to_have_value("8")
    expect(page.locator("#siting-new")).to_have_value("3")
    expect(page.locator("#siting-result")).to_be_hidden()
    run = page.locator("#siting-run")
    expect(run).to_have_text("Find sites")
    # the button's states while the plan is solved, as the page shows them (recorded in the page: no stub)
    page.evaluate(
        """() => {
          const b = document.querySelector('#siting-run');
          window.sitingStates = [];
          new MutationObserver(() => window.sitingStates.push([b.disabled, b.textContent]))
            .observe(b, { attributes: true, childList: true, characterData: true, subtree: true });
        }"""
    )
    page.fill("#siting-new", "2")
    with page.expect_response(lambda r: "/api/v1/coverage/siting" in r.url) as answer:
        run.click()
    expect(page.locator("#siting-result")).to_be_visible()
    expect(run).to_be_enabled()
    expect(run).to_have_text("Find sites")
    states = page.evaluate("() => window.sitingStates")
    assert [True, "Solving…"] in states, states

    # the page asked the documented question: the existing stations kept, p = existing + 2
    asked = dict(parse_qsl(urlsplit(answer.value.url).query))
    assert asked == {
        "model": "mclp",
        "minutes": "8",
        "p": str(len(stations) + 2),
        "keep_existing": "true",
        "cell_m": "500",
        "vehicle": "ambulance",
        "format": "json",
    }
    with server.client("planner") as c:
        plan = c.get("/coverage/siting", params=asked).raise_for_status().json()
    assert plan["covered_before"] < plan["covered_after"] and plan["new_sites"] == 2
    for sel, key in (("#siting-before", "covered_before"), ("#siting-after", "covered_after")):
        expect(page.locator(sel)).to_have_text(f"{plan[key]:.1%}")
        assert float(page.locator(sel).get_attribute("data-value") or "nan") == plan[key]
    # the sites in order: the kept stations, then the new ones with their gain; the new ones on the map
    rows = page.locator("#siting-table tbody tr")
    expect(rows).to_have_count(len(plan["sites"]))
    expect(page.locator("#siting-table tbody tr.kept")).to_have_count(len(stations))
    expect(page.locator("#siting-table tbody tr.kept").first).to_contain_text("kept")
    new_rows = page.locator("#siting-table tbody tr.new")
    expect(new_rows).to_have_count(2)
    new = sorted((s for s in plan["sites"] if not s["existing"]), key=lambda s: s["order"])
    for row, s in zip(new_rows.all(), new, strict=True):
        expect(row).to_contain_text(s["name"])
        expect(row).to_contain_text(f"+{s['gain']:.1%}")
    markers = page.locator(".marker-site")
    expect(markers).to_have_count(2)
    assert markers.evaluate_all("els => els.map(e => e.dataset.site)") == [s["name"] for s in new]
    expect(page.locator(".marker-station")).to_have_count(len(stations))  # the kept ones, as before
    # a row's click shows its site on the map
    center_before = page.locator("#map").get_attribute("data-center") or ""
    new_rows.nth(1).click()
    expect(new_rows.nth(1)).to_have_class("new selected")
    expect(page.locator("#map")).not_to_have_attribute("data-center", center_before)
    lat, lon = map(float, (page.locator("#map").get_attribute("data-center") or "").split(","))
    assert abs(lat - new[1]["lat"]) < 1e-4 and abs(lon - new[1]["lon"]) < 1e-4, (lat, lon, new[1])
    expect(markers.nth(1)).to_have_class("marker-site selected")

    # the plan can be removed
    page.click("#siting-clear")
    expect(markers).to_have_count(0)
    expect(page.locator("#siting-result")).to_be_hidden()
    expect(page.locator("#siting-clear")).to_be_hidden()

    # a question the API refuses (422): its own words in the panel, and no plan
    page.fill("#siting-minutes", "200")
    with page.expect_response(lambda r: "/api/v1/coverage/siting" in r.url) as answer:
        run.click()
    assert answer.value.status == 422
    with server.client("planner") as c:
        refused = c.get("/coverage/siting", params=dict(parse_qsl(urlsplit(answer.value.url).query)))
    assert refused.status_code == 422 and "at most 180" in refused.json()["detail"], refused.text
    expect(page.locator("#siting-error")).to_have_text(f"Error: {refused.json()['detail']}")
    expect(run).to_be_enabled()
    expect(markers).to_have_count(0)
    expect(page.locator("#siting-result")).to_be_hidden()

    # LSCP finds the number of sites itself; the words in Vietnamese
    page.select_option("#siting-model", "lscp")
    expect(page.locator("#siting-new")).to_be_disabled()
    page.select_option("#lang", "vi")
    expect(run).to_have_text("Tìm vị trí")
    expect(page.locator("#siting-title")).to_have_text("Đặt trạm mới ở đâu có ích nhất?")
    expect(page.locator("#siting-error")).to_have_text(f"Lỗi: {refused.json()['detail']}")


def test_the_planner_asks_for_the_traffic_of_an_hour(planner: Page, server: Server) -> None:
    """The evening peak (16-19 h) is slower than the night: the page shows each hour's coverage, and asks the
    isochrones and the siting for the same hour."""
    page = planner
    with server.client("planner") as c:
        night, peak = (
            c.get("/coverage", params={"minutes": "8", "at": at}).raise_for_status().json()["covered"]["8"]
            for at in ("03:00", "17:30")
        )
    assert 0 < peak < night
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto("/planner/?minutes=8&at=03:00")
    expect(page.locator("#at")).to_have_value("03:00")
    assert shown_share(page, "8") == night
    page.fill("#at", "17:30")
    page.locator("#at").dispatch_event("change")
    page.wait_for_url("**at=17%3A30**")
    expect(page.locator("#at")).to_have_value("17:30")
    assert shown_share(page, "8") == peak
    page.fill("#siting-new", "1")
    page.click("#siting-run")
    expect(page.locator("#siting-result")).to_be_visible()
    hours = {
        path: dict(parse_qsl(urlsplit(u).query)).get("at")
        for u in asked
        if (path := urlsplit(u).path) in ("/api/v1/coverage", "/api/v1/coverage/isochrones", "/api/v1/coverage/siting")
    }
    assert hours == {
        "/api/v1/coverage": "17:30",
        "/api/v1/coverage/isochrones": "17:30",
        "/api/v1/coverage/siting": "17:30",
    }, asked
