"""Hub users tied to one agency: a specialist or leader sees and acts only on the dossiers sent to their
agency; an administrator sees every agency's dossiers (and acts for all of them when also a specialist or
leader without an agency); the admin's user pages and `motcua hub add-user` set the agency, and every bad
value is refused with a message, a 4xx and nothing written. An upgraded hub's older users keep working."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, PreparedNode, api, hub, hub_app, hub_db_url, hub_dir, session,
)

from central import hubauth
from central.cli import hub_group
from central.instance import Hub
from central.models import HubUser
from conftest import reception_body
from node import workflow as wf
from node.instance import Node
from node.sync import log
from node.sync.log import Change
from node.sync.state import Dossier, User
from node.users import Officer

LINKED = "2.000986"
ID_NUMBER = "019305001234"
USER_PASSWORD = "mat-khau-can-bo"
HUB_SCHEMA_3 = Path(__file__).parents[1] / "data" / "hub-schema-3"


@pytest.fixture
def prepared(node_dir, clock) -> PreparedNode:
    """The commune: one interconnected dossier sent to the police, one to social insurance."""
    node = Node(node_dir, now=clock)
    try:
        officer = {r: Officer.of(User.get(User.username == f"{r}1")) for r in ("reception", "specialist")}
        codes = {}
        for agency in ("police", "social_insurance"):
            d, _ = wf.receive_dossier(node, officer["reception"], reception_body(procedure_code=LINKED))
            wf.perform(node, officer["reception"], d.code, "transfer")
            wf.perform(node, officer["specialist"], d.code, "send_to_agency", {"agency": agency})
            codes[agency] = d.code
        changes = list(log.iter_changes(node.node_id))
        return PreparedNode(node.path, node.node_id, node.identity.unit_code, node.identity.unit_name, node.key,
                            changes, extra=codes)
    finally:
        node.close()


def add(hub, username: str, *roles: str, agency: str = "") -> dict:
    return hubauth.add_user(hub.storage, username, f"Cán bộ {username}", list(roles), USER_PASSWORD, agency)


def login(hub_app, username: str, password: str = USER_PASSWORD):
    client = hub_app.test_client()
    assert client.post("/login", data={"username": username, "password": password}).status_code == 302
    return client


def text(resp) -> str:
    return resp.get_data(as_text=True)


def test_an_agency_user_sees_and_acts_only_on_their_agency(hub_app, hub, session, prepared):
    assert session.push(prepared.changes).status_code == 200
    police, social = prepared.extra["police"], prepared.extra["social_insurance"]
    add(hub, "cv.congan", "specialist", agency="police")
    add(hub, "ld.bhxh", "leader", agency="social_insurance")
    cv, ld = login(hub_app, "cv.congan"), login(hub_app, "ld.bhxh")

    html = text(cv.get("/transfers?state=all"))
    assert police in html and social not in html
    assert 'value="social_insurance"' not in html and '<select name="agency"><option value="">' not in html
    assert text(ld.get("/transfers")).count("/transfers/") == 1 and social in text(ld.get("/transfers"))
    resp = cv.get("/transfers?agency=social_insurance")
    assert resp.status_code == 403 and "Công an (đăng ký cư trú)" in text(resp)
    assert cv.get("/transfers?agency=army").status_code == 303, "an unknown agency is a bad filter"

    resp = cv.get(f"/transfers/{social}")
    assert resp.status_code == 403 and "không được gửi đến cơ quan của bạn" in text(resp)
    assert social not in text(resp) and ID_NUMBER not in text(resp)
    assert "This dossier was not sent to your agency" in text(cv.get(f"/transfers/{social}?lang=en"))
    cv.get("/transfers?lang=vi")
    page = text(cv.get(f"/transfers/{police}"))
    assert "form-agency_accept" in page

    before = Change.select().count()
    for name in ("agency_accept", "agency_return", "agency_result"):
        resp = cv.post(f"/transfers/{social}/action/{name}", data={"reason": "Thiếu giấy tờ"})
        assert resp.status_code == 403, name
    assert Change.select().count() == before, "another agency's dossier: nothing written"
    assert Dossier.get(Dossier.code == social).step == "agency:social_insurance"

    assert cv.post(f"/transfers/{police}/action/agency_accept", data={"note": "Đủ"}).status_code == 303
    assert cv.post(f"/transfers/{police}/action/agency_result", data={}).status_code == 303
    assert Dossier.get(Dossier.code == police).step == "result"
    page = cv.get(f"/transfers/{police}")
    assert page.status_code == 200, "the agency still sees a dossier it handled (its hand-over history)"
    assert "form-agency_" not in text(page)
    assert ld.get(f"/transfers/{police}").status_code == 403
    assert ld.post(f"/transfers/{social}/action/agency_accept", data={}).status_code == 303


def test_administrators_see_every_agency_and_hub_wide_actors_act_for_all(hub_app, hub, session, prepared):
    assert session.push(prepared.changes).status_code == 200
    police, social = prepared.extra["police"], prepared.extra["social_insurance"]
    admin = login(hub_app, "admin", PASSWORD)
    html = text(admin.get("/transfers"))
    assert police in html and social in html
    assert admin.get(f"/transfers/{social}").status_code == 200
    assert admin.post(f"/transfers/{social}/action/agency_accept").status_code == 403, "an admin only looks"

    add(hub, "qt.lienthong", "admin", "specialist")  # a hub-wide administrator: no agency
    wide = login(hub_app, "qt.lienthong")
    assert "form-agency_accept" in text(wide.get(f"/transfers/{police}"))
    assert wide.post(f"/transfers/{police}/action/agency_accept").status_code == 303
    assert wide.post(f"/transfers/{social}/action/agency_accept").status_code == 303

    add(hub, "qt.congan", "admin", "leader", agency="police")  # an administrator acting for the police
    both = login(hub_app, "qt.congan")
    assert social in text(both.get("/transfers?state=received")), "as an administrator they see every agency"
    before = Change.select().count()
    assert both.post(f"/transfers/{social}/action/agency_result").status_code == 403
    assert Change.select().count() == before
    assert both.post(f"/transfers/{police}/action/agency_result").status_code == 303


def test_an_upgraded_hubs_user_without_an_agency_is_tied_by_the_administrator(hub_app, hub, session, prepared):
    """A specialist made before agencies were tied to users (agency "") sees and does nothing at the agencies
    until an administrator picks their agency on the users page; an administrator keeps working as before."""
    assert session.push(prepared.changes).status_code == 200
    police = prepared.extra["police"]
    add(hub, "cv.cu", "specialist", agency="police")
    HubUser.update(agency="").where(HubUser.username == "cv.cu").execute()  # as an upgraded hub holds it
    old = login(hub_app, "cv.cu")
    resp = old.get("/transfers?state=all")
    assert resp.status_code == 200 and 'id="no-agency"' in text(resp) and police not in text(resp)
    assert old.get(f"/transfers/{police}").status_code == 403
    before = Change.select().count()
    assert old.post(f"/transfers/{police}/action/agency_accept").status_code == 403
    assert Change.select().count() == before
    assert old.get("/indicators/").status_code == 200, "other pages work as before"

    admin = login(hub_app, "admin", PASSWORD)
    users = text(admin.get("/admin/users"))
    assert 'id="agency-cv.cu"' in users and "Chưa gắn cơ quan" in users
    assert admin.post("/admin/users/cv.cu/agency", data={"agency": "police"}).status_code == 303
    assert hub.storage.user("cv.cu")["agency"] == "police"
    assert police in text(old.get("/transfers")), "the open session sees the agency at once"
    assert old.post(f"/transfers/{police}/action/agency_accept").status_code == 303
    assert admin.post("/admin/users/cv.cu/active", data={"active": "0"}).status_code == 303
    assert hub.storage.user("cv.cu")["agency"] == "police", "locking keeps the agency"


def test_bad_agencies_are_refused_with_nothing_written(hub_app, hub):
    admin = login(hub_app, "admin", PASSWORD)
    before = HubUser.select().count()
    for form, field_text in (
            ({"roles": ["specialist"], "agency": "army"}, "Không có cơ quan này"),
            ({"roles": ["specialist"], "agency": ""}, "phải thuộc một cơ quan"),
            ({"roles": ["leader"]}, "phải thuộc một cơ quan"),
            ({"roles": ["admin"], "agency": "police"}, "Chỉ chuyên viên hoặc lãnh đạo")):
        data = dict({"username": "cv2", "full_name": "Nguyễn Văn Hai", "password": "mat-khau-cv2"}, **form)
        resp = admin.post("/admin/users", data=data)
        assert resp.status_code == 422 and field_text in text(resp), form
    english = admin.post("/admin/users?lang=en", data={"username": "cv2", "full_name": "A", "roles": ["leader"],
                                                       "agency": "army", "password": "mat-khau-cv2"})
    assert english.status_code == 422 and "No such agency" in text(english)
    admin.get("/nodes?lang=vi")
    assert HubUser.select().count() == before and hub.storage.user("cv2") is None
    with pytest.raises(hubauth.UserInvalid):
        add(hub, "cv3", "specialist", agency="Police")
    assert hub.storage.user("cv3") is None

    resp = admin.post("/admin/users", data={"username": "cv2", "full_name": "Nguyễn Văn Hai", "roles": ["leader"],
                                            "agency": "district", "password": "mat-khau-cv2"})
    assert resp.status_code == 303 and hub.storage.user("cv2")["agency"] == "district"
    assert "Cơ quan chuyên môn cấp huyện" in text(admin.get("/admin/users"))
    for username, data, status in (("cv2", {"agency": "army"}, 422), ("cv2", {"agency": ""}, 422),
                                   ("admin", {"agency": "police"}, 422), ("nobody", {"agency": "police"}, 404),
                                   ("cv2", {}, 400)):
        resp = admin.post(f"/admin/users/{username}/agency", data=data)
        assert resp.status_code == status, (username, data)
        assert hub.storage.user("cv2")["agency"] == "district" and hub.storage.user("admin")["agency"] == ""
    assert "Không có cơ quan này" in text(admin.post("/admin/users/cv2/agency", data={"agency": "army"}))
    leader = login(hub_app, "cv2", "mat-khau-cv2")
    assert leader.post("/admin/users/cv2/agency", data={"agency": "police"}).status_code == 403
    assert hub.storage.user("cv2")["agency"] == "district"
    assert admin.post("/admin/users/cv2/agency", data={"agency": "province"}).status_code == 303
    assert hub.storage.user("cv2")["agency"] == "province"


def test_add_user_command_sets_and_checks_the_agency(hub_dir, hub_db_url):
    if hub_db_url:
        return  # the command opens the hub by its folder (hub.json names the database)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(hub_group, ["add-user", "--data", str(hub_dir), *args, "--password", "mat-khau-moi"])

    done = run("cv.congan", "--full-name", "Trần Văn Công An", "--role", "specialist", "--agency", "police")
    assert done.exit_code == 0 and "agency police" in done.output, done.output
    bad = run("cv.x", "--full-name", "X", "--role", "specialist", "--agency", "army")
    assert bad.exit_code != 0 and "Không có cơ quan này" in bad.output and "social_insurance" in bad.output
    bad = run("cv.y", "--full-name", "Y", "--role", "leader")
    assert bad.exit_code != 0 and "phải thuộc một cơ quan" in bad.output
    bad = run("qt.z", "--full-name", "Z", "--role", "admin", "--agency", "police")
    assert bad.exit_code != 0
    assert run("qt.w", "--full-name", "W", "--role", "admin", "--role", "specialist").exit_code == 0
    hub = Hub(hub_dir)
    try:
        assert hub.storage.user("cv.congan")["agency"] == "police"
        assert hub.storage.user("qt.w")["agency"] == "" and hubauth.acting_agencies(hub.storage.user("qt.w")) is None
        assert all(hub.storage.user(u) is None for u in ("cv.x", "cv.y", "qt.z"))
    finally:
        hub.close()


def test_a_schema_3_hubs_users_gain_an_empty_agency(tmp_path):
    target = tmp_path / "hub"
    shutil.copytree(HUB_SCHEMA_3, target)
    (target / "files").mkdir(exist_ok=True)
    hub = Hub(target)
    try:
        hub.storage.connect()
        user = hub.storage.user("admin")
        assert user["agency"] == "" and hubauth.visible_agencies(user) is None, "the administrator sees all"
        assert hubauth.acting_agencies(user) == ()
    finally:
        hub.close()


def test_scopes_of_each_kind_of_user():
    def user(roles: str, agency: str = "") -> dict:
        return {"roles": roles, "agency": agency}

    assert hubauth.visible_agencies(user("admin")) is None
    assert hubauth.acting_agencies(user("admin")) == ()
    assert hubauth.acting_agencies(user("admin,specialist")) is None
    assert hubauth.acting_agencies(user("admin,leader", "police")) == ("police",)
    assert hubauth.visible_agencies(user("specialist", "police")) == ("police",)
    assert hubauth.acting_agencies(user("leader", "social_insurance")) == ("social_insurance",)
    assert hubauth.visible_agencies(user("specialist")) == () and hubauth.acting_agencies(user("specialist")) == ()
    gone = user("leader", "gone")  # an agency code this version does not know
    assert hubauth.visible_agencies(gone) == () and hubauth.acting_agencies(gone) == ()
    assert hubauth.visible_agencies(None) == () and hubauth.acting_agencies(None) == ()
