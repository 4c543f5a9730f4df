"""The hub's catalogue and calendar publishing pages: they render, publish one hub-signed change scoped "*",
and refuse bad input (past day, past effective date, non-integer time, unknown procedure) with 4xx and
nothing written."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import pytest
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, api, hub, hub_app, hub_db_url, hub_dir, prepared, session,
)

from central.models import ChangeScope
from node.sync.log import Change
from node.sync.state import CalendarDay, Procedure

MARITAL = "1.004873"


@pytest.fixture
def admin(hub_app, session, prepared, hub):
    """Logged in at the hub, with the prepared node's log (seed catalogue and calendar) pushed."""
    assert session.push(prepared.changes).status_code == 200
    client = hub_app.test_client()
    assert client.post("/login", data={"username": "admin", "password": PASSWORD}).status_code == 302
    return client


def hub_changes(hub) -> int:
    return Change.select().where(Change.node_id == hub.node_id).count()


def version_form(**over) -> dict:
    form = {"effective_from": "2026-03-09", "name_vi": "Cấp Giấy xác nhận tình trạng hôn nhân",
            "name_en": "Marital status certificate", "field": "Hộ tịch", "time_kind": "working_days",
            "time_value": "5", "online_level": "full", "supplement_rule": "restart", "active": "on",
            "fee_kind": "fixed", "fee_amount": "20000", "fee_note": "",
            "documents": "Tờ khai theo mẫu | Declaration form | original | 1"}
    form.update(over)
    return form


def test_pages_need_a_login(hub_app):
    client = hub_app.test_client()
    for path in ("/catalogue", f"/catalogue/{MARITAL}", "/calendar"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], path
    resp = client.post("/calendar/days", data={"day": "2026-03-04", "kind": "day_off"})
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_pages_render(admin):
    page = admin.get("/catalogue").text
    assert MARITAL in page and "Cấp Giấy xác nhận tình trạng hôn nhân" in page
    page = admin.get(f"/catalogue/{MARITAL}").text
    assert "Phiên bản mới" in page and 'name="effective_from"' in page and "2026-03-03" in page
    page = admin.get("/calendar?year=2026").text
    assert "02/09/2026" in page and "Lịch gốc" in page  # National Day, from the seed
    assert "Procedure catalogue" in admin.get("/catalogue?lang=en").text
    assert admin.get("/calendar?year=1999").status_code == 400


def test_publish_a_version(admin, hub):
    before = hub_changes(hub)
    resp = admin.post(f"/catalogue/{MARITAL}/versions", data=version_form())
    assert resp.status_code == 303, resp.text[:500]
    assert hub_changes(hub) == before + 1
    change = Change.select().where(Change.node_id == hub.node_id).order_by(Change.id.desc()).first()
    assert (change.entity, change.entity_id) == ("procedure", f"{MARITAL}@2")
    row = Procedure.get((Procedure.code == MARITAL) & (Procedure.version == 2))
    assert (row.effective_from, row.time_value) == ("2026-03-09", 5)
    page = admin.get(f"/catalogue/{MARITAL}").text
    assert "Chờ áp dụng" in page and "Đang áp dụng" in page
    scope = ChangeScope.select(ChangeScope.scope).where(ChangeScope.change_id == change.id).tuples().first()
    assert scope[0] == "*"


@pytest.mark.parametrize("over, field_message", [
    ({"effective_from": "2026-03-02"}, "Ngày áp dụng phải từ ngày mai trở đi"),
    ({"effective_from": "2026-02-01"}, "Ngày áp dụng phải từ ngày mai trở đi"),
    ({"effective_from": "xx"}, "Ngày áp dụng không hợp lệ"),
    ({"time_value": "2.5"}, "Thời hạn phải là số nguyên từ 0 đến 365."),
    ({"time_value": "năm"}, "Thời hạn phải là số nguyên từ 0 đến 365."),
    ({"time_kind": "tuần"}, "Chọn cách tính thời hạn."),
    ({"fee_amount": "-5"}, "Số tiền phải là số nguyên"),
    ({"documents": "Tờ khai"}, "Mỗi dòng: tên tiếng Việt"),
    ({"name_vi": ""}, "Cần nhập tên thủ tục."),
])
def test_bad_version_input_writes_nothing(admin, hub, over, field_message):
    before = hub_changes(hub)
    resp = admin.post(f"/catalogue/{MARITAL}/versions", data=version_form(**over))
    assert resp.status_code == 422
    assert field_message in resp.text
    assert hub_changes(hub) == before
    assert Procedure.select().where(Procedure.code == MARITAL).count() == 1


def test_unknown_procedure_is_404(admin, hub):
    before = hub_changes(hub)
    assert admin.get("/catalogue/9.999999").status_code == 404
    assert admin.post("/catalogue/9.999999/versions", data=version_form()).status_code == 404
    assert hub_changes(hub) == before


def test_publish_and_withdraw_a_day(admin, hub):
    before = hub_changes(hub)
    resp = admin.post("/calendar/days", data={"day": "2026-03-04", "kind": "day_off", "name": "Nghỉ của tỉnh"})
    assert resp.status_code == 303 and "year=2026" in resp.headers["Location"]
    assert hub_changes(hub) == before + 1
    row = CalendarDay.get_by_id("*:2026-03-04")
    assert (row.unit, row.day, row.kind, row.name) == ("*", "2026-03-04", "day_off", "Nghỉ của tỉnh")
    assert "Nghỉ của tỉnh" in admin.get("/calendar?year=2026").text
    assert admin.post("/calendar/days", data={"day": "2026-03-07", "kind": "working_day"}).status_code == 303
    assert admin.post("/calendar/days/2026-03-04/remove").status_code == 303
    assert CalendarDay.get_by_id("*:2026-03-04").kind == "normal"
    assert admin.post("/calendar/days/2026-03-04/remove").status_code == 404  # nothing left to withdraw
    assert admin.post("/calendar/days/2026-09-02/remove").status_code == 303  # a seeded day, for everyone
    assert CalendarDay.get_by_id("*:2026-09-02").kind == "normal"
    assert hub_changes(hub) == before + 4


@pytest.mark.parametrize("data, message", [
    ({"day": "2026-03-01", "kind": "day_off"}, "Không thể sửa ngày đã qua"),
    ({"day": "2026-02-27", "kind": "day_off"}, "Không thể sửa ngày đã qua"),
    ({"day": "04/03/2026", "kind": "day_off"}, "Ngày không hợp lệ"),
    ({"day": "2026-02-30", "kind": "day_off"}, "Ngày không hợp lệ"),
    ({"day": "2026-03-04", "kind": "working_day"}, "Ngày làm bù phải là thứ Bảy hoặc Chủ nhật."),
    ({"day": "2026-03-07", "kind": "day_off"}, "Ngày nghỉ thêm phải là ngày từ thứ Hai đến thứ Sáu."),
    ({"day": "2026-03-04", "kind": "normal"}, "Chọn ngày nghỉ hoặc ngày làm bù."),
    ({"day": "2031-03-04", "kind": "day_off"}, "Chỉ nhận ngày trong các năm"),
    ({"day": "2026-03-04", "kind": "day_off", "name": "x" * 201}, "Tên tối đa 200 ký tự."),
])
def test_bad_day_writes_nothing(admin, hub, data, message):
    before = hub_changes(hub)
    resp = admin.post("/calendar/days", data=data)
    assert resp.status_code == 422
    assert message in resp.text
    assert hub_changes(hub) == before


def test_past_or_bad_withdrawal_writes_nothing(admin, hub):
    before = hub_changes(hub)
    assert admin.post("/calendar/days/2026-01-01/remove").status_code == 422  # seeded, but past
    assert admin.post("/calendar/days/not-a-day/remove").status_code == 400
    assert admin.post("/calendar/days/2026-03-10/remove").status_code == 404  # an ordinary day
    assert hub_changes(hub) == before
