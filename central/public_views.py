"""The hub's public pages: online submission of a dossier and its status by code (no login).

    /nop-ho-so                    step 1: choose the commune and the procedure (GET form)
    /nop-ho-so?unit=&procedure=   step 2: the applicant's form with scans; POST registers the dossier
    /nop-ho-so/da-nop?code=       the receipt: dossier code and a link to follow it
    /tra-cuu-ho-so?code=          the status of a dossier by code: progress only, nothing personal

Abuse guards: a size limit per file, for all files and on their count (checked before anything is kept);
an arithmetic question whose answer is HMAC-signed with the hub secret into a hidden field, with an expiry
(works without JavaScript or third parties); a honeypot field people never see; and a rate limit per
client address (`SubmissionHit`, in the hub's database so every hub process shares it; only a keyed hash
of the address is kept). Any refusal stores nothing: no dossier, no file. The ID number is never logged
and never put in a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import date, datetime
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from node import catalogue, workflow as wf
from node.attachments import EXTENSIONS, sniff
from node.errors import NotFound as ProcedureNotFound
from node.sync.state import Attachment, Dossier, Procedure
from node.text import ID_MESSAGES, check_id_number, nfc
from node.timeutil import display, to_text

from .errors import HubError
from .i18n import gettext as _, lang
from .models import SubmissionHit
from .submit import submit_dossier
from .views import hub

bp = Blueprint("public", __name__)
MB = 1024 * 1024
ONLINE_LEVELS = ("partial", "full")
CODE_RE = re.compile(r"^[0-9A-Za-z.\-]{3,60}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PHONE_SEPARATORS = re.compile(r"[\s.\-()]")
WORDS_VI = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín", "mười")
WORDS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
HOUR, DAY = 3600, 86400
FIELDS = ("applicant_name", "id_number", "birth_date", "gender", "address", "phone", "email", "matter")


class Limited(Exception):
    """Too many submissions from one address: answered 429 with Retry-After."""

    def __init__(self, retry_after: int):
        super().__init__("rate limited")
        self.retry_after = max(1, int(retry_after))


def register(app) -> None:
    """Add the public pages to the hub app. The submission checks its CSRF token itself, after raising the
    body limit for its scans (the app-wide check would read the body under the sync limit first)."""
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)
    app.jinja_env.filters.setdefault("hm", display)


# ---------------------------------------------------------------- catalogue and communes

def communes() -> list[tuple[str, str]]:
    """(unit code, unit name) of every commune with an active enrolled node, by name."""
    served = hub().storage.units_served()
    found: dict[str, str] = {}
    for rec in hub().storage.nodes():
        if rec.get("kind") == "commune" and rec.get("status") == "active" and rec["unit_code"] in served:
            found.setdefault(rec["unit_code"], rec.get("unit_name") or rec["unit_code"])
    return sorted(found.items(), key=lambda item: (item[1], item[0]))


def online_procedures(on: date) -> list[catalogue.ProcedureView]:
    """The versions in force on `on` of the procedures offered online (partial or full); the seed catalogue
    when the hub holds none yet."""
    views = catalogue.current_procedures(on)
    if not views:
        views = []
        for seed in catalogue.SEED_PROCEDURES:
            row = Procedure(**{k: v for k, v in seed.items() if k not in ("fee_rule", "documents")}, version=1)
            views.append(catalogue.ProcedureView(row, seed.get("fee_rule", {}), seed.get("documents", [])))
    return [v for v in views if v.online_level in ONLINE_LEVELS and v.active]


def _procedure_name(code: str, version: int) -> str:
    try:
        return catalogue.procedure(code, version=version).name(lang())
    except ProcedureNotFound:
        seed = {p["code"]: p for p in catalogue.SEED_PROCEDURES}.get(code)
        return (seed.get("name_en" if lang() == "en" else "name_vi") or code) if seed else code


# ---------------------------------------------------------------- the challenge

def _mac(answer: int | str, expires: int, nonce: str) -> str:
    key = hub().secret.encode()
    return hmac.new(key, f"challenge|{expires}|{nonce}|{answer}".encode(), hashlib.sha256).hexdigest()


def challenge_token(answer: int, expires: int, nonce: str | None = None) -> str:
    """The hidden field for a question whose answer is `answer`, valid until `expires` (epoch seconds)."""
    nonce = nonce or secrets.token_hex(8)
    return f"{expires}.{nonce}.{_mac(answer, expires, nonce)}"


def new_challenge() -> dict[str, str]:
    """A small sum or difference, asked in words; its answer lives only in the signed token."""
    a, b = secrets.randbelow(9) + 1, secrets.randbelow(9) + 1
    if a >= b and secrets.randbelow(2):
        answer, vi, en = a - b, "trừ", "minus"
    else:
        answer, vi, en = a + b, "cộng", "plus"
    expires = _now_s() + int(current_app.config["PUBLIC_CHALLENGE_SECONDS"])
    words = WORDS_EN if lang() == "en" else WORDS_VI
    question = (f"What is {words[a]} {en} {words[b]}?" if lang() == "en" else
                f"{words[a].capitalize()} {vi} {words[b]} bằng mấy?")
    return {"question": question, "token": challenge_token(answer, expires)}


def check_challenge(token: str, answer: str) -> str | None:
    """None when the answer is right and the question still valid; else the message to show."""
    token, answer = (token or "").strip(), (answer or "").strip()
    if not answer:
        return _("Vui lòng trả lời câu hỏi kiểm tra.")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return _("Câu hỏi kiểm tra không hợp lệ, vui lòng trả lời câu hỏi mới.")
    expires, nonce, mac = int(parts[0]), parts[1], parts[2]
    if expires < _now_s():
        return _("Câu hỏi kiểm tra đã hết hạn, vui lòng trả lời câu hỏi mới.")
    if not answer.lstrip("-").isdigit() or len(answer) > 3 or not hmac.compare_digest(
            mac, _mac(int(answer), expires, nonce)):
        return _("Câu trả lời kiểm tra chưa đúng.")
    return None


# ---------------------------------------------------------------- the rate limit

def _now_s() -> int:
    return int(hub().now().timestamp())


def _client() -> str:
    """A keyed hash of the client address: enough to count, useless to anyone reading the table."""
    address = request.remote_addr or "unknown"
    return hmac.new(hub().secret.encode(), f"client|{address}".encode(), hashlib.sha256).hexdigest()


def check_rate(client: str, record: bool) -> None:
    """Raise `Limited` when the address has used its hourly or daily allowance; with `record`, count this
    submission (call inside the write transaction so concurrent hub processes agree)."""
    now = _now_s()
    config = current_app.config
    for window, limit in ((HOUR, int(config["PUBLIC_PER_HOUR"])), (DAY, int(config["PUBLIC_PER_DAY"]))):
        hits = (SubmissionHit.select(SubmissionHit.at)
                .where((SubmissionHit.client == client) & (SubmissionHit.at > now - window))
                .order_by(SubmissionHit.at))
        if hits.count() >= limit:
            oldest = hits.limit(1).scalar() or now
            raise Limited(oldest + window - now)
    if record:
        SubmissionHit.delete().where(SubmissionHit.at <= now - DAY).execute()
        SubmissionHit.insert(client=client, at=now).execute()


def _limited_page(exc: Limited):
    minutes = max(1, (exc.retry_after + 59) // 60)
    message = _("Địa chỉ của bạn đã nộp quá nhiều hồ sơ trong thời gian ngắn. Vui lòng thử lại sau {minutes} "
                "phút.", minutes=minutes)
    page = render_template("public/message.html", title=_("Tạm thời chưa nhận hồ sơ"), message=message)
    return page, 429, {"Retry-After": str(exc.retry_after)}


# ---------------------------------------------------------------- validation

def _parse_birth(raw: str) -> tuple[date | None, str | None]:
    raw = raw.strip()
    if not raw:
        return None, _("Vui lòng nhập ngày sinh.")
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            born = datetime.strptime(raw, fmt).date()
            break
        except ValueError:
            continue
    else:
        return None, _("Ngày sinh không hợp lệ (ngày/tháng/năm).")
    if born.year < 1900 or born > hub().now().date():
        return None, _("Ngày sinh phải sau năm 1900 và không sau hôm nay.")
    return born, None


def validate(form, unit_ok: bool, proc_ok: bool) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """(errors by field, clean values, ID warnings) of the applicant's fields."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if not unit_ok:
        errors["unit"] = _("Vui lòng chọn xã, phường nhận hồ sơ.")
    if not proc_ok:
        errors["procedure"] = _("Thủ tục này không nhận hồ sơ trực tuyến.")
    limits = {"applicant_name": 120, "address": 300, "email": 120, "matter": 500}
    for name, limit in limits.items():
        clean[name] = nfc(form.get(name, ""))
        if len(clean[name]) > limit:
            errors[name] = _("Tối đa {n} ký tự.", n=limit)
    if not clean["applicant_name"]:
        errors["applicant_name"] = _("Vui lòng nhập họ và tên.")
    if not clean["address"]:
        errors["address"] = _("Vui lòng nhập địa chỉ.")
    if clean["email"] and "email" not in errors and not EMAIL_RE.match(clean["email"]):
        errors["email"] = _("Địa chỉ email không hợp lệ.")
    phone = PHONE_SEPARATORS.sub("", form.get("phone", ""))
    if phone.startswith("+84"):
        phone = "0" + phone[3:]
    if not phone:
        errors["phone"] = _("Vui lòng nhập số điện thoại.")
    elif not phone.isdigit() or not 9 <= len(phone) <= 15:
        errors["phone"] = _("Số điện thoại gồm 9–15 chữ số.")
    clean["phone"] = phone
    born, problem = _parse_birth(form.get("birth_date", ""))
    if problem:
        errors["birth_date"] = problem
    clean["birth_date"] = born.isoformat() if born else ""
    gender = form.get("gender", "")
    if gender not in ("", "male", "female"):
        errors["gender"] = _("Giới tính không hợp lệ.")
        gender = ""
    warnings: list[str] = []
    raw_id = form.get("id_number", "")
    messages = ID_MESSAGES["en" if lang() == "en" else "vi"]
    if not raw_id.strip():
        errors["id_number"] = _("Vui lòng nhập số định danh cá nhân (CCCD).")
    else:
        check = check_id_number(raw_id, born, gender or None)
        if not check.ok:
            errors["id_number"] = " ".join(messages[k] for k in check.errors)
        else:
            clean["id_number"] = check.number
            warnings = [messages[k] for k in check.warnings]
            if warnings and not form.get("id_confirm"):
                errors["id_number"] = " ".join(warnings) + " " + _(
                    "Nếu số đã đúng, hãy đánh dấu ô xác nhận bên dưới rồi gửi lại.")
    return errors, clean, warnings


def read_scans(files) -> tuple[list[tuple[str, bytes, str]], str | None, bool]:
    """(checked scans, message, too large?) of the uploaded files; nothing is written here."""
    config = current_app.config
    max_file, max_total, max_files = (int(config["PUBLIC_MAX_FILE_BYTES"]), int(config["PUBLIC_MAX_TOTAL_BYTES"]),
                                      int(config["PUBLIC_MAX_FILES"]))
    chosen = [f for f in files if f and f.filename]
    if not chosen:
        return [], _("Vui lòng đính kèm bản chụp hoặc bản quét giấy tờ (PDF, JPEG, PNG)."), False
    if len(chosen) > max_files:
        return [], _("Tối đa {n} tệp cho một hồ sơ.", n=max_files), False
    scans, total = [], 0
    for f in chosen:
        name = nfc(f.filename.replace("\\", "/").rsplit("/", 1)[-1])[:200] or "scan"
        data = f.stream.read(max_file + 1)
        if len(data) > max_file:
            return [], _("Tệp {name} quá lớn (tối đa {mb} MB một tệp).", name=name, mb=max_file // MB), True
        total += len(data)
        if total > max_total:
            return [], _("Tổng dung lượng các tệp vượt quá {mb} MB.", mb=max_total // MB), True
        if not data:
            return [], _("Tệp {name} rỗng.", name=name), False
        mime = sniff(data)
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if mime is None or EXTENSIONS.get(ext) != mime:
            return [], _("Tệp {name} không phải PDF, JPEG hoặc PNG.", name=name), False
        scans.append((name, data, mime))
    return scans, None, False


# ---------------------------------------------------------------- pages

def _form_page(unit: str, proc: catalogue.ProcedureView | None, units: dict[str, str], values: dict[str, Any],
               errors: dict[str, str], warnings: list[str], status: int = 200):
    config = current_app.config
    limits = {"file_mb": int(config["PUBLIC_MAX_FILE_BYTES"]) // MB,
              "total_mb": int(config["PUBLIC_MAX_TOTAL_BYTES"]) // MB, "files": int(config["PUBLIC_MAX_FILES"])}
    page = render_template("public/submit_form.html", unit=unit, unit_name=units.get(unit, unit), proc=proc,
                           values=values, errors=errors, warnings=warnings, challenge=new_challenge(),
                           limits=limits, lang_code=lang())
    return page, status


@bp.route("/nop-ho-so", methods=["GET", "POST"])
def submit():
    """Step 1 (choose), step 2 (the form) and the submission itself."""
    on = hub().now().date()
    units = dict(communes())
    procs = {p.code: p for p in online_procedures(on)}
    source = request.args if request.method == "GET" else None
    if request.method == "POST":
        try:
            check_rate(_client(), record=False)  # early and cheap: before the body is even read
        except Limited as exc:
            return _limited_page(exc)
        request.max_content_length = int(current_app.config["PUBLIC_MAX_TOTAL_BYTES"]) + 2 * MB
        try:
            if current_app.config.get("WTF_CSRF_ENABLED", True):
                current_app.extensions["csrf"].protect()
            source = request.form
        except RequestEntityTooLarge:
            message = _("Tổng dung lượng các tệp vượt quá {mb} MB.",
                        mb=int(current_app.config["PUBLIC_MAX_TOTAL_BYTES"]) // MB)
            return render_template("public/message.html", title=_("Không gửi được hồ sơ"), message=message), 413
    unit = (source.get("unit") or "").strip()[:60]
    code = (source.get("procedure") or "").strip()[:40]
    if request.method == "GET":
        if unit in units and code in procs:
            return _form_page(unit, procs[code], units, {}, {}, [])
        errors = {}
        if "unit" in request.args or "procedure" in request.args:
            if unit not in units:
                errors["unit"] = _("Vui lòng chọn xã, phường nhận hồ sơ.")
            if code not in procs:
                errors["procedure"] = _("Vui lòng chọn một thủ tục nhận hồ sơ trực tuyến.")
        return render_template("public/choose.html", units=units, procs=list(procs.values()), unit=unit,
                               code=code, errors=errors, lang_code=lang()), (400 if errors else 200)
    return _post(unit, code, units, procs)


def _post(unit: str, code: str, units: dict[str, str], procs: dict[str, catalogue.ProcedureView]):
    form = request.form
    proc = procs.get(code)
    values = {k: form.get(k, "") for k in FIELDS}
    if form.get("website"):  # the honeypot: hidden from people, filled by robots
        errors = {"form": _("Không gửi được hồ sơ. Vui lòng tải lại trang và thử lại.")}
        return _form_page(unit, proc, units, values, errors, [], 400)
    errors, clean, warnings = validate(form, unit in units, proc is not None)
    problem = check_challenge(form.get("challenge_token", ""), form.get("challenge_answer", ""))
    if problem:
        errors["challenge"] = problem
    scans, scan_problem, too_large = read_scans(request.files.getlist("scans"))
    if scan_problem:
        errors["scans"] = scan_problem
    if errors:
        return _form_page(unit, proc, units, values, errors, warnings, 413 if too_large else 400)
    client = _client()
    try:
        result = submit_dossier(hub(), unit_code=unit, procedure_code=code, applicant_name=clean["applicant_name"],
                                id_number=clean["id_number"], birth_date=clean["birth_date"],
                                address=clean["address"], phone=clean["phone"], email=clean["email"],
                                matter=clean["matter"], attachments=scans,
                                before_write=lambda: check_rate(client, record=True))
    except Limited as exc:
        return _limited_page(exc)
    except HubError:  # the commune's node was revoked meanwhile, or the procedure left the catalogue
        errors = {"form": _("Xã, phường hoặc thủ tục này hiện không nhận hồ sơ trực tuyến.")}
        return _form_page(unit, proc, units, values, errors, [], 409)
    return redirect(url_for("public.receipt", code=result["code"]), 303)


def _facts(d: Dossier) -> dict[str, Any]:
    """What anyone holding the code may see: progress only, never the person's name, ID number or address."""
    now = to_text(hub().now())
    running = d.status in (wf.ACCEPTED, wf.PROCESSING, wf.SUPPLEMENT, wf.PAYMENT)
    names = dict(communes())
    return {"code": d.code, "procedure": _procedure_name(d.procedure_code, d.procedure_version),
            "unit": names.get(d.unit_code, d.unit_code), "status": d.status,
            "status_label": wf.status_label(d.status, lang()), "received_at": d.received_at,
            "appointment_at": d.appointment_at, "returned_at": d.returned_at, "result_at": d.result_at,
            "overdue": bool(running and d.appointment_at and d.appointment_at < now),
            "online": d.channel == 2, "files": Attachment.select().where(Attachment.dossier_id == d.id).count()}


def _find(code: str) -> Dossier | None:
    if not CODE_RE.match(code):
        return None
    return Dossier.get_or_none(Dossier.code == code) or Dossier.get_or_none(Dossier.code == code.upper())


@bp.route("/nop-ho-so/da-nop")
def receipt():
    """The receipt after a submission: the code to keep and where to follow the dossier."""
    code = (request.args.get("code") or "").strip()[:60]
    d = _find(code)
    if d is None:
        return render_template("public/lookup.html", info=None, code=code, not_found=True, error=None), 404
    return render_template("public/receipt.html", info=_facts(d))


@bp.route("/tra-cuu-ho-so")
def lookup():
    """A dossier's status by code; 400 for a malformed code, 404 for an unknown one."""
    code = (request.args.get("code") or "").strip()
    if not code:
        return render_template("public/lookup.html", info=None, code="", not_found=False, error=None)
    if not CODE_RE.match(code):
        return render_template("public/lookup.html", info=None, code=code[:60], not_found=False,
                               error=_("Mã hồ sơ không hợp lệ.")), 400
    d = _find(code)
    if d is None:
        return render_template("public/lookup.html", info=None, code=code, not_found=True, error=None), 404
    return render_template("public/lookup.html", info=_facts(d), code=d.code, not_found=False, error=None)
