"""Verify and store a batch of changes from elsewhere: the one path for a hub receiving a push, a node
applying a pull and either side importing a bundle.

Order of checks for each node's run (design.md §5): key known and not revoked, signature, hash, seq
contiguity, `prev` chain. A batch with one bad change is refused whole (the caller's transaction rolls
back); changes already held with the same hash are skipped, so a replay is a no-op; a change whose seq is
held with another hash is a fork (`ForkDetected`, carrying both versions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import keys, log
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
    every hash and link and only the last signature of each contiguous run, which authenticates the run.
    gaps_allowed=False (a push, a bundle): each node's new changes must continue its log exactly.
    """
    runs: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        change = check_change_shape(change)
        runs.setdefault(change["node_id"], []).append(change)
    out = Outcome()
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
        fresh = []
        for change in run:
            if change["seq"] <= last_seq:
                held = log.Change.get_or_none((log.Change.node_id == node_id) & (log.Change.seq == change["seq"]))
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
        _verify(fresh, public, sign_check, last_seq, last_hash)
        if not gaps_allowed:
            require_contiguous(fresh, last_seq)
        verified.extend(fresh)
    for change in verified:
        applied = apply(change)
        log.store(change, applied=applied)
        out.stored += 1
        out.not_applied += 0 if applied else 1
        out.last_seq[change["node_id"]] = max(out.last_seq.get(change["node_id"], 0), change["seq"])
        out.stored_changes.append(change)
    return out


def _verify(run: list[dict[str, Any]], public: str, sign_check: str, last_seq: int, last_hash: str) -> None:
    if not run:
        return
    contiguous = run[0]["seq"] == last_seq + 1
    for i, change in enumerate(run):
        ref = _ref(change)
        must_sign = sign_check == "each" or i == len(run) - 1 or not contiguous
        if must_sign:
            try:
                keys.verify(public, bytes.fromhex(change["hash"]), change["sig"])
            except SignatureInvalid as exc:
                raise SignatureInvalid(f"signature of {ref} does not verify with the node's key",
                                       change_ref=change["hash"]) from exc
        if log.change_hash(change) != change["hash"]:
            raise HashMismatch(f"hash of {ref} does not match its content (tampered?)", change_ref=change["hash"])
        if contiguous:
            expected_seq = last_seq + 1 if i == 0 else run[i - 1]["seq"] + 1
            expected_prev = last_hash if i == 0 else run[i - 1]["hash"]
            if change["seq"] != expected_seq:
                raise SequenceGap(f"gap before {ref}: expected seq {expected_seq}", change_ref=change["hash"])
            if change["prev"] != expected_prev:
                raise ChainBroken(f"prev of {ref} does not name the previous change", change_ref=change["hash"])


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
