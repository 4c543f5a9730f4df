"""A scoped pull (from the hub or over the LAN) brings a gapped subset of another node's log: e.g. a laptop
serving communes A and B, seen from commune A, is seqs 1, 2, 4 (3 concerned B). ingest takes such a run
when every signature is checked, and still checks the link between adjacent changes."""

from __future__ import annotations

import pytest

from central.storage.testing import NodeWriter
from node import store
from node.sync import ingest, log
from node.sync.errors import ChainBroken, SequenceGap
from node.sync.log import Change
from tests.conftest import UNIT_CODE


def pulled(node, changes, key, **options):
    with store.transaction(node):
        return ingest.ingest(changes, key_for=lambda _: (key.public_b64, "active"), apply=store.apply_change,
                             **{"sign_check": "each", "gaps_allowed": True, **options})


@pytest.fixture
def laptop_log():
    writer = NodeWriter(UNIT_CODE)
    changes = [writer.change("calendar_day", f"2026-09-0{i}", "put", {"fields": {"kind": "day_off"}})
               for i in range(1, 7)]
    return writer, changes


def test_a_gapped_run_that_starts_contiguously_is_taken(node, laptop_log):
    writer, changes = laptop_log
    pulled(node, changes[:2], writer.key)
    outcome = pulled(node, [changes[2], changes[4], changes[5]], writer.key)  # seq 3, 5, 6: 4 concerned B
    assert outcome.stored == 3
    assert [s for (s,) in Change.select(Change.seq).where(Change.node_id == writer.node_id).tuples()] == [1, 2, 3, 5, 6]
    assert pulled(node, [changes[3]], writer.key).stored == 1, "the missing one, when it comes, fills the gap"


def test_adjacent_changes_of_a_gapped_run_must_still_link(node, laptop_log):
    writer, changes = laptop_log
    pulled(node, changes[:2], writer.key)
    bad = dict(changes[5], prev="ab" * 32)
    bad["hash"] = log.change_hash(bad)
    bad["sig"] = writer.key.sign(bytes.fromhex(bad["hash"]))
    with pytest.raises(ChainBroken):
        pulled(node, [changes[2], changes[4], bad], writer.key)
    assert Change.select().where(Change.node_id == writer.node_id).count() == 2


def test_a_push_still_refuses_any_gap(node, laptop_log):
    writer, changes = laptop_log
    pulled(node, changes[:2], writer.key)
    with pytest.raises(SequenceGap):
        pulled(node, [changes[2], changes[4]], writer.key, gaps_allowed=False)
    with pytest.raises(SequenceGap):  # checking only the last signature needs the whole chain
        pulled(node, [changes[2], changes[4]], writer.key, sign_check="last")
