"""JSON API of conflicts, possible duplicates and editing applicant details (routes of node.web.api's blueprint).

    PATCH /api/v1/dossiers/<code>               correct the applicant's details (reception, specialist, leader)
    GET   /api/v1/conflicts?state=open|resolved|all   conflicts of the node's units, with open counts
    POST  /api/v1/conflicts/<id>/resolve        {choice: keep|take|new, take?, value?} (leader, admin)
    GET   /api/v1/duplicates?state=open|reviewed|all  possible duplicates, with the open count
    POST  /api/v1/duplicates/<id>/review        {decision: distinct|duplicate, note?} (reception, leader, admin)

Imported at the end of node/web/api.py, so these routes join its blueprint (bearer tokens, no CSRF, JSON
errors) before the blueprint is registered. Bodies are checked against the schemas of openapi.py first; a
refused request writes nothing. Described in openapi.py like every other route.
"""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request

from .. import reviews, workflow as wf
from ..errors import NotFound, PermissionDenied, ValidationFailed
from ..sync import conflicts
from ..sync.state import Dossier
from . import current_node
from .api import _paging, _t, bp, dossier_detail, json_body
from .i18n import lang
from .openapi import EDIT_FIELDS, RESOLVE_FIELDS, REVIEW_FIELDS, checked

STATES = {"open": False, "resolved": True, "reviewed": True, "all": None}


def _state(allowed: tuple[str, ...]) -> bool | None:
    raw = request.args.get("state", "open")
    if raw not in allowed:
        raise ValidationFailed("Tham số không hợp lệ.", "Invalid parameter.",
                               fields={"state": ", ".join(allowed)})
    return STATES[raw]


def _units() -> list[str]:
    return reviews.node_units(current_node())


def _local() -> dict[str, str]:
    node = current_node()
    return {node.node_id: node.identity.unit_name}


def conflict_json(item: dict[str, Any], d: Dossier | None) -> dict[str, Any]:
    """A conflict for the API: candidates with the unit name of their node and which one is applied."""
    shown = reviews.present(item, d, lang(), _local())
    keep = ("id", "dossier_id", "unit_code", "kind", "field", "label", "base", "winner", "resolved", "resolution",
            "current", "code", "applicant_name")
    out = {k: shown.get(k) for k in keep}
    out["candidates"] = [dict({k: c.get(k) for k in ("version", "value", "action", "node_id", "node_name", "by_user",
                                                     "by_name", "at", "winner")}, applied=bool(c.get("applied_now")))
                         for c in shown["candidates"]]
    return out


def dossier_conflicts(d: Dossier) -> list[dict[str, Any]]:
    """Every conflict of one dossier (for GET /dossiers/<code>)."""
    return [conflict_json(item, d) for item in conflicts.of_dossier(d.id)]


def _change_ref(change: dict[str, Any]) -> dict[str, Any]:
    return {k: change[k] for k in ("node_id", "seq", "hlc", "hash")}


@bp.patch("/dossiers/<code>")
def edit_dossier(code: str):
    d = wf.get_dossier(code)
    if not g.officer.has("reception", "specialist", "leader"):
        raise PermissionDenied("Vai trò của bạn không được sửa hồ sơ.", "Your role may not edit dossiers.")
    body = json_body()
    data = checked(lang(), body, EDIT_FIELDS)
    data.update({k: v for k, v in body.items() if k not in EDIT_FIELDS})  # refused by name in edit_dossier
    if not data:
        raise ValidationFailed("Không có gì để sửa.", "Nothing to change.",
                               fields={"body": _t("Không có gì để sửa.", "Nothing to change.")})
    return jsonify(dossier_detail(wf.edit_dossier(current_node(), g.officer, d.id, data)))


@bp.get("/conflicts")
def list_conflicts():
    resolved = _state(("open", "resolved", "all"))
    page, size = _paging()
    units = _units()
    rows = conflicts.listing(units, resolved=resolved, limit=size, offset=(page - 1) * size)
    ids = sorted({r["dossier_id"] for r in rows})
    found = {d.id: d for d in Dossier.select().where(Dossier.id.in_(ids))} if ids else {}
    counts = reviews.counts(units)
    return jsonify({"items": [conflict_json(r, found.get(r["dossier_id"])) for r in rows], "page": page,
                    "size": size, "open": counts["conflicts"], "duplicates_open": counts["duplicates"]})


@bp.post("/conflicts/<cid>/resolve")
def resolve_conflict(cid: str):
    if not g.officer.has(*reviews.RESOLVER_ROLES):
        raise PermissionDenied("Chỉ lãnh đạo hoặc quản trị viên được giải quyết xung đột.",
                               "Only a leader or an administrator may settle conflicts.")
    body = checked(lang(), json_body(), RESOLVE_FIELDS)
    change = reviews.resolve_conflict(current_node(), g.officer, cid, body.get("choice", ""), take=body.get("take"),
                                      value=body.get("value"))
    item = conflicts.get(cid)
    if item is None:
        raise NotFound("Không tìm thấy xung đột này.", "No such conflict.")
    d = Dossier.get_or_none(Dossier.id == item["dossier_id"])
    return jsonify({"conflict": conflict_json(item, d), "change": _change_ref(change)})


@bp.get("/duplicates")
def list_duplicates():
    reviewed = _state(("open", "reviewed", "all"))
    units = _units()
    return jsonify({"items": reviews.duplicates(units, reviewed=reviewed),
                    "open": reviews.counts(units)["duplicates"]})


@bp.post("/duplicates/<fid>/review")
def review_duplicate(fid: str):
    if not g.officer.has(*reviews.DUPLICATE_ROLES):
        raise PermissionDenied("Vai trò của bạn không được xem xét hồ sơ trùng.",
                               "Your role may not review possible duplicates.")
    body = checked(lang(), json_body(), REVIEW_FIELDS)
    change = reviews.review_duplicate(current_node(), g.officer, fid, body.get("decision", ""),
                                      body.get("note", ""))
    return jsonify({"duplicate": reviews.duplicate(fid, None), "change": _change_ref(change)})
