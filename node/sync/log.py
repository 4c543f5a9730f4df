"""The signed, hash-chained change log.

`append()` is the only way a change is made on this replica; the caller runs it inside the transaction
that also applies the change to the materialised tables (see `node.store.write`). A change is a dict:

    node_id, seq, hlc, entity, entity_id, op, payload, author, prev, hash, sig

`hash` = SHA-256 of the canonical encoding of every field but `hash` and `sig`; `sig` = Ed25519 over the
32 hash bytes. `prev` is the hash of the same node's previous change (64 zeros for seq 1).

The hot statements (`last_of`, `store`, `store_many`) run SQL text peewee built once (`merge.run`): a hub
stores thousands of changes a second, and a batch is stored with one executemany.

`LogDigest` keeps the state digest of every row held (`protocol.digest_of`) running: `store`/`store_many` add
the rows' hashes to it in the same transaction, so a sync reads it instead of summing the whole log.
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


class RunningDigest(Base):
    """The columns of a running state digest (`protocol.digest_of`): the count, the sum modulo 2**256 kept in
    DIGEST_LIMBS columns (column i adds the i-th 32-bit part of each stored batch's sum, `digest_parts`: a
    store only adds, `x = x + ?`, one upsert and no read, commutative; a 64-bit column takes 2**31 batches
    before it could overflow), and `stale`. A row of `LogDigest` (node and hub) or `ScopeDigest` (hub)."""

    changes = pw.BigIntegerField(default=0)
    s0 = pw.BigIntegerField(default=0)
    s1 = pw.BigIntegerField(default=0)
    s2 = pw.BigIntegerField(default=0)
    s3 = pw.BigIntegerField(default=0)
    s4 = pw.BigIntegerField(default=0)
    s5 = pw.BigIntegerField(default=0)
    s6 = pw.BigIntegerField(default=0)
    s7 = pw.BigIntegerField(default=0)
    stale = pw.IntegerField(default=0)  # 1: a change (or scope) row was deleted or rewritten (a trigger says so)


class LogDigest(RunningDigest):
    """The running digest of every change row held here: one row (id 1), added to in the transaction that
    stores the rows (`store`, `store_many`), so reading the digest costs one query."""

    id = pw.IntegerField(primary_key=True)


DIGEST_LIMBS = 8
DIGEST_COLUMNS = ("changes",) + tuple(f"s{i}" for i in range(DIGEST_LIMBS))
_MASK32 = 0xFFFFFFFF


def digest_parts(hashes: Iterable[str]) -> list[int]:
    """[count, s0..s7] of these change hashes: what storing them adds to a running digest row (their sum
    modulo 2**256 cut in 32-bit parts, least significant first)."""
    count = total = 0
    for h in hashes:
        total += int(h, 16)
        count += 1
    total %= 1 << 256
    return [count, *((total >> (32 * i)) & _MASK32 for i in range(DIGEST_LIMBS))]


def digest_sum(parts: Iterable[Any]) -> tuple[int, int]:
    """(count, sum modulo 2**256) of one [count, s0..s7] row."""
    count, *limbs = (int(v or 0) for v in parts)
    return count, sum(v << (32 * i) for i, v in enumerate(limbs)) % (1 << 256)


def digest_of_rows(rows: Iterable[Iterable[Any]]) -> dict[str, Any]:
    """protocol.digest_of's answer from running digest rows ([count, s0..s7] each, e.g. one per scope)."""
    count = total = 0
    for row in rows:
        c, t = digest_sum(row)
        count, total = count + c, (total + t) % (1 << 256)
    return {"count": count, "sum": f"{total:064x}"}


def add_to_digest(model: type[pw.Model], key: Any, hashes: Iterable[str]) -> None:
    """Add these hashes to the running digest row `key` of `model` (LogDigest, or the hub's per scope), in
    the caller's transaction: one upsert adding to the row's columns (created at zero when missing)."""
    parts = digest_parts(hashes)
    if not parts[0]:
        return
    pk = model._meta.primary_key
    columns = [model._meta.fields[c] for c in DIGEST_COLUMNS]

    def build(mark):
        values = {pk: mark(0), **{f: mark(i + 1) for i, f in enumerate(columns)}, model.stale: mark(len(columns) + 1)}
        return model.insert(values).on_conflict(
            conflict_target=[pk], update={f: f + getattr(pw.EXCLUDED, f.column_name) for f in columns})

    # A row made here holds only these hashes: right for a new scope, stale for the log's one row (made
    # with every earlier change by migration 7 or create_schema, so missing only if someone deleted it).
    merge.run(model, ("digest_add",), build, [pk.db_value(key), *parts, 1 if model is LogDigest else 0])


def digest_row(model: type[pw.Model], keys: list[Any]) -> tuple[list[list[int]], bool]:
    """The running digest rows ([count, s0..s7]) of `keys` in `model`, and whether one is stale."""
    fields = [model._meta.fields[c] for c in DIGEST_COLUMNS] + [model.stale]
    rows = list(model.select(*fields).where(model._meta.primary_key.in_(keys)).tuples())
    return [list(r[:-1]) for r in rows], any(r[-1] for r in rows)


def held_digest() -> dict[str, Any]:
    """protocol.digest_of over every change row held here, from the running digest (one query; summed
    again first when it is missing or stale). Call inside a write transaction (it may write)."""
    rows, stale = digest_row(LogDigest, [1])
    if stale or not rows:
        return recount_digest()
    return digest_of_rows(rows)


# Deleting or rewriting change rows is never done by the code (the log only grows), but should it happen
# (a hand edit, a partial restore), the running digest is marked stale and summed again at its next read.
def create_stale_triggers(db: pw.Database, table: str = "log_digest", watched: tuple[str, ...] = ("change",)) -> None:
    """The triggers marking the running digest table `table` stale when rows of `watched` are deleted or
    their hash rewritten (SQLite; PostgreSQL through a plpgsql function)."""
    if isinstance(db, pw.PostgresqlDatabase):
        missing = [name for name in watched if not db.execute_sql(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
            (f'"{name}"', f"{name}_{table}_stale")).fetchone()]
        if missing:  # made once (not at every start: hub processes starting together would race on it)
            db.execute_sql(f'CREATE OR REPLACE FUNCTION "{table}_stale"() RETURNS trigger LANGUAGE plpgsql AS '
                           f'$$ BEGIN UPDATE "{table}" SET stale = 1; RETURN NULL; END $$')
        for name in missing:
            db.execute_sql(f'CREATE TRIGGER "{name}_{table}_stale" AFTER DELETE OR UPDATE OF {_KEYED[name]} '
                           f'ON "{name}" FOR EACH STATEMENT EXECUTE FUNCTION "{table}_stale"()')
        return
    for name in watched:
        db.execute_sql(f'CREATE TRIGGER IF NOT EXISTS "{name}_deleted_{table}" AFTER DELETE ON "{name}" '
                       f'BEGIN UPDATE "{table}" SET stale = 1; END')
        db.execute_sql(f'CREATE TRIGGER IF NOT EXISTS "{name}_rewritten_{table}" AFTER UPDATE OF {_KEYED[name]} '
                       f'ON "{name}" BEGIN UPDATE "{table}" SET stale = 1; END')


_KEYED = {"change": "hash", "change_scope": "scope, change_id"}  # the columns a digest depends on


def recount_digest() -> dict[str, Any]:
    """Compute the running digest again from every change row (a migration, or a repair); returns it."""
    parts, after = [0] * (DIGEST_LIMBS + 1), 0
    while True:  # batches by id: memory stays small on a large log; each round moves `after` or ends
        rows = list(Change.select(Change.id, Change.hash).where(Change.id > after).order_by(Change.id)
                    .limit(10_000).tuples())
        if not rows:
            break
        parts = [a + b for a, b in zip(parts, digest_parts(h for _, h in rows), strict=True)]
        after = rows[-1][0]
    LogDigest.delete().execute()
    LogDigest.insert({LogDigest.id: 1, LogDigest.stale: 0, **dict(zip(DIGEST_COLUMNS, parts, strict=True))}).execute()
    return digest_of_rows([parts])


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
    add_to_digest(LogDigest, 1, (change["hash"],))


def store_many(changes: Iterable[tuple[dict[str, Any], bool]], *, checked: bool = False) -> None:
    """Insert (change, applied) rows in this order with one executemany (Change.id follows the order).

    `checked=True` when every change's hash was just recomputed from its content (ingest does), which ran
    the canonical encoding's checks over its payload already.
    """
    changes = list(changes)
    merge.insert_rows(Change, STORED_FIELDS, [_stored_row(change, applied, checked) for change, applied in changes],
                      copy=checked)
    add_to_digest(LogDigest, 1, (change["hash"] for change, _ in changes))


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
