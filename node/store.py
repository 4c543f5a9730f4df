"""The one function through which every synced write goes.

`write()` appends a signed change to the log and applies it to the materialised tables in the same
transaction, so the log and the state can never disagree. `apply_change()` is also the path for changes
received from elsewhere (sync, bundles), so state is always the merge of the log.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any
from collections.abc import Iterator

from .instance import Node
from .sync import log, merge
from .sync.state import Dossier
from .text import fold


@contextmanager
def transaction(node: Node) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT around a group of writes (nested calls join the outer one)."""
    with node.write_lock, node.db.atomic():
        yield


def write(node: Node, entity: str, entity_id: str, op: str, payload: dict[str, Any], author: str = "") -> dict:
    """Record one change (signed, chained) and apply it. Must run inside `transaction(node)`."""
    if not node.db.in_transaction():
        raise RuntimeError("store.write must run inside store.transaction()")
    change = log.append(
        key=node.key,
        node_id=node.node_id,
        clock=node.clock,
        entity=entity,
        entity_id=entity_id,
        op=op,
        payload=payload,
        author=author,
    )
    applied = apply_change(change)
    if not applied:
        log.Change.update(applied=0).where(log.Change.hash == change["hash"]).execute()
    if node.on_write is not None:
        node.on_write(change)  # e.g. the sync thread's nudge: cheap, never raises
    return change


def apply_change(change: dict[str, Any]) -> bool:
    """Apply a (verified) change to the state and keep the node's search index in step."""
    applied = merge.apply(change)
    if change["entity"] == "calendar_day":
        from .catalogue import forget_calendar

        forget_calendar()
    if change["entity"] in ("dossier", "conflict") and change["op"] in ("create", "update", "resolve"):
        payload = change["payload"]
        fields = payload.get("fields") or payload.get("set") or {}
        if "applicant_name" in fields:
            index_name(payload.get("dossier_id") if change["entity"] == "conflict" else change["entity_id"])
    return applied


def index_name(dossier_id: str) -> None:
    db = Dossier._meta.database
    rowid = db.execute_sql("SELECT rowid, applicant_name FROM dossier WHERE id = ?", (dossier_id,)).fetchone()
    if rowid is None:
        return
    db.execute_sql("DELETE FROM dossier_fts WHERE rowid = ?", (rowid[0],))
    db.execute_sql("INSERT INTO dossier_fts (rowid, name) VALUES (?, ?)", (rowid[0], fold(rowid[1])))
