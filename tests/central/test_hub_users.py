"""Hub users and roles (admin, specialist, leader), the admin's user pages, `motcua hub add-user` and the
audit view of the change log (filters, paging, never a citizen's ID number)."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

from click.testing import CliRunner
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, api, hub, hub_app, hub_db_url, hub_dir, prepared, session,
)

from central import admin_views, hubauth
from central.cli import hub_group
from central.instance import Hub
from central.models import HubUser

ID_NUMBER = "019305001234"  # the applicant's CCCD in hubtest.prepare_node


def login(client, username="admin", password=PASSWORD):
    resp = client.post("/login", data={"username": username, "password": password})
    return resp


def add(hub, username, *roles, password="mat-khau-chuyen-vien", agency="police"):
    agency = agency if set(roles) & {"specialist", "leader"} else ""
    return hubauth.add_user(hub.storage, username, f"Người dùng {username}", list(roles), password, agency)


def test_roles_restrict_admin_pages(hub_app, hub):
    add(hub, "chuyenvien", "specialist")
    add(hub, "lanhdao", "leader")
    client = hub_app.test_client()
    assert login(client, "chuyenvien", "mat-khau-chuyen-vien").status_code == 302
    for path in ("/nodes", "/tokens", "/conflicts", "/admin/users", "/audit", "/forks/1"):
        assert client.get(path).status_code == 403, path
    assert client.post("/nodes/x/revoke").status_code == 403
    assert client.post("/conflicts/x/resolve", data={"choice": "keep"}).status_code == 403
    assert client.get("/conflicts.json").status_code == 403
    assert client.get("/indicators/").status_code == 200, "indicators are for every hub user"
    admin = hub_app.test_client()
    login(admin)
    for path in ("/nodes", "/tokens", "/conflicts", "/admin/users", "/audit"):
        assert admin.get(path).status_code == 200, path
    html = admin.get("/nodes").get_data(as_text=True)
    assert "nav-users" in html and "nav-audit" in html
    english = admin.get("/admin/users?lang=en").get_data(as_text=True)
    assert "Hub users" in english and "District/province specialist" in english
    assert "Audit log" in admin.get("/audit").get_data(as_text=True)
    admin.get("/nodes?lang=vi")
    assert "nav-users" not in client.get("/indicators/").get_data(as_text=True)


def test_admin_adds_and_locks_users_bad_input_writes_nothing(hub_app, hub):
    client = hub_app.test_client()
    login(client)
    before = HubUser.select().count()
    for form in ({"username": "x y", "full_name": "A", "roles": ["specialist"], "password": "dai-du-tam"},
                 {"username": "cv1", "full_name": "", "roles": ["specialist"], "password": "dai-du-tam"},
                 {"username": "cv1", "full_name": "A", "roles": ["root"], "password": "dai-du-tam"},
                 {"username": "cv1", "full_name": "A", "roles": ["leader"], "password": "ngan"},
                 {"username": "admin", "full_name": "A", "roles": ["leader"], "password": "dai-du-tam"}):
        resp = client.post("/admin/users", data=form)
        assert resp.status_code == 422, form
        assert "field-error" in resp.get_data(as_text=True)
    assert HubUser.select().count() == before
    assert hub.storage.user("admin")["roles"] == "admin", "an existing user is never overwritten"
    resp = client.post("/admin/users", data={"username": "CV1", "full_name": "Trần Văn Chuyên",
                                             "roles": ["specialist", "leader"], "password": "mat-khau-cv1",
                                             "agency": "social_insurance"})
    assert resp.status_code == 303
    user = hub.storage.user("cv1")
    assert user["roles"] == "specialist,leader" and user["password_hash"].startswith("$argon2id$")
    assert user["agency"] == "social_insurance"
    assert "Trần Văn Chuyên" in client.get("/admin/users").get_data(as_text=True)
    other = hub_app.test_client()
    assert login(other, "cv1", "mat-khau-cv1").status_code == 302
    assert client.post("/admin/users/cv1/active", data={"active": "maybe"}).status_code == 400
    assert client.post("/admin/users/nobody/active", data={"active": "0"}).status_code == 404
    assert client.post("/admin/users/admin/active", data={"active": "0"}).status_code == 409
    assert client.post("/admin/users/cv1/active", data={"active": "0"}).status_code == 303
    assert not hubauth.is_active(hub.storage.user("cv1"))
    resp = other.get("/indicators/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"], "a locked user's session ends"
    assert login(other, "cv1", "mat-khau-cv1").status_code == 401
    assert client.post("/admin/users/cv1/active", data={"active": "1"}).status_code == 303
    assert login(other, "cv1", "mat-khau-cv1").status_code == 302


def test_add_user_command(hub_dir, hub_db_url):
    runner = CliRunner()
    args = ["add-user", "--data", str(hub_dir), "lanhdao", "--full-name", "Lê Thị Lãnh Đạo", "--role", "leader",
            "--role", "specialist", "--agency", "district", "--password", "mat-khau-lanh-dao"]
    if hub_db_url:
        return  # the command opens the hub by its folder (hub.json names the database)
    result = runner.invoke(hub_group, args)
    assert result.exit_code == 0, result.output
    assert "lanhdao" in result.output and "agency district" in result.output
    bad = runner.invoke(hub_group, ["add-user", "--data", str(hub_dir), "lanhdao", "--full-name", "X", "--role",
                                    "leader", "--agency", "police", "--password", "mat-khau-lanh-dao"])
    assert bad.exit_code != 0 and "đã có" in bad.output
    bad = runner.invoke(hub_group, ["add-user", "--data", str(hub_dir), "x2", "--full-name", "X", "--role", "root",
                                    "--password", "mat-khau-lanh-dao"])
    assert bad.exit_code != 0
    hub = Hub(hub_dir)
    try:
        user = hub.storage.user("lanhdao")
        assert hubauth.roles_of(user) == {"leader", "specialist"} and hubauth.is_active(user)
        assert user["agency"] == "district"
        assert hub.storage.user("x2") is None
    finally:
        hub.close()


def test_audit_filters_pages_and_hides_id_numbers(hub_app, hub, session, prepared, monkeypatch):
    assert session.push(prepared.changes).status_code == 200
    client = hub_app.test_client()
    login(client)
    html = client.get("/audit").get_data(as_text=True)
    assert ID_NUMBER not in html and "applicant_id_number" not in html and "password_hash" not in html
    assert prepared.unit_name in html and prepared.dossier_code in html
    resp = client.get("/audit", query_string={"q": prepared.dossier_code})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "dossier.create" in html and "document.create" in html
    assert ID_NUMBER not in html
    assert "attachment.create" in html, "a dossier's attachments are found by its code"
    html = client.get("/audit", query_string={"unit": prepared.unit_code, "entity": "dossier"}).get_data(as_text=True)
    assert "dossier.create" in html and "document.create" not in html
    html = client.get("/audit", query_string={"node": prepared.node_id, "author": "nobody"}).get_data(as_text=True)
    assert "Không có thay đổi nào." in html
    html = client.get("/audit", query_string={"author": "reception1", "q": prepared.dossier_code}).get_data(
        as_text=True)
    assert "dossier.create" in html, "an officer is found by username"
    html = client.get("/audit", query_string={"from": "2000-01-01", "to": "2000-01-02"}).get_data(as_text=True)
    assert "Không có thay đổi nào." in html
    for bad in ({"from": "01/02/2026"}, {"from": "2026-03-02", "to": "2026-03-01"}, {"entity": "nope"},
                {"page": "0"}, {"page": "x"}):
        assert client.get("/audit", query_string=bad).status_code == 400, bad
    monkeypatch.setattr(admin_views, "PAGE_SIZE", 1)
    first = client.get("/audit", query_string={"node": prepared.node_id}).get_data(as_text=True)
    assert 'rel="next"' in first and "Trang 1/" in first
    second = client.get("/audit", query_string={"node": prepared.node_id, "page": "2"}).get_data(as_text=True)
    assert 'rel="prev"' in second and "Trang 2/" in second


def test_redact_removes_id_numbers_and_hashes_at_any_depth():
    payload = {"fields": {"applicant_id_number": ID_NUMBER, "name": "A", "password_hash": "h"},
               "rows": [{"id_number": ID_NUMBER, "x": 1}]}
    assert admin_views.redact(payload) == {"fields": {"name": "A"}, "rows": [{"x": 1}]}
