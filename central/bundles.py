"""Bundles at the hub (node.sync.bundle): communes with no link at all exchange changes on a USB stick.

    import_bundle(hub, FILE)            a node's bundle: magic, version, recipient = this hub, the sender an
                                        enrolled node (unknown, revoked, quarantined: the push's 403 messages),
                                        its signature, then every frame decrypted and parsed, BEFORE anything is
                                        written; then exactly the push path (`storage.ingest_push`), one
                                        serialised transaction per batch of PUSH_BATCH; files last, each checked
                                        against its SHA-256 and kept only when an attachment mentions it
    export_bundle(hub, NODE_ID, FILE)   what a pull from the start would give the node (changes of its scope and
                                        the global one, not its own, in hub order), encrypted to its registered
                                        key and signed by the hub; with the hub's acknowledged seq of that node,
                                        so a node that never goes online learns what the hub holds

Importing twice, or an old bundle after a newer one, stores nothing new: ingest skips changes already held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peewee as pw

from node import __version__
from node.sync import bundle, encoding, ingest, log, protocol
from node.sync.errors import SyncError
from node.sync.log import Change
from node.timeutil import to_text

from .errors import HubError, NotFound, RequestRefused
from .models import ChangeScope


def _registered(hub, node_id: str) -> dict[str, Any]:
    """The node's registry record; UnknownNode as a push from it would get."""
    record = hub.storage.node_record(node_id)
    if record is None or record.get("kind") == "hub":
        raise ingest.UnknownNode(f"node {node_id} is not enrolled at this hub; enroll it with "
                                 f"`motcua node enroll --hub URL --token TOKEN` first")
    return record


def _may_push(hub, node_id: str) -> None:
    """Refuse a revoked or quarantined sender, in the words a push from it would get."""
    record = _registered(hub, node_id)
    if record["status"] == "revoked":
        raise ingest.NodeRevoked(f"node {node_id} was revoked on {record.get('revoked_at') or 'an earlier date'} "
                                 f"by the hub administrator; its requests and changes are refused")
    if record["status"] == "quarantined":
        raise ingest.NodeQuarantined(f"node {node_id} is quarantined after a fork in its change log (two versions "
                                     f"of the same change); the hub administrator must review it before it may "
                                     f"push again")


def import_bundle(hub, source: Path) -> dict[str, Any]:
    """Check a node's bundle whole, then ingest it batch by batch through the push path; returns the counts."""
    opened = bundle.open_bundle(Path(source), direction=bundle.TO_HUB, recipient_id=hub.node_id,
                                recipient_key=hub.key, sender_key=lambda s: _registered(hub, s)["public_key"],
                                after_signature=lambda s: _may_push(hub, s))
    sender = opened.header["sender"]
    sink = bundle.FileSink(hub.files.path, lambda sha: hub.storage.file_size(sha) is not None)
    out = {"node": sender, "unit": _registered(hub, sender)["unit_code"], "created": opened.header["created"],
           "stored": 0, "skipped": 0}
    try:
        for kind, value in opened.records():
            if kind == "changes":
                try:
                    result = hub.storage.ingest_push(sender, value, now=hub.now())
                except ingest.ForkDetected as exc:  # recorded, and the node quarantined, by ingest_push
                    exc.message = (f"{exc.message}; node {sender} is now quarantined and the district "
                                   f"administrator alerted (fork #{getattr(exc, 'fork_id', '?')})")
                    raise bundle.stopped(exc, out["stored"]) from exc
                except (SyncError, HubError) as exc:
                    raise bundle.stopped(exc, out["stored"]) from exc
                out["stored"] += result.stored
                out["skipped"] += result.skipped
            elif kind == "chunk":
                sink.add(value)
    finally:
        sink.close()
    out.update(files_stored=sink.stored, files_skipped=sink.skipped, file_bytes=sink.bytes,
               acked_seq=hub.storage.held(sender)[0])
    return out


def _scopes(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    units = [u for u in (record.get("scope") or "").split(",") if u]
    return units, units + [protocol.GLOBAL_SCOPE]


def export_bundle(hub, node_id: str, target: Path, *, with_files: bool = False) -> dict[str, Any]:
    """Write what a pull from the start would give `node_id` (and, optionally, the files) into one bundle."""
    record = hub.storage.node_record(node_id)
    if record is None or record.get("kind") == "hub":
        raise NotFound(f"no node {node_id} is enrolled at this hub")
    if record["status"] == "revoked":
        raise RequestRefused(f"node {node_id} was revoked on {record.get('revoked_at') or 'an earlier date'}; "
                             "nothing is exported for it")
    units, scopes = _scopes(record)
    top = ChangeScope.select(pw.fn.MAX(ChangeScope.change_id)).where(ChangeScope.scope.in_(scopes)).scalar() or 0

    def in_scope(*fields):
        return (Change.select(*fields).join(ChangeScope, on=(ChangeScope.change_id == Change.id))
                .where(ChangeScope.scope.in_(scopes) & (Change.node_id != node_id) & (Change.id <= top)))

    files: dict[str, bundle.FileEntry] = {}
    if with_files:
        query = in_scope(Change.payload).where(Change.entity == "attachment").order_by(Change.id).tuples()
        for (payload,) in query.iterator():
            fields = encoding.decode(payload).get("fields") or {}
            sha, size = fields.get("sha256"), fields.get("size")
            if isinstance(sha, str) and len(sha) == 64 and isinstance(size, int) and sha not in files:
                held, complete = hub.files.held(sha)
                if complete and held == size:
                    files[sha] = bundle.FileEntry(sha, size, hub.files.path(sha))

    def batches():
        after = 0
        while True:
            rows = list(in_scope(Change).where(Change.id > after).order_by(Change.id).limit(protocol.PUSH_BATCH))
            if not rows:
                return
            yield [log.row_to_change(r) for r in rows]
            after = rows[-1].id

    acked_seq, acked_hash = hub.storage.held(node_id)
    written = bundle.write_bundle(
        Path(target), direction=bundle.TO_NODE, sender=hub.node_id, sender_key=hub.key, recipient=node_id,
        recipient_public=record["public_key"], created=to_text(hub.now()), change_count=in_scope(Change.id).count(),
        batches=batches(), files=list(files.values()), file_count=len(files),
        file_bytes=sum(f.size for f in files.values()),
        meta={"acked_seq": acked_seq, "acked_hash": acked_hash}, software_version=__version__)
    return dict(written, node=node_id, unit=record["unit_code"])


__all__ = ["import_bundle", "export_bundle"]
