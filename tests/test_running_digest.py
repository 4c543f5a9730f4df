"""The running state digests (issue 5): `log.LogDigest` (a node's whole log, one row) and the hub's
`ScopeDigest` (one row per scope) always equal `protocol.digest_of` over the rows they stand for: after
pushes, pulls, relays, replays, refused batches, forks, hub writes and tombstone purges, on SQLite and
PostgreSQL hubs, after a hand deletion (stale: summed again), and after the upgrade of the old folders in
tests/data. Also the sync's time stage: no GET /time once the clock offset is known, the hub's key checked
in every /sync/status answer.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from central.errors import OutOfScope
from central.models import ChangeScope
from central.storage import HubSigner, open_storage
from central.storage.testing import NOW, UNIT_A, UNIT_B, NodeWriter, postgres_schema
from node import syncer
from node.sync import hlc, ingest, keys, log
from node.sync.client import HubKeyMismatch
from node.sync.ids import new_id
from node.sync.log import Change
from node.sync.protocol import GLOBAL_SCOPE, digest_of
from tests.conftest import UNIT_CODE
from tests.sync.fakehub import FakeHub, _zstd

POSTGRES_URL = os.environ.get("MOTCUA_TEST_POSTGRES_URL", "")
DATA = Path(__file__).parent / "data"
HUB_URL = "http://hub.test:9000"


# ---------------------------------------------------------------- what the digests must equal

def summed_log() -> dict:
    return digest_of(h for (h,) in Change.select(Change.hash).tuples())


def summed_scopes(scopes: list[str]) -> dict:
    rows = (Change.select(Change.hash).join(ChangeScope, on=(ChangeScope.change_id == Change.id))
            .where(ChangeScope.scope.in_(scopes)).tuples())
    return digest_of(h for (h,) in rows)


def assert_hub_digests(storage) -> None:
    scopes = sorted({s for (s,) in ChangeScope.select(ChangeScope.scope).distinct().tuples()})
    assert scopes, "nothing scoped: the test moved nothing"
    for scope in scopes:
        assert storage.digest([scope]) == summed_scopes([scope]), scope
    for scopes_of_a_node in ([UNIT_A, GLOBAL_SCOPE], [UNIT_A, UNIT_B, GLOBAL_SCOPE], scopes, ["nowhere"]):
        assert storage.digest(scopes_of_a_node) == summed_scopes(scopes_of_a_node)
    with storage.transaction():
        assert log.held_digest() == summed_log()


# ---------------------------------------------------------------- the hub, on each backend

@pytest.fixture(params=["sqlite"] + (["postgresql"] if POSTGRES_URL else []))
def storage(request, tmp_path):
    def opened(url):
        key = keys.NodeKey.generate()
        signer = HubSigner("H" + new_id()[-12:], key, hlc.Clock())
        store = open_storage(url, signer)
        store.create_schema()
        store.write_change("node", signer.node_id, "put", {"fields": {
            "node_id": signer.node_id, "public_key": key.public_b64, "kind": "hub", "unit_code": "hub",
            "scope": "*", "status": "active"}})
        return store

    if request.param == "sqlite":
        store = opened(f"sqlite:///{tmp_path / 'hub.db'}")
        yield store
        store.close()
    else:
        with postgres_schema(POSTGRES_URL) as url:
            store = opened(url)
            yield store
            store.close()


def enrolled(storage, unit: str = UNIT_A, kind: str = "commune", scope: list[str] | None = None) -> NodeWriter:
    writer = NodeWriter(unit)
    token = uuid.uuid4().hex
    storage.add_token(token, scope or [unit], kind, now=NOW, expires_at=NOW + timedelta(hours=24))
    storage.enroll(token, writer.record(), now=NOW)
    return writer


def test_hub_digests_follow_every_write(storage):
    a, b = enrolled(storage, UNIT_A), enrolled(storage, UNIT_B)
    laptop = enrolled(storage, UNIT_A, "laptop", [UNIT_A])
    first = a.dossier()
    storage.ingest_push(a.node_id, first, now=NOW)
    assert_hub_digests(storage)
    storage.ingest_push(a.node_id, first, now=NOW)  # a replay: every change skipped, nothing added twice
    storage.ingest_push(a.node_id, first[1:] + a.dossier(), now=NOW)  # duplicates and new ones together
    storage.ingest_push(b.node_id, b.dossier() + b.dossier(), now=NOW)
    assert_hub_digests(storage)
    carried = laptop.dossier()
    storage.ingest_push(a.node_id, carried + a.dossier(), now=NOW)  # a commune node relays its laptop's run
    storage.ingest_push(a.node_id, carried, now=NOW)  # relayed again: skipped
    assert_hub_digests(storage)
    before = storage.digest([UNIT_A, UNIT_B, GLOBAL_SCOPE])
    with pytest.raises(OutOfScope):  # a batch refused whole (B writes A's unit): nothing of it counted
        storage.ingest_push(b.node_id, b.dossier() + b.dossier(UNIT_A), now=NOW)
    assert storage.digest([UNIT_A, UNIT_B, GLOBAL_SCOPE]) == before
    clone = NodeWriter(UNIT_A, a.node_id, a.key)  # a fork: rolled back, then the hub quarantines A (a write)
    with pytest.raises(ingest.ForkDetected):
        storage.ingest_push(a.node_id, clone.dossier(), now=NOW)
    storage.write_change("calendar_day", "2026-09-02", "put", {"fields": {"kind": "day_off"}})
    storage.pull(b.node_id, [UNIT_B, GLOBAL_SCOPE], 1)  # a pull acknowledges and purges tombstones
    assert storage.purge_tombstones() == 0
    assert_hub_digests(storage)


def test_a_tombstone_purge_leaves_the_digests_right(storage):
    a = enrolled(storage, UNIT_A)
    batch = a.dossier()
    dossier_id, attachment_id = batch[0]["entity_id"], new_id()
    batch.append(a.change("attachment", attachment_id, "create", {"fields": {
        "dossier_id": dossier_id, "sha256": "ab" * 32, "filename": "p.pdf", "mime": "application/pdf", "size": 9}}))
    batch.append(a.change("attachment", attachment_id, "delete", {"at": "2026-03-02 09:05:00"}))
    storage.ingest_push(a.node_id, batch, now=NOW)
    from node.sync.state import Tombstone

    assert Tombstone.select().count() == 1
    top = Change.select(Change.id).order_by(Change.id.desc()).scalar()
    storage.acknowledge(a.node_id, top)  # every node of the scope has seen the delete: it is purged
    assert Tombstone.select().count() == 0
    assert_hub_digests(storage)


def test_a_hand_deleted_row_marks_the_digests_stale_and_they_are_summed_again(storage):
    a = enrolled(storage, UNIT_A)
    storage.ingest_push(a.node_id, a.dossier() + a.dossier(), now=NOW)
    assert_hub_digests(storage)
    lost = Change.get((Change.node_id == a.node_id) & (Change.seq == 2))
    with storage.transaction():  # a bad restore of part of the database, say
        ChangeScope.delete().where(ChangeScope.change_id == lost.id).execute()
        Change.delete().where(Change.id == lost.id).execute()
    assert_hub_digests(storage)
    storage.ingest_push(a.node_id, [], now=NOW)
    assert_hub_digests(storage)


def test_an_older_hub_gets_its_digests_summed_once(storage):
    a, b = enrolled(storage, UNIT_A), enrolled(storage, UNIT_B)
    storage.ingest_push(a.node_id, a.dossier(), now=NOW)
    storage.ingest_push(b.node_id, b.dossier(), now=NOW)
    expected = {s: summed_scopes([s]) for s in (UNIT_A, UNIT_B, GLOBAL_SCOPE)}
    storage.db.drop_tables([log.LogDigest, __import__("central.storage.sql", fromlist=["x"]).ScopeDigest])
    storage.create_schema()  # what a hub made before the running digests does on its next start
    assert {s: storage.digest([s]) for s in expected} == expected
    assert_hub_digests(storage)


def test_a_schema_3_hub_upgrades_with_its_digests(tmp_path):
    from central.instance import Hub

    target = tmp_path / "hub"
    shutil.copytree(DATA / "hub-schema-3", target)
    (target / "files").mkdir(exist_ok=True)
    hub = Hub(target)
    try:
        hub.storage.connect()
        assert Change.select().count() > 0
        assert_hub_digests(hub.storage)
    finally:
        hub.close()


# ---------------------------------------------------------------- the node

def test_a_schema_3_node_gets_its_log_digest_by_migration_7(tmp_path, clock):
    from node.instance import Node

    target = tmp_path / "node"
    shutil.copytree(DATA / "node-schema-3", target)
    (target / "files").mkdir(exist_ok=True)
    node = Node(target, now=clock)
    try:
        assert Change.select().count() > 0
        rows, stale = log.digest_row(log.LogDigest, [1])
        assert not stale and log.digest_of_rows(rows) == summed_log()
    finally:
        node.close()


class NamingHub(FakeHub):
    """A fake hub of this version: /sync/status names the hub (`named_as` may lie about its key)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.named_as: str | None = None

    def _status(self, record, req):
        reply = super()._status(record, req)
        from node.sync import protocol

        answer = protocol.decode_body(reply.body)
        answer.update(hub_node_id=self.node_id, hub_public_key=self.named_as or self.key.public_b64)
        return _zstd(answer)


def sync(node, hub):
    return syncer.sync_once(node, transport=hub, retries=0, push_batch=10, pull_limit=7)


def test_the_node_log_digest_follows_local_writes_pulls_and_replays(node, officers):
    from tests.conftest import reception_body
    from node import workflow as wf

    hub = NamingHub()
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    other = hub.add_node(UNIT_CODE)
    for i in range(12):
        other.write("document", f"DOC{i}", "create", {"fields": {"dossier_id": "DX", "name": f"Giấy {i}"}})
    wf.receive_dossier(node, officers["reception"], reception_body())
    report = sync(node, hub)
    assert report.ok and report.digest_ok and report.pulled >= 12, report.error
    with node.db.atomic():
        assert log.held_digest() == summed_log()
    changes = [c for c, _ in hub.changes if c["node_id"] == other.node_id]
    with node.db.atomic():  # a page received twice (a retry after a cut): skipped, not counted twice
        ingest.ingest(changes, key_for=lambda n: (other.key.public_b64, "active"), apply=lambda c: True,
                      sign_check="each", gaps_allowed=True)
        assert log.held_digest() == summed_log()
    wf.receive_dossier(node, officers["reception"], reception_body())
    assert sync(node, hub).digest_ok
    with node.db.atomic():
        assert log.held_digest() == summed_log()


def test_a_hand_deleted_change_on_a_node_is_found_by_the_digest(node):
    hub = NamingHub()
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    hub.hub_write("calendar_day", "2026-04-30", "put", {"fields": {"kind": "day_off", "name": "x"}}, "*")
    assert sync(node, hub).ok
    with node.db.atomic():
        Change.delete().where((Change.node_id == hub.node_id) & (Change.entity == "calendar_day")).execute()
        assert log.held_digest() == summed_log()  # stale: summed again
    report = sync(node, hub)
    assert report.ok and report.repaired  # the mismatch is seen and the scope pulled again


# ---------------------------------------------------------------- no GET /time once the offset is known

def test_a_known_clock_offset_saves_the_time_round_trip_and_the_pin_is_still_checked(node):
    hub = NamingHub()
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    assert sync(node, hub).ok
    hub.calls.clear()
    report = sync(node, hub)
    assert report.ok and report.clock_skew_ms is not None
    assert ("GET", "/time") not in hub.calls and hub.calls.count(("POST", "/sync/status")) == 1
    hub.named_as = keys.NodeKey.generate().public_b64  # another key answers for the hub
    report = sync(node, hub)
    assert not report.ok and isinstance(report.exception, HubKeyMismatch)


def test_a_moved_clock_is_learned_again_when_the_hub_refuses_the_time(node):
    hub = NamingHub()
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    assert sync(node, hub).ok
    hub.skew_ms = 40 * 60 * 1000  # the hub's clock moved 40 minutes: the saved offset is outside the window
    hub.calls.clear()
    report = sync(node, hub)
    assert report.ok, report.error
    assert ("GET", "/time") in hub.calls
    assert abs(report.clock_skew_ms + hub.skew_ms) < 5000


def test_an_older_hub_without_its_name_in_status_is_asked_its_time_each_sync(node):
    hub = FakeHub()
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    assert sync(node, hub).ok
    hub.calls.clear()
    assert sync(node, hub).ok
    assert hub.calls.count(("GET", "/time")) == 1  # its key checked there, as before
