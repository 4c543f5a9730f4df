"""Officers' pages: counter, worklists, dossier page with its actions, search, attachments."""

from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, send_file, url_for

from .. import attachments, catalogue, queries, store, users, workflow as wf
from ..errors import ValidationFailed, field_messages
from ..sync.state import DossierEvent, User
from . import current_node
from .auth import login_required
from .i18n import gettext as _, lang

bp = Blueprint("views", __name__)


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100000 else 1


@bp.route("/")
@login_required()
def home():
    if g.officer.has("reception"):
        return redirect(url_for("views.counter"))
    if g.officer.has("specialist", "leader"):
        return redirect(url_for("views.worklist", name="mine"))
    return redirect(url_for("views.worklist", name="all"))


def read_uploads(max_mb: int) -> list[tuple[str, bytes, str]]:
    """Every uploaded scan, checked by content; nothing is stored until all of them pass."""
    out = []
    for f in request.files.getlist("files"):
        if not f or not f.filename:
            continue
        data = f.read(max_mb * 1024 * 1024 + 1)
        mime = attachments.check_upload(f.filename, data, max_mb * 1024 * 1024)
        out.append((f.filename, data, mime))
    return out


def reception_form_data(form) -> dict:
    data = {k: form.get(k, "") for k in (
        "procedure_code", "applicant_name", "applicant_id_number", "applicant_birth_date", "applicant_gender",
        "applicant_address", "applicant_phone", "applicant_email", "owner_name", "matter", "sets", "pages",
        "return_method")}
    docs = []
    names = form.getlist("doc_name")
    for i, name in enumerate(names):
        if form.get(f"doc_include_{i}") != "on":
            continue
        docs.append({"name": name, "copy_kind": form.get(f"doc_kind_{i}", "photocopy"),
                     "count": form.get(f"doc_count_{i}", "1"),
                     "digitised": "digitised" if form.get(f"doc_digitised_{i}") == "on" else "none"})
    if names:
        data["documents"] = docs
    return data


@bp.route("/counter", methods=["GET", "POST"])
@login_required("reception")
def counter():
    node = current_node()
    procs = catalogue.current_procedures(node.now().date())
    errors, values = {}, {}
    if request.method == "POST":
        values = request.form
        try:
            uploads = read_uploads(current_app.config["MAX_UPLOAD_MB"])
            data = reception_form_data(request.form)
            with store.transaction(node):
                dossier, warnings = wf.receive_dossier(node, g.officer, data, lang())
                for name, blob, mime in uploads:
                    attachments.attach(node, dossier.id, name, blob, mime, g.officer.id)
        except ValidationFailed as exc:
            errors = field_messages(exc.fields, lang()) or {"_": exc.message(lang())}
            flash(exc.message(lang()), "error")
        else:
            flash(_("Đã tiếp nhận hồ sơ") + f" {dossier.code}", "success")
            for w in warnings:
                flash(_("Cảnh báo") + ": " + w, "warning")
            return redirect(url_for("views.dossier", code=dossier.code))
    catalog = [p.to_dict(lang()) for p in procs]
    return render_template("counter.html", procs=procs, catalog_json=json.dumps(catalog, ensure_ascii=False),
                           errors=errors, values=values), (422 if errors else 200)


@bp.route("/worklist/<name>")
@login_required()
def worklist(name: str):
    if name not in queries.WORKLISTS:
        abort(404)
    node = current_node()
    marks = wf.horizon(node.now())
    page = queries.worklist(name, g.officer, marks, _page_arg(), current_app.config["PAGE_SIZE"])
    counts = queries.counts(g.officer, marks)
    handlers = {u.id: u.full_name for u in User.select(User.id, User.full_name)}
    return render_template("worklist.html", name=name, page=page, counts=counts, marks=marks, handlers=handlers)


@bp.route("/search", methods=["GET", "POST"])
@login_required()
def search():
    # The form posts, so an ID number typed into it never lands in a URL, a proxy log or the history.
    q = request.form.get("q", "") if request.method == "POST" else request.args.get("q", "")
    raw_page = request.form.get("page", "1") if request.method == "POST" else request.args.get("page", "1")
    page_no = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 100000 else 1
    page = queries.search(q, page_no, current_app.config["PAGE_SIZE"])
    marks = wf.horizon(current_node().now())
    return render_template("search.html", q=q, page=page, marks=marks)


@bp.route("/dossier/<code>")
@login_required()
def dossier(code: str):
    node = current_node()
    d = wf.get_dossier(code)
    proc = catalogue.procedure(d.procedure_code, version=d.procedure_version)
    events = list(DossierEvent.select().where(DossierEvent.dossier_id == d.id).order_by(DossierEvent.hlc))
    return render_template(
        "dossier.html", d=d, proc=proc, events=events, documents=wf.documents_of(d),
        files=attachments.of_dossier(d.id), actions=wf.allowed_actions(g.officer, d),
        specialists=users.officers_with("specialist"), timing=wf.timing(d, wf.horizon(node.now())),
        supplement_items=json.loads(d.supplement_items or "[]"),
        handler=User.get_or_none(User.id == d.handler_id) if d.handler_id else None,
    )


@bp.route("/dossier/<code>/action/<name>", methods=["POST"])
@login_required()
def act(code: str, name: str):
    node = current_node()
    params = {k: v for k, v in request.form.items() if k != "csrf_token"}
    try:
        d = wf.perform(node, g.officer, code, name, params, lang())
    except ValidationFailed as exc:
        flash(exc.message(lang()) + " " + " ".join(field_messages(exc.fields, lang()).values()), "error")
        return redirect(url_for("views.dossier", code=code)), 303
    flash(_("Đã lưu."), "success")
    return redirect(url_for("views.dossier", code=d.code)), 303


@bp.route("/dossier/<code>/files", methods=["POST"])
@login_required("reception", "specialist", "leader")
def upload(code: str):
    node = current_node()
    d = wf.get_dossier(code)
    uploads = read_uploads(current_app.config["MAX_UPLOAD_MB"])
    with store.transaction(node):
        for name, blob, mime in uploads:
            attachments.attach(node, d.id, name, blob, mime, g.officer.id)
    flash(_("Đã lưu."), "success")
    return redirect(url_for("views.dossier", code=d.code)), 303


@bp.route("/dossier/<code>/files/<att_id>/remove", methods=["POST"])
@login_required("reception", "specialist", "leader")
def remove_file(code: str, att_id: str):
    att = attachments.remove(current_node(), g.officer, att_id)
    flash(_("Đã gỡ tệp {name}.").format(name=att.filename), "success")
    return redirect(url_for("views.dossier", code=code)), 303


@bp.route("/files/<att_id>")
@login_required()
def download(att_id: str):
    att = attachments.get(att_id)
    path = attachments.path_for(current_node(), att.sha256)
    if not path.exists():
        abort(404)
    return send_file(path, mimetype=att.mime, download_name=att.filename, as_attachment=False)
