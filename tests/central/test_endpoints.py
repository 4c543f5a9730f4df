"""The hub's API with the Flask test client: enrollment, push, pull, status, files, as a real node signs them."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import hashlib

import pytest
import zstandard
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    NodeSession, PreparedNode, api, enroll, enroll_body, error_of, hub, hub_app, hub_db_url, hub_dir, prepare_node,
    prepared, session, unpack,
)

from central.storage.testing import NodeWriter
from central.submit import submit_dossier
from central.tokens import create_token
from node.sync import encoding, hlc, keys, log, protocol

CHUNK = 256 * 1024
OTHER_UNIT = "000.00.21.H55"


def push_all(session: NodeSession, changes: list[dict]) -> dict:
    resp = session.push(changes)
    assert resp.status_code == 200, resp.data[:400]
    return unpack(resp)


def other_commune(api, hub) -> tuple[NodeWriter, NodeSession]:
    """A second commune (another unit), enrolled, writing with an in-memory log."""
    writer = NodeWriter(OTHER_UNIT)
    token = create_token(hub, [OTHER_UNIT])
    resp = api.post("/api/v1/enroll", json={"token": token, **writer.record()})
    assert resp.status_code == 200, resp.data
    return writer, NodeSession(api, writer.node_id, writer.key)


# ---------------------------------------------------------------- time, openapi

def test_time_names_the_hub_and_its_key(api, hub):
    body = api.get("/api/v1/time").get_json()
    assert body["hub_node_id"] == hub.node_id and body["hub_public_key"] == hub.identity.public_key
    assert abs(body["hub_time_ms"] - hlc.wall_ms()) < 5000 and body["protocol"] == protocol.PROTOCOL_VERSION


def test_openapi_documents_every_endpoint(api, hub_app):
    doc = api.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item if method != "parameters"}
    routes = {(r.rule.replace("<sha256>", "{sha256}"), m.lower()) for r in hub_app.url_map.iter_rules()
              if r.rule.startswith("/api/") for m in r.methods if m not in ("OPTIONS",)}
    routes = {(p, m) for p, m in routes if not (m == "head" and (p, "get") in routes and p != "/api/v1/files/{sha256}")}
    assert routes <= documented, routes - documented


# ---------------------------------------------------------------- enrollment

def test_enroll_returns_a_record_signed_by_the_hub(api, hub, prepared):
    body = enroll(api, hub, prepared)
    record = body["record"]
    assert record["node_id"] == prepared.node_id and record["scope"] == prepared.unit_code
    assert record["status"] == "active" and record["hub_node_id"] == hub.node_id
    keys.verify(body["hub_public_key"], encoding.canonical(record), body["record_sig"])
    assert body["hub_public_key"] == hub.identity.public_key


def test_enroll_refusals(api, hub, prepared, clock):
    token = create_token(hub, [prepared.unit_code])
    assert api.post("/api/v1/enroll", json=enroll_body(token, prepared)).status_code == 200

    resp = api.post("/api/v1/enroll", json=enroll_body(token, prepared, node_id="NOTHER"))
    assert resp.status_code == 403 and error_of(resp)["code"] == "token_used"
    assert "already used" in error_of(resp)["message"]

    again = create_token(hub, [prepared.unit_code])
    resp = api.post("/api/v1/enroll", json=enroll_body(again, prepared))
    assert resp.status_code == 409 and error_of(resp)["code"] == "already_enrolled"

    resp = api.post("/api/v1/enroll", json=enroll_body("no-such-token", prepared, node_id="NX1"))
    assert resp.status_code == 403 and error_of(resp)["code"] == "token_unknown"

    wrong = create_token(hub, [OTHER_UNIT])
    resp = api.post("/api/v1/enroll", json=enroll_body(wrong, prepared, node_id="NX2"))
    assert resp.status_code == 403 and error_of(resp)["code"] == "token_scope"
    assert OTHER_UNIT in error_of(resp)["message"]

    expiring = create_token(hub, [prepared.unit_code])
    clock.set("2026-03-03 09:01")
    resp = api.post("/api/v1/enroll", json=enroll_body(expiring, prepared, node_id="NX3"))
    assert resp.status_code == 403 and error_of(resp)["code"] == "token_expired"


@pytest.mark.parametrize("body", [None, [], {"token": 5}, {"token": "t", "node_id": "a b"},
                                  {"token": "t", "node_id": "N1", "public_key": "bm90IGEga2V5", "unit_code": "U"}])
def test_enroll_bad_bodies_are_400(api, hub, body):
    resp = api.post("/api/v1/enroll", json=body) if body is not None else api.post("/api/v1/enroll", data=b"\xff")
    assert resp.status_code == 400, resp.data


# ---------------------------------------------------------------- push

def test_push_then_pull_converges_with_equal_digests(session, prepared, hub):
    result = push_all(session, prepared.changes)
    assert result["acked_seq"] == len(prepared.changes)
    pulled, last = session.pull_all()
    assert not {c["hash"] for c in pulled} & {c["hash"] for c in prepared.changes}, "own changes not echoed"
    assert {c["entity"] for c in pulled} == {"node"}  # the hub's record and this node's own registration
    node_digest = protocol.digest_of([c["hash"] for c in prepared.changes + pulled])
    assert last["digest"] == node_digest
    status = unpack(session.status())
    assert status["digest"] == node_digest and status["acked_seq"] == len(prepared.changes)
    assert status["last_hash"] == prepared.changes[-1]["hash"]


def test_replaying_a_batch_is_a_no_op(session, prepared, hub):
    first = push_all(session, prepared.changes)
    count = hub.storage.change_count()
    again = push_all(session, prepared.changes)
    assert again["acked_seq"] == first["acked_seq"] and again["stored"] == 0
    assert hub.storage.change_count() == count


def test_push_in_batches_continues_the_log(session, prepared):
    half = len(prepared.changes) // 2
    assert push_all(session, prepared.changes[:half])["acked_seq"] == half
    assert push_all(session, prepared.changes[half:])["acked_seq"] == len(prepared.changes)


def test_tampered_payload_refuses_the_whole_batch_naming_the_change(session, prepared, hub):
    batch = [dict(c) for c in prepared.changes]
    victim = next(c for c in batch if c["entity"] == "dossier")
    victim["payload"] = dict(victim["payload"], fields=dict(victim["payload"]["fields"], applicant_name="Kẻ Giả"))
    resp = session.push(batch)
    assert resp.status_code == 400
    err = error_of(resp)
    assert err["code"] == "hash_mismatch" and err["change"]["seq"] == victim["seq"]
    assert err["change"]["node_id"] == prepared.node_id
    assert hub.storage.held(prepared.node_id)[0] == 0


def test_gap_in_seq_is_409(session, prepared, hub):
    resp = session.push(prepared.changes[:3] + prepared.changes[4:])
    assert resp.status_code == 409 and error_of(resp)["code"] == "sequence_gap"
    push_all(session, prepared.changes[:3])
    resp = session.push(prepared.changes[5:])
    assert resp.status_code == 409 and error_of(resp)["code"] == "sequence_gap"
    assert hub.storage.held(prepared.node_id)[0] == 3


def test_unknown_key_is_403_unknown_node(api, hub, prepared):
    stranger = NodeSession(api, "NSTRANGER0001", keys.NodeKey.generate())
    resp = stranger.push([])
    assert resp.status_code == 403 and error_of(resp)["code"] == "unknown_node"
    assert "not enrolled" in error_of(resp)["message"]


def test_revoked_key_is_403_node_revoked(session, prepared, hub):
    push_all(session, prepared.changes[:5])
    hub.storage.set_node_status(prepared.node_id, "revoked", now=hub.now())
    resp = session.push(prepared.changes[5:])
    assert resp.status_code == 403
    err = error_of(resp)
    assert err["code"] == "node_revoked"
    assert "was revoked on 2026-03-02 09:00:00 by the hub administrator" in err["message"]
    assert session.pull().status_code == 403
    assert hub.storage.held(prepared.node_id)[0] == 5, "changes accepted before revocation stay"


def test_fork_quarantines_the_node_and_keeps_both_versions(session, prepared, hub):
    push_all(session, prepared.changes)
    held = prepared.changes[-1]
    forked = {k: held[k] for k in log.SIGNED_FIELDS}
    forked["payload"] = dict(held["payload"], note="another history")
    forked["hash"] = log.change_hash(forked)
    forked["sig"] = prepared.key.sign(bytes.fromhex(forked["hash"]))
    resp = session.push([forked])
    assert resp.status_code == 409
    err = error_of(resp)
    assert err["code"] == "fork" and "quarantined" in err["message"] and err["change"]["seq"] == held["seq"]
    assert hub.storage.key_for(prepared.node_id)[1] == "quarantined"
    fork = hub.storage.forks()[0]
    assert fork["held"]["hash"] == held["hash"] and fork["incoming"]["hash"] == forked["hash"]
    nxt = {**{k: forked[k] for k in log.SIGNED_FIELDS}, "seq": held["seq"] + 1, "prev": held["hash"]}
    nxt["hash"] = log.change_hash(nxt)
    nxt["sig"] = prepared.key.sign(bytes.fromhex(nxt["hash"]))
    resp = session.push([nxt])
    assert resp.status_code == 403 and error_of(resp)["code"] == "node_quarantined"
    assert session.pull().status_code == 200, "a quarantined node may still pull"


def laptop_of(api, hub, units: list[str]) -> tuple[NodeWriter, NodeSession]:
    """A field laptop enrolled for `units` (its own unit the first), writing with an in-memory log."""
    writer = NodeWriter(units[0])
    token = create_token(hub, units, "laptop")
    resp = api.post("/api/v1/enroll", json={"token": token, **writer.record()})
    assert resp.status_code == 200 and resp.get_json()["record"]["kind"] == "laptop", resp.data
    return writer, NodeSession(api, writer.node_id, writer.key)


def test_relay_allowed_when_the_laptop_serves_the_relaying_commune(session, prepared, api, hub):
    laptop, laptop_session = laptop_of(api, hub, [prepared.unit_code, OTHER_UNIT])
    carried = laptop.dossier(prepared.unit_code)
    answer = push_all(session, prepared.changes + carried)
    assert answer["acked_seq"] == len(prepared.changes) and answer["origins"] == {laptop.node_id: 3}
    assert hub.storage.held(laptop.node_id) == (3, carried[-1]["hash"])
    status = unpack(session.status(origins=[laptop.node_id, "NOBODY0001", hub.node_id]))
    assert status["origins"] == {laptop.node_id: 3, hub.node_id: hub.storage.held(hub.node_id)[0]}
    count = hub.storage.change_count()
    direct = push_all(laptop_session, carried)  # the laptop reaches the hub itself later: nothing twice
    assert (direct["acked_seq"], direct["stored"], direct["skipped"]) == (3, 0, 3)
    assert hub.storage.change_count() == count


@pytest.mark.parametrize("case", ["another_commune", "laptop_of_another_commune", "revoked", "unknown"])
def test_relay_refused_when(session, prepared, api, hub, case):
    code = {"another_commune": "relay_not_allowed", "laptop_of_another_commune": "relay_not_allowed",
            "revoked": "node_revoked", "unknown": "unknown_node"}[case]
    if case == "another_commune":
        origin, _ = other_commune(api, hub)
    elif case == "unknown":
        origin = NodeWriter(prepared.unit_code)
    else:
        origin, _ = laptop_of(api, hub, [OTHER_UNIT] if case == "laptop_of_another_commune" else [prepared.unit_code])
        if case == "revoked":
            hub.storage.set_node_status(origin.node_id, "revoked", now=hub.now())
    count = hub.storage.change_count()
    resp = session.push(prepared.changes + origin.dossier())
    assert resp.status_code == 403, resp.data
    err = error_of(resp)
    assert err["code"] == code and origin.node_id in err["message"]
    assert hub.storage.change_count() == count and hub.storage.held(prepared.node_id)[0] == 0


def test_status_origins_must_be_a_list_of_node_ids(session):
    resp = session.status(origins="everyone")
    assert resp.status_code == 400 and error_of(resp)["code"] == "bad_body"


def test_writing_another_communes_data_is_403_naming_the_change(session, prepared, hub):
    writer = NodeWriter(OTHER_UNIT, prepared.node_id, prepared.key)
    writer.seq, writer.prev = prepared.changes[-1]["seq"], prepared.changes[-1]["hash"]
    foreign = writer.dossier()
    resp = session.push(prepared.changes + foreign)
    err = error_of(resp)
    assert resp.status_code == 403 and err["code"] == "out_of_scope" and OTHER_UNIT in err["message"]
    assert err["change"]["seq"] == foreign[0]["seq"]
    assert hub.storage.held(prepared.node_id)[0] == 0


def test_push_or_pull_as_another_node_is_403(session, api, hub):
    writer, _ = other_commune(api, hub)
    for resp in (session.push([], as_node=writer.node_id), session.pull(as_node=writer.node_id)):
        assert resp.status_code == 403 and error_of(resp)["code"] == "node_mismatch"


# ---------------------------------------------------------------- request authentication, bodies

def test_bad_signature_and_time_outside_window(session, prepared):
    resp = session.call("POST", "/api/v1/sync/status", protocol.encode_body({"node_id": prepared.node_id}),
                        sign_path="/api/v1/sync/pull")
    assert resp.status_code == 403 and error_of(resp)["code"] == "bad_signature"
    late = hlc.wall_ms() - 20 * 60 * 1000 - 3000
    resp = session.call("POST", "/api/v1/sync/status", protocol.encode_body({"node_id": prepared.node_id}),
                        time_ms=late)
    err = error_of(resp)
    assert resp.status_code == 403 and err["code"] == "clock_outside_window"
    assert "20 min" in err["message"] and "behind the hub's clock" in err["message"]
    bare = session.call("PUT", f"/api/v1/files/{'0' * 64}?offset=0", b"x", sign_path=f"/api/v1/files/{'0' * 64}")
    assert error_of(bare)["code"] == "unknown_file", "a signature over the bare path is accepted too"
    resp = session.client.post("/api/v1/sync/status", data=b"", headers={"X-Motcua-Protocol": "1"})
    assert resp.status_code == 403 and error_of(resp)["code"] == "not_signed"


@pytest.mark.parametrize("version", ["99", "abc", None])
def test_protocol_version_not_accepted_names_the_versions(session, version):
    resp = session.push([], protocol_version=version)
    assert resp.status_code == 400
    err = error_of(resp)
    assert err["code"] == "protocol_not_accepted" and ", ".join(map(str, protocol.ACCEPTED_VERSIONS)) in err["message"]


def test_previous_protocol_version_is_accepted(session):
    assert session.push([], protocol_version=protocol.PROTOCOL_VERSION - 1).status_code == 200


@pytest.mark.parametrize("body,status,code", [
    (b"not zstd at all", 400, "bad_body"),
    (protocol.encode_body({"node_id": "x", "changes": []})[:-6], 400, "bad_body"),
    (zstandard.ZstdCompressor().compress(b"{not json"), 400, "bad_body"),
    (protocol.encode_body([1, 2]), 400, "bad_body"),
    (zstandard.ZstdCompressor().compress(b"\0" * (protocol.MAX_INFLATED + 1024)), 413, "body_too_large"),
])
def test_garbled_truncated_and_bomb_bodies(session, body, status, code):
    resp = session.call("POST", "/api/v1/sync/push", body)
    assert resp.status_code == status, resp.data
    assert error_of(resp)["code"] == code


def test_oversized_body_is_413(session):
    resp = session.call("POST", "/api/v1/sync/push", b"\1" * (protocol.MAX_BODY + 10))
    assert resp.status_code == 413 and error_of(resp)["code"] == "body_too_large"


@pytest.mark.parametrize("changes", [
    "nope", [1], [{"node_id": "x"}], [{"seq": True}],
])
def test_changes_out_of_shape_are_400_never_500(session, prepared, changes):
    body = protocol.encode_body({"node_id": prepared.node_id, "changes": changes})
    resp = session.call("POST", "/api/v1/sync/push", body)
    assert resp.status_code in (400, 403), resp.data


@pytest.mark.parametrize("extra", [{"cursor": 5}, {"cursor": ["x"]}, {"limit": "x"}, {"limit": 0}, {"limit": True}])
def test_odd_pull_bodies_are_400(session, prepared, extra):
    body = protocol.encode_body({"node_id": prepared.node_id, **extra})
    resp = session.call("POST", "/api/v1/sync/pull", body)
    assert resp.status_code == 400, resp.data


def test_a_float_in_a_payload_is_400_naming_the_change(session, prepared):
    change = dict(prepared.changes[0], payload={"fields": {"fee": 1.5}})
    resp = session.push([change])
    assert resp.status_code == 400 and error_of(resp)["code"] == "encoding_error"


def test_load_shedding_503_with_retry_after(session, hub_app, prepared):
    hub_app.extensions["motcua_push_gate"].limit = 0
    resp = session.push(prepared.changes)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "2"
    assert error_of(resp)["code"] == "overloaded"


# ---------------------------------------------------------------- pull

def test_pull_by_scope(session, prepared, api, hub):
    push_all(session, prepared.changes)
    writer, other = other_commune(api, hub)
    theirs = writer.dossier()
    assert other.push(theirs).status_code == 200
    calendar = hub.storage.write_change("calendar_day", "2026-09-03", "put", {"fields": {"kind": "day_off"}})
    mine, _ = session.pull_all()
    hashes = {c["hash"] for c in mine}
    assert calendar["hash"] in hashes, "the hub's catalogue and calendar reach every node"
    assert not hashes & {c["hash"] for c in theirs}, "another commune's dossiers never reach this node"
    assert not hashes & {c["hash"] for c in prepared.changes}, "own changes are not echoed"
    seen_by_other, _ = other.pull_all()
    assert {c["hash"] for c in prepared.changes if c["entity"] == "dossier"}.isdisjoint(
        {c["hash"] for c in seen_by_other})


def test_pull_pages_resume_from_the_cursor(session, prepared, api, hub):
    for i in range(7):
        hub.storage.write_change("calendar_day", f"2026-10-{i + 1:02d}", "put", {"fields": {"kind": "day_off"}})
    first = unpack(session.pull(limit=3))
    assert len(first["changes"]) == 3 and first["more"] and first["digest"] is None
    rest, last = session.pull_all(first["cursor"], limit=3)
    everything, _ = session.pull_all()
    assert [c["hash"] for c in first["changes"] + rest] == [c["hash"] for c in everything]
    assert unpack(session.pull(last["cursor"]))["changes"] == []


def test_forged_cursor_is_400(session, prepared, api, hub):
    page = unpack(session.pull())
    position = page["cursor"].split(".")[0]
    for forged in (f"{int(position) - 1}.{page['cursor'].split('.')[1]}", "0.deadbeef", "x", "1.2.3"):
        resp = session.pull(forged)
        assert resp.status_code == 400 and error_of(resp)["code"] == "bad_cursor", forged
    _, other = other_commune(api, hub)
    resp = other.pull(page["cursor"])
    assert resp.status_code == 400 and error_of(resp)["code"] == "bad_cursor", "a cursor is bound to its node"


def test_status_records_what_the_node_reports(session, prepared, hub):
    resp = session.call("POST", "/api/v1/sync/status", protocol.encode_body({"node_id": prepared.node_id}),
                        headers={"X-Motcua-Clock-Skew": "-420000", "X-Motcua-Backlog": "17"})
    assert resp.status_code == 200
    row = hub.storage.node_status(prepared.node_id)
    assert (row["clock_skew_ms"], row["backlog_reported"], row["software_version"]) == (-420000, 17, "0.1.0")
    assert row["last_seen"] == "2026-03-02 09:00:00"


# ---------------------------------------------------------------- files

def put_chunk(session: NodeSession, sha: str, offset: int, data: bytes):
    return session.call("PUT", f"/api/v1/files/{sha}?offset={offset}", data,
                        headers={"Content-Type": "application/octet-stream"})


def test_chunked_resumable_upload_and_download(session, prepared, hub, api):
    push_all(session, prepared.changes)
    sha = prepared.scan_sha
    data = (prepared.path / "files" / sha[:2] / sha[2:]).read_bytes()
    assert session.call("HEAD", f"/api/v1/files/{sha}").headers["X-Motcua-Size"] == "0"
    assert put_chunk(session, sha, 0, data[:CHUNK]).get_json() == {"size": CHUNK, "complete": False}
    head = session.call("HEAD", f"/api/v1/files/{sha}")
    assert head.headers["X-Motcua-Size"] == str(CHUNK) and head.headers["X-Motcua-Complete"] == "0"
    resp = put_chunk(session, sha, 2 * CHUNK, data[2 * CHUNK:])
    assert resp.status_code == 409 and error_of(resp)["code"] == "offset_mismatch"
    assert put_chunk(session, sha, 0, data[:CHUNK]).get_json()["size"] == CHUNK, "a retried chunk is harmless"
    assert put_chunk(session, sha, CHUNK, data[CHUNK:2 * CHUNK]).status_code == 200
    done = put_chunk(session, sha, 2 * CHUNK, data[2 * CHUNK:]).get_json()
    assert done == {"size": len(data), "complete": True}
    head = session.call("HEAD", f"/api/v1/files/{sha}")
    assert head.headers["X-Motcua-Size"] == str(len(data)) and head.headers["X-Motcua-Complete"] == "1"
    got = session.call("GET", f"/api/v1/files/{sha}")
    assert got.status_code == 200 and got.data == data
    _, other = other_commune(api, hub)
    assert other.call("GET", f"/api/v1/files/{sha}").status_code == 404, "another commune's scan stays away"


def test_wrong_bytes_are_422_and_discarded(session, prepared):
    push_all(session, prepared.changes)
    size = len((prepared.path / "files" / prepared.scan_sha[:2] / prepared.scan_sha[2:]).read_bytes())
    resp = put_chunk(session, prepared.scan_sha, 0, b"x" * size)
    assert resp.status_code == 422 and error_of(resp)["code"] == "file_hash_mismatch"
    assert session.call("HEAD", f"/api/v1/files/{prepared.scan_sha}").headers["X-Motcua-Size"] == "0"


def test_a_file_nobody_mentions_is_refused(session):
    sha = hashlib.sha256(b"stray").hexdigest()
    resp = put_chunk(session, sha, 0, b"stray")
    assert resp.status_code == 409 and error_of(resp)["code"] == "unknown_file"
    assert session.call("GET", "/api/v1/files/not-a-hash").status_code == 404


# ---------------------------------------------------------------- dossiers that start at the hub

def test_hub_submission_reaches_the_communes_scope_only(session, prepared, api, hub, clock):
    push_all(session, prepared.changes)
    _, other = other_commune(api, hub)
    result = submit_dossier(hub, unit_code=prepared.unit_code, procedure_code="1.001193",
                            applicant_name="Lò Thị Mai", id_number="019305001234")
    assert result["code"] == f"{prepared.unit_code}.HUB-260302-0001"
    again = submit_dossier(hub, unit_code=prepared.unit_code, procedure_code="1.004873",
                           applicant_name="Vi Văn Tú", id_number="019205001234")
    assert again["code"].endswith("-0002")
    mine, last = session.pull_all()
    creates = [c for c in mine if c["entity"] == "dossier" and c["op"] == "create"]
    assert [c["payload"]["fields"]["code"] for c in creates] == [result["code"], again["code"]]
    assert all(c["node_id"] == hub.node_id for c in mine)
    assert creates[0]["payload"]["fields"]["status"] == 1 and creates[0]["payload"]["fields"]["channel"] == 2
    assert any(c["entity"] == "document" for c in mine) and any(c["op"] == "action" for c in mine)
    for c in mine:
        keys.verify(hub.identity.public_key, bytes.fromhex(c["hash"]), c["sig"])
    theirs, _ = other.pull_all()
    assert not [c for c in theirs if c["entity"] == "dossier"]
    assert last["digest"] == protocol.digest_of([c["hash"] for c in prepared.changes + mine])


def test_hub_submission_refusals(hub, session):
    from central.errors import HubError

    with pytest.raises(HubError, match="no enrolled node"):
        submit_dossier(hub, unit_code="999.99", procedure_code="1.001193", applicant_name="A", id_number="019305001234")
    with pytest.raises(HubError, match="no procedure"):
        submit_dossier(hub, unit_code=session_unit(hub), procedure_code="0.0", applicant_name="A",
                       id_number="019305001234")
    with pytest.raises(HubError, match="12 digits"):
        submit_dossier(hub, unit_code=session_unit(hub), procedure_code="1.001193", applicant_name="A",
                       id_number="12345")


def session_unit(hub) -> str:
    return sorted(hub.storage.units_served())[0]


def test_laptop_receives_several_units(api, hub, tmp_path, clock, prepared):
    writer, other = other_commune(api, hub)
    assert other.push(writer.dossier()).status_code == 200
    laptop = PreparedNode(tmp_path, "NLAPTOP00001", prepared.unit_code, "Laptop", keys.NodeKey.generate(), [])
    enroll(api, hub, laptop, scope=[prepared.unit_code, OTHER_UNIT], kind="laptop")
    seen, _ = NodeSession(api, laptop.node_id, laptop.key).pull_all()
    assert any(c["entity"] == "dossier" and c["node_id"] == writer.node_id for c in seen)


def test_prepare_node_helper_closes_the_node(node_dir, clock):
    prepared_node = prepare_node(node_dir, clock, dossiers=2, scan=None)
    assert prepared_node.changes[-1]["seq"] == len(prepared_node.changes)
