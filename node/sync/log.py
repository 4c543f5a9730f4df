"""The signed, hash-chained change log.

`append()` is the only way a change is made on this replica; the caller runs it inside the transaction
that also applies the change to the materialised tables (see `node.store.write`). A change is a dict:

    node_id, seq, hlc, entity, entity_id, op, payload, author, prev, hash, sig

`hash` = SHA-256 of the canonical encoding of every field but `hash` and `sig`; `sig` = Ed25519 over the
32 hash bytes. `prev` is the hash of the same node's previous change (64 zeros for seq 1).

The hot statements (`last_of`, `store`, `store_many`) run SQL text peewee built once (`merge.run`): a hub
stores thousands of changes a second, and a batch is stored with one executemany.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable, Iterator

import orjson
import peewee as pw

from . import encoding, keys, merge
from .errors import ChainBroken, HashMismatch, SequenceGap
from .hlc import Clock
from .state import Base

GENESIS = "0" * 64
SIGNED_FIELDS = ("node_id", "seq", "hlc", "entity", "entity_id", "op", "payload", "author", "prev")
STORED_FIELDS = SIGNED_FIELDS + ("hash", "sig", "applied")


class Change(Base):
    id = pw.AutoField()  # local arrival order: the cursor others pull by
    node_id = pw.CharField()
    seq = pw.IntegerField()
    hlc = pw.CharField(index=True)
    entity = pw.CharField()
    entity_id = pw.CharField(index=True)
    op = pw.CharField()
    payload = pw.TextField()  # canonical JSON
    author = pw.CharField(default="")
    prev = pw.CharField()
    hash = pw.CharField(index=True)
    sig = pw.CharField()
    applied = pw.IntegerField(default=1)

    class Meta:
        indexes = ((("node_id", "seq"), True),)


def change_hash(change: dict[str, Any]) -> str:
    return encoding.sha256_hex(encoding.canonical({k: change[k] for k in SIGNED_FIELDS}))


def last_of(node_id: str) -> tuple[int, str]:
    """(seq, hash) of the newest change of `node_id` held here, or (0, GENESIS)."""
    rows = merge.run(Change, ("last_of",), lambda mark: (
        Change.select(Change.seq, Change.hash).where(Change.node_id == mark(0))
        .order_by(Change.seq.desc()).limit(mark(1))), [Change.node_id.db_value(node_id), 1]).fetchall()
    if not rows:
        return (0, GENESIS)
    return (Change.seq.python_value(rows[0][0]), Change.hash.python_value(rows[0][1]))


def append(
    *,
    key: keys.NodeKey,
    node_id: str,
    clock: Clock,
    entity: str,
    entity_id: str,
    op: str,
    payload: dict[str, Any],
    author: str = "",
) -> dict[str, Any]:
    """Make, sign and store the next change of this node. Call inside the caller's transaction."""
    seq, prev = last_of(node_id)
    change: dict[str, Any] = {
        "node_id": node_id,
        "seq": seq + 1,
        "hlc": str(clock.now()),
        "entity": entity,
        "entity_id": entity_id,
        "op": op,
        "payload": payload,
        "author": author,
        "prev": prev,
    }
    change["hash"] = change_hash(change)
    change["sig"] = key.sign(bytes.fromhex(change["hash"]))
    store(change)
    return change


def _stored_row(change: dict[str, Any], applied: bool, checked: bool = False) -> list[Any]:
    """The values of STORED_FIELDS for one change, payload as canonical JSON text.

    `checked`: the caller already ran the canonical checks over this change (it recomputed the change's
    hash, payload included), so the payload's canonical bytes are made without walking it again.
    """
    payload = change["payload"]
    text = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS) if checked else encoding.canonical(payload)
    return [change["node_id"], change["seq"], change["hlc"], change["entity"], change["entity_id"], change["op"],
            text.decode(), change["author"], change["prev"], change["hash"], change["sig"], 1 if applied else 0]


def store(change: dict[str, Any], applied: bool = True) -> None:
    """Insert one change row (payload as canonical JSON). Call inside the caller's transaction."""
    merge.insert_rows(Change, STORED_FIELDS, [_stored_row(change, applied)])


def store_many(changes: Iterable[tuple[dict[str, Any], bool]], *, checked: bool = False) -> None:
    """Insert (change, applied) rows in this order with one executemany (Change.id follows the order).

    `checked=True` when every change's hash was just recomputed from its content (ingest does), which ran
    the canonical encoding's checks over its payload already.
    """
    merge.insert_rows(Change, STORED_FIELDS, [_stored_row(change, applied, checked) for change, applied in changes],
                      copy=checked)


def row_to_change(row: Change) -> dict[str, Any]:
    change = {k: getattr(row, k) for k in SIGNED_FIELDS + ("hash", "sig")}
    change["payload"] = encoding.decode(row.payload)
    return change


def verify_change(change: dict[str, Any], public_b64: str) -> None:
    """Check one change's own hash and signature."""
    if change_hash(change) != change["hash"]:
        raise HashMismatch(f"hash mismatch at {change['node_id']}#{change['seq']}", change_ref=change["hash"])
    keys.verify(public_b64, bytes.fromhex(change["hash"]), change["sig"])


def verify_run(changes: Iterable[dict[str, Any]], public_b64: str, after: tuple[int, str]) -> int:
    """Verify a contiguous run of one node's changes that follows `after` = (seq, hash).

    Every hash is recomputed and every `prev` checked; each signature is verified. Returns the count.
    """
    seq, prev = after
    count = 0
    for change in changes:
        if change["seq"] != seq + 1:
            raise SequenceGap(f"expected seq {seq + 1}, got {change['seq']}", change_ref=change.get("hash"))
        if change["prev"] != prev:
            raise ChainBroken(f"prev of seq {change['seq']} does not match", change_ref=change.get("hash"))
        verify_change(change, public_b64)
        seq, prev = change["seq"], change["hash"]
        count += 1
    return count


def iter_changes(node_id: str, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """A node's changes in seq order, read in batches so memory stays bounded."""
    after = 0
    while True:
        rows = list(
            Change.select()
            .where((Change.node_id == node_id) & (Change.seq > after))
            .order_by(Change.seq)
            .limit(batch)
        )
        if not rows:
            return
        for row in rows:
            yield row_to_change(row)
        after = rows[-1].seq


def verify_log(node_id: str, public_b64: str) -> int:
    """Verify the whole stored chain of `node_id`; returns the number of changes checked."""
    return verify_run(iter_changes(node_id), public_b64, (0, GENESIS))
