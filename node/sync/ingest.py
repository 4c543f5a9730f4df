"""Verify and store a batch of changes from elsewhere: the one path for a hub receiving a push, a node
applying a pull and either side importing a bundle.

Order of checks for each node's run (design.md §5): key known and not revoked, signature, hash, seq
contiguity, `prev` chain. A batch with one bad change is refused whole (the caller's transaction rolls
back); changes already held with the same hash are skipped, so a replay is a no-op; a change whose seq is
held with another hash is a fork (`ForkDetected`, carrying both versions).

Three ways to check signatures (`sign_check`):

- "each": every change's own signature (a v1 pull page, a laptop's push to its relay, a bundle for a node);
- "last": every hash and link, and the signature of the last change of each node's run, which must continue
  what is held (a push to the hub);
- "runs": a v2 pull page (node/sync/pullwire.py), where only the last change of each run carries its
  signature: the changes of each node are split where their seqs jump; within a segment every hash is
  recomputed and every `prev` must name the change before it; a segment's first `prev` must name the change
  held here at the seq before (64 zeros before seq 1), when one is held; and each segment must end at a
  change whose signature verifies, or at a change already held here with the same hash (verified when it
  came). Every signature a change carries is verified too, so every signature stored was checked. The
  others are stored with sig "" (they are authenticated by the signed change that ends their segment).

In "each" and "last" a change must carry a signature: only the "runs" check takes a change without one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import keys, log, merge
from .errors import ChainBroken, HashMismatch, SequenceGap, SignatureInvalid, SyncError
from .protocol import check_change_shape


class UnknownNode(SyncError):
    http_status = 403
    code = "unknown_node"


class NodeRevoked(SyncError):
    http_status = 403
    code = "node_revoked"


class NodeQuarantined(SyncError):
    http_status = 403
    code = "node_quarantined"


class ForkDetected(SyncError):
    """Same node and seq, another hash: kept both, the node is quarantined by the caller."""

    http_status = 409
    code = "fork"

    def __init__(self, message: str, *, held: dict[str, Any], incoming: dict[str, Any]):
        super().__init__(message, change_ref=incoming.get("hash"))
        self.held = held
        self.incoming = incoming


@dataclass
class Outcome:
    stored: int = 0
    skipped: int = 0
    not_applied: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    stored_changes: list[dict[str, Any]] = field(default_factory=list)


PARALLEL_FROM = 64  # signatures in one run: below this, threads cost more than they save
MAX_VERIFY_THREADS = 4
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()

KeyLookup = Callable[[str], tuple[str, str]]  # node_id -> (public key b64, status: active|revoked|quarantined)


def _ref(change: dict[str, Any]) -> str:
    return f"{change.get('node_id')}#{change.get('seq')}"


def ingest(
    changes: Iterable[Any],
    *,
    key_for: KeyLookup,
    apply: Callable[[dict[str, Any]], bool],
    sign_check: str = "each",
    allow_quarantined: bool = False,
    gaps_allowed: bool = False,
) -> Outcome:
    """Verify then store and apply `changes`; call inside one transaction. Raises a SyncError whole.

    sign_check="each" verifies every signature (a scoped, gapped subset pulled by a node); "last" verifies
    every hash and link and only the last signature of each contiguous run, which authenticates the run;
    "runs" verifies a v2 pull page run by run (see the module docstring).
    gaps_allowed=False (a push, a bundle): each node's new changes must continue its log exactly.
    """
    if sign_check not in ("each", "last", "runs"):
        raise ValueError(f"unknown sign_check {sign_check!r}")
    runs: dict[str, list[dict[str, Any]]] = {}
    seen: dict[tuple[str, int], str] = {}
    out = Outcome()
    for change in changes:
        change = check_change_shape(change)
        if not change["sig"] and sign_check != "runs":
            raise SignatureInvalid(f"{_ref(change)} carries no signature", change_ref=change["hash"])
        key = (change["node_id"], change["seq"])
        if key in seen and seen[key] == change["hash"]:
            out.skipped += 1  # delivered twice in one batch: once is enough (another hash is a fork, below)
            continue
        seen[key] = change["hash"]
        runs.setdefault(change["node_id"], []).append(change)
    verified: list[dict[str, Any]] = []
    for node_id, run in runs.items():
        public, status = key_for(node_id)
        if status == "revoked":
            raise NodeRevoked(f"node {node_id} is revoked; its changes are refused", change_ref=run[0]["hash"])
        if status == "quarantined" and not allow_quarantined:
            raise NodeQuarantined(f"node {node_id} is quarantined after a fork; an administrator must review it",
                                  change_ref=run[0]["hash"])
        run.sort(key=lambda c: c["seq"])
        last_seq, last_hash = log.last_of(node_id)
        if sign_check == "runs":  # also the change before each one: a segment's first prev must name it
            wanted = sorted({s for c in run for s in (c["seq"], c["seq"] - 1) if 1 <= s <= last_seq})
            held_rows = _held(node_id, wanted)
            _verify_runs(run, public, held_rows)
        else:
            held_rows = _held(node_id, [c["seq"] for c in run if c["seq"] <= last_seq])
        fresh = []
        for change in run:
            if change["seq"] <= last_seq:
                held = held_rows.get(change["seq"])
                if held is None:
                    # Below our top but not held: a gapped subset (scoped pull) already passed this point.
                    fresh.append(change)
                    continue
                if held.hash == change["hash"]:
                    out.skipped += 1
                    continue
                raise ForkDetected(f"fork at {_ref(change)}: another change with this seq is already held",
                                   held=log.row_to_change(held), incoming=change)
            fresh.append(change)
        if sign_check != "runs":
            _verify(fresh, public, sign_check, last_seq, last_hash, gaps_allowed=gaps_allowed)
        if not gaps_allowed:
            require_contiguous(fresh, last_seq)
        verified.extend(fresh)
    rows: list[tuple[dict[str, Any], bool]] = []
    try:
        if verified:  # a replayed batch has nothing left to apply
            with merge.batch(verified):
                rows = [(change, apply(change)) for change in verified]
    except merge.BatchRetry:  # the pipelined attempt failed (PostgreSQL): again one by one, to raise what failed
        rows = [(change, apply(change)) for change in verified]
    for change, applied in rows:
        out.stored += 1
        out.not_applied += 0 if applied else 1
        out.last_seq[change["node_id"]] = max(out.last_seq.get(change["node_id"], 0), change["seq"])
        out.stored_changes.append(change)
    # One executemany for the batch, in the order applied; _verify recomputed every hash (checked=True).
    log.store_many(rows, checked=True)
    return out


def _held(node_id: str, seqs: list[int]) -> dict[int, log.Change]:
    """The rows held here for these seqs of `node_id` (a replay or a fork), read in a few queries."""
    found: dict[int, log.Change] = {}
    for i in range(0, len(seqs), 500):
        part = seqs[i:i + 500]
        query = log.Change.select().where((log.Change.node_id == node_id) & log.Change.seq.in_(part))
        found.update((row.seq, row) for row in query)
    return found


def _verify(run: list[dict[str, Any]], public: str, sign_check: str, last_seq: int, last_hash: str,
            gaps_allowed: bool = False) -> None:
    if not run:
        return
    contiguous = run[0]["seq"] == last_seq + 1
    must_sign = [sign_check == "each" or i == len(run) - 1 or not contiguous for i in range(len(run))]
    # Every signature first (in parallel when there are many), then the checks in order, so the first
    # failure in the run's order is raised, as when each change was checked in turn.
    signed = [(public, c["hash"], c["sig"]) for c, m in zip(run, must_sign, strict=True) if m]
    failures = iter(_check_signatures(signed))
    for i, change in enumerate(run):
        ref = _ref(change)
        if must_sign[i]:
            failure = next(failures)
            if isinstance(failure, SignatureInvalid):
                raise SignatureInvalid(f"signature of {ref} does not verify with the node's key",
                                       change_ref=change["hash"]) from failure
            if failure is not None:
                raise failure
        if log.change_hash(change) != change["hash"]:
            raise HashMismatch(f"hash of {ref} does not match its content (tampered?)", change_ref=change["hash"])
        if contiguous:
            expected_seq = last_seq + 1 if i == 0 else run[i - 1]["seq"] + 1
            expected_prev = last_hash if i == 0 else run[i - 1]["hash"]
            if change["seq"] != expected_seq:
                if gaps_allowed and sign_check == "each":
                    continue  # a scoped, gapped subset: this change stands on its own signature, checked above
                raise SequenceGap(f"gap before {ref}: expected seq {expected_seq}", change_ref=change["hash"])
            if change["prev"] != expected_prev:
                raise ChainBroken(f"prev of {ref} does not name the previous change", change_ref=change["hash"])


def _verify_runs(run: list[dict[str, Any]], public: str, held: dict[int, log.Change]) -> None:
    """The "runs" check of one node's changes (sorted by seq; `held`: rows held here by seq): hashes and links
    first, then the signatures, each raising its first failure in seq order. The caller stores and applies
    nothing before every change of the batch passed."""
    ends: set[int] = set()
    for i, change in enumerate(run):
        ref = _ref(change)
        if log.change_hash(change) != change["hash"]:
            raise HashMismatch(f"hash of {ref} does not match its content (tampered?)", change_ref=change["hash"])
        before = run[i - 1] if i else None
        if before is not None and change["seq"] == before["seq"]:
            raise ChainBroken(f"two different changes claim {ref}", change_ref=change["hash"])
        if before is not None and change["seq"] == before["seq"] + 1:
            expected: str | None = before["hash"]
        else:  # a segment starts: its first prev must name what is held here at the seq before, if anything
            if before is not None:
                ends.add(i - 1)
            anchor = held.get(change["seq"] - 1)
            expected = log.GENESIS if change["seq"] == 1 else (anchor.hash if anchor is not None else None)
        if expected is not None and change["prev"] != expected:
            raise ChainBroken(f"prev of {ref} does not name the previous change", change_ref=change["hash"])
    if run:
        ends.add(len(run) - 1)

    def anchored(change: dict[str, Any]) -> bool:
        row = held.get(change["seq"])
        return row is not None and row.hash == change["hash"]

    must = [i for i, c in enumerate(run) if c["sig"] or (i in ends and not anchored(c))]
    failures = _check_signatures([(public, run[i]["hash"], run[i]["sig"]) for i in must])
    for i, failure in zip(must, failures, strict=True):
        if isinstance(failure, SignatureInvalid):
            what = "signature" if run[i]["sig"] else "missing signature (the end of a run must carry one)"
            raise SignatureInvalid(f"{what} of {_ref(run[i])} does not verify with the node's key",
                                   change_ref=run[i]["hash"]) from failure
        if failure is not None:
            raise failure


def _verify_each(items: list[tuple[str, str, str]]) -> list[Exception | None]:
    out: list[Exception | None] = []
    for public, change_hash, sig in items:
        try:
            keys.verify(public, bytes.fromhex(change_hash), sig)
            out.append(None)
        except Exception as exc:  # kept, and raised by _verify at this change's turn
            out.append(exc)
    return out


def _check_signatures(items: list[tuple[str, str, str]]) -> list[Exception | None]:
    """keys.verify(public, hash bytes, sig) of each item: the exception each one raised, or None, in order.

    Ed25519 verification releases the GIL, so a long run (a pulled page verifies every signature) is split
    over a few threads: on a node with several cores a pull is no longer bound by one core's verify rate.
    """
    workers = min(MAX_VERIFY_THREADS, os.cpu_count() or 1)
    if workers < 2 or len(items) < PARALLEL_FROM:
        return _verify_each(items)
    size = -(-len(items) // workers)
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [failure for part in _pool(workers).map(_verify_each, chunks) for failure in part]


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="motcua-verify")
        return _POOL


def require_contiguous(run: list[dict[str, Any]], last_seq: int) -> None:
    """Pushes from a node's own log must continue exactly where the receiver stands."""
    if run and run[0]["seq"] != last_seq + 1:
        raise SequenceGap(f"gap: expected seq {last_seq + 1}, got {run[0]['seq']}", change_ref=run[0]["hash"])


def public_key_ok(public: str) -> bool:
    try:
        keys.public_key(public)
    except (ValueError, TypeError):
        return False
    return True
