"""node/relay.py's `concerns()` decides on a node what the hub's central/scoping.py decides on the hub:
which unit a change concerns. The two must agree, or a change a commune node relays would be scoped
elsewhere at the hub (and the digests of the two would differ). Where the node cannot tell (a dossier it
does not hold) it says "" and the relay refuses, instead of guessing the origin's unit as the hub does."""

from __future__ import annotations

from central.scoping import scopes_for
from central.storage.testing import NodeWriter
from node import relay, store
from node.sync import ingest, keys
from node.sync.ids import new_id
from tests.conftest import UNIT_CODE

OTHER = "000.00.19.H56"


def test_the_node_and_the_hub_scope_alike(node):
    hub = NodeWriter("hub", "HSCOPEHUB0001", keys.NodeKey.generate())
    laptop = NodeWriter(UNIT_CODE)
    registry = [hub.change("node", laptop.node_id, "put", {"fields": {
        "node_id": laptop.node_id, "public_key": laptop.key.public_b64, "kind": "laptop", "unit_code": UNIT_CODE,
        "scope": f"{UNIT_CODE},{OTHER}", "status": "active"}})]
    held = laptop.dossier(UNIT_CODE)  # a dossier this node holds already
    with store.transaction(node):
        ingest.ingest(registry, key_for=lambda _: (hub.key.public_b64, "active"), apply=store.apply_change,
                      sign_check="each", gaps_allowed=True)
        ingest.ingest(held, key_for=lambda _: (laptop.key.public_b64, "active"), apply=store.apply_change,
                      sign_check="each", gaps_allowed=True)
    batch = laptop.dossier(UNIT_CODE) + laptop.dossier(OTHER) + [
        laptop.change("dossier", held[0]["entity_id"], "update", {"set": {"applicant_phone": "0912345678"}}),
        laptop.change("document", held[1]["entity_id"], "update", {"set": {"name": "Tờ khai (bản chính)"}}),
        laptop.change("attachment", new_id(), "create", {"fields": {"dossier_id": held[0]["entity_id"],
                                                                    "sha256": "0" * 64}}),
        laptop.change("user", new_id(), "create", {"fields": {"username": "tiepnhan9", "unit_code": UNIT_CODE}}),
        laptop.change("procedure", "9.9@1", "put", {"fields": {"code": "9.9", "version": 1}}),
        hub.change("procedure", "9.8@1", "put", {"fields": {"code": "9.8", "version": 1}}),
        hub.change("calendar_day", "2026-09-02", "put", {"fields": {"kind": "day_off"}}),
    ]
    on_node = relay.concerns(batch, hub_node_id=hub.node_id)
    assert on_node == scopes_for(batch, hub.node_id)
    assert on_node[:6] == [UNIT_CODE] * 3 + [OTHER] * 3 and on_node[-2:] == ["*", "*"]

    unknown = [laptop.change("dossier", "DNOWHERE", "update", {"set": {"applicant_phone": "09"}})]
    assert relay.concerns(unknown, hub_node_id=hub.node_id) == [""]
    assert scopes_for(unknown, hub.node_id) == [UNIT_CODE]  # the hub falls back to the origin's unit
