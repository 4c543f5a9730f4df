"""The officers' pages in a real browser: validation, language switch, roles, login errors, worklist
tabs, and the 1366 px counter screen."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from conftest import reception_body  # tests/conftest.py
from node import workflow as wf
from node.sync.state import Dossier, User
from node.users import Officer

from .conftest import VIEWPORT, do_action, log_in, log_out, png_bytes

BIRTH = "1.001193"


def _officer(role: str) -> Officer:
    return Officer.of(User.get(User.username == f"{role}1"))


def _receive(live_node, online: bool = False, **over) -> str:
    """A dossier received directly through the workflow (the browser is not what these tests check)."""
    dossier, _ = wf.receive_dossier(live_node.node, None if online else _officer("reception"),
                                    reception_body(**over), online=online)
    return dossier.code


def _fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"{page.url} is {width}px wide: it scrolls sideways at 1366px"


def _stored_blobs(live_node) -> list:
    return [p for p in (live_node.node_dir / "files").rglob("*") if p.is_file()]


def test_validation_errors_are_vietnamese_next_to_fields_and_keep_values(page, live_node, shot):
    log_in(page, "reception")
    page.locator("#proc-list li", has_text=BIRTH).locator("label").click()
    page.fill("input[name=applicant_name]", "Đặng Thị Bích Ngọc")
    page.fill("input[name=applicant_id_number]", "01930500123")  # 11 digits
    page.fill("input[name=applicant_address]", "Xóm Đồi, xã Tân Cương")
    page.fill("input[name=applicant_phone]", "0987654321")
    rows = page.locator("#docs tr")
    rows.nth(0).locator("input[name=doc_count_0]").fill("2")
    rows.nth(0).locator("input[name=doc_digitised_0]").check()
    rows.nth(1).locator("input[name=doc_name]").fill("Giấy chứng sinh (bản sao có chứng thực)")
    rows.nth(1).locator("select[name=doc_kind_1]").select_option("certified")
    rows.last.locator("input[type=checkbox]").first.uncheck()
    typed_docs = rows.count()
    page.set_input_files("#reception input[name=files]",
                         files=[{"name": "to-khai.png", "mimeType": "image/png", "buffer": png_bytes()}])
    with page.expect_navigation():
        page.click("#reception button[type=submit]")

    expect(page.locator(".flash.error")).to_contain_text("Hồ sơ chưa hợp lệ")
    id_label = page.locator("label.invalid", has=page.locator("input[name=applicant_id_number]"))
    expect(id_label.locator(".field-error")).to_contain_text("12 chữ số")
    expect(page.locator("label.invalid")).to_have_count(1)  # only the ID is marked
    expect(page.locator("input[name=applicant_name]")).to_have_value("Đặng Thị Bích Ngọc")
    expect(page.locator("input[name=applicant_id_number]")).to_have_value("01930500123")
    expect(page.locator("input[name=applicant_address]")).to_have_value("Xóm Đồi, xã Tân Cương")
    expect(page.locator("input[name=applicant_phone]")).to_have_value("0987654321")
    expect(page.locator(f"input[name=procedure_code][value='{BIRTH}']")).to_be_checked()
    # The checklist comes back as the officer left it, not as the catalogue has it.
    expect(rows).to_have_count(typed_docs)
    expect(rows.nth(0).locator("input[name=doc_count_0]")).to_have_value("2")
    expect(rows.nth(0).locator("input[name=doc_digitised_0]")).to_be_checked()
    expect(rows.nth(0).locator("input[name=doc_include_0]")).to_be_checked()
    expect(rows.nth(1).locator("input[name=doc_name]")).to_have_value("Giấy chứng sinh (bản sao có chứng thực)")
    expect(rows.nth(1).locator("select[name=doc_kind_1]")).to_have_value("certified")
    expect(rows.last.locator("input[type=checkbox]").first).not_to_be_checked()
    _fits(page)
    shot("invalid")
    assert Dossier.select().count() == 0, "a refused form must leave no partial dossier"
    assert _stored_blobs(live_node) == [], "a refused form must leave no stored scan"

    page.fill("input[name=applicant_id_number]", "019305001234")
    with page.expect_navigation():
        page.click("#reception button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dossier/000\.00\.19\.H55-260302-0001$"))
    expect(page.locator("dl.facts")).to_contain_text("Đặng Thị Bích Ngọc")
    assert Dossier.select().count() == 1
    kept = page.locator("table.list tbody tr")
    expect(kept).to_have_count(typed_docs - 1)  # the unchecked row was left out
    expect(kept.nth(0)).to_contain_text("Đã số hóa")
    expect(kept.nth(1)).to_contain_text("Giấy chứng sinh (bản sao có chứng thực)")
    expect(kept.nth(1)).to_contain_text("Bản sao chứng thực")


def test_english_switch_and_back(page, live_node):
    log_in(page, "reception")
    expect(page.locator("h1")).to_have_text("Tiếp nhận hồ sơ")
    page.click("a.lang:text-is('English')")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Receive a dossier")
    expect(page.locator("#reception")).to_contain_text("Full name")
    expect(page.locator("#reception")).to_contain_text("Personal ID number (CCCD)")
    expect(page.locator("#reception button[type=submit]")).to_have_text("Receive and print the receipt")
    expect(page.locator("header.top nav")).to_contain_text("Counter")
    expect(page.locator("#proc-list")).to_contain_text("Birth registration")
    page.locator("#proc-list li", has_text=BIRTH).locator("label").click()
    catalog = page.evaluate("JSON.parse(document.getElementById('catalog').textContent)")
    first = next(p for p in catalog if p["code"] == BIRTH)["documents"][0]
    expect(page.locator("#docs input[name=doc_name]").first).to_have_value(first["name_en"])
    _fits(page)

    page.goto("/worklist/mine")  # the choice is remembered in the session
    expect(page.locator(".tab-mine")).to_contain_text("Mine")
    page.click("a.lang:text-is('Tiếng Việt')")
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    expect(page.locator(".tab-mine")).to_contain_text("Của tôi")
    page.goto("/counter")
    expect(page.locator("h1")).to_have_text("Tiếp nhận hồ sơ")
    expect(page.locator("#reception")).to_contain_text("Họ và tên")


def test_role_without_the_action_does_not_see_it(page, live_node):
    code = _receive(live_node)
    log_in(page, "specialist")
    expect(page).to_have_url(re.compile(r"/worklist/mine$"))
    nav = page.locator("header.top nav")
    expect(nav).to_contain_text("Danh sách công việc")
    expect(nav.locator("a[href$='/counter']")).to_have_count(0)
    expect(nav).not_to_contain_text("Tiếp nhận hồ sơ")
    expect(nav).not_to_contain_text("Quầy tiếp nhận")
    page.goto(f"/dossier/{code}")
    expect(page.locator("summary.action-transfer")).to_have_count(0)
    expect(page.locator("details.action")).to_have_count(0)
    expect(page.locator("body")).to_contain_text("Không có thao tác nào bạn được phép làm ở trạng thái này.")
    response = page.goto("/counter")
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("Bạn không có quyền")
    log_out(page)

    log_in(page, "reception")
    expect(page.locator("header.top nav a[href$='/counter']")).to_have_count(1)
    page.goto(f"/dossier/{code}")
    expect(page.locator("summary.action-transfer")).to_have_count(1)


def test_wrong_password_shows_vietnamese_error(page, live_node):
    page.goto("/login")
    page.fill("input[name=username]", "reception1")
    page.fill("input[name=password]", "khong-dung")
    with page.expect_navigation() as nav:
        page.click("form button[type=submit]")
    response = nav.value
    assert response is not None and response.status == 401
    expect(page.locator(".flash.error[role=alert]")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
    expect(page.locator("header.top nav")).to_have_count(0)
    assert "khong-dung" not in page.content()
    log_in(page, "reception")
    expect(page).to_have_url(re.compile(r"/counter$"))


def test_worklist_tabs_show_counts(page, live_node, shot):
    soon = _receive(live_node)  # birth registration: due at 17:00 today
    later = _receive(live_node, procedure_code="1.004222")  # permanent residence: 7 working days
    online = _receive(live_node, online=True, applicant_name="Lê Văn Nam", applicant_id_number="019205001235",
                      applicant_gender="male")
    log_in(page, "reception")
    page.goto("/worklist/mine")
    expected = {"mine": 3, "due_soon": 1, "overdue": 0, "supplement": 0, "new": 1, "all": 3}
    for tab, count in expected.items():
        expect(page.locator(f"nav.tabs .tab-{tab} .count")).to_have_text(str(count))
    expect(page.locator("nav.tabs .tab-mine")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("table.list tbody tr")).to_have_count(3)
    _fits(page)
    shot("mine")

    page.click("nav.tabs .tab-due_soon")
    expect(page.locator("nav.tabs .tab-due_soon")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list")).to_contain_text(soon)
    page.click("nav.tabs .tab-new")
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list")).to_contain_text(online)
    page.click("nav.tabs .tab-overdue")
    expect(page.locator("main")).to_contain_text("Không có hồ sơ nào.")
    page.click("nav.tabs .tab-all")
    expect(page.locator("table.list")).to_contain_text(later)


def test_counter_and_dossier_fit_1366_without_horizontal_scroll(page, live_node, shot):
    long_name = "Nguyễn Hoàng Phương Thảo Tôn Nữ Thị Ngọc Bích Huyền Trang"
    code = _receive(live_node, applicant_name=long_name,
                    applicant_address="Thôn Đồng Kiệm, xóm Trại Cài, xã Tân Cương, tỉnh Thái Nguyên, Việt Nam",
                    matter="Đăng ký khai sinh cho con thứ hai, kèm xác nhận thông tin cư trú và cấp thẻ BHYT")
    log_in(page, "reception")
    page.locator("#proc-list li", has_text="2.000986").locator("label").click()  # the longest name
    expect(page.locator("#docs tr").first).to_be_visible()
    _fits(page)
    page.goto(f"/dossier/{code}")
    page.evaluate("document.querySelectorAll('details.action').forEach(function (d) { d.open = true; })")
    _fits(page)
    do_action(page, "transfer")
    log_out(page)

    log_in(page, "leader")  # the leader's page holds the most action forms
    page.goto(f"/dossier/{code}")
    expect(page.locator("details.action")).not_to_have_count(0)
    page.evaluate("document.querySelectorAll('details.action').forEach(function (d) { d.open = true; })")
    _fits(page)
    shot("leader-dossier")
    page.click("a.lang:text-is('English')")
    page.evaluate("document.querySelectorAll('details.action').forEach(function (d) { d.open = true; })")
    expect(page.locator("h2").first).to_have_text("Dossier details")
    _fits(page)
