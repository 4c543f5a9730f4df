"""The node's JSON API under /api/v1, for kiosks, field laptops and scripts; described by `openapi.py`.

Authentication is a bearer token from POST /auth/token (never the UI's session cookie: the API is exempt
from CSRF). Public: the token endpoint, /openapi.json, the catalogue (/procedures) and /lookup/<code>.
Bodies are strict JSON objects checked against the schemas of `openapi.py` (unknown fields ignored), then
by the workflow. Every error is {"error": {"code", "message", "fields"?}} with a 4xx status, in English
when Accept-Language starts with "en", else in Vietnamese:

    400 invalid_json / invalid_multipart   401 unauthorized / invalid_credentials   403 forbidden
    404 not_found   405 method_not_allowed   409 transition_not_allowed   413 payload_too_large
    422 validation_failed   429 too_many_attempts
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, send_file, url_for

from .. import attachments, catalogue, queries, store, users, workflow as wf
from ..deadlines import appointment as compute_appointment
from ..errors import NodeError, NotFound, PermissionDenied, TransitionNotAllowed, ValidationFailed
from ..models import LoginFailure
from ..sync.state import Attachment, Dossier, DossierDocument, DossierEvent, User
from ..text import nfc
from ..timeutil import now_vn, parse_date, parse_user_datetime, to_text
from . import current_node
from .auth import _too_many_failures, make_token, officer_from_token
from .errors import render_error
from .i18n import lang
from .openapi import ACTION_FIELDS, ACTION_PARAMS, RECEPTION_FIELDS, SEARCH_FIELDS, TOKEN_FIELDS, document
from .openapi import checked as _checked

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC: set[str] = set()
EVENT_LABELS = {"receive": ("Tiếp nhận hồ sơ", "Dossier received"),
                "register": ("Đăng ký trực tuyến", "Registered online"),
                **{name: (a.vi, a.en) for name, a in wf.ACTIONS.items()}}


class InvalidJSON(NodeError):
    http_status = 400
    code = "invalid_json"


class InvalidMultipart(NodeError):
    http_status = 400
    code = "invalid_multipart"


class TooManyAttempts(NodeError):
    http_status = 429
    code = "too_many_attempts"


def public(view):
    """Mark a view as needing no bearer token."""
    PUBLIC.add(f"{bp.name}.{view.__name__}")
    return view


def _t(vi: str, en: str) -> str:
    return en if lang() == "en" else vi


def _label(table: dict, key: Any) -> str:
    pair = table.get(key)
    return (pair[1] if lang() == "en" else pair[0]) if pair else ""


# ---------------------------------------------------------------- language and authentication

@bp.before_app_request
def _api_language() -> None:
    # App-wide so that 404/405 on unknown API URLs are in the caller's language too.
    if request.path.startswith(bp.url_prefix + "/") or request.path == bp.url_prefix:
        wanted = request.headers.get("Accept-Language", "").strip().lower()
        g.lang = "en" if wanted.startswith("en") else "vi"


@bp.before_request
def _authenticate():
    g.officer = None  # the session cookie never authenticates the API
    if request.endpoint in PUBLIC:
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    officer = None
    if scheme.lower() == "bearer" and 0 < len(token.strip()) < 2000:
        officer = officer_from_token(token.strip(), current_app.config["API_TOKEN_HOURS"])
    if officer is None:
        return render_error(401, "unauthorized", _t("Cần mã truy cập (Authorization: Bearer) hợp lệ.",
                                                    "A valid bearer token is required."),
                            headers={"WWW-Authenticate": 'Bearer realm="motcua"'})
    g.officer = officer
    return None


def _require(*roles: str) -> None:
    if not g.officer.has(*roles):
        raise PermissionDenied("Bạn không có quyền làm việc này.", "You are not allowed to do this.")


# ---------------------------------------------------------------- strict input

def _walk_text(value: Any) -> None:
    """Reject lone surrogates (valid JSON escapes, but not storable text)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def json_body(allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; InvalidJSON (400) otherwise, 413 over MAX_CONTENT_LENGTH."""
    raw = request.get_data(cache=True)
    if allow_empty and not raw.strip():
        return {}
    mime = request.mimetype
    bad = InvalidJSON("Nội dung phải là một đối tượng JSON hợp lệ (Content-Type: application/json).",
                      "The body must be a valid JSON object (Content-Type: application/json).")
    if mime != "application/json" and not (mime.startswith("application/") and mime.endswith("+json")):
        raise bad
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
        _walk_text(value)
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise bad from None
    if not isinstance(value, dict):
        raise bad
    return value


def _arg_int(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10) or not lo <= int(raw) <= hi:
        raise ValidationFailed("Tham số không hợp lệ.", "Invalid parameter.",
                               fields={name: _t(f"Số nguyên từ {lo} đến {hi}.", f"An integer from {lo} to {hi}.")})
    return int(raw)


def _arg_date(name: str) -> date:
    raw = request.args.get(name)
    if not raw:
        return current_node().now().date()
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is None or not 2000 <= day.year <= 2100:
        raise ValidationFailed("Ngày không hợp lệ.", "Invalid date.", fields={name: "YYYY-MM-DD"})
    return day


def _paging() -> tuple[int, int]:
    return _arg_int("page", 1, 1, 100000), _arg_int("size", current_app.config["PAGE_SIZE"], 1, 200)


# ---------------------------------------------------------------- serialisers

def _marks() -> tuple[str, str]:
    if "api_marks" not in g:
        g.api_marks = wf.horizon(current_node().now())
    return g.api_marks


def _procedure_name(code: str, version: int) -> str:
    cache = g.setdefault("api_procs", {})
    if (code, version) not in cache:
        try:
            cache[(code, version)] = catalogue.procedure(code, version=version).name(lang())
        except NotFound:
            cache[(code, version)] = ""
    return cache[(code, version)]


def _user_name(user_id: str) -> str:
    if not user_id:
        return ""
    cache = g.setdefault("api_users", {})
    if user_id not in cache:
        row = User.get_or_none(User.id == user_id)
        cache[user_id] = row.full_name if row else ""
    return cache[user_id]


def dossier_json(d: Dossier) -> dict[str, Any]:
    """Every field of a dossier a kiosk or laptop may need; times as stored (`YYYY-MM-DD HH:MM:SS`)."""
    try:
        items = json.loads(d.supplement_items or "[]")
    except ValueError:
        items = []
    return {
        "id": d.id, "code": d.code, "unit_code": d.unit_code, "procedure_code": d.procedure_code,
        "procedure_version": d.procedure_version, "procedure_name": _procedure_name(d.procedure_code,
                                                                                     d.procedure_version),
        "status": d.status, "status_label": wf.status_label(d.status, lang()), "step": d.step,
        "channel": d.channel, "channel_label": _label(wf.CHANNELS, d.channel),
        "applicant_name": d.applicant_name, "applicant_id_number": d.applicant_id_number,
        "applicant_birth_date": d.applicant_birth_date, "applicant_address": d.applicant_address,
        "applicant_phone": d.applicant_phone, "applicant_email": d.applicant_email, "owner_name": d.owner_name,
        "matter": d.matter, "sets": d.sets, "return_method": d.return_method,
        "return_method_label": _label(wf.RETURN_METHODS, d.return_method),
        "received_at": d.received_at, "received_by": d.received_by, "appointment_at": d.appointment_at,
        "original_appointment_at": d.original_appointment_at, "apology_at": d.apology_at,
        "apology_reason": d.apology_reason, "handler_id": d.handler_id, "handler_name": _user_name(d.handler_id),
        "step_deadline": d.step_deadline, "paused_at": d.paused_at, "paused_minutes_left": d.paused_minutes_left,
        "fee_amount": d.fee_amount, "fee_paid": bool(d.fee_paid), "paid_online": bool(d.paid_online),
        "transferred_at": d.transferred_at, "result_at": d.result_at, "finished_at": d.finished_at,
        "returned_at": d.returned_at, "rating": d.rating, "rating_label": _label(wf.RATINGS, d.rating),
        "rating_reason": d.rating_reason, "reason": d.reason, "supplement_items": items,
        "result_digitised": bool(d.result_digitised), "timing": wf.timing(d, _marks()), "updated_hlc": d.updated_hlc,
    }


def attachment_json(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "dossier_id": a.dossier_id, "document_id": a.document_id, "filename": a.filename,
            "mime": a.mime, "size": a.size, "sha256": a.sha256, "uploaded_by": a.uploaded_by,
            "uploaded_at": a.uploaded_at, "url": url_for("api.attachment", att_id=a.id)}


def _action_json(action: wf.Action) -> dict[str, Any]:
    params, required = ACTION_FIELDS[action.name]
    out: dict[str, Any] = {"name": action.name, "label": action.en if lang() == "en" else action.vi,
                           "to_status": action.to, "params": list(params), "required": list(required)}
    if action.name == "assign":
        out["choices"] = {"handler_id": [{"id": u.id, "full_name": u.full_name}
                                         for u in users.officers_with("specialist")]}
    return out


def dossier_detail(d: Dossier) -> dict[str, Any]:
    """A dossier with its documents, attachments, history and what the caller may do next."""
    events = DossierEvent.select().where(DossierEvent.dossier_id == d.id).order_by(DossierEvent.hlc)
    return {
        "dossier": dossier_json(d),
        "documents": [{"id": doc.id, "position": doc.position, "name": doc.name, "copy_kind": doc.copy_kind,
                       "copy_kind_label": _label(wf.COPY_KINDS, doc.copy_kind), "count": doc.count,
                       "digitised": doc.digitised, "digitised_label": _label(wf.DIGITISED, doc.digitised)}
                      for doc in wf.documents_of(d)],
        "attachments": [attachment_json(a) for a in attachments.of_dossier(d.id)],
        "events": [{"id": e.id, "at": e.at, "action": e.action,
                    "action_label": _label(EVENT_LABELS, e.action),
                    "from_status": e.from_status, "to_status": e.to_status, "by_user": e.by_user,
                    "by_name": e.by_name, "to_user": e.to_user, "to_name": e.to_name, "unit": e.unit,
                    "step_deadline": e.step_deadline, "note": e.note, "applied": bool(e.applied)} for e in events],
        "allowed_actions": [_action_json(a) for a in wf.allowed_actions(g.officer, d)],
        "conflicts": review_api.dossier_conflicts(d),
    }


def _page_json(page: queries.Page):
    return jsonify({"items": [dossier_json(d) for d in page.rows], "total": page.total, "page": page.page,
                    "size": page.size, "pages": page.pages})


# ---------------------------------------------------------------- endpoints

@bp.post("/auth/token")
@public
def token():
    body = _checked(lang(), json_body(), TOKEN_FIELDS)
    missing = {k: _t("Bắt buộc.", "Required.") for k in TOKEN_FIELDS if not body.get(k)}
    if missing:
        raise ValidationFailed("Cần tên đăng nhập và mật khẩu.", "Username and password are required.",
                               fields=missing)
    username = body["username"].strip().lower()[:40]
    if _too_many_failures(username):
        raise TooManyAttempts("Đăng nhập sai quá nhiều lần, hãy thử lại sau ít phút.",
                              "Too many failed logins; try again in a few minutes.")
    officer = users.authenticate(username, body["password"], current_node().identity.unit_code)
    if officer is None:
        with current_node().db.atomic():
            LoginFailure.create(username=username, at=to_text(now_vn()))
        return render_error(401, "invalid_credentials", _t("Sai tên đăng nhập hoặc mật khẩu.",
                                                           "Wrong username or password."),
                            headers={"WWW-Authenticate": 'Bearer realm="motcua"'})
    return jsonify({"token": make_token(officer), "token_type": "Bearer",
                    "expires_in": int(current_app.config["API_TOKEN_HOURS"]) * 3600,
                    "officer": {"id": officer.id, "username": officer.username, "full_name": officer.full_name,
                                "roles": sorted(officer.roles)}})


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(document())


@bp.get("/procedures")
@public
def procedures():
    return jsonify({"items": [p.to_dict(lang()) for p in catalogue.current_procedures(_arg_date("on"))]})


@bp.get("/procedures/<code>")
@public
def procedure(code: str):
    return jsonify(catalogue.procedure(code, on=_arg_date("on")).to_dict(lang()))


@bp.get("/calendar")
def calendar():
    year = _arg_int("year", current_node().now().year, 2000, 2100)
    # The day that decides for this commune: its own override over the hub's over the seed.
    found = catalogue.overrides_for(current_node().identity.unit_code, date(year, 1, 1), date(year, 12, 31))
    return jsonify({"year": year, "items": [{"day": o.day.isoformat(), "kind": o.kind, "name": o.name,
                                             "layer": o.layer} for _, o in sorted(found.items())
                                            if o.kind != "normal"]})


@bp.get("/due")
def due():
    code = request.args.get("procedure", "")[:40]
    raw = request.args.get("received", "")
    errors = {}
    received = current_node().now()
    if raw:
        try:
            received = parse_user_datetime(raw)
            if not 2000 <= received.year <= 2100:
                raise ValueError(raw)
        except ValueError:
            errors["received"] = "YYYY-MM-DD HH:MM"
    proc = None
    if not code:
        errors["procedure"] = _t("Bắt buộc.", "Required.")
    elif "received" not in errors:
        try:
            proc = catalogue.procedure(code, on=received.date())
        except NotFound as exc:
            errors["procedure"] = exc.message(lang())
    if errors or proc is None:
        raise ValidationFailed("Tham số không hợp lệ.", "Invalid parameters.", fields=errors)
    when = compute_appointment(received, proc.time_kind, proc.time_value, bool(proc.cutoff_15h),
                               catalogue.work_calendar())
    return jsonify({"procedure": proc.code, "received": received.strftime("%Y-%m-%d %H:%M"),
                    "appointment": when.strftime("%Y-%m-%d %H:%M")})


@bp.get("/dossiers")
def dossiers():
    name = request.args.get("worklist", "mine")
    if name not in queries.WORKLISTS:
        raise ValidationFailed("Không có danh sách này.", "No such worklist.",
                               fields={"worklist": ", ".join(queries.WORKLISTS)})
    page, size = _paging()
    return _page_json(queries.worklist(name, g.officer, _marks(), page, size))


@bp.route("/dossiers/search", methods=["GET", "POST"])
def search():
    if request.method == "POST":
        q = _checked(lang(), json_body(), SEARCH_FIELDS).get("q", "")
    else:
        q = request.args.get("q", "")
    if not q.strip():
        raise ValidationFailed("Nhập nội dung tìm kiếm.", "Type something to search for.",
                               fields={"q": _t("Bắt buộc.", "Required.")})
    page, size = _paging()
    return _page_json(queries.search(q, page, size))


@bp.post("/dossiers")
def receive():
    _require("reception")
    body = _checked(lang(), json_body(), RECEPTION_FIELDS)
    node = current_node()
    d, warnings = wf.receive_dossier(node, g.officer, body, lang(), online=body.get("online") is True)
    out = dossier_detail(d)
    out["warnings"] = warnings
    resp = jsonify(out)
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.dossier", code=d.code)
    return resp


@bp.get("/dossiers/<code>")
def dossier(code: str):
    return jsonify(dossier_detail(wf.get_dossier(code)))


@bp.post("/dossiers/<code>/actions/<action>")
def act(code: str, action: str):
    step = wf.ACTIONS.get(action)
    if step is None:
        raise NotFound(f"Không có thao tác {action[:40]}.", f"No action {action[:40]}.")
    d = wf.get_dossier(code)
    # Role and status first, as perform() would, so a refused request says why before its body is read.
    if not g.officer.has(*step.roles):
        raise PermissionDenied(f"Vai trò của bạn không được phép: {step.vi}.", f"Your role may not: {step.en}.")
    if step not in wf.allowed_actions(g.officer, d):
        raise TransitionNotAllowed(
            f"Không thể {step.vi.lower()} khi hồ sơ đang ở trạng thái “{wf.status_label(d.status)}”.",
            f"Cannot {step.en.lower()} while the dossier is “{wf.status_label(d.status, 'en')}”.")
    params = _checked(lang(), json_body(allow_empty=True), ACTION_PARAMS)
    params = {k: nfc(v) if isinstance(v, str) else v for k, v in params.items()}
    d = wf.perform(current_node(), g.officer, d.id, action, params, lang())
    return jsonify(dossier_detail(d))


@bp.post("/dossiers/<code>/attachments")
def upload(code: str):
    _require("reception", "specialist", "leader")
    d = wf.get_dossier(code)
    if request.mimetype != "multipart/form-data":
        raise InvalidMultipart("Gửi tệp dạng multipart/form-data, trường “file”.",
                               "Send the file as multipart/form-data, field “file”.")
    f = request.files.get("file")
    if f is None:
        raise ValidationFailed("Chưa có tệp.", "No file.", fields={"file": _t("Bắt buộc.", "Required.")})
    document_id = request.form.get("document_id", "")
    if document_id and not DossierDocument.select().where(
            (DossierDocument.id == document_id) & (DossierDocument.dossier_id == d.id)).exists():
        raise ValidationFailed("Giấy tờ không thuộc hồ sơ này.", "No such document in this dossier.",
                               fields={"document_id": _t("Không thuộc hồ sơ.", "Not in this dossier.")})
    limit = int(current_app.config["MAX_UPLOAD_MB"]) * 1024 * 1024
    data = f.read(limit + 1)
    filename = f.filename or "scan"
    try:
        mime = attachments.check_upload(filename, data, limit)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.vi, exc.en, fields={"file": exc.message(lang())}) from None
    node = current_node()
    with store.transaction(node):
        att_id = attachments.attach(node, d.id, filename, data, mime, g.officer.id, document_id)
    resp = jsonify(attachment_json(Attachment.get_by_id(att_id)))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.attachment", att_id=att_id)
    return resp


@bp.get("/attachments/<att_id>")
def attachment(att_id: str):
    att = attachments.get(att_id)
    path = attachments.path_for(current_node(), att.sha256)
    if not path.is_file():
        raise NotFound("Không tìm thấy tệp.", "No such file.")
    resp = send_file(path, mimetype=att.mime, download_name=att.filename, as_attachment=False)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.get("/lookup/<code>")
@public
def lookup(code: str):
    d = Dossier.get_or_none(Dossier.code == code[:80])
    if d is None:
        raise NotFound(f"Không tìm thấy hồ sơ {code[:80]}.", f"No dossier {code[:80]}.")
    return jsonify({"code": d.code, "procedure_code": d.procedure_code,
                    "procedure_name": _procedure_name(d.procedure_code, d.procedure_version),
                    "status": d.status, "status_label": wf.status_label(d.status, lang()),
                    "received_at": d.received_at, "appointment_at": d.appointment_at})


from . import review_api  # noqa: E402  (PATCH /dossiers/<code>, /conflicts, /duplicates join this blueprint)
