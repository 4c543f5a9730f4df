"""Settling a conflict in a real browser, on a commune node and on the hub.

The same field of one dossier is corrected at the commune's counter and, offline, on a field laptop whose
clock runs ahead; once both changes meet, a person opens the conflict, chooses "take that" (the value that
lost), and sees it settled and the dossier showing that value. Node and hub cannot be open in one process
at once (one database proxy), so each test serves one of them.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from conftest import reception_body  # tests/conftest.py
from node import store, workflow as wf
from node.sync import hlc, log
from node.sync.state import Conflict, Dossier, NodeRecord, User
from node.users import Officer

from .conftest import CHROMIUM_ARGS, VIEWPORT, log_in, serve  # noqa: F401  (CHROMIUM_ARGS documents the launch)

HERE, THERE = "0911111111", "0922222222"
LAPTOP_NAME = "Máy xách tay tổ lưu động"
HUB_PASSWORD = "mat-khau-hub-2026"


def _officer(role: str) -> Officer:
    return Officer.of(User.get(User.username == f"{role}1"))


# ---------------------------------------------------------------- on the commune node

def _node_conflict(node) -> tuple[Dossier, dict]:
    """Reception corrects the phone here; the laptop's correction of the same field arrives (as a pull would)."""
    NodeRecord.insert(node_id="NLAPTOP0000001", public_key="x", kind="laptop", unit_code=node.identity.unit_code,
                      unit_name=LAPTOP_NAME, scope=node.identity.unit_code).on_conflict_ignore().execute()
    d, _ = wf.receive_dossier(node, _officer("reception"), reception_body())
    wf.edit_dossier(node, _officer("reception"), d.code, {"applicant_phone": HERE})
    ms = hlc.wall_ms() + 120_000
    change = {"node_id": "NLAPTOP0000001", "seq": 1, "hlc": str(hlc.Timestamp(ms, 0)), "entity": "dossier",
              "entity_id": d.id, "op": "update", "author": "U-LAPTOP", "prev": log.GENESIS, "hash": "x", "sig": "x",
              "payload": {"set": {"applicant_phone": THERE}, "base": {"applicant_phone": d.version},
                          "unit": d.unit_code, "by_name": "Phạm Thị Lan", "at": "2026-03-02 09:30:00"}}
    with store.transaction(node):
        store.apply_change(change)
    row = Conflict.get()
    return Dossier.get_by_id(d.id), {"id": row.id, "candidates": json.loads(row.candidates)}


def test_leader_takes_that_on_the_node(page, live_node, shot):
    d, conflict = _node_conflict(live_node.node)
    assert d.applicant_phone == THERE
    log_in(page, "leader")
    badge = page.locator("header.top nav a.nav-reviews .review-count")
    expect(badge).to_have_text("1")
    with page.expect_navigation():
        page.click("header.top nav a.nav-reviews")
    row = page.locator(f"table.conflicts tr[data-conflict='{conflict['id']}']")
    expect(row).to_contain_text(d.code)
    expect(row).to_contain_text("Điện thoại")
    shot("list")
    with page.expect_navigation():
        row.locator("a.open-conflict").click()
    card = page.locator("article.conflict")
    expect(card.locator(".current-value")).to_have_text(THERE)
    expect(card).to_contain_text(LAPTOP_NAME)
    expect(card).to_contain_text("Phạm Thị Lan")
    expect(card).to_contain_text("UBND xã Tân Cương")
    mine = card.locator("tr.candidate", has_text=HERE)
    expect(mine.locator(".not-applied")).to_have_text("Không được áp dụng")
    shot("conflict")
    with page.expect_navigation():
        mine.locator("button.take").click()
    expect(page.locator(".flash.success")).to_have_text("Đã ghi nhận quyết định về xung đột.")
    expect(page.locator("article.conflict .badge").first).to_have_text("Đã giải quyết")
    expect(page.locator("article.conflict .current-value")).to_have_text(HERE)
    expect(page.locator("header.top nav a.nav-reviews .review-count")).to_have_count(0)
    with page.expect_navigation():
        page.click(f"a.code:has-text('{d.code}')")
    expect(page.locator("dl.facts")).to_contain_text(HERE)
    shot("dossier")
    assert Dossier.get_by_id(d.id).applicant_phone == HERE


def test_reception_edits_details_with_errors_shown_in_vietnamese(page, live_node, shot):
    d, _ = wf.receive_dossier(live_node.node, _officer("reception"), reception_body())
    log_in(page, "reception")
    page.goto(f"/dossier/{d.code}")
    page.click("summary.action-edit")
    form = page.locator("#form-edit")
    form.locator("input[name=applicant_phone]").fill("12ab")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    expect(page.locator("label.invalid .field-error")).to_have_text("Số điện thoại gồm 9–15 chữ số.")
    expect(page.locator("#form-edit input[name=applicant_phone]")).to_have_value("12ab")
    shot("error")
    page.locator("#form-edit input[name=applicant_phone]").fill("0987 654 321")
    page.locator("#form-edit input[name=applicant_address]").fill("Xóm Đồi, xã Tân Cương")
    with page.expect_navigation():
        page.locator("#form-edit button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"/dossier/{re.escape(d.code)}$"))
    expect(page.locator(".flash.success")).to_have_text("Đã lưu thông tin hồ sơ.")
    expect(page.locator("dl.facts")).to_contain_text("0987 654 321")
    expect(page.locator("dl.facts")).to_contain_text("Xóm Đồi, xã Tân Cương")


# ---------------------------------------------------------------- on the hub

@pytest.fixture
def hub_with_conflict(tmp_path, node_dir, clock):
    """A hub holding the commune node's correction and the laptop's concurrent one (both pushed)."""
    from central import create_app
    from central.instance import init_hub
    from central.storage.testing import NodeWriter
    from central.tokens import create_token
    from node.instance import Node

    node = Node(node_dir, now=clock)
    try:
        d, _ = wf.receive_dossier(node, _officer("reception"), reception_body())
        wf.edit_dossier(node, _officer("reception"), d.code, {"applicant_phone": HERE})
        changes = list(log.iter_changes(node.node_id))
        ident = node.identity
        node_key = node.key
    finally:
        node.close()
    init_hub(tmp_path / "hub", "Trung tâm huyện Đồng Hỷ", "admin", HUB_PASSWORD)
    app = create_app({"DATA_DIR": str(tmp_path / "hub"), "NOW": clock})
    hub = app.extensions["motcua_hub"]
    try:
        client = app.test_client()
        laptop = NodeWriter(ident.unit_code)
        laptop.clock = hlc.Clock(now_ms=lambda: hlc.wall_ms() + 120_000)
        for record, kind in (({"node_id": ident.node_id, "public_key": node_key.public_b64,
                               "unit_code": ident.unit_code, "unit_name": ident.unit_name}, "commune"),
                             (dict(laptop.record(), unit_name=LAPTOP_NAME), "laptop")):
            token = create_token(hub, [ident.unit_code], kind)
            resp = client.post("/api/v1/enroll", json={"token": token, "software_version": "0.1.0", **record})
            assert resp.status_code == 200, resp.data
        hub.storage.ingest_push(ident.node_id, changes, now=hub.now())
        create = next(c for c in changes if c["entity"] == "dossier" and c["op"] == "create")
        edit = laptop.change("dossier", d.id, "update", {
            "set": {"applicant_phone": THERE}, "base": {"applicant_phone": f"{create['hlc']}~{create['node_id']}"},
            "unit": ident.unit_code, "by_name": "Phạm Thị Lan", "at": "2026-03-02 09:30:00"}, author="U-LAPTOP")
        hub.storage.ingest_push(laptop.node_id, [edit], now=hub.now())
        assert Conflict.select().count() == 1 and Dossier.get_by_id(d.id).applicant_phone == THERE
        with serve(app) as url:
            yield url, d.id, d.code
    finally:
        hub.close()


def test_hub_administrator_takes_that(browser, hub_with_conflict, request):
    url, dossier_id, code = hub_with_conflict
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", base_url=url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        from .conftest import SCREENSHOTS

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.goto("/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", HUB_PASSWORD)
        with page.expect_navigation():
            page.click("form button[type=submit]")
        expect(page).to_have_url(re.compile(r"/nodes$"))
        expect(page.locator("header.top nav a.nav-reviews .review-count")).to_have_text("1")
        with page.expect_navigation():
            page.click("header.top nav a.nav-reviews")
        page.select_option("select[name=unit]", "000.00.19.H55")
        with page.expect_navigation():
            page.click("form.filters button[type=submit]")
        row = page.locator("table.conflicts tr", has_text=code)
        expect(row).to_contain_text("Điện thoại")
        with page.expect_navigation():
            row.locator("a.open-conflict").click()
        card = page.locator("article.conflict")
        expect(card.locator(".current-value")).to_have_text(THERE)
        expect(card).to_contain_text(LAPTOP_NAME)
        expect(card).to_contain_text("UBND xã Tân Cương")
        page.screenshot(path=str(SCREENSHOTS / "hub-conflict.png"), full_page=True)
        with page.expect_navigation():
            card.locator("tr.candidate", has_text=HERE).locator("button.take").click()
        expect(page.locator(".flash.success")).to_have_text("Đã ghi nhận quyết định về xung đột.")
        expect(page.locator("article.conflict .badge").first).to_have_text("Đã giải quyết")
        expect(page.locator("article.conflict .current-value")).to_have_text(HERE)
        expect(page.locator("header.top nav a.nav-reviews .review-count")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOTS / "hub-conflict-settled.png"), full_page=True)
        assert Dossier.get_by_id(dossier_id).applicant_phone == HERE
    finally:
        context.close()
