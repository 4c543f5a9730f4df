"""Printed forms 01–05 of a dossier, the tracking ledger (form 06, HTML and CSV) and the public lookup.

The forms are legal documents: they are always in Vietnamese, whatever the officer's UI language, and
print on A4 from the browser (static/print.css). The public lookup (`/tra-cuu/<code>`, no login) is
what the QR code of form 01 points to; it shows progress only and nothing personal: no name, ID number,
address or phone ever reaches its template.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import segno
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, \
    stream_with_context, url_for
from markupsafe import Markup

from .. import catalogue, workflow as wf
from ..errors import NodeError, NotFound
from ..instance import Identity
from ..sync.state import Dossier, DossierEvent, Procedure, User
from ..timeutil import display, display_date, from_text, parse_date, to_text
from . import current_node
from .auth import login_required
from .i18n import gettext as _, lang

bp = Blueprint("printing", __name__)

# Form 05 lists the hand-overs of a dossier, not every action taken on it.
HANDOVERS = ("receive", "accept", "transfer", "assign", "propose", "sign", "return_result", "supplement_received")
ACTION_VI = {"receive": "Tiếp nhận hồ sơ", "register": "Đăng ký trực tuyến"}
CITIES = ("hà nội", "hồ chí minh", "hải phòng", "đà nẵng", "cần thơ", "huế")
PLACE_PREFIXES = ("ubnd ", "ủy ban nhân dân ", "uỷ ban nhân dân ", "tỉnh ", "thành phố ", "tp. ", "tp ",
                  "huyện ", "quận ", "thị xã ", "xã ", "phường ", "thị trấn ", "đặc khu ")
LEDGER_PAGE = 500  # rows per ledger page: a month of a busy commune on one print run
MAX_RANGE_DAYS = 366
CODE_RE = re.compile(r"^[0-9A-Za-z.\-]{3,60}$")


class LedgerRangeInvalid(NodeError):
    """The ledger's from/to query parameters are not a valid range of dates."""

    http_status = 400
    code = "invalid_range"


# ---------------------------------------------------------------- heading, dates, QR

def _strip_prefixes(name: str) -> str:
    """'UBND xã Tân Cương' -> 'Tân Cương': the bare place name for the date line."""
    changed = True
    while changed:
        changed = False
        for prefix in PLACE_PREFIXES:
            if name.lower().startswith(prefix):
                name, changed = name[len(prefix):].strip(), True
    return name


def heading(identity: Identity) -> dict[str, str]:
    """The agency half of the national heading, and the place name for the date line."""
    parent = (identity.parent_name or identity.province_name or "").strip()
    low = parent.lower()
    if parent and not low.startswith(("ubnd", "ủy ban", "uỷ ban")):
        if not identity.parent_name and not low.startswith(PLACE_PREFIXES):
            parent = ("thành phố " if low in CITIES else "tỉnh ") + parent
        parent = "UBND " + parent
    unit = identity.unit_name.strip()
    place = _strip_prefixes(identity.province_name.strip() or unit) or unit
    return {"parent": parent.upper(), "unit": unit.upper(), "unit_name": unit, "place": place,
            "desk": "Bộ phận tiếp nhận và trả kết quả " + unit, "address": identity.unit_address}


def date_line(place: str, text: str) -> str:
    """'Tân Cương, ngày 02 tháng 3 năm 2026' (Decree 30/2020: a 0 before days < 10 and months 1, 2)."""
    when = from_text(text) if text else None
    if when is None:
        return f"{place}, ngày ..... tháng ..... năm ....."
    month = f"{when.month:02d}" if when.month < 3 else str(when.month)
    return f"{place}, ngày {when.day:02d} tháng {month} năm {when.year}"


def lookup_url(code: str) -> str:
    """Absolute URL of the public lookup page of a dossier, as printed in form 01's QR code."""
    base = current_node().identity.public_url or current_app.config.get("PUBLIC_URL") or request.host_url
    return base.rstrip("/") + url_for("printing.lookup_code", code=code)


def qr_svg(text: str) -> Markup:
    """An inline SVG QR code (never Micro QR: phones cannot read it)."""
    return Markup(segno.make_qr(text, error="m").svg_inline(scale=3, border=2))


def stage_result(at: str, deadline: str) -> str:
    """Result of one hand-over against its step deadline: early by date, on time that day, or late."""
    if not at or not deadline:
        return ""
    if at[:10] < deadline[:10]:
        return "Trước hạn"
    return "Đúng hạn" if at <= deadline else "Quá hạn"


# ---------------------------------------------------------------- forms 01–05

def _user(user_id: str) -> User | None:
    return User.get_or_none(User.id == user_id) if user_id else None


def _events(d: Dossier, *actions: str) -> list[DossierEvent]:
    query = DossierEvent.select().where(DossierEvent.dossier_id == d.id)
    if actions:
        query = query.where(DossierEvent.action.in_(actions))
    return list(query.order_by(DossierEvent.hlc))


def _last(d: Dossier, action: str) -> DossierEvent | None:
    applied = [e for e in _events(d, action) if e.applied]
    return applied[-1] if applied else None


def _label(table: dict[str, tuple[str, str]], key: str) -> str:
    return table.get(key, (key, key))[0]


def _form01(d: Dossier, now: str) -> dict[str, Any]:
    if d.status in (wf.NEW, wf.REFUSED) or not d.appointment_at:
        raise NotFound("Hồ sơ chưa được tiếp nhận nên chưa có giấy tiếp nhận (mẫu 01).",
                       "The dossier has not been accepted: there is no receipt (form 01).")
    url = lookup_url(d.code)
    docs = [{"name": doc.name, "kind": _label(wf.COPY_KINDS, doc.copy_kind), "count": doc.count}
            for doc in wf.documents_of(d)]
    return {"url": url, "qr": qr_svg(url), "documents": docs, "officer": _user(d.received_by),
            "date_text": d.received_at, "return_label": _label(wf.RETURN_METHODS, d.return_method)}


def _form02(d: Dossier, now: str) -> dict[str, Any]:
    try:
        items = json.loads(d.supplement_items or "[]")
    except ValueError:
        items = []
    if not isinstance(items, list) or not items:
        raise NotFound("Hồ sơ không có yêu cầu bổ sung (mẫu 02).", "The dossier has no supplement request (form 02).")
    event = _last(d, "request_supplement")
    return {"items": [str(i) for i in items], "officer": _user(event.by_user) if event else None,
            "officer_name": event.by_name if event else "", "date_text": event.at if event else now}


def _form03(d: Dossier, now: str) -> dict[str, Any]:
    if d.status != wf.REFUSED:
        raise NotFound("Hồ sơ không bị từ chối tiếp nhận (mẫu 03).", "The dossier was not refused (form 03).")
    event = _last(d, "refuse")
    return {"officer_name": event.by_name if event else "", "date_text": event.at if event else now}


def _form04(d: Dossier, now: str) -> dict[str, Any]:
    if not d.apology_at:
        raise NotFound("Hồ sơ chưa có phiếu xin lỗi, hẹn lại (mẫu 04).", "The dossier has no apology (form 04).")
    # The number counts this year's apologies of the node up to this one: stable once issued.
    number = (Dossier.select().where((Dossier.apology_at != "") & (Dossier.apology_at >= d.apology_at[:4])
                                     & (Dossier.apology_at <= d.apology_at)).count())
    event = _last(d, "apologise")
    return {"number": f"{number}/PXL", "signer": event.by_name if event else "", "date_text": d.apology_at}


def _form05(d: Dossier, now: str) -> dict[str, Any]:
    rows = []
    for e in _events(d, *HANDOVERS):
        if not e.applied:
            continue
        action = wf.ACTIONS.get(e.action)
        rows.append({"unit": e.unit, "step": ACTION_VI.get(e.action) or (action.vi if action else e.action),
                     "by_name": e.by_name, "to_name": e.to_name, "at": display(e.at),
                     "result": stage_result(e.at, e.step_deadline), "note": e.note})
    return {"rows": rows, "date_text": now}


FORMS = {
    "01": ("GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ", _form01),
    "02": ("PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ", _form02),
    "03": ("PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ", _form03),
    "04": ("PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ", _form04),
    "05": ("PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ", _form05),
}


@bp.route("/dossier/<code>/print/<form>", endpoint="form")
@login_required()
def print_form(code: str, form: str):
    """One of the printed forms 01–05 of a dossier; 404 when the form does not apply to it."""
    if form not in FORMS:
        abort(404)
    node = current_node()
    d = wf.get_dossier(code)
    title, build = FORMS[form]
    ctx = build(d, to_text(node.now()))
    head = heading(node.identity)
    return render_template(
        f"print/form{form}.html", d=d, form=form, title=title, head=head,
        proc=catalogue.procedure(d.procedure_code, version=d.procedure_version),
        dateline=date_line(head["place"], ctx["date_text"]), day=display_date,
        leader_title=node.identity.leader_title, **ctx)


# ---------------------------------------------------------------- form 06: the tracking ledger

LEDGER_COLUMNS = [
    ("no", "STT"), ("code", "Mã hồ sơ"), ("procedure", "Tên thủ tục hành chính"), ("sets", "Số lượng hồ sơ (bộ)"),
    ("name", "Tên người nộp hồ sơ"), ("address", "Địa chỉ"), ("phone", "Số điện thoại"),
    ("unit", "Cơ quan chủ trì giải quyết"), ("received", "Ngày nhận hồ sơ"), ("appointment", "Ngày hẹn trả kết quả"),
    ("transferred", "Ngày chuyển hồ sơ"), ("result", "Ngày nhận kết quả từ cơ quan giải quyết"),
    ("returned", "Ngày trả kết quả"), ("signature", "Người nhận kết quả ký tên"), ("note", "Ghi chú"),
]


def ledger_range(args, today: date) -> tuple[date, date]:
    """(from, to) out of the query string, by default the current month to today; LedgerRangeInvalid else."""
    raw_from, raw_to = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    try:
        start = parse_date(raw_from) if raw_from else today.replace(day=1)
        end = parse_date(raw_to) if raw_to else today
    except ValueError:
        raise LedgerRangeInvalid("Ngày không hợp lệ: hãy nhập theo dạng YYYY-MM-DD (ví dụ 2026-03-01).",
                                 "Invalid date: use YYYY-MM-DD (for example 2026-03-01).") from None
    if start > end:
        raise LedgerRangeInvalid("“Từ ngày” phải trước hoặc trùng “đến ngày”.",
                                 "“From” must be on or before “to”.")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise LedgerRangeInvalid(f"Chỉ xem được tối đa {MAX_RANGE_DAYS} ngày một lần.",
                                 f"At most {MAX_RANGE_DAYS} days at a time.")
    return start, end


def ledger_query(start: date, end: date):
    """Dossiers received (accepted) between two days inclusive, oldest first. Online registrations not
    yet accepted and refusals never entered the desk's ledger."""
    return (Dossier.select()
            .where((Dossier.received_at >= f"{start.isoformat()} 00:00:00")
                   & (Dossier.received_at <= f"{end.isoformat()} 23:59:59")
                   & Dossier.status.not_in([wf.NEW, wf.REFUSED]) & (Dossier.appointment_at != ""))
            .order_by(Dossier.received_at, Dossier.code))


def _procedure_names() -> dict[tuple[str, int], str]:
    return {(c, v): n for c, v, n in Procedure.select(Procedure.code, Procedure.version, Procedure.name_vi).tuples()}


def _ledger_note(d: Dossier, marks: tuple[str, str]) -> str:
    notes = []
    if d.status in (wf.SUPPLEMENT, wf.PAYMENT, wf.WITHDRAWN, wf.STOPPED):
        notes.append(wf.status_label(d.status))
    timing = wf.timing(d, marks)
    if timing in ("overdue", "late"):
        notes.append("Quá hạn" if timing == "overdue" else "Trễ hạn")
    if d.original_appointment_at:
        notes.append("Đã xin lỗi, hẹn lại (hẹn cũ " + display(d.original_appointment_at) + ")")
    return "; ".join(notes)


def ledger_rows(dossiers: Iterable[Dossier], marks: tuple[str, str], first_no: int = 1) -> Iterator[dict[str, Any]]:
    """One dict per dossier with the columns of form 06 (LEDGER_COLUMNS), numbered from `first_no`."""
    names = _procedure_names()
    unit = current_node().identity.unit_name
    for no, d in enumerate(dossiers, first_no):
        yield {"no": no, "code": d.code, "procedure": names.get((d.procedure_code, d.procedure_version),
                                                                 d.procedure_code),
               "sets": d.sets, "name": d.applicant_name, "address": d.applicant_address, "phone": d.applicant_phone,
               "unit": unit, "received": display(d.received_at), "appointment": display(d.appointment_at),
               "transferred": display(d.transferred_at), "result": display(d.result_at),
               "returned": display(d.returned_at), "signature": "", "note": _ledger_note(d, marks)}


def _page_arg() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100000 else 1


@bp.route("/ledger")
@login_required()
def ledger():
    """Form 06 for a range of reception dates, on screen and printable on A4 landscape."""
    node = current_node()
    now = node.now()
    raw = {"from": request.args.get("from", "")[:20], "to": request.args.get("to", "")[:20]}
    try:
        start, end = ledger_range(request.args, now.date())
    except LedgerRangeInvalid as exc:
        return render_template("ledger.html", error=exc.message(lang()), f=raw["from"], t=raw["to"]), 400
    span = {"from": start.isoformat(), "to": end.isoformat()}
    query = ledger_query(start, end)
    total = query.count()
    pages = max(1, -(-total // LEDGER_PAGE))
    page = min(_page_arg(), pages)
    rows = list(ledger_rows(query.paginate(page, LEDGER_PAGE), wf.horizon(now), (page - 1) * LEDGER_PAGE + 1))
    head = heading(node.identity)
    return render_template(
        "ledger.html", error=None, f=span["from"], t=span["to"], rows=rows, total=total, page=page, pages=pages,
        prev_url=url_for("printing.ledger", page=page - 1, **span) if page > 1 else None,
        next_url=url_for("printing.ledger", page=page + 1, **span) if page < pages else None,
        csv_url=url_for("printing.ledger_csv", **span), head=head, columns=LEDGER_COLUMNS,
        dateline=date_line(head["place"], to_text(now)), start=display_date(span["from"]),
        end=display_date(span["to"]))


def _csv_cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet: keep citizens' text inert.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@bp.route("/ledger.csv")
@login_required()
def ledger_csv():
    """The ledger's rows as CSV (UTF-8 with BOM, so spreadsheet programs read Vietnamese), streamed."""
    node = current_node()
    now = node.now()
    start, end = ledger_range(request.args, now.date())
    marks = wf.horizon(now)
    query = ledger_query(start, end)

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([title for _key, title in LEDGER_COLUMNS])
        yield "\ufeff" + buf.getvalue()
        for row in ledger_rows(query.iterator(), marks):
            buf.seek(0)
            buf.truncate()
            writer.writerow([_csv_cell(row[key]) for key, _title in LEDGER_COLUMNS])
            yield buf.getvalue()

    filename = f"so-theo-doi-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ---------------------------------------------------------------- public lookup (no login)

def _find_public(code: str) -> Dossier | None:
    if not CODE_RE.match(code):
        return None
    return Dossier.get_or_none(Dossier.code == code) or Dossier.get_or_none(Dossier.code == code.upper())


def public_facts(d: Dossier) -> dict[str, Any]:
    """What anyone holding a dossier code may see: progress only, nothing about the person."""
    language = lang()
    try:
        procedure = catalogue.procedure(d.procedure_code, version=d.procedure_version).name(language)
    except NotFound:
        procedure = d.procedure_code
    method = wf.RETURN_METHODS.get(d.return_method, (d.return_method, d.return_method))
    return {"code": d.code, "procedure": procedure, "status": d.status,
            "status_label": wf.status_label(d.status, language), "received_at": d.received_at,
            "appointment_at": d.appointment_at, "timing": wf.timing(d, wf.horizon(current_node().now())),
            "return_method": method[1] if language == "en" else method[0], "returned_at": d.returned_at}


@bp.route("/tra-cuu")
def lookup():
    """The public lookup form; `?code=` goes to the dossier's page."""
    code = (request.args.get("code") or "").strip()
    if code:
        if CODE_RE.match(code):
            return redirect(url_for("printing.lookup_code", code=code))
        return render_template("lookup.html", info=None, code=code[:60], error=_("Mã hồ sơ không hợp lệ.")), 400
    return render_template("lookup.html", info=None, code="", error=None)


@bp.route("/tra-cuu/<code>")
def lookup_code(code: str):
    """A dossier's progress by code, for the applicant (QR code of form 01); 404 for an unknown code."""
    d = _find_public(code.strip())
    if d is None:
        return render_template("lookup.html", info=None, code=code[:60], error=None, not_found=True), 404
    return render_template("lookup.html", info=public_facts(d), code=d.code, error=None)
