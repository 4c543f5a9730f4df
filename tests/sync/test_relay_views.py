"""The commune node's LAN relay (/relay/v1) with the Flask test client: a field laptop (an in-memory log
signing like a real node) pushes, pulls and asks its status; every refusal is a clear 4xx and stores
nothing. The key registry is given to the node as hub-signed changes, the way a pull brings it."""

from __future__ import annotations

import json

import pytest

from central.storage.testing import NodeWriter
from node import store
from node.models import NodeSetting
from node.sync import hlc, ingest, keys, log, protocol
from node.sync.log import Change
from node.sync.state import Dossier
from tests.conftest import UNIT_CODE

OTHER = "000.00.19.H56"
HUB_ID = "HRELAYHUB0001"
RELAY = protocol.RELAY_API


class Hub:
    """The district hub as far as the node knows it: its pinned key and the registry changes it signs."""

    def __init__(self):
        self.key = keys.NodeKey.generate()
        self.writer = NodeWriter("hub", HUB_ID, self.key)

    def pin(self, node) -> None:
        (node.path / "hub.json").write_text(json.dumps({
            "url": "http://hub.test:9000", "hub_node_id": HUB_ID, "hub_public_key": self.key.public_b64,
            "record": {}, "record_sig": ""}), encoding="utf-8")

    def register(self, node, writer: NodeWriter, *, kind: str = "laptop", scope: str = UNIT_CODE,
                 status: str = "active") -> None:
        """Give `node` the registry record of `writer`, hub-signed, through the pull path."""
        change = self.writer.change("node", writer.node_id, "put", {"fields": {
            "node_id": writer.node_id, "public_key": writer.key.public_b64, "kind": kind,
            "unit_code": writer.unit_code, "scope": scope, "status": status, "enrolled_at": "2026-03-02 09:00:00"}})
        with store.transaction(node):
            ingest.ingest([change], key_for=lambda _: (self.key.public_b64, "active"), apply=store.apply_change,
                          sign_check="each", gaps_allowed=True)


class Laptop:
    """A field laptop's signed requests to the relay (as node.sync.client.HubClient makes them)."""

    def __init__(self, client, writer: NodeWriter):
        self.client, self.writer = client, writer

    def call(self, path: str, body: dict, *, time_ms: int | None = None, key: keys.NodeKey | None = None):
        raw = protocol.encode_body(body)
        when = hlc.wall_ms() if time_ms is None else time_ms
        message = protocol.request_message("POST", RELAY + path, when, self.writer.node_id, raw)
        headers = {"X-Motcua-Node": self.writer.node_id, "X-Motcua-Time": str(when),
                   "X-Motcua-Signature": (key or self.writer.key).sign(message),
                   "X-Motcua-Protocol": str(protocol.PROTOCOL_VERSION), "Content-Type": protocol.MEDIA_TYPE}
        return self.client.post(RELAY + path, data=raw, headers=headers)

    def push(self, changes, **kw):
        return self.call("/sync/push", {"node_id": self.writer.node_id, "changes": changes}, **kw)

    def pull(self, cursor=None, limit=None):
        return self.call("/sync/pull", {"node_id": self.writer.node_id, "cursor": cursor, "limit": limit})

    def status(self, nonce="n" * 32):
        return self.call("/sync/status", {"node_id": self.writer.node_id, "nonce": nonce})


def unpack(resp) -> dict:
    assert resp.status_code == 200 and resp.mimetype == protocol.MEDIA_TYPE, (resp.status_code, resp.data[:300])
    return protocol.decode_body(resp.data)


def error_of(resp) -> dict:
    assert resp.mimetype == "application/json", (resp.status_code, resp.data[:300])
    return resp.get_json()["error"]


@pytest.fixture
def hub():
    return Hub()


@pytest.fixture
def commune(app, hub):
    """The commune node behind `app`: enrolled (pinned hub) and knowing the hub's own record."""
    node = app.extensions["motcua_node"]
    hub.pin(node)
    hub.register(node, NodeWriter("hub", HUB_ID, hub.key), kind="hub", scope="*")
    hub.register(node, NodeWriter(UNIT_CODE, node.node_id, node.key), kind="commune")
    return node


@pytest.fixture
def laptop(client, commune, hub) -> Laptop:
    writer = NodeWriter(UNIT_CODE)
    hub.register(commune, writer, scope=f"{UNIT_CODE},{OTHER}")
    return Laptop(client, writer)


def count() -> int:
    return Change.select().count()


def test_time_names_the_commune_node_and_its_hub(client, commune, hub):
    body = client.get(f"{RELAY}/time").get_json()
    assert body["relay"] is True and body["relay_node_id"] == commune.node_id
    assert body["hub_node_id"] == HUB_ID and body["hub_public_key"] == hub.key.public_b64
    assert body["unit_code"] == UNIT_CODE and abs(body["hub_time_ms"] - hlc.wall_ms()) < 5000


def test_push_stores_and_applies_the_laptops_changes_as_signed(laptop, commune):
    batch, before = laptop.writer.dossier(UNIT_CODE), count()
    answer = unpack(laptop.push(batch))
    assert (answer["acked_seq"], answer["stored"], answer["skipped"]) == (3, 3, 0)
    rows = list(Change.select().where(Change.node_id == laptop.writer.node_id).order_by(Change.seq))
    assert [(r.hash, r.sig) for r in rows] == [(c["hash"], c["sig"]) for c in batch]
    assert log.verify_log(laptop.writer.node_id, laptop.writer.key.public_b64) == 3
    assert Dossier.get_by_id(batch[0]["entity_id"]).unit_code == UNIT_CODE
    origins = json.loads(NodeSetting.get_by_id("sync.lan_origins").value)
    assert origins == [laptop.writer.node_id], "the next sync relays them to the hub"
    again = unpack(laptop.push(batch))
    assert (again["acked_seq"], again["stored"], again["skipped"]) == (3, 0, 3)
    assert count() == before + 3, "nothing twice"


def test_push_may_start_after_a_gap_the_hub_holds(laptop):
    laptop.writer.dossier(UNIT_CODE)  # seq 1-3: the laptop sent those to the hub itself
    answer = unpack(laptop.push(laptop.writer.dossier(UNIT_CODE)))
    assert (answer["acked_seq"], answer["stored"]) == (6, 3)


def test_pull_serves_what_the_commune_holds_but_the_laptops_own(laptop, commune, officers):
    from node import workflow
    from tests.conftest import reception_body

    unpack(laptop.push(laptop.writer.dossier(UNIT_CODE)))
    dossier, _ = workflow.receive_dossier(commune, officers["reception"], reception_body())
    changes, cursor, pages = [], None, 0
    while True:
        page = unpack(laptop.pull(cursor, limit=25))
        changes += page["changes"]
        cursor, pages = page["cursor"], pages + 1
        if not page["more"]:
            break
    assert pages > 1 and len(changes) == count() - 3
    assert laptop.writer.node_id not in {c["node_id"] for c in changes}
    assert any(c["entity_id"] == dossier.id for c in changes)
    held = {r.hash: r.sig for r in Change.select()}
    assert all(held[c["hash"]] == c["sig"] for c in changes), "each change as it was signed"
    assert unpack(laptop.pull(cursor))["changes"] == []
    forged = laptop.pull(cursor.split(".")[0] + ".deadbeef")
    assert forged.status_code == 400 and error_of(forged)["code"] == "bad_cursor"


def test_status_proves_the_commune_nodes_key(laptop, commune):
    unpack(laptop.push(laptop.writer.dossier(UNIT_CODE)))
    nonce = "abc" * 10
    answer = unpack(laptop.status(nonce))
    assert answer["acked_seq"] == 3 and answer["relay_node_id"] == commune.node_id
    keys.verify(commune.identity.public_key, protocol.relay_proof_message(nonce, commune.node_id,
                                                                          laptop.writer.node_id), answer["proof"])
    assert laptop.status("short").status_code == 400


@pytest.mark.parametrize("case,status,code", [
    ("unknown_key", 403, "unknown_node"),
    ("bad_signature", 403, "bad_signature"),
    ("scope_lacks_commune", 403, "out_of_scope"),
    ("commune_node", 403, "not_a_laptop"),
    ("revoked", 403, "node_revoked"),
    ("quarantined", 403, "node_quarantined"),
    ("tampered", 400, "hash_mismatch"),
    ("forged_signature", 403, "signature_invalid"),
    ("another_units_dossier", 403, "out_of_scope"),
    ("unknown_dossier", 403, "out_of_scope"),
    ("another_nodes_change", 403, "relay_not_allowed"),
    ("registry_write", 403, "registry_write_refused"),
    ("gap_in_batch", 409, "sequence_gap"),
    ("broken_chain", 409, "chain_broken"),
    ("as_another_node", 403, "node_mismatch"),
    ("clock", 403, "clock_outside_window"),
    ("garbage", 400, "bad_body"),
])
def test_refusals_are_clear_and_store_nothing(client, commune, hub, case, status, code):
    writer = NodeWriter(UNIT_CODE)
    if case != "unknown_key":
        kind = "commune" if case == "commune_node" else "laptop"
        scope = OTHER if case == "scope_lacks_commune" else UNIT_CODE
        state = case if case in ("revoked", "quarantined") else "active"
        hub.register(commune, writer, kind=kind, scope=scope, status=state)
    laptop = Laptop(client, writer)
    batch = writer.dossier(UNIT_CODE)
    before = count()
    if case == "bad_signature":
        resp = laptop.push(batch, key=keys.NodeKey.generate())
    elif case == "tampered":
        batch[0]["payload"]["fields"]["applicant_name"] = "Kẻ Giả"
        resp = laptop.push(batch)
    elif case == "forged_signature":
        batch[2]["sig"] = keys.NodeKey.generate().sign(bytes.fromhex(batch[2]["hash"]))
        resp = laptop.push(batch)
    elif case == "another_units_dossier":
        resp = laptop.push(batch + writer.dossier(OTHER))
    elif case == "unknown_dossier":
        resp = laptop.push(batch + [writer.change("dossier", "DNOWHERE", "update", {"set": {"applicant_phone": "09"}})])
    elif case == "another_nodes_change":
        resp = laptop.push(NodeWriter(UNIT_CODE).dossier())
    elif case == "registry_write":
        resp = laptop.push([writer.change("node", "X", "put", {"fields": {"scope": "*"}})])
    elif case == "gap_in_batch":
        resp = laptop.push(batch[:1] + batch[2:])
    elif case == "broken_chain":
        batch[1]["prev"] = "ab" * 32
        batch[1]["hash"] = log.change_hash(batch[1])
        batch[1]["sig"] = writer.key.sign(bytes.fromhex(batch[1]["hash"]))
        resp = laptop.push(batch)
    elif case == "as_another_node":
        resp = laptop.call("/sync/push", {"node_id": commune.node_id, "changes": batch})
    elif case == "clock":
        resp = laptop.push(batch, time_ms=hlc.wall_ms() - protocol.REQUEST_WINDOW_MS - 60_000)
    elif case == "garbage":
        raw = b"not zstd"
        message = protocol.request_message("POST", RELAY + "/sync/push", hlc.wall_ms(), writer.node_id, raw)
        resp = client.post(RELAY + "/sync/push", data=raw, headers={
            "X-Motcua-Node": writer.node_id, "X-Motcua-Time": str(hlc.wall_ms()),
            "X-Motcua-Signature": writer.key.sign(message), "X-Motcua-Protocol": "1"})
    else:
        resp = laptop.push(batch)
    assert resp.status_code == status, resp.data[:300]
    err = error_of(resp)
    assert err["code"] == code and err["message"]
    assert count() == before and Dossier.select().count() == 0


def test_a_node_not_enrolled_does_not_relay(client, app):
    resp = client.get(f"{RELAY}/time")
    assert resp.status_code == 409 and error_of(resp)["code"] == "relay_unavailable"


def test_the_relay_can_be_turned_off(client, laptop, monkeypatch):
    monkeypatch.setenv("MOTCUA_LAN_RELAY", "0")
    resp = laptop.push(laptop.writer.dossier(UNIT_CODE))
    assert resp.status_code == 404 and error_of(resp)["code"] == "relay_disabled"


def test_no_csrf_token_needed_but_the_ui_still_checks_it(node_dir, clock, laptop):
    from node.web import create_app

    # A second app on the same folder, with CSRF on as in production (the fixture's app turns it off).
    strict = create_app({"DATA_DIR": str(node_dir), "TESTING": True, "NOW": clock, "SYNC_BACKGROUND": False})
    try:
        other = Laptop(strict.test_client(), laptop.writer)
        assert unpack(other.push(laptop.writer.dossier(UNIT_CODE)))["stored"] == 3
        assert strict.test_client().post("/login", data={"username": "x", "password": "y"}).status_code == 400
    finally:
        strict.extensions["motcua_node"].close()
