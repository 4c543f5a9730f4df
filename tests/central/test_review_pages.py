"""The district administrator settles conflicts and reviews possible duplicates on the hub's pages.

A commune node corrects an applicant's phone number; a field laptop of the same commune, offline, corrected
the same field of the same dossier, with a clock two minutes ahead. Both push to the hub: the hub's merge
keeps both values as a conflict. The administrator's decision is one change signed by the hub, later than
every value it settles (the hub's clock observes them first), so "take that" really wins everywhere.
"""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import json

import pytest
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, PreparedNode, api, hub, hub_app, hub_db_url, hub_dir, session, unpack,
)

from central.instance import hash_password
from central.storage.testing import NodeWriter
from central.tokens import create_token
from conftest import reception_body
from node import workflow
from node.instance import Node
from node.sync import hlc, log
from node.sync.ids import new_id
from node.sync.state import Conflict, Dossier, DuplicateFlag, User
from node.users import Officer

LAPTOP_NAME = "Máy xách tay tổ lưu động"
HERE, THERE = "0911111111", "0922222222"


@pytest.fixture
def prepared(node_dir, clock) -> PreparedNode:
    """The commune node: one dossier received, then its phone number corrected; its log read, node closed."""
    node = Node(node_dir, now=clock)
    try:
        officer = Officer.of(User.get(User.username == "reception1"))
        d, _ = workflow.receive_dossier(node, officer, reception_body())
        workflow.edit_dossier(node, officer, d.code, {"applicant_phone": HERE})
        changes = list(log.iter_changes(node.node_id))
        return PreparedNode(node.path, node.node_id, node.identity.unit_code, node.identity.unit_name, node.key,
                            changes, d.id, d.code)
    finally:
        node.close()


@pytest.fixture
def laptop(api, hub, prepared):
    """A field laptop of the same commune whose clock runs two minutes ahead of the hub's."""
    writer = NodeWriter(prepared.unit_code)
    writer.clock = hlc.Clock(now_ms=lambda: hlc.wall_ms() + 120_000)
    token = create_token(hub, [prepared.unit_code], "laptop")
    resp = api.post("/api/v1/enroll", json={"token": token, **writer.record(), "unit_name": LAPTOP_NAME})
    assert resp.status_code == 200, resp.data
    return writer


def push(api, node_id, key, changes):
    from hubtest import NodeSession

    resp = NodeSession(api, node_id, key).push(changes)
    assert resp.status_code == 200, resp.data[:400]
    return unpack(resp)


@pytest.fixture
def conflict_id(api, hub, session, prepared, laptop) -> str:
    """Both edits pushed to the hub; the id of the conflict its merge derived."""
    push(api, prepared.node_id, prepared.key, prepared.changes)
    create = next(c for c in prepared.changes if c["entity"] == "dossier" and c["op"] == "create")
    base = f"{create['hlc']}~{create['node_id']}"
    change = laptop.change("dossier", prepared.dossier_id, "update", {
        "set": {"applicant_phone": THERE}, "base": {"applicant_phone": base}, "unit": prepared.unit_code,
        "by_name": "Phạm Thị Lan", "at": "2026-03-02 09:30:00"}, author="U-LAPTOP")
    push(api, laptop.node_id, laptop.key, [change])
    rows = list(Conflict.select())
    assert len(rows) == 1 and not rows[0].resolved
    return rows[0].id


def logged_in(client, username: str = "admin", password: str = PASSWORD):
    resp = client.post("/login", data={"username": username, "password": password})
    assert resp.status_code == 302, resp.data[:300]
    return client


def phone(dossier_id: str) -> str:
    return Dossier.get_by_id(dossier_id).applicant_phone


def test_pages_need_the_administrator(hub_app, hub, conflict_id):
    client = hub_app.test_client()
    for path in ("/conflicts", f"/conflicts/{conflict_id}", "/duplicates/a|b"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert client.get("/conflicts.json").status_code == 401
    hub.storage.add_user("xem", "Người xem", hash_password("mat-khau-xem-1"), "viewer")
    logged_in(client, "xem", "mat-khau-xem-1")
    count = hub.storage.change_count()
    resp = client.post(f"/conflicts/{conflict_id}/resolve", data={"choice": "keep"})
    assert resp.status_code == 403 and hub.storage.change_count() == count


def test_list_filter_and_field_by_field_view(hub_app, prepared, conflict_id):
    client = logged_in(hub_app.test_client())
    html = client.get("/nodes").get_data(as_text=True)
    assert 'class="badge warn review-count"' in html and ">1</span>" in html, "open count on the dashboard"
    html = client.get("/conflicts").get_data(as_text=True)
    assert prepared.dossier_code in html and "Điện thoại" in html and HERE in html and THERE in html
    assert "UBND xã Tân Cương" in html, "the commune is a filter choice"
    other = client.get("/conflicts?unit=000.00.19.H99").get_data(as_text=True)
    assert prepared.dossier_code not in other
    html = client.get(f"/conflicts/{conflict_id}").get_data(as_text=True)
    assert LAPTOP_NAME in html and "UBND xã Tân Cương" in html and "Phạm Thị Lan" in html
    assert "Nguyễn Thị Hoa" in html and "Đang áp dụng" in html and "Không được áp dụng" in html
    assert html.count('class="inline take-form"') == 1, "only the value not applied can be taken"
    body = client.get("/conflicts.json").get_json()
    assert body["open"]["conflicts"] == 1 and body["units"][prepared.unit_code]["conflicts"] == 1
    assert body["items"][0]["id"] == conflict_id
    english = client.get(f"/conflicts/{conflict_id}?lang=en").get_data(as_text=True)
    assert "Keep the applied value" in english and "Phone" in english


def test_take_that_is_one_hub_signed_change_later_than_what_it_settles(hub_app, hub, prepared, conflict_id):
    client = logged_in(hub_app.test_client())
    assert phone(prepared.dossier_id) == THERE, "the laptop's later write is applied"
    candidates = {c["value"]: c for c in json.loads(Conflict.get_by_id(conflict_id).candidates)}
    count = hub.storage.change_count()
    resp = client.post(f"/conflicts/{conflict_id}/resolve", data={"choice": "take",
                                                                  "take": candidates[HERE]["version"]})
    assert resp.status_code == 303
    assert hub.storage.change_count() == count + 1
    row = log.Change.select().order_by(log.Change.id.desc()).first()
    change = log.row_to_change(row)
    assert (change["node_id"], change["entity"], change["op"]) == (hub.node_id, "conflict", "resolve")
    assert change["author"] == "hub:admin" and change["payload"]["choice"] == "take"
    log.verify_change(change, hub.identity.public_key)
    assert change["hlc"] > max(c["version"].partition("~")[0] for c in candidates.values())
    assert phone(prepared.dossier_id) == HERE, "the taken value now wins"
    assert Conflict.get_by_id(conflict_id).resolved == 1
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Đã ghi nhận quyết định về xung đột." in html and "Đã giải quyết" in html
    assert client.get("/conflicts.json").get_json()["open"]["conflicts"] == 0
    assert client.post(f"/conflicts/{conflict_id}/resolve", data={"choice": "keep"}).status_code == 409
    assert hub.storage.change_count() == count + 1


@pytest.mark.parametrize("form, field_text", [
    ({"choice": "maybe"}, "Chọn: giữ giá trị này"),
    ({"choice": "take", "take": "0000000000000001.00000~NOBODY"}, "Chọn một trong các giá trị"),
    ({"choice": "new", "value": "12"}, "Số điện thoại gồm 9–15 chữ số."),
    ({"choice": "new"}, "Nhập giá trị mới."),
])
def test_bad_decisions_write_nothing(hub_app, hub, prepared, conflict_id, form, field_text):
    client = logged_in(hub_app.test_client())
    count = hub.storage.change_count()
    resp = client.post(f"/conflicts/{conflict_id}/resolve", data=form)
    assert resp.status_code == 422 and field_text in resp.get_data(as_text=True)
    assert hub.storage.change_count() == count and phone(prepared.dossier_id) == THERE
    assert client.post("/conflicts/nope/resolve", data={"choice": "keep"}).status_code == 404


def test_a_new_value_and_keep(hub_app, hub, prepared, conflict_id):
    client = logged_in(hub_app.test_client())
    resp = client.post(f"/conflicts/{conflict_id}/resolve", data={"choice": "new", "value": "0933 333 333"})
    assert resp.status_code == 303 and phone(prepared.dossier_id) == "0933 333 333"
    resolution = json.loads(Conflict.get_by_id(conflict_id).resolution)
    assert resolution["choice"] == "new" and resolution["by_name"] == "Quản trị viên"


def test_duplicates_are_flagged_listed_and_reviewed(hub_app, hub, api, prepared, laptop, conflict_id):
    create = next(c for c in prepared.changes if c["entity"] == "dossier" and c["op"] == "create")
    fields = dict(create["payload"]["fields"], code=f"{prepared.unit_code}.L-260302-0001")
    again = laptop.change("dossier", new_id(), "create", {"fields": fields}, author="U-LAPTOP")
    push(api, laptop.node_id, laptop.key, [again])
    flag = DuplicateFlag.get()
    client = logged_in(hub_app.test_client())
    html = client.get("/conflicts").get_data(as_text=True)
    assert "Có thể trùng hồ sơ (1)" in html and fields["code"] in html
    url = f"/duplicates/{flag.id}"
    html = client.get(url).get_data(as_text=True)
    assert prepared.dossier_code in html and fields["code"] in html and LAPTOP_NAME in html
    count = hub.storage.change_count()
    resp = client.post(url, data={"decision": "maybe"})
    assert resp.status_code == 422 and hub.storage.change_count() == count
    resp = client.post(url, data={"decision": "duplicate", "note": "Nộp hai lần, giữ hồ sơ của xã"})
    assert resp.status_code == 303 and hub.storage.change_count() == count + 1
    assert DuplicateFlag.get_by_id(flag.id).decision == "duplicate"
    html = client.get(url).get_data(as_text=True)
    assert "Nộp hai lần, giữ hồ sơ của xã" in html and "Quản trị viên" in html


def test_the_decision_reaches_the_commune_on_its_next_pull(hub_app, hub, session, prepared, conflict_id):
    client = logged_in(hub_app.test_client())
    client.post(f"/conflicts/{conflict_id}/resolve", data={"choice": "keep"})
    pulled, _ = session.pull_all()
    assert [c["entity_id"] for c in pulled if c["entity"] == "conflict"] == [conflict_id]
