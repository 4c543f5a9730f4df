"""A resident submits a dossier online on the hub in a real browser, then follows it by code.

The hub (CSRF on, as in production) serves two enrolled communes. The resident chooses the commune and
the procedure, first types an ID number with a letter in it (the form says why and keeps what was typed),
then fills it correctly, attaches a PDF scan, answers the arithmetic question as printed on the page, and
reads the dossier code off the receipt; the status page shows "Mới đăng ký".
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from central.public_views import WORDS_VI
from central.storage.testing import UNIT_A, UNIT_B, NodeWriter

from .conftest import SCREENSHOTS, VIEWPORT, serve

HUB_PASSWORD = "mat-khau-hub-2026"
PDF = b"%PDF-1.4\n" + b"0123456789abcdef" * 4096


@pytest.fixture
def public_hub(tmp_path, clock):
    """(url, hub) of a hub with communes A (Tân Cương) and B (Hóa Thượng) enrolled."""
    from central import create_app
    from central.instance import init_hub
    from central.tokens import create_token

    init_hub(tmp_path / "hub", "Trung tâm huyện Đồng Hỷ", "admin", HUB_PASSWORD)
    app = create_app({"DATA_DIR": str(tmp_path / "hub"), "NOW": clock})
    hub = app.extensions["motcua_hub"]
    try:
        client = app.test_client()
        for unit, name in ((UNIT_A, "UBND xã Tân Cương"), (UNIT_B, "UBND xã Hóa Thượng")):
            token = create_token(hub, [unit], "commune")
            resp = client.post("/api/v1/enroll", json={"token": token, "software_version": "0.1.0",
                                                       **dict(NodeWriter(unit).record(), unit_name=name)})
            assert resp.status_code == 200, resp.data
        with serve(app) as url:
            yield url, hub
    finally:
        hub.close()


def _answer(page) -> str:
    question = page.locator(".challenge-question").inner_text()
    a, op, b = re.match(r"(\S+) (cộng|trừ) (\S+) bằng mấy\?", question).groups()
    x, y = WORDS_VI.index(a.lower()), WORDS_VI.index(b)
    return str(x + y if op == "cộng" else x - y)


def test_resident_submits_online_and_follows_the_dossier(browser, public_hub, request):
    from node.sync.state import Attachment, Dossier

    url, hub = public_hub
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", base_url=url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto("/nop-ho-so")
        page.select_option("select[name=unit]", label="UBND xã Tân Cương")
        page.select_option("select[name=procedure]", "1.001193")
        with page.expect_navigation():
            page.click("form.choose button[type=submit]")
        expect(page.locator("h1")).to_have_text("Nộp hồ sơ trực tuyến")
        expect(page.locator("ul.documents")).not_to_be_empty()
        form = page.locator("#submit-form")
        form.locator("input[name=applicant_name]").fill("Nguyễn Thị Hương")
        form.locator("input[name=id_number]").fill("01930500123A")
        form.locator("input[name=birth_date]").fill("2005-04-12")
        form.locator("select[name=gender]").select_option("female")
        form.locator("input[name=address]").fill("Xóm Chè, xã Tân Cương")
        form.locator("input[name=phone]").fill("0987 654 321")
        form.locator("input[name=scans]").set_input_files(
            [{"name": "giay-chung-sinh.pdf", "mimeType": "application/pdf", "buffer": PDF}])
        form.locator("input[name=challenge_answer]").fill(_answer(page))
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        expect(page.locator("#field-id_number .field-error")).to_contain_text("chỉ được gồm các chữ số")
        expect(page.locator("#form-errors")).to_be_visible()
        expect(page.locator("input[name=applicant_name]")).to_have_value("Nguyễn Thị Hương")
        page.screenshot(path=str(SCREENSHOTS / f"{test}-error.png"), full_page=True)
        assert Dossier.select().count() == 0

        page.locator("input[name=id_number]").fill("019305001234")
        page.locator("input[name=scans]").set_input_files(
            [{"name": "giay-chung-sinh.pdf", "mimeType": "application/pdf", "buffer": PDF}])
        page.locator("input[name=challenge_answer]").fill(_answer(page))
        with page.expect_navigation():
            page.locator("#submit-form button[type=submit]").click()
        expect(page.locator("h1")).to_have_text("Đã nộp hồ sơ")
        code = page.locator("#dossier-code").inner_text().strip()
        assert re.fullmatch(rf"{re.escape(UNIT_A)}\.HUB-260302-0001", code)
        expect(page.locator("#files")).to_have_text("1")
        page.screenshot(path=str(SCREENSHOTS / f"{test}-receipt.png"), full_page=True)
        d = Dossier.get(Dossier.code == code)
        assert (d.status, d.channel, d.unit_code) == (1, 2, UNIT_A)
        att = Attachment.get(Attachment.dossier_id == d.id)
        assert hub.files.path(att.sha256).read_bytes() == PDF

        with page.expect_navigation():
            page.click("a.follow")
        expect(page.locator("#status")).to_have_text("Mới đăng ký")
        expect(page.locator("main")).not_to_contain_text("019305001234")
        page.screenshot(path=str(SCREENSHOTS / f"{test}-lookup.png"), full_page=True)
    finally:
        context.close()
