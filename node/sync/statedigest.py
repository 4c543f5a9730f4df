"""The state digest: a hash of every synced row about a set of units, to prove replicas agree.

Two replicas holding the same set of changes for a unit must hold byte-identical rows (design.md §4); this
digest compares them: the dossiers of the units, their origin, history, documents, attachments, field
writes, conflicts and decisions, and the duplicate flags whose two dossiers are both in the units.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import encoding
from .state import (Attachment, Conflict, ConflictResolution, Dossier, DossierDocument, DossierEvent, DossierOrigin,
                    DuplicateFlag, DuplicateReview, FieldWrite)

CHUNK = 500


def _chunks(items: list[str]):
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def _rows(model, column, keys: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in _chunks(keys):
        out += list(model.select().where(column.in_(part)).dicts())
    return sorted(out, key=lambda r: r["id"])


def state_rows(units: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Every synced row about the dossiers of `units`, table by table, sorted by id."""
    units = sorted(set(units))
    dossiers = sorted(Dossier.select().where(Dossier.unit_code.in_(units)).dicts(), key=lambda r: r["id"])
    ids = [d["id"] for d in dossiers]
    conflicts = _rows(Conflict, Conflict.dossier_id, ids)
    flags = [f for f in _rows(DuplicateFlag, DuplicateFlag.dossier_a, ids) if f["dossier_b"] in set(ids)]
    return {
        "dossier": dossiers,
        "origin": _rows(DossierOrigin, DossierOrigin.id, ids),
        "event": _rows(DossierEvent, DossierEvent.dossier_id, ids),
        "document": _rows(DossierDocument, DossierDocument.dossier_id, ids),
        "attachment": _rows(Attachment, Attachment.dossier_id, ids),
        "field_write": _rows(FieldWrite, FieldWrite.entity_id, ids),
        "conflict": conflicts,
        "resolution": _rows(ConflictResolution, ConflictResolution.conflict_id, [c["id"] for c in conflicts]),
        "duplicate": flags,
        "review": _rows(DuplicateReview, DuplicateReview.flag_id, [f["id"] for f in flags]),
    }


def state_digest(units: Iterable[str]) -> str:
    """SHA-256 of the canonical encoding of `state_rows(units)`."""
    return encoding.sha256_hex(encoding.canonical(state_rows(units)))
