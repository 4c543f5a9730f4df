"""End to end over real HTTP on 127.0.0.1: a hub process, commune nodes synced by `motcua node sync`.

Convergence of two communes and the hub (with a dossier submitted at the hub), a sync over a link that
drops every 2 seconds, revocation seen by both sides, and every kind of bad input of issue 3 refused with
a clear error while changing nothing. (Processes killed -9 mid-sync: test_sync_faults.py.)
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import requests
import zstandard

from node.sync import hlc, keys, protocol
from node.sync import log as synclog
from node.sync.encoding import decode
from node.sync.ids import new_id

from .conftest import (
    AGREES, PASSWORD, UNIT_A, UNIT_B, assert_pushed_exactly_once, hub_db, hub_digest_for, make_data, node_db,
    node_digest, node_id_of,
)
from .proxy import FlakyProxy


def own_changes(node_dir, node_id: str) -> list[dict]:
    """A node's own log as change dicts (read with sqlite3), in seq order."""
    rows = node_db(node_dir).rows("SELECT node_id, seq, hlc, entity, entity_id, op, payload, author, prev, hash, sig "
                                  "FROM change WHERE node_id = ? ORDER BY seq", node_id)
    names = (*synclog.SIGNED_FIELDS, "hash", "sig")
    changes = [dict(zip(names, row, strict=True)) for row in rows]
    for c in changes:
        c["payload"] = decode(c["payload"])
    return changes


def dossier_codes(node_dir, unit: str | None = None) -> set[str]:
    db = node_db(node_dir)
    rows = db.rows("SELECT code FROM dossier") if unit is None else db.rows(
        "SELECT code FROM dossier WHERE unit_code = ?", unit)
    return {c for (c,) in rows}


# ---------------------------------------------------------------- convergence

def test_two_communes_and_the_hub_converge(world):
    hub = world.hub()
    a, b = world.node("a", "a"), world.node("b", "b")
    made_a = make_data(a, 30, attach=1, size=40_000, seed=11)
    made_b = make_data(b, 30, attach=1, size=40_000, seed=12)
    a_id, b_id, hub_id = node_id_of(a), node_id_of(b), node_id_of(world.hub_dir)

    for node_dir in (a, b):
        out = world.sync(node_dir).stdout
        assert AGREES in out, out
    submitted = world.cli_hub("submit", "--unit", UNIT_A, "--procedure", "1.001193", "--applicant-name",
                              "Trịnh Thị Lụa", "--id-number", "019305004321", "--birth-date", "2005-06-01",
                              "--address", "Xóm Chợ, xã Tân Cương", "--phone", "0987654321").split()[-1]
    for node_dir in (a, b, a, b):
        out = world.sync(node_dir).stdout
        assert AGREES in out, out
    assert "pushed 0 changes, pulled 0" in out, out  # the last round moved nothing: converged

    hubdb, adb, bdb = hub_db(world.hub_dir), node_db(a), node_db(b)
    for replica in (hubdb, adb, bdb):
        assert replica.duplicates() == [], replica.db
    # The hub holds every change of both nodes, exactly as they made them.
    assert hubdb.hashes(a_id) == adb.hashes(a_id) and adb.top(a_id) == made_a["top"]
    assert hubdb.hashes(b_id) == bdb.hashes(b_id) and bdb.top(b_id) == made_b["top"]
    assert hubdb.value("SELECT count(*) FROM change") == hubdb.value("SELECT count(*) FROM change_scope")
    # Each node holds exactly its scope of what others made; digests agree on both sides.
    for node_dir, unit, me, other in ((a, UNIT_A, a_id, b_id), (b, UNIT_B, b_id, a_id)):
        scoped = {h for (h,) in hubdb.rows(
            "SELECT c.hash FROM change c JOIN change_scope s ON s.change_id = c.id "
            "WHERE s.scope IN (?, '*') AND c.node_id != ?", unit, me)}
        held = {h for (n, _s), h in node_db(node_dir).hashes().items() if n != me}
        assert held == scoped
        assert node_db(node_dir).count(other) == 0  # nothing of the other commune reached this node
        assert node_digest(node_dir) == hub_digest_for(world.hub_dir, [unit])
        assert node_db(node_dir).setting("sync.acked_seq") == str(node_db(node_dir).top(me))
    # Dossiers: the hub's submission reached commune A only; neither commune sees the other's dossiers.
    assert submitted in dossier_codes(a) and submitted not in dossier_codes(b)
    assert dossier_codes(a, UNIT_B) == set() and dossier_codes(b, UNIT_A) == set()
    assert set(made_a["codes"]) <= dossier_codes(a) and set(made_b["codes"]) <= dossier_codes(b)
    hub_codes = {c for (c,) in hubdb.rows("SELECT code FROM dossier")}
    assert set(made_a["codes"]) | set(made_b["codes"]) | {submitted} <= hub_codes
    assert hubdb.value("SELECT count(*) FROM change WHERE node_id = ? AND entity = 'dossier' AND op = 'create'",
                       hub_id) == 1
    # Scans went up to the hub, and never to the other commune.
    for made, other_dir in ((made_a, b), (made_b, a)):
        sha = made["shas"][0]
        stored = world.hub_dir / "files" / sha[:2] / sha[2:]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
        assert not (other_dir / "files" / sha[:2] / sha[2:]).exists()
    status = world.cli("node", "status", "--data", str(a))
    assert "changes waiting: 0" in status and a_id in status, status
    assert "online" in status, status
    assert hub.errors_logged() == []


# ---------------------------------------------------------------- a link that drops every 2 seconds

def test_sync_completes_over_a_link_cut_every_two_seconds(world, seed):
    """Scans and thousands of changes over a throttled link that drops every connection every 2 s: a few
    `motcua node sync` runs complete it, and nothing but the requests in flight at a cut is sent twice."""
    note = f"seed {seed}"
    rate = 300_000  # bytes per second each way: the sync takes several seconds, so the link drops mid-way
    # The same data synced over a clean link (through the proxy only to count its bytes).
    direct_hub = world.hub("hub-direct")
    direct = world.node("big", "direct")
    make_data(direct, 10, attach=2, seed=seed)
    with FlakyProxy(direct_hub.port, rate_bps=rate) as clean:
        out = world.sync(direct, hub_url=f"http://127.0.0.1:{clean.port}").stdout
    assert AGREES in out, out
    direct_hub.stop()

    hub = world.hub()
    node = world.node("big", "flaky")
    make_data(node, 10, attach=2, seed=seed)
    runs, outputs = 0, []
    started = time.monotonic()
    with FlakyProxy(hub.port, cut_every=2.0, rate_bps=rate) as proxy:
        for runs in range(1, 16):  # noqa: B007 (the count is reported)
            done = world.sync(node, hub_url=f"http://127.0.0.1:{proxy.port}", check=False, timeout=150)
            outputs.append((done.stdout + done.stderr).strip())
            if done.returncode == 0 or time.monotonic() - started > 150:
                break
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"{note}: no sync completed in {runs} runs: {outputs}"
    assert AGREES in done.stdout, outputs
    assert proxy.cuts >= 2, f"{note}: the link was cut only {proxy.cuts} times in {elapsed:.1f} s; {outputs}"
    assert_pushed_exactly_once(world, node, note)
    # Nothing sent twice but what was in flight at each cut: at most one push batch or one 256 KiB chunk.
    in_flight = 300_000
    margin = proxy.cuts * in_flight + runs * 20_000
    print(f"{note}: {runs} sync runs, {proxy.cuts} cuts, {elapsed:.1f} s; bytes up {proxy.bytes_up} over the "
          f"cut link vs {clean.bytes_up} direct (+{proxy.bytes_up - clean.bytes_up}); down {proxy.bytes_down} "
          f"vs {clean.bytes_down}")
    assert clean.bytes_up * 0.9 <= proxy.bytes_up <= clean.bytes_up + margin, (
        f"{note}: {proxy.bytes_up} bytes up over the cut link, {clean.bytes_up} direct, {proxy.cuts} cuts")
    assert world.sync(node).stdout.startswith("pushed 0 changes, pulled 0"), note
    assert hub.errors_logged() == [], note


# ---------------------------------------------------------------- enrollment over a bad link

def test_enrollment_whose_answer_was_lost_can_be_retried_with_the_same_token(world):
    """The hub registered the node but the answer never arrived (the link dropped): running the same
    `motcua node enroll` again must finish the enrollment, not refuse the spent token for ever."""
    hub = world.hub()
    node = world.node("a", "a", enroll=False)
    identity = json.loads((node / "node.json").read_text(encoding="utf-8"))
    token = world.token(UNIT_A)
    body = {"token": token, "node_id": identity["node_id"], "public_key": identity["public_key"],
            "unit_code": identity["unit_code"], "unit_name": identity["unit_name"], "software_version": "e2e"}
    assert requests.post(f"{hub.url}/api/v1/enroll", json=body, timeout=30).status_code == 200  # answer "lost"
    done = world.cli("node", "enroll", "--data", str(node), "--hub", hub.url, "--token", token)
    assert "enrolled" in done
    assert AGREES in world.sync(node).stdout
    # The spent token still refuses any other node or key.
    other = dict(body, node_id="NOTHER0000001", public_key=keys.NodeKey.generate().public_b64)
    error(requests.post(f"{hub.url}/api/v1/enroll", json=other, timeout=30), 403, "token_used")
    stolen = dict(body, public_key=keys.NodeKey.generate().public_b64)
    error(requests.post(f"{hub.url}/api/v1/enroll", json=stolen, timeout=30), 403, "token_used")


# ---------------------------------------------------------------- revocation

def test_revoked_node_is_refused_and_the_other_node_learns_it(world):
    hub = world.hub()
    a, b = world.node("a", "a"), world.node("b", "b")
    a_id = node_id_of(a)
    for node_dir in (a, b):
        world.sync(node_dir)
    make_data(a, 3, seed=21)
    out = world.cli_hub("revoke", a_id)
    assert "revoked" in out

    refused = world.sync(a, check=False)
    assert refused.returncode != 0, refused.stdout
    assert "revoked" in refused.stderr or "thu hồi" in refused.stderr, refused.stderr
    assert "node_revoked" in refused.stderr
    assert node_db(a).setting("sync.last_result") == "node_revoked"
    assert hub_db(world.hub_dir).count(a_id) < node_db(a).top(a_id)  # the 15 new changes were not taken

    world.sync(b)
    status = node_db(b).value("SELECT status FROM node_record WHERE node_id = ?", a_id)
    assert status == "revoked"
    assert "revoked" in world.hub_nodes()
    assert hub.errors_logged() == []


# ---------------------------------------------------------------- bad input over real HTTP

class Signed:
    """Signed requests to the live hub as a node would build them (node.sync.protocol)."""

    def __init__(self, url: str, node_id: str, key: keys.NodeKey):
        self.url, self.node_id, self.key = url, node_id, key
        self.http = requests.Session()

    def call(self, method: str, path: str, body: bytes = b"", *, node_id: str | None = None,
             key: keys.NodeKey | None = None, ctype: str = protocol.MEDIA_TYPE) -> requests.Response:
        node_id = node_id or self.node_id
        now = hlc.wall_ms()
        message = protocol.request_message(method, path.split("?")[0], now, node_id, body)
        headers = {"X-Motcua-Node": node_id, "X-Motcua-Time": str(now),
                   "X-Motcua-Signature": (key or self.key).sign(message), "X-Motcua-Version": "e2e",
                   "X-Motcua-Protocol": str(protocol.PROTOCOL_VERSION), "Content-Type": ctype}
        return self.http.request(method, self.url + path, data=body, headers=headers, timeout=60)

    def push(self, changes: list[dict], *, as_node: str | None = None, **kw) -> requests.Response:
        body = protocol.encode_body({"node_id": as_node or self.node_id, "changes": changes})
        return self.call("POST", "/api/v1/sync/push", body, **kw)

    def pull(self, cursor: str | None, *, as_node: str | None = None, **kw) -> requests.Response:
        body = protocol.encode_body({"node_id": as_node or self.node_id, "cursor": cursor, "limit": 1000})
        return self.call("POST", "/api/v1/sync/pull", body, **kw)

    def pull_all(self) -> list[dict]:
        cursor, changes = None, []
        for _ in range(100):
            resp = self.pull(cursor)
            assert resp.status_code == 200, resp.text[:300]
            page = protocol.decode_body(resp.content)
            changes += page["changes"]
            cursor = page["cursor"]
            if not page["more"]:
                return changes
        pytest.fail("pull never ended")


def error(resp: requests.Response, status: int, code: str | tuple[str, ...]) -> str:
    """Assert a clear JSON error answer; returns its message."""
    assert resp.status_code == status, (resp.status_code, resp.text[:400])
    body = resp.json()["error"]
    codes = (code,) if isinstance(code, str) else code
    assert body["code"] in codes, body
    assert len(body["message"]) > 15, body
    return body["message"]


def resign(change: dict, key: keys.NodeKey) -> dict:
    change = dict(change)
    change["hash"] = synclog.change_hash(change)
    change["sig"] = key.sign(bytes.fromhex(change["hash"]))
    return change


def test_bad_input_is_refused_over_http_and_changes_nothing(world):
    hub = world.hub()
    a, b, c = world.node("a", "a"), world.node("b", "b"), world.node("a2", "c")
    for node_dir in (a, b, c):
        world.sync(node_dir)
    make_data(a, 4, seed=31)  # 20 changes the hub has not seen yet
    make_data(b, 1, attach=1, size=30_000, seed=32)
    world.sync(b)
    a_id, b_id, c_id = node_id_of(a), node_id_of(b), node_id_of(c)
    key_a = keys.NodeKey.load(a / "node_key.pem")
    api = Signed(hub.url, a_id, key_a)
    hubdb = hub_db(world.hub_dir)
    acked = hubdb.top(a_id)
    log_a = own_changes(a, a_id)
    fresh = [ch for ch in log_a if ch["seq"] > acked]
    assert len(fresh) == 20

    def unchanged() -> None:
        assert hubdb.count() == before, "the hub's change log changed"
        assert hubdb.top(a_id) == acked

    before = hubdb.count()
    # A tampered change (payload edited after signing): its hash no longer matches.
    tampered = [dict(ch) for ch in fresh[:5]]
    tampered[2]["payload"] = dict(tampered[2]["payload"], note="sửa trái phép")
    error(api.push(tampered), 400, "hash_mismatch")
    unchanged()
    # Re-hashed but not re-signed: the next change's link breaks; the last one's signature fails.
    tampered[2]["hash"] = synclog.change_hash(tampered[2])
    error(api.push(tampered), 409, "chain_broken")
    tampered = [dict(ch) for ch in fresh[:5]]
    tampered[-1] = dict(tampered[-1], payload=dict(tampered[-1]["payload"], note="sửa trái phép"))
    tampered[-1]["hash"] = synclog.change_hash(tampered[-1])
    error(api.push(tampered), 403, "signature_invalid")
    unchanged()
    # Changes signed by a key that is not the node's (the request itself signed properly).
    stranger = keys.NodeKey.generate()
    forged = [resign(ch, stranger) for ch in fresh[:3]]
    error(api.push(forged), 403, "signature_invalid")
    unchanged()
    # A request signed by an unknown node, and by a known node id with the wrong key.
    msg = error(api.push(fresh[:3], as_node="NUNKNOWN00001", node_id="NUNKNOWN00001", key=stranger),
                403, "unknown_node")
    assert "not enrolled" in msg
    error(api.push(fresh[:3], key=stranger), 403, "bad_signature")
    unchanged()
    # A gap in seq.
    error(api.push(fresh[:2] + fresh[3:6]), 409, "sequence_gap")
    error(api.push(fresh[1:4]), 409, "sequence_gap")
    unchanged()
    # A truncated body, a garbled body, one over the size limit and one that inflates past it.
    good = protocol.encode_body({"node_id": a_id, "changes": fresh})
    error(api.call("POST", "/api/v1/sync/push", good[:-7]), 400, "bad_body")
    garbled = bytearray(good)
    for i in range(20, len(garbled) - 20, 97):
        garbled[i] ^= 0x5A
    error(api.call("POST", "/api/v1/sync/push", bytes(garbled)), 400, "bad_body")
    error(api.call("POST", "/api/v1/sync/push", b"\x00" * (protocol.MAX_BODY + 1)), 413, "body_too_large")
    bomb = zstandard.ZstdCompressor(level=19).compress(b"[" + b" " * (protocol.MAX_INFLATED + 10) + b"]")
    assert len(bomb) < protocol.MAX_BODY
    error(api.call("POST", "/api/v1/sync/push", bomb), 413, "body_too_large")
    unchanged()

    # Replaying a batch the hub already holds is a harmless no-op.
    resp = api.push(log_a[:50])
    assert resp.status_code == 200, resp.text[:300]
    answer = protocol.decode_body(resp.content)
    assert answer["acked_seq"] == acked and answer["stored"] == 0
    unchanged()

    # Pulls: a forged cursor, another node's cursor, another commune's scope, another commune's file.
    error(api.pull("999999.0123456789abcdef0123456789abcdef"), 400, "bad_cursor")
    first = protocol.decode_body(Signed(hub.url, b_id, keys.NodeKey.load(b / "node_key.pem")).pull(None).content)
    error(api.pull(first["cursor"]), 400, "bad_cursor")
    error(api.pull(None, as_node=b_id), 403, "node_mismatch")
    error(api.pull(None, node_id=b_id), 403, "bad_signature")
    pulled = api.pull_all()
    assert pulled and all(ch["node_id"] != b_id for ch in pulled)
    assert not any((ch["payload"].get("fields") or {}).get("unit_code") == UNIT_B for ch in pulled
                   if ch["entity"] == "dossier")
    b_sha = node_db(b).value("SELECT sha256 FROM attachment")
    resp = api.call("GET", f"/api/v1/files/{b_sha}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    unchanged()

    # A revoked key.
    world.cli_hub("revoke", c_id)
    before = hubdb.count()  # the revocation is one hub change
    api_c = Signed(hub.url, c_id, keys.NodeKey.load(c / "node_key.pem"))
    msg = error(api_c.call("POST", "/api/v1/sync/status", protocol.encode_body({"node_id": c_id})), 403,
                "node_revoked")
    assert "revoked" in msg
    writer_c = own_changes(c, c_id)[-1]
    nxt = resign({**writer_c, "seq": writer_c["seq"] + 1, "prev": writer_c["hash"], "hlc": str(hlc.Clock().now()),
                  "entity_id": new_id(), "payload": {"fields": {"note": "x"}}}, api_c.key)
    error(api_c.push([nxt]), 403, "node_revoked")
    unchanged()

    # The good batch still goes in (everything above really changed nothing).
    resp = api.push(fresh)
    assert resp.status_code == 200, resp.text[:300]
    acked = protocol.decode_body(resp.content)["acked_seq"]
    assert acked == fresh[-1]["seq"]
    before = hubdb.count()

    # A fork: another change at an acknowledged seq, validly signed: refused, node quarantined, both kept.
    original = fresh[-1]
    other = resign({**original, "payload": {**original["payload"], "note": "phiên bản khác"}}, key_a)
    msg = error(api.push([other]), 409, "fork")
    assert "quarantined" in msg
    assert hubdb.top(a_id) == acked and hubdb.hashes(a_id)[(a_id, acked)] == original["hash"]
    held, incoming = hubdb.rows("SELECT held, incoming FROM fork_record WHERE node_id = ?", a_id)[0]
    assert decode(held)["hash"] == original["hash"] and decode(incoming)["hash"] == other["hash"]
    assert hubdb.count() == before + 1  # the hub's own change quarantining the node, nothing of a
    nodes = world.hub_nodes()
    line = next(row for row in nodes.splitlines() if a_id in row)
    assert "quarantined" in line, nodes
    error(api.push(fresh[-1:]), 403, "node_quarantined")
    make_data(a, 1, seed=33)  # a quarantined node may still pull, but not push
    refused = world.sync(a, check=False)
    assert refused.returncode != 0 and "quarantined" in refused.stderr, refused.stderr
    assert hub.errors_logged() == []
    assert PASSWORD not in (world.hub_dir / "hub.json").read_text()
