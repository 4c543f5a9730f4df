"""The district administrator's pages: login, nodes (revoke, fork alert), forks, tokens; vi first, en on request."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import re

import pytest
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, api, enroll, enroll_body, error_of, hub, hub_app, hub_db_url, hub_dir, prepared, session,
)

from central import create_app
from node.sync import log


@pytest.fixture
def csrf_app(hub_dir, prepared, clock, hub_db_url):
    """The hub app with CSRF protection on, as in production."""
    app = create_app({"DATA_DIR": str(hub_dir), "TESTING": True, "NOW": clock, "DATABASE_URL": hub_db_url})
    yield app
    app.extensions["motcua_hub"].close()


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def logged_in(client):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.data[:300]
    return client


def test_pages_need_a_login(csrf_app):
    client = csrf_app.test_client()
    for path in ("/nodes", "/tokens", "/forks/1"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    token = csrf_token(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"username": "admin", "password": "wrong-pass", "csrf_token": token})
    assert resp.status_code == 401 and "Sai tên đăng nhập hoặc mật khẩu." in resp.get_data(as_text=True)
    resp = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert resp.status_code == 400, "a form without its CSRF token is refused"


def test_nodes_page_lists_nodes_with_skew_warning_and_revokes(csrf_app, prepared):
    client = csrf_app.test_client()
    hub = csrf_app.extensions["motcua_hub"]
    enroll(client, hub, prepared)
    hub.storage.touch_node(prepared.node_id, clock_skew_ms=7 * 60 * 1000, software_version="0.1.0",
                           last_seen="2026-03-02 09:00:00")
    logged_in(client)
    html = client.get("/nodes").get_data(as_text=True)
    assert prepared.node_id in html and prepared.unit_code in html and "Hoạt động" in html
    assert "⚠ +7 min 0 s" in html and "0.1.0" in html and "09:00 02/03/2026" in html
    assert "—" in html, "no backlog reported yet"
    resp = client.post(f"/nodes/{prepared.node_id}/revoke")
    assert resp.status_code == 400, "revoking needs the form's CSRF token"
    resp = client.post(f"/nodes/{prepared.node_id}/revoke", data={"csrf_token": csrf_token(html)})
    assert resp.status_code == 302
    assert hub.storage.key_for(prepared.node_id)[1] == "revoked"
    html = client.get("/nodes").get_data(as_text=True)
    assert "Đã thu hồi" in html and "2026-03-02 09:00:00" in html
    en = client.get("/nodes?lang=en").get_data(as_text=True)
    assert "Revoked" in en and "Clock skew" in en


def test_fork_alert_and_both_versions(hub_app, session, prepared, hub):
    assert session.push(prepared.changes).status_code == 200
    held = prepared.changes[-1]
    forked = {k: held[k] for k in log.SIGNED_FIELDS}
    forked["author"] = "someone-else"
    forked["hash"] = log.change_hash(forked)
    forked["sig"] = prepared.key.sign(bytes.fromhex(forked["hash"]))
    assert session.push([forked]).status_code == 409
    client = hub_app.test_client()
    client.post("/login", data={"username": "admin", "password": PASSWORD})
    html = client.get("/nodes").get_data(as_text=True)
    fork_id = hub.storage.forks()[0]["id"]
    assert "Cảnh báo xung đột nhật ký" in html and f"/forks/{fork_id}" in html and "Cách ly" in html
    page = client.get(f"/forks/{fork_id}").get_data(as_text=True)
    assert held["hash"] in page and forked["hash"] in page and "someone-else" in page
    assert client.get("/forks/999").status_code == 404


def test_tokens_page_shows_a_new_token_once(hub_app, prepared):
    client = hub_app.test_client()
    client.post("/login", data={"username": "admin", "password": PASSWORD})
    resp = client.post("/tokens", data={"scope": prepared.unit_code, "kind": "commune", "hours": "24"})
    html = resp.get_data(as_text=True)
    token = re.search(r'id="new-token">([^<]+)<', html).group(1)
    assert f"motcua node enroll --hub http://localhost --token {token}" in html
    assert token not in client.get("/tokens").get_data(as_text=True), "shown once only"
    resp = client.post("/api/v1/enroll", json=enroll_body(token, prepared))
    assert resp.status_code == 200
    assert "Đã dùng" in client.get("/tokens").get_data(as_text=True)
    bad = client.post("/tokens", data={"scope": "A,B", "kind": "commune", "hours": "0"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "Mã cho một xã chỉ được có một đơn vị." in text and "Thời hạn từ 1 đến 720 giờ." in text


def test_unknown_page_is_a_readable_404(hub_app):
    resp = hub_app.test_client().get("/no-such-page")
    assert resp.status_code == 404 and "Không tìm thấy trang." in resp.get_data(as_text=True)
    resp = hub_app.test_client().get("/api/v1/nope")
    assert resp.status_code == 404 and error_of(resp)["code"] == "not_found"
