"""The storage contract: one test class every backend runs (Kinto's storage/testing.py habit).

Subclass `StorageContract` in a test module and provide a `storage_url` fixture; see
tests/central/test_storage_contract.py, which runs it on SQLite always and on PostgreSQL when
MOTCUA_TEST_POSTGRES_URL is set. `NodeWriter` makes signed, chained changes of a fake node without a
database, and `postgres_schema` gives each test its own PostgreSQL schema.
"""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from collections.abc import Iterator

import pytest

from node.sync import hlc, ingest, keys, log
from node.sync.errors import ChainBroken, ChangeNotApplicable, HashMismatch, SequenceGap, SignatureInvalid
from node.sync.ids import new_id
from node.sync.protocol import GLOBAL_SCOPE, digest_of
from node.sync.state import Dossier, NodeRecord

from ..errors import AlreadyEnrolled, OutOfScope, RegistryWriteRefused, RequestRefused, TokenRefused
from . import HubSigner, open_storage

NOW = datetime(2026, 3, 2, 9, 0)
UNIT_A, UNIT_B = "000.00.19.H55", "000.00.21.H55"


class NodeWriter:
    """A fake node: its own key and log in memory, producing changes exactly as `log.append` does."""

    def __init__(self, unit_code: str = UNIT_A, node_id: str | None = None, key: keys.NodeKey | None = None):
        self.key = key or keys.NodeKey.generate()
        self.node_id = node_id or "N" + new_id()[-12:]
        self.unit_code = unit_code
        self.clock = hlc.Clock()
        self.seq, self.prev = 0, log.GENESIS

    def change(self, entity: str, entity_id: str, op: str, payload: dict[str, Any], author: str = "") -> dict:
        change = {"node_id": self.node_id, "seq": self.seq + 1, "hlc": str(self.clock.now()), "entity": entity,
                  "entity_id": entity_id, "op": op, "payload": payload, "author": author, "prev": self.prev}
        change["hash"] = log.change_hash(change)
        change["sig"] = self.key.sign(bytes.fromhex(change["hash"]))
        self.seq, self.prev = change["seq"], change["hash"]
        return change

    def dossier(self, unit_code: str | None = None, code: str | None = None) -> list[dict]:
        """A dossier create, one document and a receive action: three changes."""
        dossier_id = new_id()
        unit = unit_code or self.unit_code
        fields = {"code": code or f"{unit}-260302-{self.seq + 1:04d}", "unit_code": unit,
                  "procedure_code": "1.001193", "procedure_version": 1, "status": 2, "applicant_name": "Nguyễn Văn A",
                  "received_at": "2026-03-02 09:00:00"}
        return [
            self.change("dossier", dossier_id, "create", {"fields": fields}),
            self.change("document", new_id(), "create", {"fields": {"dossier_id": dossier_id, "name": "Tờ khai"}}),
            self.change("dossier", dossier_id, "action", {"action": "receive", "set": {}, "event": {"at": "x"}}),
        ]

    def record(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "public_key": self.key.public_b64, "unit_code": self.unit_code,
                "unit_name": "UBND xã"}


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; yields a URL whose search_path is that schema."""
    import psycopg
    from psycopg import sql

    name = "motcua_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


class StorageContract:
    """Every HubStorage backend passes these. Subclasses provide the `storage_url` fixture."""

    @pytest.fixture
    def storage(self, storage_url):
        key = keys.NodeKey.generate()
        signer = HubSigner("H" + new_id()[-12:], key, hlc.Clock())
        store = open_storage(storage_url, signer)
        store.create_schema()
        store.write_change("node", signer.node_id, "put", {"fields": {
            "node_id": signer.node_id, "public_key": key.public_b64, "kind": "hub", "unit_code": "hub",
            "scope": "*", "status": "active"}})
        yield store
        store.close()

    def enrolled(self, storage, unit: str = UNIT_A, kind: str = "commune", scope: list[str] | None = None):
        writer = NodeWriter(unit)
        token = uuid.uuid4().hex
        storage.add_token(token, scope or [unit], kind, now=NOW, expires_at=NOW + timedelta(hours=24))
        storage.enroll(token, writer.record(), now=NOW)
        return writer

    # ------------------------------------------------------------ schema, hub writes
    def test_create_schema_is_idempotent(self, storage):
        storage.create_schema()
        assert storage.change_count() == 1

    def test_hub_change_is_signed_chained_and_global(self, storage):
        change = storage.write_change("procedure", "9.9@1", "put", {"fields": {
            "code": "9.9", "version": 1, "effective_from": "2024-01-01", "name_vi": "X", "name_en": "X",
            "field": "F", "time_kind": "same_day"}})
        assert change["seq"] == 2
        log.verify_change(change, storage.signer.key.public_b64)
        assert storage.held(storage.signer.node_id) == (2, change["hash"])
        page = storage.pull("someone", [GLOBAL_SCOPE], 0)
        assert [c["hash"] for c in page.changes][-1] == change["hash"]

    def test_a_failing_hub_write_leaves_nothing(self, storage):
        with pytest.raises(ChangeNotApplicable):
            storage.write_change("dossier", "nope", "frobnicate", {"action": "x", "set": {}, "event": {}})
        assert storage.change_count() == 1

    # ------------------------------------------------------------ enrollment
    def test_enroll_registers_the_node_through_a_global_change(self, storage):
        writer = self.enrolled(storage)
        record = storage.node_record(writer.node_id)
        assert record["public_key"] == writer.key.public_b64 and record["scope"] == UNIT_A
        assert storage.key_for(writer.node_id) == (writer.key.public_b64, "active")
        assert UNIT_A in storage.units_served()
        changes = storage.pull("other", [GLOBAL_SCOPE], 0).changes
        assert any(c["entity"] == "node" and c["entity_id"] == writer.node_id for c in changes)

    @pytest.mark.parametrize("case", ["unknown", "used", "expired", "scope", "again"])
    def test_enroll_refusals(self, storage, case):
        writer = NodeWriter(UNIT_A)
        storage.add_token("t1", [UNIT_A], "commune", now=NOW, expires_at=NOW + timedelta(hours=1))
        storage.add_token("t2", [UNIT_A], "commune", now=NOW, expires_at=NOW + timedelta(hours=1))
        before = storage.change_count()
        if case == "unknown":
            with pytest.raises(TokenRefused, match="unknown"):
                storage.enroll("nope", writer.record(), now=NOW)
        elif case == "used":
            storage.enroll("t1", writer.record(), now=NOW)
            before += 1
            with pytest.raises(TokenRefused, match="already used"):
                storage.enroll("t1", NodeWriter(UNIT_A).record(), now=NOW)
        elif case == "expired":
            with pytest.raises(TokenRefused, match="expired"):
                storage.enroll("t1", writer.record(), now=NOW + timedelta(hours=2))
        elif case == "scope":
            with pytest.raises(TokenRefused, match=UNIT_B):
                storage.enroll("t1", NodeWriter(UNIT_B).record(), now=NOW)
        else:
            storage.enroll("t1", writer.record(), now=NOW)
            before += 1
            with pytest.raises(AlreadyEnrolled):
                storage.enroll("t2", writer.record(), now=NOW)
        assert storage.change_count() == before
        if case != "used" and case != "again":
            assert not any(t["used_at"] for t in storage.tokens())

    def test_a_change_the_state_refuses_is_a_clear_error(self, storage):
        writer = self.enrolled(storage)
        bad = writer.change("procedure", "1.1@1", "put", {"fields": {"code": "1.1", "version": 1}})
        try:
            storage.ingest_push(writer.node_id, [bad], now=NOW)
        except ChangeNotApplicable as exc:  # PostgreSQL: NOT NULL columns missing
            assert exc.change_ref == bad["hash"] and storage.held(writer.node_id)[0] == 0
        else:  # SQLite's INSERT OR IGNORE skips the row, as on the node
            assert storage.held(writer.node_id)[0] == 1

    def test_unknown_node_is_refused(self, storage):
        with pytest.raises(ingest.UnknownNode):
            storage.key_for("N-nobody")

    # ------------------------------------------------------------ push
    def test_push_stores_merges_and_scopes(self, storage):
        writer = self.enrolled(storage)
        batch = writer.dossier()
        result = storage.ingest_push(writer.node_id, batch, now=NOW)
        assert (result.acked_seq, result.stored, result.skipped) == (3, 3, 0)
        assert Dossier.select().where(Dossier.unit_code == UNIT_A).count() == 1
        assert storage.node_status(writer.node_id)["acked_seq"] == 3
        page = storage.pull("other", [UNIT_A], 0)
        assert [c["hash"] for c in page.changes] == [c["hash"] for c in batch]

    def test_replay_is_a_no_op(self, storage):
        writer = self.enrolled(storage)
        batch = writer.dossier()
        storage.ingest_push(writer.node_id, batch, now=NOW)
        count = storage.change_count()
        again = storage.ingest_push(writer.node_id, batch, now=NOW)
        assert (again.acked_seq, again.stored, again.skipped) == (3, 0, 3)
        assert storage.change_count() == count

    @pytest.mark.parametrize("fault,error", [
        ("payload", HashMismatch), ("gap", SequenceGap), ("prev", ChainBroken), ("signature", SignatureInvalid),
    ])
    def test_a_bad_change_refuses_the_whole_batch(self, storage, fault, error):
        writer = self.enrolled(storage)
        batch = writer.dossier() + writer.dossier()
        if fault == "payload":
            batch[1]["payload"]["fields"]["name"] = "Giả mạo"
        elif fault == "gap":
            batch = batch[:2] + batch[3:]
        elif fault == "prev":
            batch[2]["prev"] = "ab" * 32  # re-hashed and re-signed: only the chain is wrong
            batch[2]["hash"] = log.change_hash(batch[2])
            batch[2]["sig"] = writer.key.sign(bytes.fromhex(batch[2]["hash"]))
        else:
            batch[-1]["sig"] = NodeWriter().key.sign(bytes.fromhex(batch[-1]["hash"]))
        count = storage.change_count()
        with pytest.raises(error):
            storage.ingest_push(writer.node_id, batch, now=NOW)
        assert storage.change_count() == count
        assert Dossier.select().count() == 0

    def test_revoked_node_is_refused(self, storage):
        writer = self.enrolled(storage)
        storage.set_node_status(writer.node_id, "revoked", now=NOW)
        assert storage.node_record(writer.node_id)["revoked_at"]
        with pytest.raises(ingest.NodeRevoked):
            storage.ingest_push(writer.node_id, writer.dossier(), now=NOW)

    # ------------------------------------------------------------ relays (a commune node carrying a laptop's changes)
    def test_relay_allowed_when_the_laptops_scope_includes_the_relaying_unit(self, storage):
        commune = self.enrolled(storage, UNIT_A)
        laptop = self.enrolled(storage, UNIT_A, "laptop", [UNIT_A, UNIT_B])
        own, carried = commune.dossier(), laptop.dossier(UNIT_A)
        result = storage.ingest_push(commune.node_id, own + carried, now=NOW)
        assert (result.acked_seq, result.stored, result.origins) == (3, 6, {laptop.node_id: 3})
        assert storage.held(laptop.node_id) == (3, carried[-1]["hash"])
        assert storage.node_status(laptop.node_id)["acked_seq"] == 3
        held = [c for c in storage.pull("other", [UNIT_A], 0).changes if c["node_id"] == laptop.node_id]
        assert [(c["hash"], c["sig"]) for c in held] == [(c["hash"], c["sig"]) for c in carried]
        for change in held:
            log.verify_change(change, laptop.key.public_b64)  # the laptop's own signature, as it made it
        more = laptop.dossier(UNIT_A)
        again = storage.ingest_push(commune.node_id, carried + more, now=NOW)  # a relay resent: held ones skipped
        assert (again.stored, again.skipped, again.origins) == (3, 3, {laptop.node_id: 6})
        direct = storage.ingest_push(laptop.node_id, carried + more, now=NOW)  # the laptop reaches the hub later
        assert (direct.acked_seq, direct.stored, direct.skipped) == (6, 0, 6)
        assert storage.change_count() == 1 + 2 + 3 + 6

    def test_relay_allowed_of_a_laptops_run_alone(self, storage):
        commune = self.enrolled(storage, UNIT_A)
        laptop = self.enrolled(storage, UNIT_A, "laptop", [UNIT_A])
        first = laptop.dossier()
        storage.ingest_push(laptop.node_id, first, now=NOW)
        rest = laptop.dossier()
        result = storage.ingest_push(commune.node_id, rest, now=NOW)
        assert (result.acked_seq, result.stored, result.origins) == (0, 3, {laptop.node_id: 6})

    @pytest.mark.parametrize("case", ["unknown", "revoked", "quarantined", "other_unit", "outside_shared_scope",
                                      "gap", "tampered", "registry"])
    def test_relay_refused_when(self, storage, case):
        commune = self.enrolled(storage, UNIT_A)
        laptop = self.enrolled(storage, UNIT_A, "laptop", [UNIT_A, UNIT_B])
        batch: list[dict] = []
        error: type[Exception] = RequestRefused
        if case == "unknown":
            laptop, error = NodeWriter(UNIT_A), ingest.UnknownNode
        elif case == "revoked":
            storage.set_node_status(laptop.node_id, "revoked", now=NOW)
            error = ingest.NodeRevoked
        elif case == "quarantined":
            storage.set_node_status(laptop.node_id, "quarantined", now=NOW)
            error = ingest.NodeQuarantined
        elif case == "other_unit":  # a laptop of commune B only: commune A may not carry its changes
            laptop = self.enrolled(storage, UNIT_B, "laptop", [UNIT_B])
            batch = laptop.dossier()
        elif case == "outside_shared_scope":  # the laptop serves B too, but A's node may only carry A's data
            batch = laptop.dossier(UNIT_B)
            error = OutOfScope
        elif case == "gap":  # the hub lacks the laptop's first changes
            laptop.dossier(UNIT_A)
            error = SequenceGap
        elif case == "tampered":
            batch = laptop.dossier(UNIT_A)
            batch[0]["payload"]["fields"]["applicant_name"] = "Giả mạo"
            error = HashMismatch
        else:
            batch = [laptop.change("node", laptop.node_id, "put", {"fields": {"scope": "*"}})]
            error = RegistryWriteRefused
        batch = batch or laptop.dossier(UNIT_A)
        count, own = storage.change_count(), commune.dossier()
        with pytest.raises(error) as info:
            storage.ingest_push(commune.node_id, own + batch, now=NOW)
        if case == "other_unit":
            assert info.value.code == "relay_not_allowed" and UNIT_B in info.value.message
        assert storage.change_count() == count, "nothing of a refused batch is stored"
        assert storage.held(commune.node_id)[0] == 0 and Dossier.select().count() == 0

    def test_a_relayed_fork_quarantines_the_laptop_not_the_relay(self, storage):
        commune = self.enrolled(storage, UNIT_A)
        laptop = self.enrolled(storage, UNIT_A, "laptop", [UNIT_A])
        storage.ingest_push(laptop.node_id, laptop.dossier(), now=NOW)
        clone = NodeWriter(UNIT_A, laptop.node_id, laptop.key)
        with pytest.raises(ingest.ForkDetected):
            storage.ingest_push(commune.node_id, clone.dossier(), now=NOW)
        assert storage.key_for(laptop.node_id)[1] == "quarantined"
        assert storage.key_for(commune.node_id)[1] == "active"

    def test_a_node_writes_only_its_own_units(self, storage):
        writer = self.enrolled(storage, UNIT_A)
        batch = writer.dossier() + writer.dossier(UNIT_B)
        with pytest.raises(OutOfScope, match=UNIT_B) as info:
            storage.ingest_push(writer.node_id, batch, now=NOW)
        assert info.value.change_ref == batch[3]["hash"]
        assert storage.held(writer.node_id)[0] == 0 and Dossier.select().count() == 0
        other = self.enrolled(storage, UNIT_A)
        user = other.change("user", new_id(), "create", {"fields": {"username": "admin", "unit_code": UNIT_B}})
        with pytest.raises(OutOfScope):
            storage.ingest_push(other.node_id, [user], now=NOW)

    def test_only_the_hub_writes_the_key_registry(self, storage):
        writer = self.enrolled(storage, UNIT_A)
        forged = writer.change("node", writer.node_id, "put", {"fields": {"status": "active", "scope": "*"}})
        with pytest.raises(RegistryWriteRefused):
            storage.ingest_push(writer.node_id, [forged], now=NOW)
        assert storage.node_record(writer.node_id)["scope"] == UNIT_A

    def test_fork_quarantines_and_keeps_both_versions(self, storage):
        writer = self.enrolled(storage)
        storage.ingest_push(writer.node_id, writer.dossier(), now=NOW)
        clone = NodeWriter(UNIT_A, writer.node_id, writer.key)  # a restored backup: same key, seq again
        forked = clone.dossier()
        with pytest.raises(ingest.ForkDetected) as info:
            storage.ingest_push(writer.node_id, forked, now=NOW)
        fork = storage.fork(info.value.fork_id)
        assert fork["seq"] == 1 and fork["incoming"]["hash"] == forked[0]["hash"]
        assert fork["held"]["hash"] != fork["incoming"]["hash"]
        assert storage.key_for(writer.node_id)[1] == "quarantined"
        assert [f["id"] for f in storage.forks()] == [info.value.fork_id]
        with pytest.raises(ingest.NodeQuarantined):
            storage.ingest_push(writer.node_id, writer.dossier(), now=NOW)

    # ------------------------------------------------------------ scope, pull, digest
    def test_pull_by_scope(self, storage):
        a, b = self.enrolled(storage, UNIT_A), self.enrolled(storage, UNIT_B)
        a_changes, b_changes = a.dossier(), b.dossier()
        a_changes.append(a.change("procedure", "1.1@1", "put", {"fields": {
            "code": "1.1", "version": 1, "effective_from": "2024-01-01", "name_vi": "X", "name_en": "X", "field": "F",
            "time_kind": "same_day"}}))
        storage.ingest_push(a.node_id, a_changes, now=NOW)
        storage.ingest_push(b.node_id, b_changes, now=NOW)
        hub = storage.write_change("calendar_day", "2026-09-02", "put", {"fields": {"kind": "day_off"}})
        seen_by_a = storage.pull(a.node_id, [UNIT_A, GLOBAL_SCOPE], 0).changes
        hashes = {c["hash"] for c in seen_by_a}
        assert hub["hash"] in hashes
        assert not hashes & {c["hash"] for c in a_changes}, "own changes are not echoed"
        assert not hashes & {c["hash"] for c in b_changes}, "another commune's dossiers never reach A"
        laptop = storage.pull("laptop", [UNIT_A, UNIT_B, GLOBAL_SCOPE], 0).changes
        assert {c["hash"] for c in a_changes + b_changes} <= {c["hash"] for c in laptop}

    def test_dossier_from_another_node_for_my_unit_reaches_me(self, storage):
        a, laptop = self.enrolled(storage, UNIT_A), self.enrolled(storage, UNIT_A, "laptop", [UNIT_A, UNIT_B])
        batch = laptop.dossier(UNIT_A)
        storage.ingest_push(laptop.node_id, batch, now=NOW)
        got = storage.pull(a.node_id, [UNIT_A, GLOBAL_SCOPE], 0).changes
        assert {c["hash"] for c in batch} <= {c["hash"] for c in got}

    def test_pull_pages_and_cursor_positions(self, storage):
        a = self.enrolled(storage, UNIT_A)
        storage.ingest_push(a.node_id, [c for _ in range(4) for c in a.dossier()], now=NOW)
        seen, after, pages = [], 0, 0
        while True:
            page = storage.pull("reader", [UNIT_A], after, limit=5)
            seen += page.changes
            assert page.position >= after
            after, pages = page.position, pages + 1
            if not page.more:
                break
        assert len(seen) == 12 and pages == 3
        assert len({c["hash"] for c in seen}) == 12
        assert storage.pull("reader", [UNIT_A], after).changes == []
        assert storage.pull("reader", [UNIT_A], after).position == after

    def test_digest_matches_the_scope(self, storage):
        a, b = self.enrolled(storage, UNIT_A), self.enrolled(storage, UNIT_B)
        a_changes, b_changes = a.dossier(), b.dossier()
        storage.ingest_push(a.node_id, a_changes, now=NOW)
        storage.ingest_push(b.node_id, b_changes, now=NOW)
        global_hashes = [c["hash"] for c in storage.pull("x", [GLOBAL_SCOPE], 0).changes]
        expected = digest_of(global_hashes + [c["hash"] for c in a_changes])
        assert storage.digest([UNIT_A, GLOBAL_SCOPE]) == expected
        assert storage.digest([UNIT_A, GLOBAL_SCOPE]) != storage.digest([UNIT_B, GLOBAL_SCOPE])

    # ------------------------------------------------------------ observations, users
    def test_touch_node_and_listing(self, storage):
        a = self.enrolled(storage, UNIT_A)
        storage.touch_node(a.node_id, last_seen="2026-03-02 09:00:00", software_version="0.1.0",
                           clock_skew_ms=-420000, backlog_reported=12)
        storage.touch_node(a.node_id, backlog_reported=3)
        row = next(n for n in storage.nodes() if n["node_id"] == a.node_id)
        assert (row["software_version"], row["clock_skew_ms"], row["backlog_reported"]) == ("0.1.0", -420000, 3)
        assert row["unit_code"] == UNIT_A and row["status"] == "active"

    def test_users(self, storage):
        storage.add_user("admin", "Quản trị", "hash1")
        storage.add_user("admin", "Quản trị viên", "hash2")
        assert storage.user("admin")["password_hash"] == "hash2"
        assert storage.user("nobody") is None

    # ------------------------------------------------------------ concurrency
    def test_concurrent_writers_are_serialised(self, storage):
        a = self.enrolled(storage, UNIT_A)
        batches = [a.dossier() for _ in range(10)]
        errors: list[BaseException] = []

        def hub_writer():
            try:
                for i in range(15):
                    storage.write_change("calendar_day", f"2027-01-{i + 1:02d}", "put", {"fields": {"kind": "day_off"}})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                storage.close()

        def node_pusher():
            try:
                for batch in batches:
                    storage.ingest_push(a.node_id, batch, now=NOW)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)
            finally:
                storage.close()

        threads = [threading.Thread(target=hub_writer), threading.Thread(target=node_pusher)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert storage.held(a.node_id)[0] == 30
        log.verify_log(storage.signer.node_id, storage.signer.key.public_b64)
        seen = storage.pull("reader", [UNIT_A, GLOBAL_SCOPE], 0).changes
        assert len(seen) == storage.change_count()
        assert NodeRecord.select().count() == 2
