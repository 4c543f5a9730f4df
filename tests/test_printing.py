"""Printed forms 01–05, the tracking ledger (form 06, HTML and CSV) and the public lookup page."""

from __future__ import annotations

import csv
import io

import pytest

from conftest import login, reception_body
from node import users, workflow as wf
from node.sync.state import User
from node.web.printing import date_line, heading, stage_result

HEADING = ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc", "UBND XÃ TÂN CƯƠNG",
           "UBND TỈNH THÁI NGUYÊN")
NAME, ID_NUMBER = "Nguyễn Thị Hương", "019305001234"


@pytest.fixture
def web_node(app):
    """The app's own node: writes go through the same database the views read."""
    return app.extensions["motcua_node"]


@pytest.fixture
def staff(web_node) -> dict[str, users.Officer]:
    return {role: users.Officer.of(User.get(User.username == f"{role}1"))
            for role in ("reception", "specialist", "leader", "admin")}


@pytest.fixture
def receive(web_node, staff):
    def _receive(**over):
        dossier, _warnings = wf.receive_dossier(web_node, staff["reception"], reception_body(**over))
        return dossier
    return _receive


def page(resp) -> str:
    return resp.get_data(as_text=True)


def assert_heading(html: str) -> None:
    for text in HEADING:
        assert text in html


# ---------------------------------------------------------------- helpers

def test_stage_result_compares_by_day_then_time():
    assert stage_result("2026-03-02 09:00:00", "2026-03-03 08:00:00") == "Trước hạn"
    assert stage_result("2026-03-02 16:59:00", "2026-03-02 17:00:00") == "Đúng hạn"
    assert stage_result("2026-03-02 17:00:00", "2026-03-02 17:00:00") == "Đúng hạn"
    assert stage_result("2026-03-02 17:01:00", "2026-03-02 17:00:00") == "Quá hạn"
    assert stage_result("2026-03-04 08:00:00", "2026-03-03 17:00:00") == "Quá hạn"
    assert stage_result("2026-03-04 08:00:00", "") == ""


def test_date_line_follows_the_decree_on_leading_zeros():
    assert date_line("Thái Nguyên", "2026-03-02 09:00:00") == "Thái Nguyên, ngày 02 tháng 3 năm 2026"
    assert date_line("Tân Cương", "2026-02-15 09:00:00") == "Tân Cương, ngày 15 tháng 02 năm 2026"
    assert "ngày ....." in date_line("Tân Cương", "")


def test_heading_prefers_parent_and_names_a_city():
    from node.instance import Identity

    ident = Identity(node_id="n", unit_code="u", unit_name="UBND phường Ba Đình", province_name="Hà Nội")
    assert heading(ident)["parent"] == "UBND THÀNH PHỐ HÀ NỘI"
    assert heading(ident)["place"] == "Hà Nội"
    ident = Identity(node_id="n", unit_code="u", unit_name="UBND xã Tân Cương", parent_name="huyện Đại Từ")
    assert heading(ident)["parent"] == "UBND HUYỆN ĐẠI TỪ"
    assert heading(ident)["place"] == "Tân Cương"


# ---------------------------------------------------------------- forms 01–05

def test_form01_receipt_with_qr_code_and_lookup_url(client, receive):
    d = receive(applicant_email="huong@example.vn", owner_name="Nguyễn Văn Bé")
    resp = login(client, "reception").get(f"/dossier/{d.code}/print/01")
    assert resp.status_code == 200
    html = page(resp)
    assert_heading(html)
    assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in html
    assert "Thái Nguyên, ngày 02 tháng 3 năm 2026" in html
    assert d.code in html and "<svg" in html
    assert f"http://localhost/tra-cuu/{d.code}" in html
    for text in (NAME, ID_NUMBER, "Xóm Chợ, xã Tân Cương", "0912345678", "huong@example.vn", "Nguyễn Văn Bé",
                 "Đăng ký khai sinh", "Giấy chứng sinh", "Bản chính", "Số lượng hồ sơ: 1 (bộ)", "Trong ngày",
                 "09:00 02/03/2026", "Tại bộ phận một cửa", "NGƯỜI NỘP HỒ SƠ", "NGƯỜI TIẾP NHẬN HỒ SƠ",
                 "Nguyễn Thị Hoa"):
        assert text in html, text
    assert "In / Print" in html and 'class="print-bar no-print"' in html
    assert 'class="top"' not in html  # no UI chrome on the forms


def test_form01_qr_uses_the_configured_public_url(app, client, receive):
    app.config["PUBLIC_URL"] = "https://motcua.tancuong.example/"
    d = receive()
    html = page(login(client, "reception").get(f"/dossier/{d.code}/print/01"))
    assert f"https://motcua.tancuong.example/tra-cuu/{d.code}" in html


def test_forms_stay_vietnamese_in_english_ui(client, receive):
    d = receive()
    login(client, "reception")
    html = page(client.get(f"/dossier/{d.code}/print/01?lang=en"))
    assert "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ" in html and "Thời gian nhận hồ sơ" in html
    assert "Back to the dossier" in html


def test_form02_supplement_request(client, web_node, staff, receive):
    d = receive()
    login(client, "reception")
    assert client.get(f"/dossier/{d.code}/print/02").status_code == 404
    wf.perform(web_node, staff["reception"], d.code, "transfer")
    wf.perform(web_node, staff["leader"], d.code, "request_supplement",
               {"reason": "Thiếu giấy tờ", "items": "Giấy chứng sinh bản chính\nSổ hộ khẩu"})
    resp = client.get(f"/dossier/{d.code}/print/02")
    assert resp.status_code == 200
    html = page(resp)
    assert_heading(html)
    for text in ("PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ", "Giấy chứng sinh bản chính", "Sổ hộ khẩu",
                 "Thiếu giấy tờ", "Đặng Quốc Hưng", NAME, d.code):
        assert text in html, text


def test_form03_refusal_only_for_refused_dossiers(client, web_node, staff, receive):
    d = receive()
    login(client, "reception")
    assert client.get(f"/dossier/{d.code}/print/03").status_code == 404
    online, _w = wf.receive_dossier(web_node, None, reception_body(), online=True)
    assert client.get(f"/dossier/{online.code}/print/01").status_code == 404  # not accepted: no receipt
    wf.perform(web_node, staff["reception"], online.code, "refuse", {"reason": "Không thuộc thẩm quyền của xã"})
    resp = client.get(f"/dossier/{online.code}/print/03")
    assert resp.status_code == 200
    html = page(resp)
    assert_heading(html)
    for text in ("PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ", "Không thuộc thẩm quyền của xã", NAME,
                 "Nguyễn Thị Hoa"):
        assert text in html, text


def test_form04_apology_and_new_appointment(client, clock, web_node, staff, receive):
    d = receive(procedure_code="1.004873")  # 3 working days: Thursday 5 March 09:00
    login(client, "leader")
    assert client.get(f"/dossier/{d.code}/print/04").status_code == 404
    wf.perform(web_node, staff["reception"], d.code, "transfer")
    clock.set("2026-03-04 10:00")
    wf.perform(web_node, staff["leader"], d.code, "apologise",
               {"reason": "Chờ xác minh tại nơi cư trú trước đây", "new_appointment": "2026-03-10 09:00"})
    resp = client.get(f"/dossier/{d.code}/print/04")
    assert resp.status_code == 200
    html = page(resp)
    assert_heading(html)
    for text in ("PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ", "Số: 1/PXL", "Kính gửi: Ông/Bà", NAME, d.code,
                 "Cấp Giấy xác nhận tình trạng hôn nhân", "02/03/2026", "09:00 05/03/2026", "09:00 10/03/2026",
                 "Chờ xác minh tại nơi cư trú trước đây", "CHỦ TỊCH UBND XÃ", "Đặng Quốc Hưng",
                 "Thái Nguyên, ngày 04 tháng 3 năm 2026"):
        assert text in html, text


def test_form05_control_sheet_lists_hand_overs_with_results(client, clock, web_node, staff, receive):
    d = receive(procedure_code="1.004873")
    clock.set("2026-03-02 10:00")
    wf.perform(web_node, staff["reception"], d.code, "transfer")
    clock.set("2026-03-02 11:00")
    wf.perform(web_node, staff["leader"], d.code, "assign", {"handler_id": staff["specialist"].id})
    clock.set("2026-03-06 09:00")  # after the handler's deadline and the appointment
    wf.perform(web_node, staff["specialist"], d.code, "propose", {"note": "Đủ điều kiện"})
    resp = login(client, "specialist").get(f"/dossier/{d.code}/print/05")
    assert resp.status_code == 200
    html = page(resp)
    assert_heading(html)
    for text in ("PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ", d.code, "Tiếp nhận hồ sơ", "Chuyển xử lý",
                 "Phân công xử lý", "Trình ký", "Trần Văn Đức", "Nguyễn Thị Hoa", "Bộ phận chuyên môn",
                 "10:00 02/03/2026", "Đúng hạn", "Quá hạn", "Đủ điều kiện"):
        assert text in html, text
    assert html.split('class="grid control"')[1].count("<tr>") == 1 + 4  # header + one row per hand-over


def test_unknown_form_and_unknown_dossier_404(client, receive):
    d = receive()
    login(client, "reception")
    assert client.get(f"/dossier/{d.code}/print/07").status_code == 404
    assert client.get("/dossier/000.00.19.H55-260302-9999/print/01").status_code == 404


@pytest.mark.parametrize("url", ["/dossier/X/print/01", "/ledger", "/ledger.csv"])
def test_print_views_require_login(client, url):
    resp = client.get(url)
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


# ---------------------------------------------------------------- public lookup

def test_lookup_shows_progress_and_nothing_personal(client, receive):
    d = receive()
    resp = client.get(f"/tra-cuu/{d.code}")
    assert resp.status_code == 200
    html = page(resp)
    for text in (d.code, "Đăng ký khai sinh", "Đã tiếp nhận", "09:00 02/03/2026", "Tại bộ phận một cửa"):
        assert text in html, text
    assert wf.timing(d, ("2026-03-02 09:00:00", "2026-03-03 09:00:00")) in ("in_time", "due_soon")
    for secret in (NAME, ID_NUMBER, "Xóm Chợ", "0912345678"):
        assert secret not in html


def test_lookup_marks_overdue_in_english(client, clock, receive):
    d = receive()
    clock.set("2026-03-04 09:00")
    html = page(client.get(f"/tra-cuu/{d.code}?lang=en"))
    assert "Birth registration" in html and "Accepted" in html and "Overdue" in html


def test_lookup_form_redirects_and_unknown_code_404(client):
    assert client.get("/tra-cuu").status_code == 200
    resp = client.get("/tra-cuu?code=+000.00.19.H55-260302-0001+")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/tra-cuu/000.00.19.H55-260302-0001")
    assert client.get("/tra-cuu?code=<script>").status_code == 400
    resp = client.get("/tra-cuu/000.00.19.H55-260302-9999")
    assert resp.status_code == 404
    assert "Không tìm thấy hồ sơ" in page(resp)
    assert client.get("/tra-cuu/%3Cb%3E").status_code == 404


# ---------------------------------------------------------------- ledger (form 06)

@pytest.fixture
def three_dossiers(clock, receive, web_node):
    codes = []
    for when in ("2026-02-27 10:00", "2026-03-02 09:00", "2026-03-03 14:00"):
        clock.set(when)
        codes.append(receive().code)
    wf.receive_dossier(web_node, None, reception_body(), online=True)  # not accepted: not in the ledger
    return codes


def test_ledger_defaults_to_this_month(client, three_dossiers):
    resp = login(client, "reception").get("/ledger")
    assert resp.status_code == 200
    html = page(resp)
    assert_heading(html)
    assert "SỔ THEO DÕI HỒ SƠ" in html and "Từ ngày 01/03/2026 đến ngày 03/03/2026" in html
    assert three_dossiers[0] not in html and three_dossiers[1] in html and three_dossiers[2] in html
    assert NAME in html and "size: A4 landscape" in html


def test_ledger_range_filter(client, three_dossiers):
    html = page(login(client, "reception").get("/ledger?from=2026-02-01&to=2026-03-02"))
    assert three_dossiers[0] in html and three_dossiers[1] in html and three_dossiers[2] not in html


@pytest.mark.parametrize("query, message", [
    ("from=2026-13-01&to=2026-03-02", "Ngày không hợp lệ"),
    ("from=hôm-qua", "Ngày không hợp lệ"),
    ("from=2026-03-05&to=2026-03-01", "phải trước hoặc trùng"),
    ("from=2024-01-01&to=2026-03-01", "tối đa 366 ngày"),
])
def test_ledger_bad_params_400(client, query, message):
    login(client, "reception")
    resp = client.get(f"/ledger?{query}")
    assert resp.status_code == 400
    assert message in page(resp)
    assert client.get(f"/ledger.csv?{query}").status_code == 400


def test_ledger_accepts_a_whole_leap_year(client):
    login(client, "reception")
    assert client.get("/ledger?from=2024-01-01&to=2024-12-31").status_code == 200


def test_ledger_csv(client, three_dossiers):
    resp = login(client, "reception").get("/ledger.csv?from=2026-02-01&to=2026-03-31")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="so-theo-doi-2026-02-01-2026-03-31.csv"'
    raw = resp.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["STT", "Mã hồ sơ", "Tên thủ tục hành chính"]
    assert len(rows) == 4
    assert [r[1] for r in rows[1:]] == three_dossiers
    assert rows[1][0] == "1" and rows[1][4] == NAME and rows[1][2] == "Đăng ký khai sinh"
    rows = list(csv.reader(io.StringIO(client.get("/ledger.csv?from=2026-03-03&to=2026-03-03")
                                       .get_data(as_text=True).lstrip("\ufeff"))))
    assert [r[1] for r in rows[1:]] == [three_dossiers[2]]


def test_ledger_csv_neutralises_formulas(client, receive):
    receive(applicant_address="=HYPERLINK(\"http://x\")")
    text = login(client, "reception").get("/ledger.csv").get_data(as_text=True)
    assert "'=HYPERLINK" in text
