"""A commune node's LAN relay in memory: a `Transport` answering /relay/v1 for a laptop under test.

The real relay (node/relay.py) needs the commune node's database, and one process holds one node's
database (a single DatabaseProxy), so a laptop's side is tested against this stand-in; the real relay is
tested with its own Flask app (test_relay_views.py) and both together with real processes
(tests/e2e/test_relay.py). It checks request signatures against the FakeHub's registry, holds what the
laptop pushes, serves `served` on pull and proves its key with `proof_key` (another key: an impostor).

    relay = FakeRelay(hub, commune)          # commune: a FakeNode of kind commune enrolled at the FakeHub
    relay.served.append(commune.offline("dossier", "D1", "create", {...}))
"""

from __future__ import annotations

from typing import Any

from node.sync import hlc, keys, log, protocol
from node.sync.client import Reply, Transport

from .fakehub import SECRET, FakeHub, FakeNode, _error, _json, _zstd


class FakeRelay(Transport):
    def __init__(self, hub: FakeHub, commune: FakeNode):
        self.hub, self.commune = hub, commune
        self.proof_key = commune.key
        self.hub_public_key = hub.key.public_b64
        self.served: list[dict[str, Any]] = []  # what the commune node holds, in its arrival order
        self.held: dict[str, list[dict[str, Any]]] = {}  # laptop id -> its changes pushed here
        self.calls: list[str] = []

    def send(self, method, path, *, headers, body, timeout) -> Reply:
        route = path.split("?", 1)[0][len(protocol.RELAY_API):]
        self.calls.append(route)
        if route == "/time":
            return _json(200, {"hub_time_ms": hlc.wall_ms(), "hub_node_id": self.hub.node_id,
                               "hub_public_key": self.hub_public_key, "relay": True,
                               "relay_node_id": self.commune.node_id, "relay_public_key": self.commune.key.public_b64,
                               "unit_code": self.commune.unit_code, "protocol": protocol.PROTOCOL_VERSION})
        node_id = headers.get("X-Motcua-Node", "")
        record = self.hub.records.get(node_id)
        if record is None:
            return _error(403, "unknown_node", f"node {node_id} is not known here")
        message = protocol.request_message(method, path, int(headers["X-Motcua-Time"]), node_id, body)
        keys.verify(record["public_key"], message, headers["X-Motcua-Signature"])
        request = protocol.decode_body(body)
        mine = self.held.setdefault(node_id, [])
        if route == "/sync/status":
            top = mine[-1] if mine else None
            proof = self.proof_key.sign(protocol.relay_proof_message(request["nonce"], self.commune.node_id, node_id))
            return _zstd({"acked_seq": top["seq"] if top else 0, "last_hash": top["hash"] if top else log.GENESIS,
                          "relay_node_id": self.commune.node_id, "proof": proof})
        if route == "/sync/pull":
            pos = protocol.read_cursor(SECRET, node_id, request.get("cursor"))
            limit = int(request.get("limit") or protocol.PULL_LIMIT)
            page = [c for c in self.served[pos:pos + limit] if c["node_id"] != node_id]
            end = min(pos + limit, len(self.served))
            return _zstd({"changes": page, "cursor": protocol.make_cursor(SECRET, node_id, end),
                          "more": end < len(self.served)})
        for change in request["changes"]:
            log.verify_change(change, record["public_key"])
            if all(c["seq"] != change["seq"] for c in mine):
                mine.append(change)
        mine.sort(key=lambda c: c["seq"])
        return _zstd({"acked_seq": mine[-1]["seq"] if mine else 0, "stored": len(request["changes"])})
