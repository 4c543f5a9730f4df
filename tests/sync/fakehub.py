"""A fake hub in memory: a `Transport` that answers the sync protocol from Python lists.

A second SQLite file cannot be used in the same process (the models share one DatabaseProxy), so the hub's
log, scopes, cursors and files are plain Python here. It checks what a real hub checks on the node's side
of the wire: request signatures and time window, seq contiguity, forks, file hashes. Simplification: a
node's changes are scoped to its own unit; the hub's changes carry the scope they are made with.

    hub = FakeHub()
    token = hub.token("000.00.19.H55")
    other = hub.add_node("000.00.19.H55")          # another replica of the same commune
    other.write("dossier", "D1", "create", {...})   # signed by it, held by the hub
    hub.fail_at("POST", "/sync/push", 2)            # the 2nd push gets no answer (a cut link)
    laptop = hub.add_node("000.00.19.H55", kind="laptop", scope="000.00.19.H55,000.00.19.H56")
    laptop.offline("dossier", "D2", "create", {...})  # signed, NOT on the hub: it travels by a relay

Relays: a push may carry changes of other nodes when each origin is enrolled, active and its scope includes
the pusher's unit (the hub's rule, simplified: stored with the pusher's unit as scope); the answer's
"origins" and /sync/status's "origins" give the highest seq held of each.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from node.sync import encoding, hlc, keys, log, protocol
from node.sync.client import API, HubUnreachable, Reply, Transport

SECRET = b"fake-hub-secret"


class FakeNode:
    """Another replica enrolled at the hub; its changes are signed with its own key and pushed directly."""

    def __init__(self, hub: FakeHub, node_id: str, unit_code: str):
        self.hub, self.node_id, self.unit_code = hub, node_id, unit_code
        self.key = keys.NodeKey.generate()
        self.clock = hlc.Clock()
        self.local: tuple[int, str] | None = None  # its own log's top when it wrote offline

    def offline(self, entity: str, entity_id: str, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A change made away from the hub (not stored there), continuing this node's own log."""
        top = self.local or self.hub.top(self.node_id)
        change = sign_change(self.key, self.node_id, top, self.clock, entity, entity_id, op, payload)
        self.local = (change["seq"], change["hash"])
        return change

    def write(self, entity: str, entity_id: str, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        change = sign_change(self.key, self.node_id, self.hub.top(self.node_id), self.clock, entity, entity_id,
                             op, payload)
        self.hub.store(change, self.unit_code)
        return change


def sign_change(key, node_id, top, clock, entity, entity_id, op, payload) -> dict[str, Any]:
    seq, prev = top
    change = {"node_id": node_id, "seq": seq + 1, "hlc": str(clock.now()), "entity": entity,
              "entity_id": entity_id, "op": op, "payload": payload, "author": "", "prev": prev}
    change["hash"] = log.change_hash(change)
    change["sig"] = key.sign(bytes.fromhex(change["hash"]))
    return change


class FakeHub(Transport):
    def __init__(self, *, skew_ms: int = 0):
        self.key = keys.NodeKey.generate()
        self.node_id = "HFAKEHUB0001"
        self.skew_ms = skew_ms
        self.clock = hlc.Clock(self.now_ms)
        self.records: dict[str, dict[str, Any]] = {}
        self.changes: list[tuple[dict[str, Any], str]] = []  # (change, scope); the cursor is an index here
        self.files: dict[str, bytearray] = {}
        self.tokens: dict[str, str] = {}
        self.token_kinds: dict[str, tuple[str, str | None]] = {}  # token -> (kind, scope) of the node it enrolls
        self.calls: list[tuple[str, str]] = []
        self.pushes: list[list[tuple[str, int]]] = []  # (node_id, seq) of each pushed batch
        self.puts: list[tuple[str, int]] = []
        self.reported: dict[str, dict[str, Any]] = {}  # node id -> what it last told /sync/status
        self.last_headers: dict[str, dict[str, str]] = {}  # node id -> headers of its last signed request
        self.digest_extra: list[str] = []  # hashes the hub claims beyond what it holds (an irreparable mismatch)
        self._faults: dict[tuple[str, str], int] = {}
        self._scripted: dict[tuple[str, str], list[Reply]] = {}
        self.hub_write("node", self.node_id, "put", {"fields": {"public_key": self.key.public_b64, "kind": "hub",
                                                               "unit_code": "hub", "status": "active"}}, "*")

    # ------------------------------------------------------------ test controls

    def now_ms(self) -> int:
        return hlc.wall_ms() + self.skew_ms

    def token(self, unit_code: str, *, kind: str = "commune", scope: str | None = None) -> str:
        token = f"tok-{len(self.tokens)}-{unit_code}"
        self.tokens[token] = unit_code
        self.token_kinds[token] = (kind, scope)
        return token

    def fail_at(self, method: str, path: str, nth: int = 1) -> None:
        """The `nth` next call of that endpoint gets no answer (HubUnreachable), once."""
        self._faults[(method, path)] = nth

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next calls of that endpoint with these replies, in order."""
        self._scripted.setdefault((method, path), []).extend(replies)

    def add_node(self, unit_code: str, node_id: str | None = None, *, kind: str = "commune",
                 scope: str | None = None) -> FakeNode:
        other = FakeNode(self, node_id or f"NOTHER{len(self.records):06d}", unit_code)
        self._enroll_record(other.node_id, other.key.public_b64, unit_code, kind=kind, scope=scope)
        return other

    def set_status(self, node_id: str, status: str) -> dict[str, Any]:
        """Revoke, quarantine or reactivate a node by a hub-signed registry change."""
        record = dict(self.records[node_id], status=status)
        return self.hub_write("node", node_id, "put", {"fields": record}, "*")

    def held_of(self, node_id: str) -> list[dict[str, Any]]:
        return [c for c, _ in self.changes if c["node_id"] == node_id]

    def top(self, node_id: str) -> tuple[int, str]:
        held = self.held_of(node_id)
        return (held[-1]["seq"], held[-1]["hash"]) if held else (0, log.GENESIS)

    def store(self, change: dict[str, Any], scope: str) -> None:
        self.changes.append((change, scope))

    def hub_write(self, entity, entity_id, op, payload, scope) -> dict[str, Any]:
        change = sign_change(self.key, self.node_id, self.top(self.node_id), self.clock, entity, entity_id, op,
                             payload)
        self.store(change, scope)
        if entity == "node":
            self.records[entity_id] = dict(payload["fields"], node_id=entity_id)
        return change

    def _enroll_record(self, node_id: str, public_key: str, unit_code: str, *, kind: str = "commune",
                       scope: str | None = None) -> dict[str, Any]:
        record = {"node_id": node_id, "public_key": public_key, "kind": kind, "unit_code": unit_code,
                  "unit_name": "", "scope": scope or unit_code, "status": "active",
                  "enrolled_at": "2026-03-02 09:00:00"}
        self.hub_write("node", node_id, "put", {"fields": record}, "*")
        return record

    # ------------------------------------------------------------ the wire

    def send(self, method, path, *, headers, body, timeout) -> Reply:
        route = path.split("?", 1)[0][len(API):]
        key = (method, "/files" if route.startswith("/files/") else route)
        self.calls.append(key)
        if key in self._faults:
            self._faults[key] -= 1
            if self._faults[key] == 0:
                del self._faults[key]
                raise HubUnreachable("fake link cut")
        if self._scripted.get(key):
            return self._scripted[key].pop(0)
        if route == "/time":
            return _json(200, {"hub_time_ms": self.now_ms(), "hub_node_id": self.node_id,
                               "hub_public_key": self.key.public_b64, "protocol": protocol.PROTOCOL_VERSION})
        if route == "/enroll":
            return self._enroll(orjson.loads(body))
        node_id = headers.get("X-Motcua-Node", "")
        record = self.records.get(node_id)
        if record is None:
            return _error(403, "unknown_node", f"node {node_id} is not enrolled")
        try:
            when = int(headers["X-Motcua-Time"])
            message = protocol.request_message(method, path.split("?", 1)[0], when, node_id, body)
            keys.verify(record["public_key"], message, headers["X-Motcua-Signature"])
        except Exception:
            return _error(403, "bad_signature", "the request signature does not verify")
        if abs(when - self.now_ms()) > protocol.REQUEST_WINDOW_MS:
            return _error(403, "clock_outside_window", "request time outside the window")
        if record["status"] == "revoked":
            return _error(403, "node_revoked", "this node is revoked")
        self.last_headers[node_id] = dict(headers)
        if route.startswith("/files/"):
            return self._file(method, route[len("/files/"):], path, body)
        request = protocol.decode_body(body)
        handler = {"/sync/push": self._push, "/sync/pull": self._pull, "/sync/status": self._status}[route]
        return handler(record, request)

    def _enroll(self, req: dict[str, Any]) -> Reply:
        unit = self.tokens.pop(req.get("token"), None)
        if unit is None or unit != req.get("unit_code"):
            return _error(403, "bad_token", "enrollment token unknown, used or for another unit")
        kind, scope = self.token_kinds.pop(req["token"], ("commune", None))
        record = self._enroll_record(req["node_id"], req["public_key"], unit, kind=kind, scope=scope)
        record = dict(record, hub_node_id=self.node_id)
        return _json(200, {"record": record, "record_sig": self.key.sign(encoding.canonical(record)),
                           "hub_node_id": self.node_id, "hub_public_key": self.key.public_b64})

    def _push(self, record, req) -> Reply:
        if record["status"] == "quarantined":
            return _error(403, "node_quarantined", "this node is quarantined")
        self.pushes.append([(c["node_id"], c["seq"]) for c in req["changes"]])
        tops: dict[str, tuple[int, str]] = {}
        fresh = []
        for change in req["changes"]:
            origin = self.records.get(change["node_id"])
            if change["node_id"] != record["node_id"]:
                if origin is None:
                    return _error(403, "unknown_node", f"relayed origin {change['node_id']} is not enrolled")
                if origin["status"] == "revoked":
                    return _error(403, "node_revoked", f"relayed origin {change['node_id']} is revoked")
                if origin["status"] == "quarantined":
                    return _error(403, "node_quarantined", f"relayed origin {change['node_id']} is quarantined")
                if record["unit_code"] not in origin["scope"].split(","):
                    return _error(403, "relay_not_allowed", f"{change['node_id']}'s scope lacks the relay's unit")
            if change["node_id"] not in tops:
                tops[change["node_id"]] = self.top(change["node_id"])
            seq, prev = tops[change["node_id"]]
            held = {c["seq"]: c["hash"] for c in self.held_of(change["node_id"])}
            if change["seq"] in held:
                if held[change["seq"]] != change["hash"]:
                    origin["status"] = "quarantined"
                    return _error(409, "fork", f"fork at seq {change['seq']}")
                continue
            if change["seq"] != seq + 1 or change["prev"] != prev:
                return _error(409, "sequence_gap", f"expected seq {seq + 1}")
            log.verify_change(change, origin["public_key"])
            fresh.append(change)
            tops[change["node_id"]] = (change["seq"], change["hash"])
        for change in fresh:
            self.store(change, record["unit_code"])
        origins = {o: self.top(o)[0] for o in tops if o != record["node_id"]}
        return _zstd({"acked_seq": self.top(record["node_id"])[0], "hub_time_ms": self.now_ms(),
                      "origins": origins})

    def _in_scope(self, record) -> list[tuple[int, dict[str, Any]]]:
        scope = set(record["scope"].split(",")) | {protocol.GLOBAL_SCOPE}
        return [(i, c) for i, (c, s) in enumerate(self.changes) if s in scope]

    def digest(self, record) -> dict[str, Any]:
        return protocol.digest_of([c["hash"] for _, c in self._in_scope(record)] + self.digest_extra)

    def _pull(self, record, req) -> Reply:
        pos = protocol.read_cursor(SECRET, record["node_id"], req.get("cursor"))
        limit = min(int(req.get("limit") or protocol.PULL_LIMIT), protocol.PULL_LIMIT)
        page, last = [], pos
        for i, change in self._in_scope(record):
            if i < pos or change["node_id"] == record["node_id"]:
                continue
            if len(page) == limit:
                break
            page.append(change)
            last = i + 1
        more = any(i >= last and c["node_id"] != record["node_id"] for i, c in self._in_scope(record))
        last = last if more else len(self.changes)
        answer = {"changes": page, "cursor": protocol.make_cursor(SECRET, record["node_id"], last), "more": more}
        if not more:
            answer["digest"] = self.digest(record)
        return _zstd(answer)

    def _status(self, record, req) -> Reply:
        self.reported[record["node_id"]] = req
        seq, last_hash = self.top(record["node_id"])
        answer = {"acked_seq": seq, "last_hash": last_hash if seq else None, "digest": self.digest(record),
                  "hub_time_ms": self.now_ms()}
        if "origins" in req:
            answer["origins"] = {o: self.top(o)[0] for o in req["origins"] if o in self.records}
        return _zstd(answer)

    def _file(self, method, sha, path, body) -> Reply:
        held = self.files.get(sha, bytearray())
        if method == "HEAD":
            return Reply(200, {"X-Motcua-Size": str(len(held))}, b"")
        if method == "GET":
            size = self._size_of(sha)
            return Reply(200, {"Content-Type": "application/octet-stream"}, bytes(held)) \
                if size is not None and len(held) == size else _error(404, "no_file", "file not on the hub")
        offset = int(path.split("offset=", 1)[1])
        self.puts.append((sha, offset))
        if offset > len(held):
            return _error(409, "offset_mismatch", f"hub holds {len(held)} bytes")
        held = self.files[sha] = held[:offset] + body
        size = self._size_of(sha)
        if size is not None and len(held) >= size and hashlib.sha256(held).hexdigest() != sha:
            del self.files[sha]
            return _error(422, "hash_mismatch", "the file does not hash to its name")
        return _json(200, {"size": len(held)})

    def _size_of(self, sha: str) -> int | None:
        for change, _ in self.changes:
            fields = change["payload"].get("fields", {})
            if change["entity"] == "attachment" and fields.get("sha256") == sha:
                return int(fields["size"])
        return None


def _json(status: int, obj: Any) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, orjson.dumps(obj))


def _zstd(obj: Any) -> Reply:
    return Reply(200, {"Content-Type": protocol.MEDIA_TYPE}, protocol.encode_body(obj))


def _error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"error": {"code": code, "message": message}})
