"""Interconnected ("liên thông") dossiers: a commune sends a dossier to one of the hub's agencies, the agency
receives it and returns the result (hub-signed `dossier.action` changes through `storage.write_change`),
the commune pulls them through the real ingest path and returns the result to the applicant.

The hub is the real hub storage (the Hub class pattern of test_convergence.py); the commune is a real node
folder (tests/replicas.py).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from central.storage import HubSigner, open_storage
from conftest import FakeNow, reception_body
from node import workflow as wf
from node.errors import PermissionDenied, TransitionNotAllowed, ValidationFailed
from node.sync import hlc, keys
from node.sync.dossiers import PRECEDENCE
from node.sync.ids import new_id
from node.sync.state import Conflict, Dossier, DossierEvent, database
from node.users import Officer
from replicas import KEYS, Replica

UA = "000.00.19.H55"
LINKED = "2.000986"  # birth + permanent residence + health insurance card for a child under 6
PLAIN = "1.004873"  # marital status certificate: not interconnected
AGENCY_UNIT = "Công an (đăng ký cư trú) – Trung tâm huyện Đồng Hỷ"
OFFICER = Officer("cv.congan", "cv.congan", "Trần Văn Công An", frozenset({wf.AGENCY}))


class Hub:
    """The hub's real storage, with its own key, in the same process as the node (bound on use)."""

    def __init__(self, url: str):
        self.key = keys.NodeKey.generate()
        self.signer = HubSigner("H" + new_id()[-12:], self.key, hlc.Clock())
        KEYS[self.signer.node_id] = self.key.public_b64
        self.storage = open_storage(url, self.signer)
        self.storage.create_schema()
        self.cursor = 0
        self.put_node(self.signer.node_id, self.key.public_b64, "hub", "hub", "*")

    def use(self):
        database.initialize(self.storage.db)
        return self.storage

    def put_node(self, node_id: str, public: str, kind: str, unit: str, scope: str) -> None:
        self.use().write_change("node", node_id, "put", {"fields": {
            "node_id": node_id, "public_key": public, "kind": kind, "unit_code": unit, "unit_name": unit,
            "scope": scope, "status": "active"}})

    def push(self, r: Replica) -> None:
        held = self.use().held(r.node_id)[0]
        batch = [c for c in r.changes(own=True) if c["seq"] > held]  # binds the commune's database
        if batch:
            self.use().ingest_push(r.node_id, batch, now=datetime(2026, 3, 2, 9, 0))

    def pull(self, r: Replica) -> int:
        page = self.use().pull(r.node_id, list(r.units) + ["*"], self.cursor, limit=1000)
        self.cursor = page.position
        return r.deliver(list(page.changes)) if page.changes else 0

    def act(self, code: str, name: str, params: dict | None = None) -> dict:
        """What central/transfer_views.py does: check as a node would, then write one hub-signed change."""
        storage = self.use()
        with storage.transaction():
            d = wf.get_dossier(code)
            payload = wf.decide(OFFICER, d, name, params, datetime(2026, 3, 3, 10, 0), None, AGENCY_UNIT)
            return storage.write_change("dossier", d.id, "action", payload, author=OFFICER.id)


@pytest.fixture
def world(tmp_path, _template_node):
    clock = FakeNow()
    commune = Replica(_template_node, tmp_path / "a", clock, unit_code=UA, unit_name="UBND xã Tân Cương")
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    hub.put_node(commune.node_id, KEYS[commune.node_id], "commune", UA, UA)
    yield commune, hub
    commune.close()
    hub.storage.close()


def sent_to_police(commune: Replica, procedure: str = LINKED) -> str:
    node = commune.use()
    d, _ = wf.receive_dossier(node, commune.officer("reception"), reception_body(procedure_code=procedure))
    wf.perform(node, commune.officer("reception"), d.code, "transfer")
    commune.tick()
    d = wf.perform(node, commune.officer("specialist"), d.code, "send_to_agency",
                   {"agency": "police", "note": "Đề nghị đăng ký thường trú cho cháu"})
    commune.tick()
    assert (d.status, d.step, wf.agency_label(d.step)) == (wf.PROCESSING, "agency:police", "Công an (đăng ký cư trú)")
    return d.code


def test_the_workflow_table_for_the_new_actions(world):
    commune, _hub = world
    node = commune.use()
    d, _ = wf.receive_dossier(node, commune.officer("reception"), reception_body(procedure_code=PLAIN))
    wf.perform(node, commune.officer("reception"), d.code, "transfer")
    d = wf.get_dossier(d.code)
    names = {a.name for a in wf.allowed_actions(commune.officer("specialist"), d)}
    assert "send_to_agency" not in names, "only interconnected procedures go to an agency"
    code = sent_to_police(commune)
    d = wf.get_dossier(code)
    for role in ("reception", "specialist", "leader", "admin"):
        names = {a.name for a in wf.allowed_actions(commune.officer(role), d)}
        assert not names & {"send_to_agency", "propose", "sign", *wf.AGENCY_ACTIONS}, role
        with pytest.raises(PermissionDenied):
            wf.perform(node, commune.officer(role), code, "agency_result")
    assert [a.name for a in wf.allowed_actions(OFFICER, d)] == ["agency_accept"]
    with pytest.raises(TransitionNotAllowed):
        wf.decide(OFFICER, d, "agency_result", {}, datetime(2026, 3, 3), None, AGENCY_UNIT)
    code2 = wf.perform(node, commune.officer("reception"), wf.receive_dossier(
        node, commune.officer("reception"), reception_body(procedure_code=LINKED))[0].code, "transfer").code
    with pytest.raises(ValidationFailed) as info:
        wf.perform(node, commune.officer("leader"), code2, "send_to_agency", {"agency": "army"})
    assert "agency" in info.value.fields
    assert wf.get_dossier(code2).step == "processing", "a refusal writes nothing"
    assert {"agency_result", "agency_return", "send_to_agency", "agency_accept"} <= set(PRECEDENCE)


def test_a_transferred_dossier_goes_to_the_agency_and_comes_back(world):
    commune, hub = world
    code = sent_to_police(commune)
    hub.push(commune)
    hub.use()
    at_hub = Dossier.get(Dossier.code == code)
    assert (at_hub.status, at_hub.step) == (wf.PROCESSING, "agency:police")
    with pytest.raises(TransitionNotAllowed):
        hub.act(code, "agency_return", {"reason": "Chưa nhận mà đã trả"})
    hub.act(code, "agency_accept", {"note": "Đã nhận đủ hồ sơ"})
    with pytest.raises(ValidationFailed):
        hub.act(code, "agency_return", {"reason": ""})
    hub.act(code, "agency_result", {"result_digitised": "1", "note": "Đã đăng ký thường trú"})
    hub.use()
    at_hub = Dossier.get(Dossier.code == code)
    assert (at_hub.status, at_hub.step, at_hub.result_digitised) == (wf.READY, "result", 1)
    assert hub.pull(commune) >= 2
    node = commune.use()
    d = wf.get_dossier(code)
    assert (d.status, d.step, d.status_version) == (wf.READY, "result", at_hub.status_version)
    events = list(DossierEvent.select().where(DossierEvent.dossier_id == d.id).order_by(DossierEvent.hlc))
    rows = [(e.action, e.unit, e.by_name, e.to_name, e.applied) for e in events]
    assert rows[-3:] == [
        ("send_to_agency", "UBND xã Tân Cương", commune.officer("specialist").full_name, "Công an (đăng ký cư trú)", 1),
        ("agency_accept", AGENCY_UNIT, OFFICER.full_name, "", 1),
        ("agency_result", AGENCY_UNIT, OFFICER.full_name, "Bộ phận một cửa", 1)]
    assert [a.name for a in wf.allowed_actions(commune.officer("reception"), d)] == ["return_result"]
    commune.tick()
    d = wf.perform(node, commune.officer("reception"), code, "return_result", {"rating": "satisfied"})
    assert d.status == wf.RETURNED
    hub.push(commune)
    hub.use()
    assert Dossier.get(Dossier.code == code).status == wf.RETURNED


def test_the_agency_sends_it_back_and_the_commune_carries_on(world):
    commune, hub = world
    code = sent_to_police(commune)
    hub.push(commune)
    hub.act(code, "agency_accept")
    hub.act(code, "agency_return", {"reason": "Thiếu giấy tờ chứng minh chỗ ở"})
    hub.pull(commune)
    commune.use()
    d = wf.get_dossier(code)
    assert (d.status, d.step, d.reason) == (wf.PROCESSING, "processing", "Thiếu giấy tờ chứng minh chỗ ở")
    names = {a.name for a in wf.allowed_actions(commune.officer("specialist"), d)}
    assert {"propose", "send_to_agency"} <= names


def test_a_withdrawal_at_the_commune_beats_the_agency_result_everywhere(world):
    commune, hub = world
    code = sent_to_police(commune)
    hub.push(commune)
    hub.act(code, "agency_accept")
    hub.pull(commune)
    node = commune.use()
    wf.perform(node, commune.officer("reception"), code, "withdraw", {"reason": "Người dân xin rút"})
    hub.act(code, "agency_result")  # decided at the same time, on the same base
    hub.push(commune)
    hub.pull(commune)
    states = []
    for use in (hub.use, commune.use):
        use()
        d = Dossier.get(Dossier.code == code)
        states.append((d.status, d.status_version))
        assert Conflict.select().where(Conflict.dossier_id == d.id).count() == 1
    assert states[0] == states[1] and states[0][0] == wf.WITHDRAWN
