"""The hub administrator's pages for hub users and the audit view (role admin only).

    GET  /admin/users                      hub users with their roles and state, and the form to add one
    POST /admin/users                      add a user (argon2id password); bad input: 422, nothing written
    POST /admin/users/<username>/active    lock (active=0) or unlock (active=1) a user's login
    POST /admin/users/<username>/agency    tie a specialist or leader to the agency they act for
    GET  /audit?unit=&node=&author=&q=&entity=&from=&to=&page=
                                           who did what, from the change log, newest first, 50 a page

The audit view reads the hub's `Change` table: each row shows when (from the HLC), the node and its
unit's name (NodeRecord), the author (an officer's name when known), the entity, the dossier code and the
payload with every citizen ID number removed (`redact`). `q` is a dossier code or an entity id.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import peewee as pw
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from node.sync.log import Change
from node.sync.merge import MODELS
from node.sync.state import Dossier, NodeRecord, User
from node.timeutil import VN, display
from node.workflow import AGENCIES

from . import hubauth
from .i18n import gettext as _
from .models import ChangeScope
from .views import admin_required

bp = Blueprint("admin", __name__)
PAGE_SIZE = 50
PAYLOAD_SHOWN = 600  # characters of a payload shown in the table
ENTITIES = tuple(MODELS)
HIDDEN = ("id_number", "password")  # keys containing these are never shown


def hub():
    return current_app.extensions["motcua_hub"]


# ---------------------------------------------------------------- users

def _users_page(errors: dict[str, str] | None = None, form: dict[str, Any] | None = None, status: int = 200):
    return render_template("admin/users.html", users=hubauth.users(), roles=hubauth.ROLES, errors=errors or {},
                           agencies=AGENCIES,
                           form=form or {"username": "", "full_name": "", "roles": [], "agency": ""}), status


@bp.get("/admin/users")
@admin_required
def users():
    return _users_page()


@bp.post("/admin/users")
@admin_required
def add_user():
    form = {"username": request.form.get("username", ""), "full_name": request.form.get("full_name", ""),
            "roles": request.form.getlist("roles"), "agency": request.form.get("agency", "")}
    try:
        hubauth.add_user(hub().storage, form["username"], form["full_name"], form["roles"],
                         request.form.get("password", ""), form["agency"])
    except hubauth.UserInvalid as exc:
        flash(_(exc.message), "error")
        return _users_page({k: _(v) for k, v in exc.fields.items()}, form, 422)
    flash(_("Đã thêm người dùng {user}.", user=hubauth.clean_username(form["username"])), "success")
    return redirect(url_for("admin.users"), 303)


@bp.post("/admin/users/<username>/active")
@admin_required
def set_active(username: str):
    wanted = request.form.get("active", "")
    if wanted not in ("0", "1"):
        flash(_("Yêu cầu không hợp lệ."), "error")
        return _users_page(status=400)
    if wanted == "0" and hubauth.clean_username(username) == g.hub_user["username"]:
        flash(_("Không thể tự khóa tài khoản của mình."), "error")
        return _users_page(status=409)
    try:
        hubauth.set_active(hub().storage, username, wanted == "1")
    except hubauth.UserInvalid as exc:
        flash(_(exc.message), "error")
        return _users_page(status=404)
    flash(_("Đã mở khóa {user}.", user=username) if wanted == "1" else _("Đã khóa {user}.", user=username),
          "success")
    return redirect(url_for("admin.users"), 303)


@bp.post("/admin/users/<username>/agency")
@admin_required
def set_agency(username: str):
    if "agency" not in request.form:
        flash(_("Yêu cầu không hợp lệ."), "error")
        return _users_page(status=400)
    try:
        user = hubauth.set_agency(hub().storage, username, request.form["agency"])
    except hubauth.UserInvalid as exc:
        missing = "username" in exc.fields
        flash(" ".join([_(exc.message)] + [_(v) for k, v in exc.fields.items() if k != "username"]), "error")
        return _users_page(status=404 if missing else 422)
    flash(_("Đã lưu cơ quan của {user}.", user=user["username"]), "success")
    return redirect(url_for("admin.users"), 303)


# ---------------------------------------------------------------- audit

def redact(value: Any) -> Any:
    """The value without any key naming an ID number (applicant_id_number, ...) or a password hash."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if not any(h in k for h in HIDDEN)}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _ms(day: date) -> str:
    """The HLC text of midnight (Vietnam time) starting `day`."""
    return f"{int(datetime(day.year, day.month, day.day, tzinfo=VN).timestamp() * 1000):016d}"


def _day(text: str, errors: dict[str, str], key: str) -> date | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        errors[key] = _("Ngày theo dạng YYYY-MM-DD.")
        return None


def _filters() -> tuple[dict[str, str], dict[str, str], int]:
    args = {k: request.args.get(k, "").strip()[:80] for k in ("unit", "node", "author", "q", "entity", "from", "to")}
    errors: dict[str, str] = {}
    if args["entity"] and args["entity"] not in ENTITIES:
        errors["entity"] = _("Loại dữ liệu không hợp lệ.")
    page_text = request.args.get("page", "1")
    page = int(page_text) if page_text.isdigit() and 0 < int(page_text) <= 100000 else 0
    if not page:
        errors["page"] = _("Số trang không hợp lệ.")
    return args, errors, page or 1


def _query(args: dict[str, str], errors: dict[str, str]):
    cond = pw.SQL("1 = 1")
    query = Change.select()
    if args["unit"]:
        query = query.join(ChangeScope, on=(ChangeScope.change_id == Change.id))
        cond &= ChangeScope.scope == args["unit"]
    if args["node"]:
        cond &= Change.node_id == args["node"]
    if args["author"]:
        ids = [u.id for u in User.select(User.id).where(User.username == args["author"])]
        cond &= Change.author.in_(ids + [args["author"]])
    if args["entity"] and not errors.get("entity"):
        cond &= Change.entity == args["entity"]
    if args["q"]:
        d = Dossier.get_or_none(Dossier.code == args["q"])
        if d is not None:
            cond &= (Change.entity_id == d.id) | Change.payload.contains(d.id)
        else:
            cond &= Change.entity_id == args["q"]
    start, end = _day(args["from"], errors, "from"), _day(args["to"], errors, "to")
    if start and end and end < start:
        errors["to"] = _("Ngày kết thúc phải sau ngày bắt đầu.")
    if start:
        cond &= Change.hlc >= _ms(start)
    if end:
        cond &= Change.hlc < _ms(end + timedelta(days=1))
    return query.where(cond)


def _dossier_id(change: Change, payload: dict[str, Any]) -> str:
    if change.entity == "dossier":
        return change.entity_id
    fields = payload.get("fields") if isinstance(payload.get("fields"), dict) else payload
    value = fields.get("dossier_id") if isinstance(fields, dict) else None
    return value if isinstance(value, str) else ""


def _rows(changes: list[Change]) -> list[dict[str, Any]]:
    payloads = {c.id: json.loads(c.payload or "{}") for c in changes}
    dossier_ids = {c.id: _dossier_id(c, payloads[c.id]) for c in changes}
    wanted = {i for i in dossier_ids.values() if i}
    codes = dict(Dossier.select(Dossier.id, Dossier.code).where(Dossier.id.in_(list(wanted))).tuples()) \
        if wanted else {}
    nodes = {r.node_id: r for r in NodeRecord.select().where(NodeRecord.node_id.in_({c.node_id for c in changes}))}
    authors = {c.author for c in changes if c.author}
    names = dict(User.select(User.id, User.full_name).where(User.id.in_(list(authors))).tuples()) if authors else {}
    rows = []
    for c in changes:
        ms = int(c.hlc.partition(".")[0] or 0)
        when = datetime.fromtimestamp(ms / 1000, VN).strftime("%Y-%m-%d %H:%M:%S")
        record = nodes.get(c.node_id)
        shown = json.dumps(redact(payloads[c.id]), ensure_ascii=False, sort_keys=True)
        rows.append({"id": c.id, "at": display(when), "node_id": c.node_id, "seq": c.seq,
                     "unit_name": (record.unit_name or record.unit_code) if record else "",
                     "node_kind": record.kind if record else "", "author": c.author,
                     "author_name": names.get(c.author, ""), "entity": c.entity, "entity_id": c.entity_id,
                     "op": c.op, "action": payloads[c.id].get("action", "") if c.entity == "dossier" else "",
                     "dossier_code": codes.get(dossier_ids[c.id], ""), "applied": bool(c.applied),
                     "payload": shown if len(shown) <= PAYLOAD_SHOWN else shown[:PAYLOAD_SHOWN] + "…"})
    return rows


@bp.get("/audit")
@admin_required
def audit():
    args, errors, page = _filters()
    query = _query(args, errors)
    rows, total = [], 0
    if not errors:
        total = query.count()
        rows = _rows(list(query.order_by(Change.id.desc()).paginate(page, PAGE_SIZE)))
    units = sorted({(n["unit_code"], n.get("unit_name") or n["unit_code"]) for n in hub().storage.nodes()
                    if n["kind"] != "hub" and n.get("unit_code")}, key=lambda u: u[1])
    nodes = [(n["node_id"], n.get("unit_name") or n["node_id"]) for n in hub().storage.nodes()]
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template("admin/audit.html", rows=rows, args=args, errors=errors, page=page, pages=pages,
                           total=total, units=units, nodes=nodes, entities=ENTITIES), (400 if errors else 200)
