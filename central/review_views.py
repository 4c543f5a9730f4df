"""The district administrator's pages for conflicts and possible duplicates of every commune.

    GET  /conflicts?unit=&state=open|resolved    list, filtered by commune, with the possible duplicates
    GET  /conflicts/<id>                         one conflict, field by field, with the three choices
    POST /conflicts/<id>/resolve                 keep this | take that | enter a new value
    GET  /duplicates/<id>, POST /duplicates/<id> both dossiers side by side; distinct | duplicate + note
    GET  /conflicts.json?unit=&state=            open counts (per commune) and the listing, as JSON

Every page needs a hub administrator's login (role admin) (session, CSRF on every form); the header shows the open
counts (`review_counts()`), so they are on the nodes dashboard too. Decisions are written by
central/reviews.py, one hub-signed change each; a refusal shows its message and writes nothing.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, url_for

from node.timeutil import display
from node.workflow import status_label

from . import reviews
from .i18n import gettext as _, lang
from .views import admin_required

bp = Blueprint("reviews", __name__)


def hub():
    return current_app.extensions["motcua_hub"]


def _unit_arg() -> str | None:
    unit = request.values.get("unit", "")
    return unit if unit and len(unit) <= 64 else None


def _page(template: str, **context):
    return render_template(template, dt=display, status_label=status_label, **context)


def _message(exc: reviews.ReviewRefused) -> str:
    return exc.en if lang() == "en" else exc.vi


@bp.app_context_processor
def _helpers():
    def review_counts():
        if g.get("hub_user") is None or "admin" not in g.get("hub_roles", ()):
            return None
        return reviews.counts()

    return {"review_counts": review_counts}


@bp.get("/conflicts")
@admin_required
def index():
    unit = _unit_arg()
    show = "resolved" if request.args.get("state") == "resolved" else "open"
    rows = reviews.listing(unit, resolved=show == "resolved", lang_code=lang())
    dups = reviews.duplicates(unit, reviewed=show == "resolved")
    return _page("reviews/index.html", rows=rows, dups=dups, show=show, unit=unit or "",
                           units=reviews.units(hub()), counts=reviews.counts(unit))


@bp.get("/conflicts.json")
def as_json():
    if g.get("hub_user") is None:
        return jsonify({"error": {"code": "unauthorized", "message": _("Vui lòng đăng nhập.")}}), 401
    if "admin" not in g.hub_roles:
        message = _("Vai trò của bạn không được dùng trang này.")
        return jsonify({"error": {"code": "forbidden", "message": message}}), 403
    unit = _unit_arg()
    state = request.args.get("state", "open")
    resolved = {"open": False, "resolved": True, "all": None}.get(state, False)
    per_unit = {u["code"]: dict(reviews.counts(u["code"]), name=u["name"]) for u in reviews.units(hub())}
    return jsonify({"open": reviews.counts(unit), "units": per_unit,
                    "items": reviews.listing(unit, resolved=resolved, lang_code=lang()),
                    "duplicates": reviews.duplicates(unit, reviewed=None if resolved is None else resolved)})


def _conflict_page(cid: str, errors: dict | None = None, values=None, status: int = 200):
    item, d = reviews.shown(cid, lang())
    return _page("reviews/conflict.html", c=item, d=d, errors=errors or {}, values=values or {},
                           ), status


@bp.get("/conflicts/<cid>")
@admin_required
def conflict(cid: str):
    return _conflict_page(cid)


@bp.post("/conflicts/<cid>/resolve")
@admin_required
def resolve(cid: str):
    form = request.form
    try:
        reviews.resolve_conflict(hub(), g.hub_user, cid, form.get("choice", ""), take=form.get("take") or None,
                                 value=form.get("value"))
    except reviews.ReviewRefused as exc:
        if exc.http_status != 422:
            raise
        flash(_message(exc), "error")
        return _conflict_page(cid, {exc.field or "choice": _message(exc)}, form, 422)
    flash(_("Đã ghi nhận quyết định về xung đột."), "success")
    return redirect(url_for("reviews.conflict", cid=cid), 303)


@bp.route("/duplicates/<fid>", methods=["GET", "POST"])
@admin_required
def duplicate(fid: str):
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            reviews.review_duplicate(hub(), g.hub_user, fid, request.form.get("decision", ""),
                                     request.form.get("note", ""))
        except reviews.ReviewRefused as exc:
            if exc.http_status != 422:
                raise
            errors[exc.field or "decision"] = _message(exc)
            flash(_message(exc), "error")
        else:
            flash(_("Đã ghi nhận kết quả xem xét."), "success")
            return redirect(url_for("reviews.duplicate", fid=fid), 303)
    return _page("reviews/duplicate.html", item=reviews.duplicate(fid), errors=errors,
                           values=request.form), (422 if errors else 200)
