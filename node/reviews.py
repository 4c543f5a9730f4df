"""What a person decides about conflicts and possible duplicates on a node, and how it is shown.

The records (Conflict, DuplicateFlag) are derived by the merge on every replica; `node.sync.conflicts`
reads them and builds the payload of the decision. Here the node checks who may decide and what they
typed, and writes the decision as ONE signed change through `store.write` in one transaction: a
resolution or a review travels and applies like any other change, and history is never rewritten.

Who may decide on a node (the hub's administrator may decide everything, see central/reviews.py):

    conflict (field or action)   leader, admin       the commune's leader answers for its dossiers' data;
                                                     admin because they run the node for the commune
    possible duplicate           reception, leader,  the counter sees the citizen and the papers
                                 admin

Refusals raise node.errors: ValidationFailed (422, names the form field), PermissionDenied (403),
NotFound (404, also for a record of a unit this node does not serve), TransitionNotAllowed (409, a
conflict already settled). Nothing is written when anything is refused.

`present()` and `FIELD_LABELS` are plain data for the node's pages and the hub's (central/ imports this
module, never node.web).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import store, workflow as wf
from .errors import FIELD_EN, NotFound, PermissionDenied, TransitionNotAllowed, ValidationFailed
from .instance import Node
from .sync import conflicts, hlc
from .sync.state import Dossier, DuplicateFlag, NodeRecord
from .text import nfc
from .timeutil import VN, to_text
from .users import Officer

RESOLVER_ROLES = ("leader", "admin")
DUPLICATE_ROLES = ("reception", "leader", "admin")
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "applicant_name": ("Họ tên người nộp hồ sơ", "Applicant's name"),
    "applicant_birth_date": ("Ngày sinh", "Date of birth"),
    "applicant_address": ("Địa chỉ", "Address"),
    "applicant_phone": ("Điện thoại", "Phone"),
    "applicant_email": ("Thư điện tử", "Email"),
    "owner_name": ("Chủ hồ sơ (nếu khác người nộp)", "Dossier owner (if not the applicant)"),
    "matter": ("Nội dung yêu cầu", "Requested matter"),
    "status": ("Trạng thái hồ sơ (thao tác)", "Dossier status (actions)"),
}

CHOOSE = "Chọn: giữ giá trị này, lấy giá trị kia, hoặc nhập giá trị mới."
# English twins of the field messages this feature shows (node.errors.field_message looks them up there).
for _vi, _en in {
    CHOOSE: "Choose: keep this, take that, or enter a new value.",
    "Địa chỉ thư điện tử không hợp lệ.": "Not a valid email address.",
    "Cần ghi nội dung yêu cầu.": "Give the requested matter.",
    "Trường này không sửa được.": "This field cannot be edited.",
    "Không có gì để sửa.": "Nothing to change.",
    "Nhập giá trị mới.": "Enter the new value.",
}.items():
    FIELD_EN.setdefault(_vi, _en)


def _invalid(exc: conflicts.ResolutionInvalid) -> ValidationFailed:
    FIELD_EN.setdefault(exc.vi, exc.en)
    return ValidationFailed(exc.vi, exc.en, fields={exc.field: exc.vi})


def field_label(name: str, lang: str = "vi") -> str:
    """The field's name for people, in Vietnamese or English."""
    vi, en = FIELD_LABELS.get(name, (name, name))
    return en if lang == "en" else vi


def node_units(node: Node) -> list[str]:
    """The units whose dossiers this node holds: its scope in the key registry, else its own unit."""
    record = NodeRecord.get_or_none(NodeRecord.node_id == node.node_id)
    scope = [u for u in (record.scope if record else "").split(",") if u and u != "*"]
    return sorted(set(scope) | {node.identity.unit_code})


def in_units(unit_code: str, units: list[str] | None) -> bool:
    """Whether a record's unit ("A", or "A,B" for a pair of dossiers of two communes) touches `units`."""
    return units is None or bool(set(unit_code.split(",")) & set(units))


def counts(units: list[str] | None) -> dict[str, int]:
    """Open conflicts and unreviewed possible duplicates (within `units`, or all)."""
    c = conflicts.open_count(units)
    if units is None:
        d = conflicts.open_duplicates_count(None)
    else:
        rows = DuplicateFlag.select(DuplicateFlag.unit_code).where(DuplicateFlag.reviewed == 0).tuples()
        d = sum(1 for (unit,) in rows if in_units(unit, units))
    return {"conflicts": c, "duplicates": d, "total": c + d}


def duplicates(units: list[str] | None, reviewed: bool | None = False, limit: int = 200) -> list[dict[str, Any]]:
    """Possible duplicates touching `units` (or all), both dossiers with their receiving node's unit name."""
    names = _unit_names()
    out = [d for d in conflicts.duplicates(None, reviewed=reviewed, limit=5000) if in_units(d["unit_code"], units)]
    for item in out[:limit]:
        for d in item["dossiers"]:
            d["origin_name"] = names.get(d.get("origin_node") or "", "")
    return out[:limit]


def duplicates_of(dossier_id: str) -> list[dict[str, Any]]:
    """The possible duplicates one dossier is part of, with each receiving node's unit name."""
    names = _unit_names()
    out = conflicts.duplicates_of(dossier_id)
    for item in out:
        for d in item["dossiers"]:
            d["origin_name"] = names.get(d.get("origin_node") or "", "")
    return out


def time_of(version: str) -> str:
    """The local time a version was written, from its HLC (for writes that did not record one)."""
    ms = version.partition("~")[0].partition(".")[0]
    if not ms.isdigit() or not 0 < int(ms) < 10**14:
        return ""
    return to_text(datetime.fromtimestamp(int(ms) / 1000, VN).replace(tzinfo=None))


def _unit_names() -> dict[str, str]:
    return {r.node_id: r.unit_name or r.unit_code for r in NodeRecord.select(NodeRecord.node_id, NodeRecord.unit_name,
                                                                             NodeRecord.unit_code)}


def present(item: dict[str, Any], dossier: Dossier | None, lang: str = "vi",
            local: dict[str, str] | None = None) -> dict[str, Any]:
    """A decoded conflict (conflicts.decode) made ready to show: labels, the unit name of each candidate's
    node, the value now in the dossier, and which candidates differ from it (what "take that" may take)."""
    names = _unit_names()
    names.update(local or {})
    field = item["field"]
    current = getattr(dossier, field, None) if dossier is not None and item["kind"] == "field" else None
    rows = []
    for c in item["candidates"]:
        row = dict(c, node_name=names.get(c.get("node_id", ""), ""), at=c.get("at") or time_of(c.get("version", "")))
        if item["kind"] == "status":
            action = wf.ACTIONS.get(c.get("action", ""))
            row["label"] = (action.en if lang == "en" else action.vi) if action else str(c.get("action", ""))
        else:
            value = c.get("value")
            row["label"] = "" if value is None else str(value)
            row["is_current"] = dossier is not None and value == current
        # What the dossier shows now: after "take that" or a new value that is no longer the merge's winner.
        row["applied_now"] = row.get("applied", c.get("winner")) if item["kind"] == "status" else (
            row["is_current"] if dossier is not None else c.get("winner"))
        rows.append(row)
    resolution = item.get("resolution") or {}
    return dict(item, label=field_label(field, lang), candidates=rows, current=current,
                code=dossier.code if dossier else item.get("code", ""),
                applicant_name=dossier.applicant_name if dossier else item.get("applicant_name", ""),
                dossier_status=dossier.status if dossier else None, resolution=resolution)


def of_dossier(d: Dossier, lang: str = "vi", local: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every conflict of a dossier, open first, ready to show."""
    return [present(item, d, lang, local) for item in conflicts.of_dossier(d.id)]


def retry_actions(officer: Officer, item: dict[str, Any], d: Dossier | None) -> list[str]:
    """Of a status conflict's actions that were not applied, those the officer may do again now."""
    if d is None or item["kind"] != "status":
        return []
    allowed = {a.name for a in wf.allowed_actions(officer, d)}
    return sorted({c.get("action", "") for c in item["candidates"]
               if not c.get("applied", c.get("winner"))} & allowed)


# ---------------------------------------------------------------- decisions

def _conflict_in_scope(node: Node, conflict_id: str) -> dict[str, Any]:
    item = conflicts.get(conflict_id) if isinstance(conflict_id, str) and len(conflict_id) <= 300 else None
    if item is None or item["unit_code"] not in node_units(node):
        raise NotFound("Không tìm thấy xung đột này.", "No such conflict.")
    return item


def check_new_value(field: str, value: Any) -> str:
    """A typed replacement value, cleaned; ValidationFailed naming the form field "value" otherwise."""
    if value is None:
        raise ValidationFailed("Nhập giá trị mới.", "Enter the new value.", fields={"value": "Nhập giá trị mới."})
    try:
        return wf.validate_edit_value(field, value)
    except ValidationFailed as exc:
        message = next(iter(exc.fields.values()), exc.vi)
        raise ValidationFailed("Giá trị mới chưa hợp lệ.", "The new value is not valid.",
                               fields={"value": message}) from None


def resolve_conflict(node: Node, officer: Officer, conflict_id: str, choice: str, take: str | None = None,
                     value: Any = None) -> dict[str, Any]:
    """Record a leader's (or admin's) decision on an open conflict as one signed change; returns the change.

    choice "keep": the applied value stays; "take": the candidate whose version is `take` is written again;
    "new": `value` (checked like an edit of that field) is written. Status conflicts take "keep" only.
    """
    if not officer.has(*RESOLVER_ROLES):
        raise PermissionDenied("Chỉ lãnh đạo hoặc quản trị viên được giải quyết xung đột.",
                               "Only a leader or an administrator may settle conflicts.")
    if choice not in conflicts.CHOICES:
        raise ValidationFailed(CHOOSE, FIELD_EN[CHOOSE], fields={"choice": CHOOSE})
    with store.transaction(node):
        item = _conflict_in_scope(node, conflict_id)
        if item["resolved"]:
            raise TransitionNotAllowed("Xung đột này đã được giải quyết.", "This conflict is already settled.")
        if choice == "new" and item["kind"] == "field":
            value = check_new_value(item["field"], value)
        if choice == "take" and not isinstance(take, str):
            take = None
        try:
            entity, entity_id, op, payload = conflicts.resolution(conflict_id, choice, take=take, value=value)
        except conflicts.ResolutionInvalid as exc:
            raise _invalid(exc) from None
        payload.update(by_name=officer.full_name, at=to_text(node.now()))
        observe_versions(node.clock, payload["covers"])
        return store.write(node, entity, entity_id, op, payload, officer.id)


def observe_versions(clock: hlc.Clock, versions: list[str]) -> None:
    """Move the signing clock past every version a decision settles, so the decision (and the value it
    writes) is later than all of them even when the writer's clock is behind theirs."""
    for version in versions:
        try:
            clock.observe(hlc.Timestamp.parse(str(version).partition("~")[0]))
        except ValueError:
            continue


def review_duplicate(node: Node, officer: Officer, flag_id: str, decision: str, note: str = "") -> dict[str, Any]:
    """Record a review of a possible duplicate (two different dossiers, or the same one twice) as one signed
    change; returns the change. A later review replaces an earlier one (the latest by version is shown)."""
    if not officer.has(*DUPLICATE_ROLES):
        raise PermissionDenied("Vai trò của bạn không được xem xét hồ sơ trùng.",
                               "Your role may not review possible duplicates.")
    note = nfc(note).strip() if isinstance(note, str) else note
    with store.transaction(node):
        flag = _duplicate_row(flag_id)
        if flag is None or not in_units(flag["unit_code"], node_units(node)):
            raise NotFound("Không tìm thấy cặp hồ sơ này.", "No such pair of dossiers.")
        try:
            entity, entity_id, op, payload = conflicts.review(flag_id, decision, note)
        except conflicts.ResolutionInvalid as exc:
            raise _invalid(exc) from None
        payload.update(by_name=officer.full_name, at=to_text(node.now()))
        return store.write(node, entity, entity_id, op, payload, officer.id)


def _duplicate_row(flag_id: str) -> dict[str, Any] | None:
    if not isinstance(flag_id, str) or len(flag_id) > 300:
        return None
    row = DuplicateFlag.get_or_none(DuplicateFlag.id == flag_id)
    return None if row is None else {"id": row.id, "unit_code": row.unit_code, "dossier_a": row.dossier_a}


def duplicate(flag_id: str, units: list[str] | None) -> dict[str, Any] | None:
    """One possible duplicate with both dossiers (conflicts.duplicates' shape), if it is within `units`."""
    row = _duplicate_row(flag_id)
    if row is None or not in_units(row["unit_code"], units):
        return None
    found = [d for d in conflicts.duplicates_of(row["dossier_a"]) if d["id"] == flag_id]
    if not found:
        return None
    item = found[0]
    names = _unit_names()
    for d in item["dossiers"]:
        d["origin_name"] = names.get(d.get("origin_node") or "", "")
    return item
