"""The hub administrator adds a police specialist in a real browser, and the specialist sees only the
police's interconnected dossiers.

The hub (CSRF on, as in production) holds two dossiers a commune sent to agencies: one to the police, one
to social insurance. The administrator first forgets the agency (the form says a specialist must belong to
one and keeps what was typed), then picks the police; the specialist logs in, lands on the worklist, which
offers only the police and lists only its dossier, and the other agency's dossier answers 403.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from central.storage.testing import UNIT_A, NodeWriter
from node import workflow as wf

from .conftest import SCREENSHOTS, VIEWPORT, serve

HUB_PASSWORD = "mat-khau-hub-2026"
POLICE, SOCIAL = f"{UNIT_A}-260302-0101", f"{UNIT_A}-260302-0102"


@pytest.fixture
def agency_hub(tmp_path, clock):
    """(url, hub) of a hub with commune A enrolled and two of its dossiers at agencies."""
    from central import create_app
    from central.instance import init_hub
    from central.tokens import create_token
    from node.sync.ids import new_id

    init_hub(tmp_path / "hub", "Trung tâm huyện Đồng Hỷ", "admin", HUB_PASSWORD)
    app = create_app({"DATA_DIR": str(tmp_path / "hub"), "NOW": clock})
    hub = app.extensions["motcua_hub"]
    try:
        writer = NodeWriter(UNIT_A)
        token = create_token(hub, [UNIT_A], "commune")
        resp = app.test_client().post("/api/v1/enroll", json={"token": token, "software_version": "0.1.0",
                                                               **dict(writer.record(), unit_name="UBND xã Tân Cương")})
        assert resp.status_code == 200, resp.data
        changes = []
        for code, agency in ((POLICE, "police"), (SOCIAL, "social_insurance")):
            changes.append(writer.change("dossier", new_id(), "create", {"fields": {
                "code": code, "unit_code": UNIT_A, "procedure_code": "2.000986", "procedure_version": 1,
                "status": wf.PROCESSING, "step": f"agency:{agency}", "applicant_name": "Hoàng Văn Thái",
                "received_at": "2026-03-02 09:00:00"}}))
        hub.storage.ingest_push(writer.node_id, changes, now=clock())
        with serve(app) as url:
            yield url, hub
    finally:
        hub.close()


def _login(page, username: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")


def test_admin_ties_a_specialist_to_the_police_who_sees_only_its_dossiers(browser, agency_hub, request):
    url, hub = agency_hub
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin = browser.new_context(viewport=VIEWPORT, locale="vi-VN", base_url=url)
    officer = browser.new_context(viewport=VIEWPORT, locale="vi-VN", base_url=url)
    try:
        admin.set_default_timeout(10_000)
        page = admin.new_page()
        _login(page, "admin", HUB_PASSWORD)
        page.goto("/admin/users")
        form = page.locator("#add-user")
        form.locator("input[name=username]").fill("cv.congan")
        form.locator("input[name=full_name]").fill("Trần Văn Công An")
        form.locator("input[name=roles][value=specialist]").check()
        form.locator("input[name=password]").fill("mat-khau-cong-an")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        expect(page.locator("#add-user .field-error")).to_contain_text("phải thuộc một cơ quan")
        expect(page.locator("#add-user input[name=full_name]")).to_have_value("Trần Văn Công An")
        page.screenshot(path=str(SCREENSHOTS / f"{test}-error.png"), full_page=True)
        assert hub.storage.user("cv.congan") is None

        form = page.locator("#add-user")
        form.locator("select[name=agency]").select_option("police")
        form.locator("input[name=password]").fill("mat-khau-cong-an")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        expect(page.locator(".flash.success")).to_contain_text("cv.congan")
        expect(page.locator("#agency-cv\\.congan select[name=agency]")).to_have_value("police")
        page.screenshot(path=str(SCREENSHOTS / f"{test}-users.png"), full_page=True)
        assert hub.storage.user("cv.congan")["agency"] == "police"

        officer.set_default_timeout(10_000)
        page = officer.new_page()
        _login(page, "cv.congan", "mat-khau-cong-an")
        expect(page.locator("h1")).to_have_text("Hồ sơ liên thông")
        expect(page.locator("#transfers")).to_contain_text(POLICE)
        expect(page.locator("#transfers")).not_to_contain_text(SOCIAL)
        expect(page.locator("#transfer-filter select[name=agency] option")).to_have_count(1)
        page.screenshot(path=str(SCREENSHOTS / f"{test}-worklist.png"), full_page=True)
        response = page.goto(f"/transfers/{SOCIAL}")
        assert response.status == 403
        expect(page.locator("main")).to_contain_text("không được gửi đến cơ quan của bạn")
        page.goto(f"/transfers/{POLICE}")
        expect(page.locator("#form-agency_accept")).to_be_attached()
    finally:
        admin.close()
        officer.close()
