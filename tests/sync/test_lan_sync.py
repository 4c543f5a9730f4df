"""Field laptops and the LAN relay, in process: a laptop whose hub is out of reach syncs with its commune's
node (a FakeRelay); a commune node carries its laptops' changes to the hub (a FakeHub) with their original
signatures; digests still agree while changes that came over the LAN are not on the hub yet."""

from __future__ import annotations

import json

import pytest

from node import relay, store, syncer, workflow as wf
from node.models import NodeSetting
from node.sync import log, protocol
from node.sync.client import HubUnreachable, Transport
from node.sync.ids import new_id
from node.sync.log import Change
from node.sync.state import Dossier, NodeRecord
from tests.conftest import UNIT_CODE, reception_body
from tests.sync.fakehub import FakeHub
from tests.sync.fakerelay import FakeRelay

HUB_URL = "http://hub.test:9000"
LAN_URL = "http://commune.test:8080"
OTHER = "000.00.19.H56"


class HubDown(Transport):
    """No answer at all: the laptop is in the field, far from the district network."""

    def __init__(self):
        self.calls = 0

    def send(self, method, path, *, headers, body, timeout):
        self.calls += 1
        raise HubUnreachable("no route to the hub (test)")


def dossier_fields(unit: str, code: str) -> dict:
    return {"code": code, "unit_code": unit, "procedure_code": "1.001193", "procedure_version": 1, "status": 2,
            "applicant_name": "Trần Văn Bình", "received_at": "2026-03-02 09:00:00"}


def setting(name: str) -> str:
    row = NodeSetting.get_or_none(NodeSetting.key == name)
    return row.value if row else ""


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def commune(hub):
    """Commune A's node as the hub knows it (enrolled before the laptop, so the laptop learns its key)."""
    return hub.add_node(UNIT_CODE)


@pytest.fixture
def laptop(node, hub, commune):
    """The test's node as a field laptop of commune A (and B), synced once with the hub, LAN relay set."""
    record = syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE, kind="laptop", scope=f"{UNIT_CODE},{OTHER}"),
                           transport=hub)
    assert record["kind"] == "laptop" and node.identity.code_tag.startswith("L")
    assert syncer.sync_once(node, transport=hub, retries=0).ok
    assert syncer.set_lan_url(node, LAN_URL + "/") == LAN_URL
    return node


@pytest.fixture
def lan(hub, commune) -> FakeRelay:
    return FakeRelay(hub, commune)


def lan_sync(node, lan, **over):
    options = dict(transport=HubDown(), lan_transport=lan, retries=0, push_batch=10, pull_limit=7)
    options.update(over)
    return syncer.sync_once(node, **options)


def test_no_hub_link_syncs_over_the_lan(laptop, hub, commune, lan, officers):
    theirs = commune.offline("dossier", "DCOMMUNE1", "create", {"fields": dossier_fields(UNIT_CODE, "A-0001")})
    lan.served.append(theirs)
    mine, _ = wf.receive_dossier(laptop, officers["reception"], reception_body())
    assert mine.code.startswith(f"{UNIT_CODE}.{laptop.identity.code_tag}-"), "laptop codes never clash with A's"
    acked = int(setting("sync.acked_seq"))
    report = lan_sync(laptop, lan)
    assert report.ok and report.path == "lan", report.error
    assert report.pulled == 1 and report.pushed == log.last_of(laptop.node_id)[0] - acked
    assert "over the LAN" in report.summary()
    carried = lan.held[laptop.node_id]
    assert [c["seq"] for c in carried] == list(range(acked + 1, log.last_of(laptop.node_id)[0] + 1))
    assert all(Change.get((Change.node_id == laptop.node_id) & (Change.seq == c["seq"])).sig == c["sig"]
               for c in carried), "the relay holds the laptop's changes as signed"
    assert Dossier.get_by_id("DCOMMUNE1").unit_code == UNIT_CODE
    info = syncer.status(laptop)
    assert (info["state"], info["last_path"], info["lan_url"]) == ("lan", "lan", LAN_URL)
    assert json.loads(setting("sync.lan_origins")) == [commune.node_id]

    # Acting on the dossier that came from the commune node travels the same way.
    with store.transaction(laptop):
        store.write(laptop, "dossier", "DCOMMUNE1", "update", {"set": {"applicant_phone": "0912345678"}}, "t")
    again = lan_sync(laptop, lan)
    assert again.ok and again.pushed == 1 and again.pulled == 0
    assert lan.held[laptop.node_id][-1]["entity_id"] == "DCOMMUNE1"


def test_back_at_the_hub_nothing_twice_and_digests_agree(laptop, hub, commune, lan, officers):
    theirs = commune.offline("dossier", "DCOMMUNE1", "create", {"fields": dossier_fields(UNIT_CODE, "A-0001")})
    lan.served.append(theirs)
    wf.receive_dossier(laptop, officers["reception"], reception_body())
    assert lan_sync(laptop, lan).ok
    # The hub does not hold the commune's change yet: the digest leaves it out instead of crying mismatch.
    report = syncer.sync_once(laptop, transport=hub, retries=0, push_batch=10)
    assert report.ok and report.path == "hub" and report.digest_ok and not report.repaired, report.error
    assert [c["seq"] for c in hub.held_of(laptop.node_id)] == list(range(1, log.last_of(laptop.node_id)[0] + 1))
    assert setting("sync.last_path") == "hub" and syncer.status(laptop)["state"] == "online"
    assert json.loads(setting("sync.lan_origins")) == [commune.node_id]
    hub.store(theirs, UNIT_CODE)  # the commune node synced in the meantime
    report = syncer.sync_once(laptop, transport=hub, retries=0)
    assert report.ok and report.digest_ok and report.pulled == 0, "held already: skipped"
    assert json.loads(setting("sync.lan_origins")) == [], "the hub caught up: forgotten"
    hashes = [h for (h,) in Change.select(Change.hash).tuples()]
    assert len(hashes) == len(set(hashes))


def test_changes_for_another_commune_wait_for_the_hub(laptop, lan, officers):
    wf.receive_dossier(laptop, officers["reception"], reception_body())
    with store.transaction(laptop):
        store.write(laptop, "dossier", new_id(), "create", {"fields": dossier_fields(OTHER, "B-0001")}, "t")
    wf.receive_dossier(laptop, officers["reception"], reception_body())
    before = len(lan.held.get(laptop.node_id, []))
    report = lan_sync(laptop, lan)
    assert report.ok and report.held_back > 0 and "another commune" in report.summary()
    sent = lan.held[laptop.node_id]
    assert len(sent) > before and all(c["payload"].get("fields", {}).get("unit_code") != OTHER for c in sent)
    assert report.held_back == log.last_of(laptop.node_id)[0] - sent[-1]["seq"]


def test_an_impostor_on_the_lan_gets_nothing(laptop, lan, officers):
    from node.sync import keys

    lan.proof_key = keys.NodeKey.generate()  # claims to be commune A, cannot sign as it
    wf.receive_dossier(laptop, officers["reception"], reception_body())
    report = lan_sync(laptop, lan)
    assert report.error_code == "relay_key_mismatch" and report.stage == "status"
    assert lan.held.get(laptop.node_id, []) == [] and "/sync/push" not in lan.calls
    assert syncer.status(laptop)["state"] == "offline"


def test_a_relay_enrolled_with_another_hub_is_refused(laptop, lan):
    from node.sync import keys

    lan.hub_public_key = keys.NodeKey.generate().public_b64
    report = lan_sync(laptop, lan)
    assert report.error_code == "relay_other_hub" and lan.calls == ["/time"]


def test_without_a_lan_relay_an_unreachable_hub_is_just_offline(laptop, lan):
    syncer.set_lan_url(laptop, None)
    report = lan_sync(laptop, lan)
    assert report.error_code == "hub_unreachable" and report.path == "hub" and lan.calls == []


def test_the_lan_url_comes_from_the_environment_first(laptop, monkeypatch):
    monkeypatch.setenv(relay.LAN_URL_ENV, "http://10.0.0.7:8080")
    assert relay.lan_url(laptop) == "http://10.0.0.7:8080"
    with pytest.raises(ValueError):
        syncer.set_lan_url(laptop, "ftp://nowhere")


# ---------------------------------------------------------------- the commune node carries its laptops' changes

@pytest.fixture
def commune_node(node, hub):
    """The test's node as commune A's node, enrolled; a laptop of A enrolled after it, known by a pull."""
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    field = hub.add_node(UNIT_CODE, kind="laptop", scope=UNIT_CODE)
    assert syncer.sync_once(node, transport=hub, retries=0).ok
    return node, field


def take_over_lan(node, field, changes) -> dict:
    record = NodeRecord.get_by_id(field.node_id)
    return relay.accept_push(node, record, protocol.encode_body({"node_id": field.node_id, "changes": changes}))


def field_work(field, n: int = 1) -> list[dict]:
    out = []
    for i in range(n):
        dossier_id = new_id()
        out.append(field.offline("dossier", dossier_id, "create",
                                 {"fields": dossier_fields(UNIT_CODE, f"A.L1-{new_id()[-6:]}-{i}")}))
        out.append(field.offline("document", new_id(), "create", {"fields": {"dossier_id": dossier_id, "name": "Tờ"}}))
    return out


def test_the_commune_node_relays_laptop_changes_with_their_signatures(commune_node, hub):
    node, field = commune_node
    work = field_work(field, 12)
    assert take_over_lan(node, field, work)["stored"] == 24
    report = syncer.sync_once(node, transport=hub, retries=0, push_batch=10)
    assert report.ok and report.digest_ok and report.relayed == 24, report.error
    assert [(c["hash"], c["sig"]) for c in hub.held_of(field.node_id)] == [(c["hash"], c["sig"]) for c in work]
    relayed = [b for b in hub.pushes if b and b[0][0] == field.node_id]
    assert len(relayed) == 3 and all({n for n, _ in b} == {field.node_id} for b in relayed), "own batches per origin"
    assert "relayed 24 changes of field laptops" in report.summary()
    again = syncer.sync_once(node, transport=hub, retries=0)
    assert again.ok and again.relayed == 0 and json.loads(setting("sync.lan_origins")) == []


def test_the_laptop_pushing_directly_first_is_harmless(commune_node, hub):
    node, field = commune_node
    work = field_work(field, 2)
    take_over_lan(node, field, work)
    for change in work[:3]:  # the laptop reached the hub itself with part of it
        hub.store(change, UNIT_CODE)
    report = syncer.sync_once(node, transport=hub, retries=0)
    assert report.ok and report.relayed == 1 and report.digest_ok
    assert [c["seq"] for c in hub.held_of(field.node_id)] == [1, 2, 3, 4]


def test_a_refused_laptop_does_not_fail_the_communes_sync(commune_node, hub):
    node, field = commune_node
    take_over_lan(node, field, field_work(field))
    hub.set_status(field.node_id, "revoked")  # revoked at the hub; the node learns it by its next pull
    report = syncer.sync_once(node, transport=hub, retries=0)
    assert report.ok and report.digest_ok, report.error
    assert report.relay_errors[field.node_id]["code"] == "node_revoked"
    assert hub.held_of(field.node_id) == []
    assert syncer.status(node)["relay_errors"][field.node_id]["code"] == "node_revoked"
    from node.sync import hlc
    from node.sync.ingest import NodeRevoked

    now, path = hlc.wall_ms(), protocol.RELAY_API + "/sync/push"
    signed = {"X-Motcua-Protocol": "1", "X-Motcua-Node": field.node_id, "X-Motcua-Time": str(now),
              "X-Motcua-Signature": field.key.sign(protocol.request_message("POST", path, now, field.node_id, b""))}
    with pytest.raises(NodeRevoked):
        relay.authenticate(node, "POST", path, signed, b"", push=True)


# ---------------------------------------------------------------- the sync page

@pytest.fixture
def page_app(node_dir, clock):
    from node.web import create_app

    app = create_app({"DATA_DIR": str(node_dir), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock,
                      "SYNC_BACKGROUND": False})
    yield app
    app.extensions["motcua_node"].close()


def test_the_sync_page_says_which_path_was_used(laptop, lan, page_app, monkeypatch, officers):
    from tests.conftest import login

    monkeypatch.setattr(syncer, "RequestsTransport", lambda url, **kw: lan if url == LAN_URL else HubDown())
    wf.receive_dossier(laptop, officers["reception"], reception_body())
    client = login(page_app.test_client(), "specialist")
    assert 'data-path="hub"' in client.get("/sync").get_data(as_text=True)
    client.post("/sync/now", data={"next": "/sync"})
    page = client.get("/sync").get_data(as_text=True)
    assert "Đã đồng bộ qua mạng xã: gửi" in page and 'data-path="lan"' in page and LAN_URL in page
    english = client.get("/sync?lang=en").get_data(as_text=True)
    assert "Synced over the commune LAN" in english and "Commune node over the LAN" in english
    from node.sync import keys

    lan.proof_key = keys.NodeKey.generate()
    client.post("/sync/now", data={"next": "/sync"})
    english = client.get("/sync?lang=en").get_data(as_text=True)
    assert "cannot prove it is the commune&#39;s node" in english and 'id="lan-error"' in english


def test_the_commune_nodes_page_lists_its_laptops(commune_node, hub, page_app):
    from tests.conftest import login

    node, field = commune_node
    take_over_lan(node, field, field_work(field))
    hub.set_status(field.node_id, "revoked")
    assert syncer.sync_once(node, transport=hub, retries=0).ok
    page = login(page_app.test_client(), "specialist").get("/sync?lang=en").get_data(as_text=True)
    assert 'id="relay-laptops"' in page and field.node_id in page and "revoked" in page
