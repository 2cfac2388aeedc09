"""The console and the crew app in a real browser: Debian's Chromium driven by Playwright, against a real server.

Chromium is `/usr/bin/chromium` (`apt-get install chromium`; `.ci/run` installs it): Playwright's own browser
download is not possible here. Screenshots are written to the test's folder; with
``DISPATCH_SCREENSHOTS=docs`` they replace the ones in ``docs/`` that the README shows.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.api.conftest import PASSWORD, Database, Server
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT_MS = 15_000

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
    return start_server(database, DISPATCH_ACK_TIMEOUT_S="4", DISPATCH_RESEND_S="2")


class Pages:
    """Browser contexts of one test, each closed at its end; page errors fail the test."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def open(self, path: str, **context: Any) -> Page:
        ctx = self.browser.new_context(base_url=self.server.base_url, **context)
        ctx.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: self.errors.append(f"{path}: {e}"))
        page.goto(path)
        return page

    def console(self, user: str = "dispatcher") -> Page:
        page = self.open("/", viewport={"width": 1440, "height": 900}, locale="en-GB")
        log_in(page, user)
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        return page

    def crew(self, user: str = "crew-a01", **context: Any) -> Page:
        page = self.open(
            "/crew/",
            viewport={"width": 412, "height": 915},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="en-GB",
            geolocation={"latitude": 21.0245, "longitude": 105.8570, "accuracy": 8},
            permissions=["geolocation"],
            **context,
        )
        log_in(page, user)
        expect(page.locator("#conn")).to_have_attribute("data-state", "open")
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


@pytest.fixture
def pages(browser: Browser, server: Server) -> Iterator[Pages]:
    p = Pages(browser, server)
    try:
        yield p
    finally:
        p.close()
    assert not p.errors, p.errors


def log_in(page: Page, user: str) -> None:
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORD)
    page.click("#login button[type=submit]")
    expect(page.locator("#login")).to_be_hidden()


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("DISPATCH_SCREENSHOTS") == "docs":
        shutil.copy(path, DOCS / name)


def unit_row(server: Server, callsign: str) -> dict[str, Any]:
    with server.client() as c:
        return next(u for u in c.get("/units").raise_for_status().json() if u["callsign"] == callsign)


def status_events(server: Server, unit_id: int) -> list[str]:
    with server.client() as c:
        log = c.get("/events", params={"limit": 5000}).raise_for_status().json()
    return [e["data"]["status"] for e in log if e["kind"] == "unit.status" and e["unit_id"] == unit_id]


def crew_with_a_call(pages: Pages, server: Server, database: Database, complaint: str) -> tuple[Page, int]:
    """A01's crew page, then a call at Hoan Kiem Lake assigned to A01 over the API, shown on the page waiting
    for its acknowledgement; the page and A01's unit id."""
    crew = pages.crew("crew-a01")
    a01 = database.units["A01"]
    with server.client() as c:
        inc = c.post("/incidents", json={"lat": 21.0287, "lon": 105.8524, "complaint": complaint}).raise_for_status()
        incident_id = inc.json()["incident"]["id"]
        c.post(f"/incidents/{incident_id}/assignments", json={"unit_id": a01}).raise_for_status()
    expect(crew.locator("#ack")).to_be_visible()
    return crew, a01


def test_dispatcher_takes_a_call_and_the_crew_works_it(pages: Pages, server: Server, tmp_path: Path) -> None:
    crew = pages.crew("crew-a01")
    expect(crew.locator("#callsign")).to_have_text("A01")
    expect(crew.locator("#idle")).to_be_visible()
    console = pages.console()

    # find the place by a search without diacritics or capitals: a street near the 115 centre (A01..A04)
    console.fill("#search", "ly thai to")
    first = console.locator("#search-results li").first
    expect(first).to_contain_text("Phố Lý Thái Tổ")
    console.keyboard.press("Enter")
    expect(console.locator("#coords")).to_have_value(re.compile(r"^21\.\d+, 105\.\d+$"))
    console.select_option("#complaint", "cardiac_arrest")
    console.fill("#caller", "0912345678")
    console.fill("#notes", "Man collapsed at the entrance, CPR in progress")
    console.click("#create")

    # the units ranked by drive time, as the server ranks them
    rows = console.locator("#recs tbody tr[data-unit]")
    expect(rows.first).to_be_visible()
    expect(console.locator("#detail-title .prio")).to_have_text("echo")
    incident_id = int(re.search(r"#(\d+)", console.inner_text("#detail-title")).group(1))  # type: ignore[union-attr]
    with server.client() as c:
        ranked = c.get(f"/incidents/{incident_id}/recommendations").raise_for_status().json()["recommendations"]
        taken = c.get(f"/incidents/{incident_id}").raise_for_status().json()
    # eTimes.01 is when the dispatcher began taking the call (the search typed), before the call was sent
    created = next(e for e in taken["timeline"] if e["kind"] == "incident.created")
    assert datetime.fromisoformat(taken["times"]["eTimes.01"]) < datetime.fromisoformat(created["at"]), taken
    shown = [r.get_attribute("data-unit") for r in rows.all()]
    assert shown == [r["callsign"] for r in ranked]
    same_tier = [
        float(e)
        for e, r in zip(
            console.locator("#recs td.eta").evaluate_all("els => els.map(e => e.dataset.eta)"), ranked, strict=True
        )
        if r["meets_capability"]
    ]
    assert same_tier == sorted(same_tier) and len(same_tier) >= 4
    assert shown[0] == "A01", shown  # A01..A04 wait at the centre, the nearest station: ties go by callsign
    screenshot(console, tmp_path, "console.png")

    # one key assigns the first; the crew's phone has it at once, with the route and the turn list
    console.locator("#recs").click(position={"x": 5, "y": 5})  # focus leaves the form
    console.keyboard.press("Enter")
    expect(console.locator("#assigned .assigned-unit[data-unit=A01]")).to_contain_text("not acknowledged")
    expect(console.locator(f'#queue li[data-id="{incident_id}"]')).to_contain_text("A01")
    expect(crew.locator("#job")).to_be_visible()
    expect(crew.locator("#job-prio")).to_have_text("echo")
    expect(crew.locator("#job-complaint")).to_have_text("Cardiac or respiratory arrest")
    expect(crew.locator("#job-address")).to_have_text("Phố Lý Thái Tổ")
    expect(crew.locator("#job-notes")).to_contain_text("CPR in progress")
    expect(crew.locator("#turns li").first).to_be_visible()
    expect(crew.locator("#ack")).to_be_visible()
    screenshot(crew, tmp_path, "crew.png")

    # acknowledge, en route, on scene: each change shows on the console without a reload
    crew.click("#ack")
    expect(crew.locator("#ack")).to_be_hidden()
    expect(console.locator("#assigned .assigned-unit[data-unit=A01]")).to_contain_text("acknowledged")
    expect(console.locator("#assigned .assigned-unit[data-unit=A01]")).not_to_contain_text("not acknowledged")
    crew.click(".statuses button[data-status=en_route]")
    expect(console.locator("#assigned .assigned-unit[data-unit=A01] .st")).to_have_text("En route")
    expect(console.locator("#timeline li[data-code='eTimes.05']")).to_contain_text("A01 en route")
    crew.click(".statuses button[data-status=on_scene]")
    expect(console.locator("#assigned .assigned-unit[data-unit=A01] .st")).to_have_text("On scene")
    expect(console.locator(f'#queue li[data-id="{incident_id}"]')).to_have_attribute("data-status", "on_scene")
    expect(console.locator("#timeline li[data-code='eTimes.06']")).to_contain_text("A01 on scene")
    expect(console.locator(".marker-unit[data-unit=A01]")).to_have_class(re.compile(r"\bon_scene\b"))
    expect(crew.locator("#unit-status")).to_have_attribute("data-status", "on_scene")

    a01 = unit_row(server, "A01")
    assert a01["status"] == "on_scene" and a01["assignment"]["acknowledged_at"] is not None
    assert status_events(server, a01["id"]) == ["en_route", "on_scene"]
    # the phone reported its position over the socket, so the unit is shown as connected
    assert a01["connected"] is True


def test_a_status_pressed_offline_is_sent_on_reconnect_and_applied_once(
    pages: Pages, server: Server, database: Database
) -> None:
    crew, a01 = crew_with_a_call(pages, server, database, "fall")
    crew.click("#ack")
    expect(crew.locator("#ack")).to_be_hidden()
    expect(crew.locator("#outbox")).to_be_hidden()  # the server answered the ack

    crew.context.set_offline(True)
    expect(crew.locator("#conn")).not_to_have_attribute("data-state", "open")
    # pressed twice in the tunnel (the crew is not sure the first press took)
    crew.click(".statuses button[data-status=en_route]")
    crew.click(".statuses button[data-status=en_route]")
    expect(crew.locator("#outbox")).to_have_text("2 waiting to be sent")
    expect(crew.locator("#unit-status")).to_have_attribute("data-status", "en_route")
    assert unit_row(server, "A01")["status"] == "dispatched"  # nothing reached the server

    # the app still opens with no signal (service worker + the assignment kept on the phone)
    crew.reload()
    assert crew.evaluate("navigator.serviceWorker.controller !== null"), "the service worker did not take the page"
    expect(crew.locator("#job-complaint")).to_have_text(re.compile("Fall|fall"))
    expect(crew.locator("#outbox")).to_have_text("2 waiting to be sent")

    crew.context.set_offline(False)
    expect(crew.locator("#conn")).to_have_attribute("data-state", "open")
    expect(crew.locator("#outbox")).to_be_hidden()
    assert unit_row(server, "A01")["status"] == "en_route"
    assert status_events(server, a01) == ["en_route"]  # applied once


def test_the_console_alerts_filters_toggles_diversion_and_speaks_vietnamese(
    pages: Pages, server: Server, database: Database
) -> None:
    console = pages.console()
    # a new echo call taken by another dispatcher: a visible (and audible) alert, the queue updates by itself
    with server.client("dispatcher-2") as c:
        inc = c.post("/incidents", json={"lat": 21.0287, "lon": 105.8524, "complaint": "choking"}).raise_for_status()
        incident_id = inc.json()["incident"]["id"]
    alert = console.locator("#alerts .alert.new")
    expect(alert).to_contain_text(f"New ECHO incident #{incident_id}")
    expect(console.locator(f'#queue li[data-id="{incident_id}"]')).to_contain_text("Choking")

    # Enter on a focused button presses that button; it never assigns a unit behind the dispatcher's back
    console.click(f'#queue li[data-id="{incident_id}"]')
    expect(console.locator("#recs tbody tr[data-unit]").first).to_be_visible()
    dialogs: list[str] = []
    console.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    console.focus("#cancel-incident")
    console.keyboard.press("Enter")
    assert dialogs == ["Reason for cancelling"]
    with server.client() as c:
        assert c.get(f"/incidents/{incident_id}").json()["assignments"] == []

    # assigned, never acknowledged (no phone): the console says so after the ack timeout (4 s here)
    with server.client() as c:
        c.post(f"/incidents/{incident_id}/assignments", json={"unit_id": database.units["A02"]}).raise_for_status()
    expect(console.locator("#alerts .alert.unack")).to_contain_text("A02 has not acknowledged", timeout=20_000)
    expect(console.locator(".marker-unit[data-unit=A02]")).to_have_class(re.compile(r"\bunack\b"))

    # the unit list filtered by status
    console.click(".tabs button[data-tab=units]")
    console.select_option("#unit-filter", "dispatched")
    expect(console.locator("#unit-list tbody tr")).to_have_count(1)
    expect(console.locator("#unit-list tbody tr")).to_have_attribute("data-unit", "A02")

    # a hospital put on diversion from the console is on diversion on the server
    console.click(".tabs button[data-tab=hospitals]")
    box = console.locator("#hospital-list input[data-diversion]").first
    hospital_id = int(box.get_attribute("data-diversion") or 0)
    box.check()
    expect(console.locator(".marker-hosp.diversion")).to_have_count(1)  # drawn once the server answered
    with server.client() as c:
        diverted = [h["id"] for h in c.get("/hospitals").raise_for_status().json() if h["diversion"]]
    assert diverted == [hospital_id]

    # Vietnamese at one click, and after a reload
    console.select_option("#lang", "vi")
    expect(console.locator("#create")).to_have_text("Tạo sự vụ")
    expect(console.locator(f'#queue li[data-id="{incident_id}"]')).to_contain_text("Hóc dị vật")
    console.reload()
    expect(console.locator("#create")).to_have_text("Tạo sự vụ")


def test_the_crew_moves_on_without_the_ack_button_and_a_mis_tap_needs_confirming(
    pages: Pages, server: Server, database: Database
) -> None:
    crew, a01 = crew_with_a_call(pages, server, database, "stroke")
    # transitions the server would refuse cannot be pressed
    expect(crew.locator(".statuses button[data-status=at_hospital]")).to_be_disabled()
    # en route without touching ACKNOWLEDGE: the press acknowledges too (eTimes.04), and the assignment
    # re-sent every 2 s meanwhile does not put the phone back to "dispatched"
    crew.click(".statuses button[data-status=en_route]")
    expect(crew.locator("#outbox")).to_be_hidden()
    crew.wait_for_timeout(3000)
    expect(crew.locator("#unit-status")).to_have_attribute("data-status", "en_route")
    expect(crew.locator("#ack")).to_be_hidden()
    row = unit_row(server, "A01")
    assert row["status"] == "en_route" and row["assignment"]["acknowledged_at"] is not None

    crew.click(".statuses button[data-status=on_scene]")
    expect(crew.locator("#unit-status")).to_have_attribute("data-status", "on_scene")
    expect(crew.locator("#job-hospital")).to_contain_text("Recommended hospital")  # where a stroke goes
    # "available" on scene ends the job without a transport: one tap only asks
    available = crew.locator(".statuses button[data-status=available]")
    available.click()
    expect(available).to_have_text("Tap again")
    crew.wait_for_timeout(500)
    assert unit_row(server, "A01")["status"] == "on_scene"
    available.click()
    expect(crew.locator("#idle")).to_be_visible()
    expect(crew.locator("#outbox")).to_be_hidden()
    assert unit_row(server, "A01")["status"] == "available"
    assert status_events(server, a01) == ["en_route", "on_scene", "available"]
