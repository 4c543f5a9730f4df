"""The commune administrator's pages: officers, work calendar, read-only catalogue."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from conftest import PASSWORD, login

from node import catalogue
from node.deadlines import appointment
from node.sync.log import Change
from node.sync.state import CalendarDay, User

PAGES = ("/admin/users", "/admin/calendar", "/admin/procedures")
POSTS = ("/admin/users/new", "/admin/calendar/days")
NEW_USER = {"username": "Reception2", "full_name": "Phạm Thị Lan", "roles": ["reception", "specialist"],
            "password": "mot-mat-khau-dai", "password2": "mot-mat-khau-dai"}


@pytest.fixture
def admin(client):
    return login(client, "admin")


def changes() -> int:
    return Change.select().count()


def user(username: str) -> User:
    return User.get(User.username == username)


def is_working(day: str) -> bool:
    return catalogue.work_calendar().is_working_day(date.fromisoformat(day))


def three_days_from(received: str) -> datetime:
    """Due time of a 3-working-day procedure received at `received`, on the calendar as it stands."""
    return appointment(datetime.fromisoformat(received), "working_days", 3, False, catalogue.work_calendar())


# ---------------------------------------------------------------- access

@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(client, url):
    resp = client.get(url)
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


@pytest.mark.parametrize("url", POSTS)
def test_anonymous_post_is_sent_to_login_and_writes_nothing(client, url):
    before = changes()
    resp = client.post(url, data={"day": "2026-03-11", "kind": "day_off", **NEW_USER})
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert changes() == before


@pytest.mark.parametrize("role", ["reception", "specialist", "leader"])
@pytest.mark.parametrize("url", PAGES)
def test_other_roles_are_forbidden(client, role, url):
    login(client, role)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("role", ["reception", "specialist", "leader"])
def test_other_roles_cannot_write(client, role):
    login(client, role)
    before = changes()
    assert client.post("/admin/users/new", data=NEW_USER).status_code == 403
    assert client.post("/admin/calendar/days", data={"day": "2026-03-11", "kind": "day_off"}).status_code == 403
    target = user("reception1").id
    assert client.post(f"/admin/users/{target}", data={"full_name": "X", "roles": "admin", "active": "on"}) \
        .status_code == 403
    assert changes() == before


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("url", PAGES)
def test_admin_pages_render(admin, url, lang):
    resp = admin.get(f"{url}?lang={lang}")
    assert resp.status_code == 200
    assert 'name="csrf_token"' in resp.text or url == "/admin/procedures"


# ---------------------------------------------------------------- officers

def test_users_page_lists_officers_with_role_labels(admin):
    page = admin.get("/admin/users").text
    for name in ("reception1", "specialist1", "leader1", "admin1", "Nguyễn Thị Hoa", "Lãnh đạo ký duyệt"):
        assert name in page
    assert "Signing leader" in admin.get("/admin/users?lang=en").text


def test_create_user_then_the_new_officer_can_log_in(app, admin):
    before = changes()
    resp = admin.post("/admin/users/new", data=NEW_USER)
    assert resp.status_code == 303
    assert admin.get(resp.headers["Location"]).text.count("reception2") >= 1
    row = user("reception2")
    assert row.full_name == "Phạm Thị Lan" and row.roles == "reception,specialist" and row.active == 1
    assert changes() == before + 1
    other = app.test_client()
    resp = other.post("/login", data={"username": "reception2", "password": NEW_USER["password"]})
    assert resp.status_code == 302 and "/login" not in resp.headers["Location"]


@pytest.mark.parametrize("over, field, message", [
    ({"username": "admin1"}, "username", "Tên đăng nhập đã có."),
    ({"password": "ngan", "password2": "ngan"}, "password", "Mật khẩu cần ít nhất 8 ký tự."),
    ({"password2": "khac-hoan-toan"}, "password2", "Mật khẩu nhập lại không khớp."),
    ({"roles": []}, "roles", "Chọn ít nhất một vai trò hợp lệ."),
    ({"roles": ["boss"]}, "roles", "Chọn ít nhất một vai trò hợp lệ."),
    ({"full_name": "  "}, "full_name", "Cần nhập họ và tên."),
    ({"username": "có dấu cách"}, "username", "Tên đăng nhập chỉ gồm chữ"),
])
def test_invalid_new_user_gives_422_and_creates_nothing(admin, over, field, message):
    before, users_before = changes(), User.select().count()
    resp = admin.post("/admin/users/new", data={**NEW_USER, **over})
    assert resp.status_code == 422
    assert message in resp.text
    assert 'class="field-error"' in resp.text
    assert changes() == before and User.select().count() == users_before
    # the password is never sent back
    assert (over.get("password") or NEW_USER["password"]) not in resp.text


def test_edit_roles_and_name(admin):
    target = user("specialist1")
    before = changes()
    resp = admin.post(f"/admin/users/{target.id}", data={
        "full_name": "Trần Văn Đức", "roles": ["specialist", "leader"], "active": "on"})
    assert resp.status_code == 303
    assert user("specialist1").roles == "leader,specialist"
    assert changes() == before + 1
    # nothing changed: no new change in the log
    resp = admin.post(f"/admin/users/{target.id}", data={
        "full_name": "Trần Văn Đức", "roles": ["leader", "specialist"], "active": "on"})
    assert resp.status_code == 303 and changes() == before + 1


def test_deactivated_officer_cannot_log_in_and_new_password_works(app, admin):
    target = user("leader1")
    resp = admin.post(f"/admin/users/{target.id}", data={"full_name": target.full_name, "roles": ["leader"]})
    assert resp.status_code == 303 and user("leader1").active == 0
    assert app.test_client().post("/login", data={"username": "leader1", "password": PASSWORD}).status_code == 401
    resp = admin.post(f"/admin/users/{target.id}", data={
        "full_name": target.full_name, "roles": ["leader"], "active": "on",
        "password": "mat-khau-moi-2026", "password2": "mat-khau-moi-2026"})
    assert resp.status_code == 303
    other = app.test_client()
    assert other.post("/login", data={"username": "leader1", "password": PASSWORD}).status_code == 401
    assert other.post("/login", data={"username": "leader1", "password": "mat-khau-moi-2026"}).status_code == 302


def test_edit_with_short_new_password_gives_422(admin):
    target = user("leader1")
    before = changes()
    resp = admin.post(f"/admin/users/{target.id}", data={
        "full_name": target.full_name, "roles": ["leader"], "active": "on", "password": "abc", "password2": "abc"})
    assert resp.status_code == 422 and "Mật khẩu cần ít nhất 8 ký tự." in resp.text
    assert changes() == before


@pytest.mark.parametrize("data, message", [
    ({"roles": ["admin"]}, "Bạn không thể tự khóa tài khoản của chính mình."),
    ({"roles": ["reception"], "active": "on"}, "Bạn không thể tự bỏ vai trò quản trị của chính mình."),
])
def test_administrator_cannot_lock_themself_out(admin, data, message):
    me = user("admin1")
    before = changes()
    resp = admin.post(f"/admin/users/{me.id}", data={"full_name": me.full_name, **data})
    assert resp.status_code == 422
    assert message in resp.text
    assert changes() == before
    assert user("admin1").active == 1 and "admin" in user("admin1").roles
    assert admin.get("/admin/users").status_code == 200


def test_unknown_user_is_404(admin):
    assert admin.post("/admin/users/no-such-id", data={"full_name": "X", "roles": ["admin"]}).status_code == 404


# ---------------------------------------------------------------- work calendar

def test_calendar_defaults_to_current_year_and_shows_the_grid(admin, clock):
    page = admin.get("/admin/calendar").text
    assert "2026" in page and "02/09/2026" in page  # National Day, seeded
    assert page.count('class="mini-month"') == 12
    assert 'mini-cell off' in page and 'mini-cell weekend' in page
    clock.set("2027-06-01 09:00")
    assert "Lịch làm việc 2027" in admin.get("/admin/calendar").text


def test_add_a_day_off_moves_a_working_days_deadline(admin):
    assert is_working("2026-03-11")
    assert three_days_from("2026-03-09 10:00") == datetime(2026, 3, 12, 10, 0)
    before = changes()
    resp = admin.post("/admin/calendar/days", data={"day": "2026-03-11", "kind": "day_off", "name": "Nghỉ đột xuất"})
    assert resp.status_code == 303 and "year=2026" in resp.headers["Location"]
    assert changes() == before + 1
    assert not is_working("2026-03-11")
    assert three_days_from("2026-03-09 10:00") == datetime(2026, 3, 13, 10, 0)
    row = CalendarDay.get(CalendarDay.day == "2026-03-11")
    assert (row.kind, row.name) == ("day_off", "Nghỉ đột xuất")
    assert "Nghỉ đột xuất" in admin.get("/admin/calendar?year=2026").text


def test_add_a_working_saturday(admin):
    assert not is_working("2026-03-14")
    assert three_days_from("2026-03-12 10:00") == datetime(2026, 3, 17, 10, 0)
    resp = admin.post("/admin/calendar/days", data={"day": "2026-03-14", "kind": "working_day", "name": "Làm bù"})
    assert resp.status_code == 303
    assert is_working("2026-03-14")
    assert three_days_from("2026-03-12 10:00") == datetime(2026, 3, 16, 10, 0)
    assert "mini-cell work" in admin.get("/admin/calendar?year=2026").text


def test_remove_an_override_restores_the_default(admin):
    admin.post("/admin/calendar/days", data={"day": "2026-03-11", "kind": "day_off"})
    assert not is_working("2026-03-11")
    before = changes()
    resp = admin.post("/admin/calendar/days/2026-03-11/remove")
    assert resp.status_code == 303
    assert is_working("2026-03-11")
    assert CalendarDay.get(CalendarDay.day == "2026-03-11").kind == "normal"  # a new change, not a delete
    assert changes() == before + 1
    # a seeded holiday can be withdrawn the same way
    assert not is_working("2026-09-02")
    assert admin.post("/admin/calendar/days/2026-09-02/remove").status_code == 303
    assert is_working("2026-09-02")
    # removing again: no override left
    assert admin.post("/admin/calendar/days/2026-03-11/remove").status_code == 404
    assert admin.post("/admin/calendar/days/not-a-date/remove").status_code == 400


@pytest.mark.parametrize("data, status, message", [
    ({"day": "11/03/2026", "kind": "day_off"}, 422, "Ngày không hợp lệ"),
    ({"day": "2026-02-30", "kind": "day_off"}, 422, "Ngày không hợp lệ"),
    ({"day": "", "kind": "day_off"}, 422, "Ngày không hợp lệ"),
    ({"day": "2026-03-09", "kind": "working_day"}, 422, "Ngày làm bù phải là thứ Bảy hoặc Chủ nhật."),
    ({"day": "2026-03-14", "kind": "day_off"}, 422, "Ngày nghỉ thêm phải là ngày từ thứ Hai đến thứ Sáu."),
    ({"day": "2026-03-11", "kind": "normal"}, 422, "Chọn ngày nghỉ hoặc ngày làm bù."),
    ({"day": "1999-03-10", "kind": "day_off"}, 422, "Chỉ nhận ngày trong các năm 2024–2030."),
    ({"day": "2026-03-11", "kind": "day_off", "name": "x" * 201}, 422, "Tên tối đa 200 ký tự."),
])
def test_invalid_calendar_input_writes_nothing(admin, data, status, message):
    before = changes()
    resp = admin.post("/admin/calendar/days", data=data)
    assert resp.status_code == status
    assert message in resp.text
    assert changes() == before
    assert is_working("2026-03-11") and is_working("2026-03-09") and not is_working("2026-03-14")


@pytest.mark.parametrize("year", ["1999", "2031", "abc", "-1"])
def test_calendar_year_out_of_range_is_400(admin, year):
    before = changes()
    assert admin.get(f"/admin/calendar?year={year}").status_code == 400
    assert changes() == before


# ---------------------------------------------------------------- catalogue

def test_procedures_page_is_read_only(admin):
    page = admin.get("/admin/procedures").text
    assert "1.001193" in page and "Đăng ký khai sinh" in page
    assert "Miễn phí" in page and "8.000 đ / bản" in page and "tối đa 200.000 đ" in page
    assert "Tạm dừng" in page and "Tính lại từ đầu" in page
    assert "Trực tuyến toàn trình" in page and "01/01/2024" in page
    assert "máy chủ trung tâm" in page
    assert "<form" not in page.split("<main>")[1].split("</main>")[0]
    assert "Birth registration" in admin.get("/admin/procedures?lang=en").text


# ---------------------------------------------------------------- CSRF

def test_post_without_csrf_token_is_refused(node_dir, clock):
    from node.web import create_app

    app = create_app({"DATA_DIR": str(node_dir), "TESTING": True, "WTF_CSRF_ENABLED": True, "NOW": clock})
    try:
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        resp = client.post("/login", data={"username": "admin1", "password": PASSWORD, "csrf_token": token})
        assert resp.status_code == 302
        before = changes()
        assert client.post("/admin/users/new", data=NEW_USER).status_code == 400
        assert client.post("/admin/calendar/days", data={"day": "2026-03-11", "kind": "day_off"}).status_code == 400
        me = user("admin1").id
        assert client.post(f"/admin/users/{me}", data={"full_name": "X", "roles": ["admin"], "active": "on"}) \
            .status_code == 400
        assert changes() == before and User.select().where(User.username == "reception2").count() == 0
        # the token the page carries is accepted
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/calendar").text).group(1)
        resp = client.post("/admin/calendar/days", data={"day": "2026-03-11", "kind": "day_off", "csrf_token": token})
        assert resp.status_code == 303 and changes() == before + 1
    finally:
        app.extensions["motcua_node"].close()
