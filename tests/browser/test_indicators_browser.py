"""The commune's indicator dashboard in a real browser: log in as the leader, pick a period, see the SVG
charts and the figures, follow a figure to the dossiers behind it, and a bad period's message."""

from __future__ import annotations

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
