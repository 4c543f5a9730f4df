"""Conflicts, possible duplicates and the editing of applicant details, as officers see them.

    GET  /conflicts                      open (or ?show=resolved) conflicts and possible duplicates of the node
    GET  /conflicts/<id>                 one conflict, field by field, with the choices
    POST /conflicts/<id>/resolve         keep this | take that | enter a new value (leader, admin)
    GET  /duplicates/<id>                both dossiers side by side
    POST /duplicates/<id>                distinct | duplicate + note (reception, leader, admin)
    GET  /dossier/<code>/edit            the edit form alone (also where a refused edit is shown again)
    POST /dossier/<code>/edit            correct the applicant's details (reception, specialist, leader)

The dossier page includes reviews/_dossier.html (edit form, conflicts, duplicates) through the
`dossier_reviews(d)` helper; the header shows `review_counts()` as a badge. Every decision is one signed
change written by node/reviews.py; refusals are node.errors and change nothing.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from .. import reviews, workflow as wf
from ..errors import NotFound, ValidationFailed, field_messages
from ..sync import conflicts
from ..sync.dossiers import EDITABLE
from ..sync.state import Dossier
from . import current_node
from .auth import login_required
from .i18n import gettext as _, lang

bp = Blueprint("reviews", __name__)
EDIT_ROLES = ("reception", "specialist", "leader")
CLOSED = (wf.REFUSED, wf.WITHDRAWN, wf.STOPPED, wf.RETURNED)  # workflow.edit_dossier refuses these


def _local_names() -> dict[str, str]:
    node = current_node()
    return {node.node_id: node.identity.unit_name}


def _next(default: str) -> str:
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else default


@bp.app_context_processor
def _helpers():
    def review_counts():
        if g.get("officer") is None:
            return None
        return reviews.counts(reviews.node_units(current_node()))

    def dossier_reviews(d: Dossier) -> dict:
        items = reviews.of_dossier(d, lang(), _local_names())
        officer = g.officer
        return {
            "conflicts": items,
            "retry": {c["id"]: reviews.retry_actions(officer, c, d) for c in items if not c["resolved"]},
            "duplicates": reviews.duplicates_of(d.id),
            "can_resolve": officer.has(*reviews.RESOLVER_ROLES),
            "can_edit": officer.has(*EDIT_ROLES) and d.status not in CLOSED,
            "editable": EDITABLE,
        }

    return {"review_counts": review_counts, "dossier_reviews": dossier_reviews, "field_label": reviews.field_label}


# ---------------------------------------------------------------- lists

@bp.route("/conflicts")
@login_required()
def index():
    show = "resolved" if request.args.get("show") == "resolved" else "open"
    units = reviews.node_units(current_node())
    rows = conflicts.listing(units, resolved=show == "resolved", limit=200)
    for r in rows:
        r["label"] = reviews.field_label(r["field"], lang())
    dups = reviews.duplicates(units, reviewed=show == "resolved")
    return render_template("reviews/index.html", rows=rows, dups=dups, show=show, counts=reviews.counts(units))


@bp.route("/conflicts/<cid>")
@login_required()
def conflict(cid: str):
    item = conflicts.get(cid) if len(cid) <= 300 else None
    if item is None or not reviews.in_units(item["unit_code"], reviews.node_units(current_node())):
        raise NotFound("Không tìm thấy xung đột này.", "No such conflict.")
    d = Dossier.get_or_none(Dossier.id == item["dossier_id"])
    shown = reviews.present(item, d, lang(), _local_names())
    return render_template("reviews/conflict.html", c=shown, d=d, can_resolve=g.officer.has(*reviews.RESOLVER_ROLES),
                           retry=reviews.retry_actions(g.officer, item, d) if not item["resolved"] else [],
                           errors={}, values={})


@bp.route("/conflicts/<cid>/resolve", methods=["POST"])
@login_required()
def resolve(cid: str):
    form = request.form
    choice = form.get("choice", "")
    try:
        reviews.resolve_conflict(current_node(), g.officer, cid, choice, take=form.get("take") or None,
                                 value=form.get("value"))
    except ValidationFailed as exc:
        # Show the conflict again with the message next to the field, and what was typed.
        item = conflicts.get(cid)
        if item is None:
            raise
        d = Dossier.get_or_none(Dossier.id == item["dossier_id"])
        flash(exc.message(lang()), "error")
        return render_template("reviews/conflict.html", c=reviews.present(item, d, lang(), _local_names()), d=d,
                               can_resolve=g.officer.has(*reviews.RESOLVER_ROLES),
                               retry=reviews.retry_actions(g.officer, item, d),
                               errors=field_messages(exc.fields, lang()), values=form), 422
    flash(_("Đã ghi nhận quyết định về xung đột."), "success")
    return redirect(_next(url_for("reviews.index"))), 303


# ---------------------------------------------------------------- duplicates

@bp.route("/duplicates/<fid>", methods=["GET", "POST"])
@login_required()
def duplicate(fid: str):
    units = reviews.node_units(current_node())
    item = reviews.duplicate(fid, units) if len(fid) <= 300 else None
    if item is None:
        raise NotFound("Không tìm thấy cặp hồ sơ này.", "No such pair of dossiers.")
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            reviews.review_duplicate(current_node(), g.officer, fid, request.form.get("decision", ""),
                                     request.form.get("note", ""))
        except ValidationFailed as exc:
            errors = field_messages(exc.fields, lang())
            flash(exc.message(lang()), "error")
        else:
            flash(_("Đã ghi nhận kết quả xem xét."), "success")
            return redirect(url_for("reviews.duplicate", fid=fid)), 303
    return render_template("reviews/duplicate.html", item=item, errors=errors, values=request.form,
                           can_review=g.officer.has(*reviews.DUPLICATE_ROLES)), (422 if errors else 200)


# ---------------------------------------------------------------- editing the applicant's details

@bp.route("/dossier/<code>/edit", methods=["GET", "POST"])
@login_required(*EDIT_ROLES)
def edit(code: str):
    d = wf.get_dossier(code)
    errors: dict[str, str] = {}
    values = {k: getattr(d, k) for k in EDITABLE}
    if request.method == "POST":
        # Only what was changed is checked and written: a field left as it was never blocks an edit.
        data = {k: request.form[k] for k in EDITABLE if k in request.form and request.form[k] != getattr(d, k)}
        values.update(data)
        before = {k: getattr(d, k) for k in EDITABLE}
        try:
            d = wf.edit_dossier(current_node(), g.officer, d.id, data)
        except ValidationFailed as exc:
            errors = field_messages(exc.fields, lang()) or {"_": exc.message(lang())}
            flash(exc.message(lang()), "error")
        else:
            changed = before != {k: getattr(d, k) for k in EDITABLE}
            flash(_("Đã lưu thông tin hồ sơ.") if changed else _("Không có gì thay đổi."),
                  "success" if changed else "info")
            return redirect(url_for("views.dossier", code=d.code)), 303
    return render_template("reviews/edit.html", d=d, errors=errors, values=values,
                           fields=EDITABLE), (422 if errors else 200)
