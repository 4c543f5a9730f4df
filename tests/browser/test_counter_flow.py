"""The issue's required flow in a real browser: receive a birth registration at the counter, print the
receipt, and carry the dossier through transfer, assignment, proposal, signature and return."""

from __future__ import annotations

import importlib
import re

from playwright.sync_api import expect

from .conftest import do_action, log_in, log_out, png_bytes

BIRTH = "1.001193"
STEPS_VI = ["Tiếp nhận hồ sơ", "Chuyển xử lý", "Phân công xử lý", "Trình ký", "Ký duyệt, có kết quả",
            "Trả kết quả"]


def _printing_available() -> bool:
    try:
        importlib.import_module("node.web.printing")
    except ModuleNotFoundError as exc:
        if exc.name != "node.web.printing":
            raise
        return False
    return True


def _visible_procedures(page) -> list[str]:
    return page.locator("#proc-list li:visible .code").all_inner_texts()


def _filter(page, text: str) -> list[str]:
    page.fill("#proc-filter", text)
    return _visible_procedures(page)


def test_counter_to_returned_result(page, live_node, shot):
    log_in(page, "reception")
    expect(page).to_have_url(re.compile(r"/counter$"))
    expect(page.locator("h1")).to_have_text("Tiếp nhận hồ sơ")
    everything = _visible_procedures(page)
    assert BIRTH in everything and len(everything) >= 10

    # The filter folds diacritics (đ as d) on both sides, word by word.
    for typed in ("khai sinh", "dang ky khai sinh", "ĐĂNG KÝ khai SINH", "Đăng ký khai sinh"):
        shown = _filter(page, typed)
        assert BIRTH in shown, typed
        assert "1.000656" not in shown and "2.000884" not in shown, typed  # death, signature certification
    death = _filter(page, "dang ky khai tu")
    assert "1.000656" in death and BIRTH not in death
    assert _filter(page, BIRTH) == [BIRTH]
    assert _filter(page, "khong co thu tuc nay") == []
    _filter(page, "dang ky khai sinh")

    page.locator("#proc-list li", has_text=BIRTH).locator("label").click()
    expect(page.locator(f"input[name=procedure_code][value='{BIRTH}']")).to_be_checked()
    catalog = page.evaluate("JSON.parse(document.getElementById('catalog').textContent)")
    wanted = next(p for p in catalog if p["code"] == BIRTH)["documents"]
    rows = page.locator("#docs tr")
    expect(rows).to_have_count(len(wanted))
    assert len(wanted) >= 1
    for i, doc in enumerate(wanted):
        expect(rows.nth(i).locator("input[name=doc_name]")).to_have_value(doc["name_vi"])
        expect(rows.nth(i).locator(f"input[name=doc_include_{i}]")).to_be_checked()

    page.fill("input[name=applicant_name]", "Nguyễn Thị Hương")
    page.fill("input[name=applicant_id_number]", "019305001234")
    page.fill("input[name=applicant_birth_date]", "2005-04-12")
    page.select_option("select[name=applicant_gender]", "female")
    page.fill("input[name=applicant_address]", "Xóm Chợ, xã Tân Cương")
    page.fill("input[name=applicant_phone]", "0912345678")
    page.set_input_files("#reception input[type=file][name=files]",
                         files=[{"name": "giay-chung-sinh.png", "mimeType": "image/png", "buffer": png_bytes()}])
    shot("counter")
    with page.expect_navigation():
        page.click("#reception button[type=submit]")

    expect(page).to_have_url(re.compile(r"/dossier/000\.00\.19\.H55-260302-0001$"))
    code = page.inner_text("#dossier-code")
    assert code == "000.00.19.H55-260302-0001"
    expect(page.locator(".flash.success")).to_contain_text(f"Đã tiếp nhận hồ sơ {code}")
    expect(page.locator(".dossier-head .badge").first).to_have_text("Đã tiếp nhận")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Nguyễn Thị Hương · 019305001234")
    expect(page.locator("ul.files")).to_contain_text("giay-chung-sinh.png")
    assert "019305001234" not in page.url
    shot("dossier")

    if _printing_available():
        expect(page.locator("#print-01")).to_have_count(1)
    if page.locator("#print-01").count():
        with page.context.expect_page() as opened:
            page.click("#print-01")
        receipt = opened.value
        receipt.wait_for_load_state()
        assert receipt.url.startswith(live_node.url)
        expect(receipt.locator("body")).to_contain_text(code)
        expect(receipt.locator("body")).to_contain_text("Nguyễn Thị Hương")
        shot("receipt", of=receipt)
        receipt.close()

    do_action(page, "transfer")
    expect(page.locator(".dossier-head .badge").first).to_have_text("Đang xử lý")
    expect(page.locator("summary.action-transfer")).to_have_count(0)
    log_out(page)

    log_in(page, "leader")
    expect(page).to_have_url(re.compile(r"/worklist/mine$"))
    with page.expect_navigation():
        page.click(f"table.list a:text-is('{code}')")
    expect(page.locator("summary.action-sign")).to_have_count(0)  # nothing to sign before a proposal
    do_action(page, "assign", lambda form: form.locator("select[name=handler_id]").select_option(
        label="Trần Văn Đức"))
    expect(facts).to_contain_text("Trần Văn Đức")
    log_out(page)

    log_in(page, "specialist")
    expect(page.locator("table.list")).to_contain_text(code)
    page.goto(f"/dossier/{code}")
    expect(page.locator("summary.action-assign")).to_have_count(0)
    do_action(page, "propose", lambda form: form.locator("input[name=note]").fill("Đủ điều kiện, trình ký"))
    log_out(page)

    log_in(page, "leader")
    page.goto(f"/dossier/{code}")
    do_action(page, "sign")
    expect(page.locator(".dossier-head .badge").first).to_have_text("Có kết quả")
    log_out(page)

    log_in(page, "reception")
    page.goto(f"/dossier/{code}")
    do_action(page, "return_result", lambda form: form.get_by_label("Rất hài lòng").check())

    expect(page.locator(".dossier-head .badge").first).to_have_text("Đã trả kết quả")
    expect(page.locator("body")).to_contain_text("Đã trả kết quả")
    expect(facts).to_contain_text("Rất hài lòng")
    expect(page.locator("details.action")).to_have_count(0)
    steps = page.locator("ol.timeline > li")
    expect(steps).to_have_count(len(STEPS_VI))
    for i, label in enumerate(STEPS_VI):
        expect(steps.nth(i).locator("b")).to_have_text(label)
    expect(steps.nth(2)).to_contain_text("Trần Văn Đức")
    expect(steps.nth(3)).to_contain_text("Đủ điều kiện, trình ký")
    expect(steps.nth(5)).to_contain_text("Rất hài lòng")
    expect(steps.last).to_contain_text("(Có kết quả → Đã trả kết quả)")
    shot("returned")
