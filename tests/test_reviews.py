"""What people see and do about conflicts and possible duplicates on a node, and editing applicant details.

Conflicts are made for real: an officer edits a dossier here, and a change of the same field on the same
base, "made" by a field laptop (a hand-built change dict applied with store.apply_change, as a pull would),
arrives afterwards. Each decision must be exactly one signed change, and a refused one writes nothing.
"""

from __future__ import annotations

import re

import pytest

from conftest import UNIT_CODE, login, reception_body
from node import reviews, store, workflow as wf
from node.errors import NotFound, PermissionDenied, TransitionNotAllowed, ValidationFailed
from node.sync import conflicts, hlc, log
from node.sync.log import Change
from node.sync.state import Conflict, Dossier, DossierEvent, DuplicateFlag, NodeRecord, User
from node.users import Officer
from node.web.auth import make_token

LAPTOP = "NLAPTOP0000001"
LAPTOP_NAME = "Máy xách tay tổ một cửa lưu động"
API = "/api/v1"


def officer(role: str) -> Officer:
    return Officer.of(User.get(User.username == f"{role}1"))


def changes() -> int:
    return Change.select().count()


def register_laptop() -> None:
    NodeRecord.insert(node_id=LAPTOP, public_key="x", kind="laptop", unit_code=UNIT_CODE, unit_name=LAPTOP_NAME,
                      scope=UNIT_CODE).on_conflict_ignore().execute()


def foreign_change(d: Dossier, op: str, payload: dict, *, seq: int = 1, ahead_ms: int = 60_000,
                   node_id: str = LAPTOP) -> dict:
    """A change as another node would have signed it (the signature is not checked by apply)."""
    ms = max(hlc.wall_ms(), int(d.version.partition("~")[0].partition(".")[0])) + ahead_ms
    return {"node_id": node_id, "seq": seq, "hlc": str(hlc.Timestamp(ms, 0)), "entity": "dossier",
            "entity_id": d.id, "op": op, "payload": payload, "author": "U-LAPTOP-1", "prev": log.GENESIS,
            "hash": "x", "sig": "x"}


def laptop_edit(node, d: Dossier, field: str, value: str, *, base: str | None = None, seq: int = 1,
                ahead_ms: int = 60_000) -> dict:
    """The laptop's officer changes `field` on the dossier as it was at reception; the change arrives here."""
    change = foreign_change(d, "update", {"set": {field: value}, "base": {field: base or d.version},
                                          "unit": d.unit_code, "by_name": "Phạm Thị Lan",
                                          "at": "2026-03-02 09:30:00"}, seq=seq, ahead_ms=ahead_ms)
    with store.transaction(node):
        store.apply_change(change)
    return change


def receive(node, **over) -> Dossier:
    d, _ = wf.receive_dossier(node, officer("reception"), reception_body(**over))
    return d


def field_conflict(node, field: str = "applicant_phone", here: str = "0911111111",
                   there: str = "0922222222", ahead_ms: int = 60_000) -> tuple[Dossier, dict]:
    """A dossier whose `field` was edited here and on the laptop from the same base: one open conflict."""
    register_laptop()
    d = receive(node)
    wf.edit_dossier(node, officer("reception"), d.code, {field: here})
    laptop_edit(node, d, field, there, ahead_ms=ahead_ms)
    items = [c for c in conflicts.of_dossier(d.id) if not c["resolved"]]
    assert len(items) == 1, items
    return Dossier.get_by_id(d.id), items[0]


@pytest.fixture
def auth(app):
    with app.app_context():
        return {role: {"Authorization": f"Bearer {make_token(officer(role))}"}
                for role in ("reception", "specialist", "leader", "admin")}


# ---------------------------------------------------------------- editing applicant details

def test_edit_details_writes_one_change_with_bases(node):
    d = receive(node)
    before = changes()
    wf.edit_dossier(node, officer("specialist"), d.code, {"applicant_phone": "0987 654 321",
                                                          "applicant_address": "Xóm Đồi, xã Tân Cương",
                                                          "applicant_name": d.applicant_name})
    assert changes() == before + 1
    row = Change.select().order_by(Change.id.desc()).first()
    payload = log.row_to_change(row)["payload"]
    assert row.entity == "dossier" and row.op == "update"
    assert set(payload["set"]) == {"applicant_phone", "applicant_address"}, "unchanged fields write nothing"
    assert payload["base"] == {"applicant_phone": d.version, "applicant_address": d.version}
    assert Dossier.get_by_id(d.id).applicant_phone == "0987 654 321"


def test_edit_page_shows_errors_per_field_and_writes_nothing(app, client):
    login(client, "reception")
    with app.app_context():
        d = receive(app.extensions["motcua_node"])
    before = changes()
    resp = client.post(f"/dossier/{d.code}/edit", data={"applicant_name": "", "applicant_phone": "abc",
                                                        "applicant_email": "khong-phai-thu", "matter": "Khai sinh"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and changes() == before
    assert "Cần nhập họ tên người nộp hồ sơ." in html and "Số điện thoại gồm 9–15 chữ số." in html
    assert "Địa chỉ thư điện tử không hợp lệ." in html
    assert 'value="abc"' in html, "what was typed is kept"
    resp = client.post(f"/dossier/{d.code}/edit", data={"applicant_phone": "0977000111"})
    assert resp.status_code == 303 and changes() == before + 1
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Đã lưu thông tin hồ sơ." in page and "0977000111" in page and "Sửa thông tin" in page


def test_edit_refused_for_admin_role_and_closed_dossiers(app, client, node):
    d = receive(node)
    with pytest.raises(PermissionDenied):
        wf.edit_dossier(node, officer("admin"), d.code, {"applicant_phone": "0977000111"})
    wf.perform(node, officer("reception"), d.code, "withdraw", {"reason": "Người dân xin rút"})
    before = changes()
    with pytest.raises(TransitionNotAllowed):
        wf.edit_dossier(node, officer("reception"), d.code, {"applicant_phone": "0977000111"})
    assert changes() == before


# ---------------------------------------------------------------- resolving on the node

def test_a_concurrent_edit_becomes_a_conflict_with_both_values(node):
    d, item = field_conflict(node)
    assert item["kind"] == "field" and item["field"] == "applicant_phone"
    values = {c["value"]: c for c in item["candidates"]}
    assert set(values) == {"0911111111", "0922222222"}
    assert values["0922222222"]["winner"], "the later write (the laptop's) is applied"
    assert d.applicant_phone == "0922222222"
    shown = reviews.present(item, d, "vi", {node.node_id: node.identity.unit_name})
    by_node = {c["node_id"]: c for c in shown["candidates"]}
    assert by_node[LAPTOP]["node_name"] == LAPTOP_NAME and by_node[node.node_id]["node_name"] == "UBND xã Tân Cương"
    assert by_node[node.node_id]["by_name"] == "Nguyễn Thị Hoa" and by_node[node.node_id]["at"]
    assert reviews.counts([UNIT_CODE])["conflicts"] == 1


@pytest.mark.parametrize("choice, expected", [("keep", "0922222222"), ("take", "0911111111"),
                                              ("new", "0933 333 333")])
def test_each_choice_writes_one_signed_change_and_settles(node, choice, expected):
    d, item = field_conflict(node)
    loser = next(c["version"] for c in item["candidates"] if not c["winner"])
    before = changes()
    change = reviews.resolve_conflict(node, officer("leader"), item["id"], choice, take=loser,
                                      value=" 0933 333 333 " if choice == "new" else None)
    assert changes() == before + 1
    assert change["entity"] == "conflict" and change["op"] == "resolve" and change["entity_id"] == item["id"]
    assert change["payload"]["choice"] == choice and change["payload"]["by_name"] == "Đặng Quốc Hưng"
    assert sorted(change["payload"]["covers"]) == sorted(c["version"] for c in item["candidates"])
    log.verify_log(node.node_id, node.identity.public_key)
    assert conflicts.get(item["id"])["resolved"]
    assert Dossier.get_by_id(d.id).applicant_phone == expected
    assert reviews.counts([UNIT_CODE])["conflicts"] == 0


@pytest.mark.parametrize("role, kwargs, error", [
    ("leader", {"choice": "maybe"}, ValidationFailed),
    ("leader", {"choice": "take", "take": "0000~nowhere"}, ValidationFailed),
    ("leader", {"choice": "take"}, ValidationFailed),
    ("leader", {"choice": "new", "value": "abc"}, ValidationFailed),
    ("leader", {"choice": "new", "value": None}, ValidationFailed),
    ("reception", {"choice": "keep"}, PermissionDenied),
    ("specialist", {"choice": "keep"}, PermissionDenied),
])
def test_bad_decisions_are_refused_and_write_nothing(node, role, kwargs, error):
    d, item = field_conflict(node)
    before = changes()
    with pytest.raises(error):
        reviews.resolve_conflict(node, officer(role), item["id"], **kwargs)
    assert changes() == before and not conflicts.get(item["id"])["resolved"]


def test_unknown_and_settled_conflicts_are_refused(node):
    d, item = field_conflict(node)
    with pytest.raises(NotFound):
        reviews.resolve_conflict(node, officer("leader"), "no-such-conflict", "keep")
    reviews.resolve_conflict(node, officer("admin"), item["id"], "keep")
    before = changes()
    with pytest.raises(TransitionNotAllowed):
        reviews.resolve_conflict(node, officer("leader"), item["id"], "keep")
    assert changes() == before


def test_a_conflict_of_another_unit_is_not_found_here(node):
    d, item = field_conflict(node)
    Conflict.update(unit_code="000.00.19.H99").where(Conflict.id == item["id"]).execute()
    with pytest.raises(NotFound):
        reviews.resolve_conflict(node, officer("leader"), item["id"], "keep")


def _status_conflict(node) -> tuple[Dossier, dict]:
    """Reception transfers here; the laptop withdrew the dossier from the same base: a status conflict."""
    register_laptop()
    d = receive(node)
    base = d.status_version
    wf.perform(node, officer("reception"), d.code, "transfer", {})
    change = foreign_change(d, "action", {"action": "withdraw", "from": wf.ACCEPTED, "to": wf.WITHDRAWN,
                                          "base": base, "set": {"reason": "Xin rút", "step": "closed"},
                                          "event": {"at": "2026-03-02 09:20:00", "by_user": "U-LAPTOP-1",
                                                    "by_name": "Phạm Thị Lan", "note": "Xin rút"}},
                            ahead_ms=-1)
    with store.transaction(node):
        store.apply_change(change)
    items = [c for c in conflicts.of_dossier(d.id) if c["kind"] == "status"]
    assert len(items) == 1, conflicts.of_dossier(d.id)
    return Dossier.get_by_id(d.id), items[0]


def test_status_conflict_can_be_acknowledged_only(node):
    d, item = _status_conflict(node)
    assert d.status == wf.WITHDRAWN, "withdrawal ranks above a routine transfer"
    lost = DossierEvent.get((DossierEvent.dossier_id == d.id) & (DossierEvent.action == "transfer"))
    assert lost.applied == 0
    before = changes()
    with pytest.raises(ValidationFailed):
        reviews.resolve_conflict(node, officer("leader"), item["id"], "new", value="x")
    assert changes() == before
    reviews.resolve_conflict(node, officer("leader"), item["id"], "keep")
    assert changes() == before + 1 and conflicts.get(item["id"])["resolved"]


def test_a_lost_action_no_longer_allowed_is_not_offered(node):
    register_laptop()
    d = receive(node)
    base = d.status_version
    wf.perform(node, officer("reception"), d.code, "withdraw", {"reason": "Người dân xin rút"})
    change = foreign_change(d, "action", {"action": "transfer", "from": wf.ACCEPTED, "to": wf.PROCESSING,
                                          "base": base, "set": {"step": "processing"},
                                          "event": {"at": "2026-03-02 09:20:00", "by_user": "U-LAPTOP-1",
                                                    "by_name": "Phạm Thị Lan"}})
    with store.transaction(node):
        store.apply_change(change)
    d = Dossier.get_by_id(d.id)
    item = next(c for c in conflicts.of_dossier(d.id) if c["kind"] == "status")
    assert d.status == wf.WITHDRAWN
    assert reviews.retry_actions(officer("reception"), item, d) == [], "a withdrawn dossier cannot be transferred"


# ---------------------------------------------------------------- pages

def test_dossier_page_shows_the_conflict_and_a_leader_takes_that(app, client):
    node = app.extensions["motcua_node"]
    with app.app_context():
        d, item = field_conflict(node)
    login(client, "leader")
    html = client.get(f"/dossier/{d.code}").get_data(as_text=True)
    assert "Xung đột dữ liệu" in html and "0911111111" in html and "0922222222" in html
    assert LAPTOP_NAME in html and "Phạm Thị Lan" in html and "Đang áp dụng" in html
    assert 'class="badge t-overdue review-count"' in html, "the header counts open conflicts"
    loser = next(c["version"] for c in item["candidates"] if not c["winner"])
    before = changes()
    resp = client.post(f"/conflicts/{item['id']}/resolve", data={"choice": "take", "take": loser,
                                                                 "next": f"/dossier/{d.code}"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/dossier/{d.code}")
    assert changes() == before + 1
    html = client.get(f"/dossier/{d.code}").get_data(as_text=True)
    assert "Đã ghi nhận quyết định về xung đột." in html and "Đã giải quyết" in html
    assert Dossier.get_by_id(d.id).applicant_phone == "0911111111"


def test_conflict_page_new_value_errors_and_role_refusals(app, client):
    node = app.extensions["motcua_node"]
    with app.app_context():
        d, item = field_conflict(node)
    login(client, "reception")
    html = client.get("/conflicts").get_data(as_text=True)
    assert d.code in html and "Điện thoại" in html
    page = client.get(f"/conflicts/{item['id']}").get_data(as_text=True)
    assert "Lãnh đạo hoặc quản trị viên sẽ quyết định" in page and "Lấy giá trị này" not in page
    before = changes()
    assert client.post(f"/conflicts/{item['id']}/resolve", data={"choice": "keep"}).status_code == 403
    client.post("/logout")
    login(client, "leader")
    resp = client.post(f"/conflicts/{item['id']}/resolve", data={"choice": "new", "value": "12"})
    assert resp.status_code == 422 and "Số điện thoại gồm 9–15 chữ số." in resp.get_data(as_text=True)
    assert client.post("/conflicts/nope/resolve", data={"choice": "keep"}).status_code == 404
    assert changes() == before
    resp = client.post(f"/conflicts/{item['id']}/resolve", data={"choice": "new", "value": "0944444444"})
    assert resp.status_code == 303 and changes() == before + 1
    assert "Đã giải quyết" in client.get("/conflicts?show=resolved").get_data(as_text=True)


def test_english_conflict_page(app, client):
    node = app.extensions["motcua_node"]
    with app.app_context():
        d, item = field_conflict(node)
    login(client, "leader")
    html = client.get(f"/conflicts/{item['id']}?lang=en").get_data(as_text=True)
    assert "Keep the applied value" in html and "Take this value" in html and "Phone" in html


# ---------------------------------------------------------------- possible duplicates

def _duplicate(node) -> dict:
    """The same person and procedure received here and (a change from) the laptop the same morning."""
    register_laptop()
    mine = receive(node, applicant_id_number="019305009999")
    fields = {k: getattr(mine, k) for k in ("unit_code", "procedure_code", "procedure_version", "channel", "status",
                                            "step", "applicant_name", "applicant_id_number", "received_at",
                                            "appointment_at")}
    fields["code"] = mine.code + "-L"
    theirs = foreign_change(mine, "create", {"fields": fields})
    theirs["entity_id"] = "01LAPTOPDOSSIER000000000001"
    with store.transaction(node):
        store.apply_change(theirs)
    flags = list(DuplicateFlag.select().where(DuplicateFlag.dossier_a == mine.id) | DuplicateFlag.select().where(
        DuplicateFlag.dossier_b == mine.id))
    assert len(flags) == 1
    return reviews.duplicate(flags[0].id, None)


def test_duplicate_review_page_and_one_change(app, client):
    node = app.extensions["motcua_node"]
    with app.app_context():
        item = _duplicate(node)
    login(client, "reception")
    url = f"/duplicates/{item['id']}"
    html = client.get(url).get_data(as_text=True)
    assert all(x["code"] in html for x in item["dossiers"]) and LAPTOP_NAME in html
    assert "Có thể trùng hồ sơ" in client.get("/conflicts").get_data(as_text=True)
    page = client.get(f"/dossier/{item['dossiers'][0]['code']}").get_data(as_text=True)
    assert "Có thể trùng hồ sơ" in page and item["dossiers"][1]["code"] in page and url.replace("|", "%7C") in page
    before = changes()
    resp = client.post(url, data={"decision": "perhaps", "note": ""})
    assert resp.status_code == 422 and changes() == before
    resp = client.post(url, data={"decision": "x" * 3, "note": "n" * 501})
    assert resp.status_code == 422 and changes() == before
    resp = client.post(url, data={"decision": "distinct", "note": "Hai con sinh đôi"})
    assert resp.status_code == 303 and changes() == before + 1
    row = Change.select().order_by(Change.id.desc()).first()
    assert (row.entity, row.op) == ("duplicate", "review")
    html = client.get(url).get_data(as_text=True)
    assert "Hai hồ sơ khác nhau" in html and "Hai con sinh đôi" in html and "Nguyễn Thị Hoa" in html


def test_specialist_may_not_review_duplicates(node):
    item = _duplicate(node)
    with pytest.raises(PermissionDenied):
        reviews.review_duplicate(node, officer("specialist"), item["id"], "distinct", "")


# ---------------------------------------------------------------- JSON API

def test_api_patch_dossier(app, client, auth):
    with app.app_context():
        d = receive(app.extensions["motcua_node"])
    before = changes()
    resp = client.patch(f"{API}/dossiers/{d.code}", json={"applicant_phone": "0977 000 111"},
                        headers=auth["specialist"])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["dossier"]["applicant_phone"] == "0977 000 111" and changes() == before + 1
    for body, status in [({"applicant_phone": "x"}, 422), ({"applicant_id_number": "001"}, 422), ({}, 422),
                         ({"applicant_phone": 5}, 422)]:
        resp = client.patch(f"{API}/dossiers/{d.code}", json=body, headers=auth["leader"])
        assert resp.status_code == status and resp.get_json()["error"]["code"] == "validation_failed", body
    assert client.patch(f"{API}/dossiers/{d.code}", data="nope", headers=auth["leader"]).status_code == 400
    assert client.patch(f"{API}/dossiers/{d.code}", json={"matter": "x"}, headers=auth["admin"]).status_code == 403
    assert client.patch(f"{API}/dossiers/NOPE", json={"matter": "x"}, headers=auth["leader"]).status_code == 404
    assert changes() == before + 1


def test_api_conflicts_resolve_and_duplicates(app, client, auth):
    node = app.extensions["motcua_node"]
    with app.app_context():
        d, item = field_conflict(node)
        flag = _duplicate(node)
    body = client.get(f"{API}/conflicts", headers=auth["specialist"]).get_json()
    assert body["open"] == 1 and body["duplicates_open"] == 1 and body["items"][0]["id"] == item["id"]
    assert {c["node_name"] for c in body["items"][0]["candidates"]} == {LAPTOP_NAME, "UBND xã Tân Cương"}
    detail = client.get(f"{API}/dossiers/{d.code}", headers=auth["leader"]).get_json()
    assert [c["id"] for c in detail["conflicts"]] == [item["id"]]
    before = changes()
    url = f"{API}/conflicts/{item['id']}/resolve"
    assert client.post(url, json={"choice": "keep"}, headers=auth["specialist"]).status_code == 403
    assert client.post(url, json={"choice": "nope"}, headers=auth["leader"]).status_code == 422
    assert client.post(url, json={"choice": "new", "value": "1"}, headers=auth["leader"]).status_code == 422
    assert client.post(url, json={"choice": 3}, headers=auth["leader"]).status_code == 422
    assert client.post(f"{API}/conflicts/nope/resolve", json={"choice": "keep"},
                       headers=auth["leader"]).status_code == 404
    assert changes() == before
    resp = client.post(url, json={"choice": "new", "value": "0955555555"}, headers=auth["leader"])
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["conflict"]["resolved"] and changes() == before + 1
    assert client.post(url, json={"choice": "keep"}, headers=auth["leader"]).status_code == 409
    assert client.get(f"{API}/conflicts", headers=auth["leader"]).get_json()["open"] == 0
    assert client.get(f"{API}/conflicts?state=resolved", headers=auth["leader"]).get_json()["items"]

    dups = client.get(f"{API}/duplicates", headers=auth["reception"]).get_json()
    assert [x["id"] for x in dups["items"]] == [flag["id"]] and dups["open"] == 1
    review_url = f"{API}/duplicates/{re.sub('[|]', '%7C', flag['id'])}/review"
    assert client.post(review_url, json={"decision": "?"}, headers=auth["reception"]).status_code == 422
    assert client.post(review_url, json={"decision": "distinct"}, headers=auth["specialist"]).status_code == 403
    resp = client.post(review_url, json={"decision": "duplicate", "note": "Nộp hai lần"}, headers=auth["reception"])
    assert resp.status_code == 200 and resp.get_json()["duplicate"]["decision"] == "duplicate"
    assert changes() == before + 2


def test_status_conflict_page_offers_the_lost_action_to_whoever_may_do_it(app, client):
    """The leader apologised here while the laptop transferred the dossier: the apology ranks first, the
    transfer is not applied, and reception (who may transfer) is offered to do it again."""
    node = app.extensions["motcua_node"]
    with app.app_context():
        register_laptop()
        d = receive(node)
        base = d.status_version
        wf.perform(node, officer("leader"), d.code, "apologise", {"reason": "Chờ xác minh",
                                                                  "new_appointment": "2026-03-20 10:00"})
        change = foreign_change(d, "action", {"action": "transfer", "from": wf.ACCEPTED, "to": wf.PROCESSING,
                                              "base": base, "set": {"step": "processing"},
                                              "event": {"at": "2026-03-02 09:20:00", "by_user": "U-LAPTOP-1",
                                                        "by_name": "Phạm Thị Lan"}})
        with store.transaction(node):
            store.apply_change(change)
        item = next(c for c in conflicts.of_dossier(d.id) if c["kind"] == "status")
    assert Dossier.get_by_id(d.id).status == wf.ACCEPTED
    login(client, "reception")
    html = client.get(f"/dossier/{d.code}").get_data(as_text=True)
    assert "Không được áp dụng" in html and "Chuyển xử lý" in html and "Phạm Thị Lan" in html
    assert f"/dossier/{d.code}?open=transfer#form-transfer" in html, "reception may transfer again"
    opened = client.get(f"/dossier/{d.code}?open=transfer").get_data(as_text=True)
    assert re.search(r'<details class="action" open>\s*<summary class="action-transfer">', opened)
    client.post("/logout")
    login(client, "leader")
    html = client.get(f"/conflicts/{item['id']}").get_data(as_text=True)
    assert "Xác nhận, giữ nguyên" in html and "Nhập giá trị mới" not in html and "?open=transfer" not in html
    before = changes()
    resp = client.post(f"/conflicts/{item['id']}/resolve", data={"choice": "keep"})
    assert resp.status_code == 303 and changes() == before + 1 and conflicts.get(item["id"])["resolved"]
