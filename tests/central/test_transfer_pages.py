"""The hub's pages for interconnected dossiers: the worklist by agency, the dossier with its history
(form 05) and the agency's actions, written as hub-signed changes the commune pulls."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import pytest
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, PreparedNode, api, hub, hub_app, hub_db_url, hub_dir, session,
)

from central import hubauth
from conftest import reception_body
from node import workflow as wf
from node.instance import Node
from node.sync import log
from node.sync.log import Change
from node.sync.state import Dossier, DossierEvent, User
from node.users import Officer

LINKED = "2.000986"
ID_NUMBER = "019305001234"


@pytest.fixture
def prepared(node_dir, clock) -> PreparedNode:
    """The commune: one interconnected dossier sent to the police; its log read, node closed."""
    node = Node(node_dir, now=clock)
    try:
        officer = {r: Officer.of(User.get(User.username == f"{r}1")) for r in ("reception", "specialist")}
        d, _ = wf.receive_dossier(node, officer["reception"], reception_body(procedure_code=LINKED))
        wf.perform(node, officer["reception"], d.code, "transfer")
        wf.perform(node, officer["specialist"], d.code, "send_to_agency", {"agency": "police"})
        changes = list(log.iter_changes(node.node_id))
        return PreparedNode(node.path, node.node_id, node.identity.unit_code, node.identity.unit_name, node.key,
                            changes, d.id, d.code)
    finally:
        node.close()


def client_as(hub_app, hub, username: str, *roles: str, agency: str = "police"):
    if roles:
        hubauth.add_user(hub.storage, username, f"Cán bộ {username}", list(roles), "mat-khau-can-bo",
                         agency if set(roles) & {"specialist", "leader"} else "")
    client = hub_app.test_client()
    resp = client.post("/login", data={"username": username,
                                       "password": "mat-khau-can-bo" if roles else PASSWORD})
    assert resp.status_code == 302
    return client


def test_the_agency_processes_a_transferred_dossier(hub_app, hub, session, prepared):
    assert session.push(prepared.changes).status_code == 200
    cv = client_as(hub_app, hub, "cv.congan", "specialist")
    assert cv.get("/").headers["Location"].endswith("/transfers")
    html = cv.get("/transfers").get_data(as_text=True)
    assert prepared.dossier_code in html and prepared.unit_name in html and "Công an (đăng ký cư trú)" in html
    assert cv.get("/transfers?agency=social_insurance").status_code == 403, "another agency's worklist"
    assert cv.get("/transfers?agency=army").status_code == 303
    page = cv.get(f"/transfers/{prepared.dossier_code}").get_data(as_text=True)
    assert "form-agency_accept" in page and "form-agency_result" not in page and ID_NUMBER not in page
    assert cv.get("/transfers/NOPE-1").status_code == 404
    before = Change.select().count()
    resp = cv.post(f"/transfers/{prepared.dossier_code}/action/agency_result", data={})
    assert resp.status_code == 409 and Change.select().count() == before, "not received yet: nothing written"
    assert cv.post(f"/transfers/{prepared.dossier_code}/action/sign", data={}).status_code == 404
    resp = cv.post(f"/transfers/{prepared.dossier_code}/action/agency_accept", data={"note": "x" * 1001})
    assert resp.status_code == 422 and Change.select().count() == before
    assert cv.post(f"/transfers/{prepared.dossier_code}/action/agency_accept", data={"note": "Đủ"}).status_code == 303
    resp = cv.post(f"/transfers/{prepared.dossier_code}/action/agency_return", data={"reason": " "})
    assert resp.status_code == 422 and Change.select().count() == before + 1
    html = cv.get("/transfers?state=received").get_data(as_text=True)
    assert prepared.dossier_code in html
    resp = cv.post(f"/transfers/{prepared.dossier_code}/action/agency_result", data={"result_digitised": "1"})
    assert resp.status_code == 303
    d = Dossier.get(Dossier.code == prepared.dossier_code)
    assert (d.status, d.step) == (wf.READY, "result")
    units = [e.unit for e in DossierEvent.select().where(DossierEvent.dossier_id == d.id).order_by(DossierEvent.hlc)]
    assert units[-1].startswith("Công an (đăng ký cư trú) – ") and prepared.unit_name in units
    admin = client_as(hub_app, hub, "admin")
    assert admin.get(f"/transfers/{prepared.dossier_code}").status_code == 200, "the administrator may look"
    assert admin.post(f"/transfers/{prepared.dossier_code}/action/agency_accept").status_code == 403
    audit = admin.get("/audit", query_string={"q": prepared.dossier_code}).get_data(as_text=True)
    assert "agency_result" in audit and "cv.congan" in audit and ID_NUMBER not in audit
    changes, _page = session.pull_all()
    pulled = [c["payload"].get("action") for c in changes if c["entity"] == "dossier" and c["op"] == "action"]
    assert pulled == ["agency_accept", "agency_result"], "the commune receives the agency's actions"
