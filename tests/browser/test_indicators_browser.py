"""The commune's indicator dashboard in a real browser: log in as the leader, pick a period, see the SVG
charts and the figures, follow a figure to the dossiers behind it, and a bad period's message."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import reception_body  # tests/conftest.py
from node import workflow as wf
from node.sync.state import User
from node.users import Officer

from .conftest import log_in

MARITAL, BIRTH = "1.004873", "1.001193"  # 3 working days; same day


def _officer(role: str) -> Officer:
    return Officer.of(User.get(User.username == f"{role}1"))


def _march(live_node, clock) -> tuple[str, str]:
    """One dossier finished early (signed the day after reception), one still running."""
    node = live_node.node
    reception, leader, specialist = _officer("reception"), _officer("leader"), _officer("specialist")
    clock.set("2026-03-02 09:00")
    early, _ = wf.receive_dossier(node, reception, reception_body(procedure_code=MARITAL))
    running, _ = wf.receive_dossier(node, reception, reception_body(procedure_code=BIRTH))
    wf.perform(node, reception, early.code, "transfer")
    wf.perform(node, leader, early.code, "assign", {"handler_id": specialist.id})
    clock.set("2026-03-03 10:00")
    wf.perform(node, specialist, early.code, "propose")
    wf.perform(node, leader, early.code, "sign", {"result_digitised": "1"})
    return early.code, running.code


def test_dashboard_chart_and_drill_down(page, live_node, clock, shot):
    early, running = _march(live_node, clock)
    log_in(page, "leader")
    page.click("header.top nav a.nav-indicators")
    expect(page.locator("h1")).to_contain_text("Chỉ số Quyết định 766")
    page.fill("input[name=from]", "2026-03-01")
    page.fill("input[name=to]", "2026-03-31")
    with page.expect_navigation():
        page.click("form.period button[type=submit]")
    expect(page.locator("svg.chart").first).to_be_visible()
    expect(page.locator("svg.chart rect.bar").first).to_be_visible()
    expect(page.locator("#on-time-rate")).to_have_text("100.0 %")
    shot("dashboard")
    with page.expect_navigation():
        page.click("a[href*='figure=early']")
    expect(page.locator("#drill-total")).to_have_text("1")
    expect(page.locator("table.drill")).to_contain_text(early)
    expect(page.locator("table.drill")).not_to_contain_text(running)
    shot("drill-down")
    with page.expect_navigation():
        page.click(f"table.drill a:has-text('{early}')")
    expect(page.locator("body")).to_contain_text(early)


def test_bad_period_shows_a_message(page, live_node):
    log_in(page, "leader")
    response = page.goto("/indicators/?from=2026-02-30&to=2026-03-31")
    assert response is not None and response.status == 400
    expect(page.locator(".flash.error")).to_contain_text("Ngày bắt đầu không hợp lệ")
    expect(page.locator("input[name=from]")).to_be_visible()


# ---------------------------------------------------------------- the hub's dashboard, every commune

@pytest.fixture
def hub_with_march(tmp_path, node_dir, clock):
    """A hub holding a commune's March (one dossier finished early, one running), pushed by the node."""
    from central import create_app
    from central.instance import init_hub
    from central.tokens import create_token
    from node.instance import Node
    from node.sync import log

    from .conftest import serve
    from .test_conflict_browser import HUB_PASSWORD

    node = Node(node_dir, now=clock)
    try:
        class Live:  # what _march needs of the live_node fixture
            pass

        live = Live()
        live.node = node
        early, running = _march(live, clock)
        changes = list(log.iter_changes(node.node_id))
        ident, key = node.identity, node.key
    finally:
        node.close()
    init_hub(tmp_path / "hub", "Trung tâm huyện Đồng Hỷ", "admin", HUB_PASSWORD)
    app = create_app({"DATA_DIR": str(tmp_path / "hub"), "NOW": clock})
    hub = app.extensions["motcua_hub"]
    try:
        token = create_token(hub, [ident.unit_code], "commune")
        resp = app.test_client().post("/api/v1/enroll", json={
            "token": token, "software_version": "0.1.0", "node_id": ident.node_id, "public_key": key.public_b64,
            "unit_code": ident.unit_code, "unit_name": ident.unit_name})
        assert resp.status_code == 200, resp.data
        hub.storage.ingest_push(ident.node_id, changes, now=hub.now())
        with serve(app) as url:
            yield url, early, running
    finally:
        hub.close()


def test_hub_dashboard_every_commune_and_drill_down(browser, hub_with_march):
    from .conftest import SCREENSHOTS, VIEWPORT
    from .test_conflict_browser import HUB_PASSWORD

    url, early, running = hub_with_march
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", base_url=url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", HUB_PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        with page.expect_navigation():
            page.click("header nav a.nav-indicators")
        page.fill("input[name=from]", "2026-03-01")
        page.fill("input[name=to]", "2026-03-31")
        with page.expect_navigation():
            page.click("form.period button[type=submit]")
        expect(page.locator("svg.chart rect.bar").first).to_be_visible()
        expect(page.locator("#on-time-rate")).to_have_text("100.0 %")
        expect(page.locator("body")).to_contain_text("UBND xã Tân Cương")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "hub-indicators-dashboard.png"), full_page=True)
        with page.expect_navigation():
            page.click("a[href*='figure=early']")
        expect(page.locator("#drill-total")).to_have_text("1")
        expect(page.locator("table.drill")).to_contain_text(early)
        expect(page.locator("table.drill")).not_to_contain_text(running)
        csv = page.request.get("/indicators/export.csv?from=2026-03-01&to=2026-03-31")
        assert csv.status == 200 and csv.body().startswith("\ufeff".encode())
    finally:
        context.close()
