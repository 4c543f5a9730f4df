"""The signed change log: every synced row comes from a change, the chain verifies, tampering is caught,
and the state can be rebuilt from the log alone."""

from __future__ import annotations

import shutil
from datetime import date
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PASSWORD, ROLES, FakeNow, reception_body
from node import attachments, catalogue, queries, store, users, workflow as wf
from node.db import open_database
from node.instance import Node
from node.sync import encoding, log, merge
from node.sync.errors import ChainBroken, EncodingError, HashMismatch, SequenceGap, SignatureInvalid
from node.sync.hlc import Clock, Timestamp
from node.sync.keys import NodeKey
from node.sync.log import GENESIS, Change
from node.sync.state import (SYNCED_MODELS, Attachment, CalendarDay, Dossier, DossierDocument, DossierEvent,
                             Procedure, User, database)
from node.users import Officer

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def realistic_history(node, officers, clock) -> dict[str, str]:
    """A morning at the desk: receipts (one with a scan), a whole journey, a supplement, an online
    registration, an apology, a new officer, a password change and a calendar edit."""
    rec, spec, lead = officers["reception"], officers["specialist"], officers["leader"]
    with store.transaction(node):
        d1, _ = wf.receive_dossier(node, rec, reception_body(procedure_code="1.004873"))
        attachments.attach(node, d1.id, "to-khai.pdf", PDF, "application/pdf", rec.id)
    d2, _ = wf.receive_dossier(node, rec, reception_body(applicant_name="Đặng Văn Đức"))
    d3, _ = wf.receive_dossier(node, None, reception_body(applicant_name="Lê Thị Lan"), online=True)
    clock.set("2026-03-02 10:00")
    wf.perform(node, rec, d1.code, "transfer")
    wf.perform(node, lead, d1.code, "assign", {"handler_id": spec.id})
    wf.perform(node, spec, d1.code, "request_supplement", {"reason": "Thiếu", "items": ["Tờ khai"]})
    clock.set("2026-03-03 09:00")
    wf.perform(node, rec, d1.code, "supplement_received")
    wf.perform(node, lead, d1.code, "apologise", {"reason": "Chờ xác minh", "new_appointment": "2026-03-20 10:00"})
    wf.perform(node, spec, d1.code, "propose")
    wf.perform(node, lead, d1.code, "sign", {"result_digitised": "1"})
    wf.perform(node, rec, d1.code, "return_result", {"rating": "satisfied"})
    wf.perform(node, rec, d2.code, "transfer")
    wf.perform(node, rec, d3.code, "accept")
    new_user = users.create_user(node, "reception2", "Vũ Thị Mai", ["reception"], PASSWORD, author="admin")
    users.update_user(node, new_user, password="mat-khau-moi-2026", author="admin")
    with store.transaction(node):
        catalogue.set_calendar_day(node, date(2026, 3, 6), "day_off", "Nghỉ theo thông báo", author="admin")
        catalogue.set_calendar_day(node, date(2026, 3, 7), "working_day", "Làm bù", author="admin")
        catalogue.set_calendar_day(node, date(2026, 3, 6), "normal", "", author="admin")  # withdrawn again
    return {"d1": d1.id, "d2": d2.id, "d3": d3.id, "user": new_user}


@pytest.fixture(scope="module")
def _history_template(tmp_path_factory, _template_node):
    # Built once (argon2 makes user creation slow), then copied for every test that tampers with it.
    path = tmp_path_factory.mktemp("history") / "node"
    shutil.copytree(_template_node, path)
    clock = FakeNow()
    n = Node(path, now=clock)
    officers = {role: Officer.of(User.get(User.username == f"{role}1")) for role in ROLES}
    ids = realistic_history(n, officers, clock)
    n.close()
    return path, ids


@pytest.fixture
def hist(tmp_path, _history_template):
    """A node holding the realistic history, in a folder of its own."""
    source, ids = _history_template
    target = tmp_path / "node"
    shutil.copytree(source, target)
    n = Node(target, now=FakeNow("2026-03-03 09:00"))
    yield SimpleNamespace(node=n, ids=ids, path=target)
    n.close()


def changes_of(entity: str, op: str | None = None) -> list[Change]:
    query = Change.select().where(Change.entity == entity)
    if op:
        query = query.where(Change.op == op)
    return list(query.order_by(Change.seq))


def test_every_synced_row_has_its_change(hist):
    def ids(entity, op):
        made = [c.entity_id for c in changes_of(entity, op)]
        assert len(made) == len(set(made)), f"{entity} created twice"
        return set(made)

    assert ids("dossier", "create") == {d.id for d in Dossier.select()} == {hist.ids["d1"], hist.ids["d2"],
                                                                              hist.ids["d3"]}
    assert ids("document", "create") == {d.id for d in DossierDocument.select()}
    assert ids("attachment", "create") == {a.id for a in Attachment.select()} and Attachment.select().count() == 1
    assert ids("user", "create") == {u.id for u in User.select()}
    assert [c.entity_id for c in changes_of("user", "update")] == [hist.ids["user"]]
    assert ids("procedure", "put") == {f"{p.code}@{p.version}" for p in Procedure.select()}
    assert {c.entity_id for c in changes_of("calendar_day", "put")} == {c.id for c in CalendarDay.select()}
    for day in CalendarDay.select():  # the row is the last change written for its key ("<unit>:<day>" or day)
        last = (Change.select().where((Change.entity == "calendar_day") & (Change.entity_id == day.id))
                .order_by(Change.seq.desc()).first())
        assert encoding.decode(last.payload)["fields"]["kind"] == day.kind
    own = catalogue.calendar_id(hist.node.identity.unit_code, date(2026, 3, 6))[:-len("2026-03-06")]
    assert CalendarDay.get_by_id(own + "2026-03-06").kind == "normal"
    assert CalendarDay.get_by_id(own + "2026-03-07").kind == "working_day"

    actions = changes_of("dossier", "action")
    assert {f"{c.node_id}:{c.seq}" for c in actions} == {e.id for e in DossierEvent.select()}
    for change in actions:
        event = DossierEvent.get_by_id(f"{change.node_id}:{change.seq}")
        payload = encoding.decode(change.payload)
        assert (event.dossier_id, event.action, event.hlc) == (change.entity_id, payload["action"], change.hlc)
    journey = [e.action for e in DossierEvent.select().where(DossierEvent.dossier_id == hist.ids["d1"])
               .order_by(DossierEvent.hlc)]
    assert journey == ["receive", "transfer", "assign", "request_supplement", "supplement_received",
                       "apologise", "propose", "sign", "return_result"]
    assert Change.select().where(Change.applied != 1).count() == 0
    assert not changes_of("dossier", "update")  # no field was written outside an action


def test_chain_verifies_without_gaps(hist):
    node = hist.node
    rows = list(Change.select().order_by(Change.seq))
    assert log.verify_log(node.node_id, node.identity.public_key) == len(rows) == Change.select().count()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert {r.node_id for r in rows} == {node.node_id}
    prev = GENESIS
    for row in rows:
        assert row.prev == prev
        assert log.change_hash(log.row_to_change(row)) == row.hash
        prev = row.hash
    hlcs = [r.hlc for r in rows]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == len(hlcs)
    assert log.last_of(node.node_id) == (rows[-1].seq, rows[-1].hash)


def _sql(node, sql: str, *args) -> None:
    node.db.execute_sql(sql, args)


def _middle(node) -> Change:
    """A dossier creation in the middle of the log: the payload holds the applicant's phone number."""
    return changes_of("dossier", "create")[1]


def tamper_payload(node, row: Change) -> None:
    assert "0912345678" in row.payload
    _sql(node, 'UPDATE "change" SET payload = replace(payload, ?, ?) WHERE id = ?', "0912345678", "0912345679", row.id)


def test_changed_payload_is_a_hash_mismatch(hist):
    node = hist.node
    row = _middle(node)
    tamper_payload(node, row)
    with pytest.raises(HashMismatch) as info:
        log.verify_log(node.node_id, node.identity.public_key)
    assert info.value.change_ref == row.hash


def test_recomputed_hash_is_an_invalid_signature(hist):
    node = hist.node
    row = _middle(node)
    tamper_payload(node, row)
    forged = log.row_to_change(Change.get_by_id(row.id))
    _sql(node, 'UPDATE "change" SET hash = ? WHERE id = ?', log.change_hash(forged), row.id)
    with pytest.raises(SignatureInvalid):
        log.verify_log(node.node_id, node.identity.public_key)


def test_signature_by_another_key_fails(hist):
    node = hist.node
    with pytest.raises(SignatureInvalid):
        log.verify_log(node.node_id, NodeKey.generate().public_b64)
    # A forger with their own key rewrites one change and re-links the next one: still caught.
    row, nxt = _middle(node), Change.get(Change.seq == _middle(node).seq + 1)
    tamper_payload(node, row)
    forged = log.row_to_change(Change.get_by_id(row.id))
    new_hash = log.change_hash(forged)
    _sql(node, 'UPDATE "change" SET hash = ?, sig = ? WHERE id = ?', new_hash,
         NodeKey.generate().sign(bytes.fromhex(new_hash)), row.id)
    _sql(node, 'UPDATE "change" SET prev = ? WHERE id = ?', new_hash, nxt.id)
    with pytest.raises(SignatureInvalid):
        log.verify_log(node.node_id, node.identity.public_key)


def test_deleted_row_is_a_sequence_gap(hist):
    node = hist.node
    row = _middle(node)
    _sql(node, 'DELETE FROM "change" WHERE id = ?', row.id)
    with pytest.raises(SequenceGap):
        log.verify_log(node.node_id, node.identity.public_key)


def test_swapped_prev_is_a_broken_chain(hist):
    node = hist.node
    row = _middle(node)
    nxt = Change.get(Change.seq == row.seq + 1)
    _sql(node, 'UPDATE "change" SET prev = ? WHERE id = ?', nxt.prev, row.id)
    _sql(node, 'UPDATE "change" SET prev = ? WHERE id = ?', row.prev, nxt.id)
    with pytest.raises(ChainBroken):
        log.verify_log(node.node_id, node.identity.public_key)


def test_verify_run_checks_a_received_batch(hist):
    node = hist.node
    changes = list(log.iter_changes(node.node_id, batch=7))
    key = node.identity.public_key
    assert log.verify_run(changes[10:20], key, (changes[9]["seq"], changes[9]["hash"])) == 10
    with pytest.raises(SequenceGap):
        log.verify_run(changes[11:20], key, (changes[9]["seq"], changes[9]["hash"]))
    with pytest.raises(ChainBroken):
        log.verify_run(changes[10:20], key, (changes[9]["seq"], GENESIS))


# ---------------------------------------------------------------- state is a function of the log

def snapshot_tables() -> dict[str, list[dict]]:
    out = {}
    for model in SYNCED_MODELS:
        out[model.__name__] = list(model.select().order_by(model._meta.primary_key).dicts())
    return out


def test_replaying_the_log_rebuilds_the_state(hist, tmp_path):
    node = hist.node
    original = snapshot_tables()
    changes = list(log.iter_changes(node.node_id))
    filled = ("Procedure", "CalendarDay", "User", "Dossier", "DossierDocument", "Attachment", "DossierEvent",
              "DossierOrigin")
    assert all(original[name] for name in filled)  # tables with rows to compare
    fresh = open_database(tmp_path / "replay.db")  # binds the model proxy to the new file
    try:
        with fresh.atomic():
            for change in changes:
                assert merge.apply(change)
        replayed = snapshot_tables()
        for name, rows in original.items():
            assert replayed[name] == rows, name
        # Applying the same log again, even backwards, changes nothing.
        with fresh.atomic():
            for change in reversed(changes):
                merge.apply(change)
        assert snapshot_tables() == original
        # Through the store the search index follows as well.
        fresh.execute_sql("DELETE FROM dossier")
        with fresh.atomic():
            for change in changes:
                if change["entity"] == "dossier":
                    store.apply_change(change)
        assert [d.applicant_name for d in queries.search("dang van duc").rows] == ["Đặng Văn Đức"]
    finally:
        fresh.close()
        database.initialize(node.db)


# ---------------------------------------------------------------- canonical encoding

def test_canonical_bytes_are_sorted_and_compact():
    assert encoding.canonical({"b": 1, "a": [True, None, "Đặng"], "c": {}}) == \
        '{"a":[true,null,"Đặng"],"b":1,"c":{}}'.encode()
    assert encoding.canonical({"x": 1, "y": 2}) == encoding.canonical({"y": 2, "x": 1})


@pytest.mark.parametrize("value", [1.5, {"a": 0.1}, [1, [2.0]], {1: "x"}, {"a": {(1, 2): 3}}, 2 ** 63,
                                   -(2 ** 63) - 1, (1, 2), b"bytes", {"a", "b"}, date(2026, 3, 2)])
def test_canonical_refuses_unstable_values(value):
    with pytest.raises(EncodingError):
        encoding.canonical(value)


def test_decode_refuses_malformed_json():
    with pytest.raises(EncodingError):
        encoding.decode(b'{"a":')


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@settings(database=None, max_examples=200)
@given(JSON)
def test_canonical_round_trip(value):
    data = encoding.canonical(value)
    assert encoding.decode(data) == value
    assert encoding.canonical(encoding.decode(data)) == data


# ---------------------------------------------------------------- hybrid logical clock

OPS = st.lists(st.one_of(
    st.tuples(st.just("tick"), st.integers(min_value=0, max_value=10 ** 13)),
    st.tuples(st.just("observe"), st.integers(min_value=0, max_value=10 ** 13), st.integers(0, 1000)),
), min_size=1, max_size=60)


@settings(database=None, max_examples=200)
@given(OPS)
def test_hlc_is_monotonic_whatever_the_wall_clock_does(ops):
    wall = [0]
    clock = Clock(now_ms=lambda: wall[0])
    top = Timestamp(0, 0)
    issued = []
    for op in ops:
        if op[0] == "tick":
            wall[0] = op[1]
            ts = clock.now()
            assert ts > top and ts.ms >= wall[0]
            issued.append(ts)
            top = ts
        else:
            remote = Timestamp(op[1], op[2])
            clock.observe(remote)
            assert clock.last > remote and clock.last > top
            top = clock.last
    assert issued == sorted(issued) and len(set(issued)) == len(issued)
    assert [str(t) for t in issued] == sorted(str(t) for t in issued)


@settings(database=None, max_examples=200)
@given(st.integers(0, 10 ** 16 - 1), st.integers(0, 99999), st.integers(0, 10 ** 16 - 1), st.integers(0, 99999))
def test_timestamp_text_round_trips_and_sorts(ms, counter, ms2, counter2):
    a, b = Timestamp(ms, counter), Timestamp(ms2, counter2)
    assert Timestamp.parse(str(a)) == a and len(str(a)) == 22
    assert (str(a) < str(b)) == (a < b)


@pytest.mark.parametrize("text", ["", "123", "0001732262400000", "0001732262400000.7", "abcdefghijklmnop.00001",
                                  "0001732262400000.000001", "-001732262400000.00001"])
def test_timestamp_parse_refuses_other_text(text):
    with pytest.raises(ValueError):
        Timestamp.parse(text)


def test_node_clock_resumes_after_the_last_change(hist):
    top = Timestamp.parse(Change.select().order_by(Change.hlc.desc()).first().hlc)
    hist.node.close()
    reopened = Node(hist.path, now=FakeNow())
    try:
        assert reopened.clock.last == top
        assert reopened.clock.now() > top
    finally:
        reopened.close()
