"""Conflict records and possible duplicates: what a person reviews, and the changes that settle them.

The records themselves are derived by the merge (node/sync/merge.py, node/sync/dossiers.py) on every
replica alike; this module reads them and builds the payload of the signed change a person's decision
becomes. Node and hub both write that change through their own log (`node.store.write`, the hub's
`storage.write_change`), so a resolution travels and applies like any other change:

    entity "conflict",  op "resolve", entity_id = conflict id,
        {dossier_id, unit, covers: [candidate versions], choice: keep|take|new,
         set?: {field: value}, base?: {field: version}}
    entity "duplicate", op "review",  entity_id = flag id,
        {dossier_ids: [a, b], unit, decision: distinct|duplicate, note}

Choices on a field conflict: "keep" leaves the applied value (the winner) as it is, "take" writes the
chosen other candidate's value again, "new" writes a value the person typed; the last two are field writes
based on the current version, so history is never rewritten. On a status conflict only "keep" exists here:
doing the other action again is a normal workflow action when the machine still allows it.
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw

from .state import Conflict, Dossier, DuplicateFlag

CHOICES = ("keep", "take", "new")
DECISIONS = ("distinct", "duplicate")


class ResolutionInvalid(ValueError):
    """A decision that cannot be recorded: names the field of the form that is wrong."""

    def __init__(self, vi: str, en: str, field: str = "choice"):
        super().__init__(en)
        self.vi, self.en, self.field = vi, en, field


def decode(row: Conflict) -> dict[str, Any]:
    """A conflict row as plain data: candidates decoded, the winner marked, values as JSON values."""
    candidates = json.loads(row.candidates or "[]")
    for c in candidates:
        c["winner"] = c["version"] == row.winner
    return {"id": row.id, "dossier_id": row.dossier_id, "unit_code": row.unit_code, "kind": row.kind,
            "field": row.field, "base": row.base, "candidates": candidates, "winner": row.winner,
            "resolved": bool(row.resolved), "resolution": json.loads(row.resolution) if row.resolution else None}


def _units(query, model, unit_codes):
    return query if unit_codes is None else query.where(model.unit_code.in_(list(unit_codes)))


def open_count(unit_codes: list[str] | None = None) -> int:
    """Open conflicts (within these units, or all)."""
    return _units(Conflict.select(), Conflict, unit_codes).where(Conflict.resolved == 0).count()


def listing(unit_codes: list[str] | None = None, *, resolved: bool | None = False, limit: int = 100,
            offset: int = 0) -> list[dict[str, Any]]:
    """Conflicts with their dossier's code and applicant name, newest base first."""
    query = (Conflict.select(Conflict, Dossier.code, Dossier.applicant_name, Dossier.status)
             .join(Dossier, pw.JOIN.LEFT_OUTER, on=(Dossier.id == Conflict.dossier_id)))
    query = _units(query, Conflict, unit_codes)
    if resolved is not None:
        query = query.where(Conflict.resolved == (1 if resolved else 0))
    out = []
    for row in query.order_by(Conflict.base.desc(), Conflict.id).limit(limit).offset(offset):
        item = decode(row)
        dossier = getattr(row, "dossier", None)
        item.update(code=getattr(dossier, "code", "") or "", applicant_name=getattr(dossier, "applicant_name", ""),
                    status=getattr(dossier, "status", None))
        out.append(item)
    return out


def of_dossier(dossier_id: str) -> list[dict[str, Any]]:
    """Every conflict of one dossier (open first), for the field-by-field view."""
    rows = Conflict.select().where(Conflict.dossier_id == dossier_id).order_by(Conflict.resolved, Conflict.field)
    return [decode(r) for r in rows]


def get(conflict_id: str) -> dict[str, Any] | None:
    row = Conflict.get_or_none(Conflict.id == conflict_id)
    return decode(row) if row is not None else None


def resolution(conflict_id: str, choice: str, *, take: str | None = None, value: Any = None,
               current_version: str | None = None) -> tuple[str, str, str, dict[str, Any]]:
    """(entity, entity_id, op, payload) of the change recording a decision on an open conflict.

    `take` names the candidate version whose value is taken (choice "take"); `value` is the new value
    (choice "new"), already validated by the caller as a value of that field (workflow.validate_edit).
    `current_version` is the field's version now (the dossier's field_versions), the base of the write.
    """
    row = Conflict.get_or_none(Conflict.id == conflict_id)
    if row is None:
        raise ResolutionInvalid("Không tìm thấy xung đột này.", "No such conflict.", "conflict")
    item = decode(row)
    if choice not in CHOICES:
        raise ResolutionInvalid("Chọn: giữ giá trị này, lấy giá trị kia, hoặc nhập giá trị mới.",
                                "Choose: keep this, take that, or enter a new value.")
    if item["kind"] == "status" and choice != "keep":
        raise ResolutionInvalid("Xung đột thao tác chỉ có thể xác nhận; thực hiện lại thao tác nếu cần.",
                                "An action conflict can only be acknowledged; perform the action again if needed.")
    dossier = Dossier.get_or_none(Dossier.id == row.dossier_id)
    payload: dict[str, Any] = {"dossier_id": row.dossier_id, "unit": row.unit_code,
                               "covers": [c["version"] for c in item["candidates"]], "choice": choice}
    if choice in ("take", "new"):
        if choice == "take":
            chosen = [c for c in item["candidates"] if c["version"] == take]
            if not chosen:
                raise ResolutionInvalid("Chọn một trong các giá trị đang xung đột.",
                                        "Pick one of the conflicting values.", "take")
            value = chosen[0]["value"]
        if dossier is None:
            raise ResolutionInvalid("Hồ sơ chưa có trên máy này.", "The dossier is not on this replica yet.",
                                    "conflict")
        base = current_version if current_version is not None else json.loads(
            dossier.field_versions or "{}").get(row.field, dossier.version)
        payload.update(set={row.field: value}, base={row.field: base})
    return "conflict", row.id, "resolve", payload


def duplicates(unit_codes: list[str] | None = None, *, reviewed: bool | None = False,
               limit: int = 100) -> list[dict[str, Any]]:
    """Possible duplicates with both dossiers' codes and names."""
    query = _units(DuplicateFlag.select(), DuplicateFlag, unit_codes)
    if reviewed is not None:
        query = query.where(DuplicateFlag.reviewed == (1 if reviewed else 0))
    rows = list(query.order_by(DuplicateFlag.id).limit(limit))
    ids = {r.dossier_a for r in rows} | {r.dossier_b for r in rows}
    dossiers = {d.id: d for d in Dossier.select().where(Dossier.id.in_(sorted(ids)))} if ids else {}
    out = []
    for r in rows:
        pair = []
        for ref in (r.dossier_a, r.dossier_b):
            d = dossiers.get(ref)
            pair.append({"id": ref, "code": d.code if d else "", "applicant_name": d.applicant_name if d else "",
                         "received_at": d.received_at if d else "", "origin_node": d.origin_node if d else "",
                         "status": d.status if d else None})
        out.append({"id": r.id, "unit_code": r.unit_code, "procedure_code": r.procedure_code,
                    "reviewed": bool(r.reviewed), "decision": r.decision, "note": r.note,
                    "reviewed_by": r.reviewed_by, "reviewed_at": r.reviewed_at, "dossiers": pair})
    return out


def open_duplicates_count(unit_codes: list[str] | None = None) -> int:
    return _units(DuplicateFlag.select(), DuplicateFlag, unit_codes).where(DuplicateFlag.reviewed == 0).count()


def duplicates_of(dossier_id: str) -> list[dict[str, Any]]:
    rows = DuplicateFlag.select(DuplicateFlag.id).where(
        (DuplicateFlag.dossier_a == dossier_id) | (DuplicateFlag.dossier_b == dossier_id)).tuples()
    ids = {r[0] for r in rows}
    return [d for d in duplicates(None, reviewed=None, limit=1000) if d["id"] in ids] if ids else []


def review(flag_id: str, decision: str, note: str = "") -> tuple[str, str, str, dict[str, Any]]:
    """(entity, entity_id, op, payload) of a person's review of a duplicate flag."""
    row = DuplicateFlag.get_or_none(DuplicateFlag.id == flag_id)
    if row is None:
        raise ResolutionInvalid("Không tìm thấy cặp hồ sơ này.", "No such pair of dossiers.", "flag")
    if decision not in DECISIONS:
        raise ResolutionInvalid("Chọn: hai hồ sơ khác nhau, hoặc trùng nhau.",
                                "Choose: two different dossiers, or the same one twice.", "decision")
    if not isinstance(note, str) or len(note) > 500:
        raise ResolutionInvalid("Ghi chú tối đa 500 ký tự.", "A note of at most 500 characters.", "note")
    return "duplicate", row.id, "review", {"dossier_ids": [row.dossier_a, row.dossier_b], "unit": row.unit_code,
                                           "decision": decision, "note": note}
