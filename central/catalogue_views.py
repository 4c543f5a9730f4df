"""The hub administrator's catalogue and calendar publishing pages.

    GET  /catalogue                          every procedure with its versions and effective dates
    GET  /catalogue/<code>                   one procedure: versions, and the "new version" form
    POST /catalogue/<code>/versions          publish version N+1, effective from a date after today
    GET  /calendar?year=                     the hub's calendar (seed + the hub's days) for a year
    POST /calendar/days                      add a day off (weekday) or a working Saturday/Sunday
    POST /calendar/days/<day>/remove         withdraw: the day is back to the default week everywhere

Each publication is one hub-signed change (`storage.write_change`): a `procedure` put (code, version)
or a `calendar_day` put keyed "*:<day>"; the hub's scoping gives them scope "*", so every node gets
them on its next pull. A version applies to dossiers received from its effective date; a calendar day to
deadlines computed from now on (stored appointments never move). Past days and past effective dates are
refused. Bad input: the message next to the field, 422, nothing written. Needs a hub administrator's
login (`admin_required`).
"""

from __future__ import annotations

import calendar as pycalendar
from datetime import date
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from node import catalogue
from node.deadlines import DAY_OFF, NORMAL, WORKING_DAY, WorkCalendar, seed_overrides
from node.errors import NodeError, NotFound, ValidationFailed
from node.text import nfc

from .i18n import gettext as _, lang
from .views import admin_required

bp = Blueprint("catalogue", __name__)

YEARS = range(2024, 2031)
NAME_MAX = 200
KINDS = {DAY_OFF: ("Ngày nghỉ", "Day off"), WORKING_DAY: ("Ngày làm bù", "Extra working day")}
LAYERS = {catalogue.BASE: ("Lịch gốc", "Seed calendar"), catalogue.HUB: ("Trung tâm", "Hub")}
TIME_KINDS = {"same_day": ("Trong ngày", "Same day"), "working_days": ("Ngày làm việc", "Working days"),
              "calendar_days": ("Ngày (lịch)", "Calendar days")}
ONLINE = {"none": ("Không trực tuyến", "Not online"), "partial": ("Trực tuyến một phần", "Partly online"),
          "full": ("Trực tuyến toàn trình", "Fully online")}
SUPPLEMENT = {"pause": ("Tạm dừng, tính tiếp", "Paused, then resumes"), "restart": ("Tính lại từ đầu", "Restarts")}
FEES = {"free": ("Miễn phí", "Free"), "fixed": ("Mức cố định", "Fixed"), "per_copy": ("Theo bản", "Per copy"),
        "per_page": ("Theo trang", "Per page")}
COPIES = ("original", "certified", "photocopy")


def hub():
    return current_app.extensions["motcua_hub"]


def pick(pair: tuple[str, str] | None, fallback: str = "") -> str:
    if not pair:
        return fallback
    return pair[1] if lang() == "en" else pair[0]


def _today() -> date:
    return hub().now().date()


def _message(exc: NodeError) -> str:
    return exc.message(lang())


def _field_messages(fields: dict[str, str]) -> dict[str, str]:
    return {k: catalogue.message_en(v) if lang() == "en" else v for k, v in fields.items()}


@bp.errorhandler(NodeError)
def _refused(exc: NodeError):
    """Refusals raised by node.catalogue or here: the hub's error page with their status, nothing written."""
    return render_template("error.html", status=exc.http_status, message=_message(exc)), exc.http_status


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"pick": pick, "KINDS": KINDS, "TIME_KINDS": TIME_KINDS, "ONLINE": ONLINE, "SUPPLEMENT": SUPPLEMENT,
            "FEES": FEES, "COPIES": COPIES}


# ---------------------------------------------------------------- procedures

@bp.get("/catalogue")
@admin_required
def procedures():
    """Every procedure: the version in force today, the versions waiting for their date."""
    today = _today()
    codes = catalogue.procedure_codes()
    rows = []
    for code in codes:
        versions = catalogue.versions(code)
        try:
            now = catalogue.procedure(code, on=today)
        except NotFound:
            now = None
        rows.append({"code": code, "now": now, "latest": versions[0],
                     "pending": [v for v in versions if v.effective_from > today.isoformat()]})
    return render_template("catalogue/procedures.html", rows=rows, today=today)


def _form_from(view: catalogue.ProcedureView, today: date) -> dict[str, Any]:
    fee = view.fee_rule
    return {"effective_from": date.fromordinal(today.toordinal() + 1).isoformat(), "name_vi": view.name_vi,
            "name_en": view.name_en, "field": view.field, "time_kind": view.time_kind,
            "time_value": str(view.time_value), "cutoff_15h": bool(view.cutoff_15h),
            "online_level": view.online_level, "interconnected": bool(view.interconnected),
            "supplement_rule": view.supplement_rule, "active": bool(view.active),
            "fee_kind": fee.get("kind", "free"), "fee_amount": str(fee.get("amount", "")),
            "fee_first_pages": str(fee.get("first_pages", "")), "fee_first_amount": str(fee.get("first_amount", "")),
            "fee_max": str(fee.get("max", "")), "fee_note": fee.get("note", ""),
            "documents": catalogue.documents_text(view.documents)}


def _procedure_page(code: str, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                    status: int = 200):
    versions = catalogue.versions(code)
    if not versions:
        raise NotFound(f"Không có thủ tục mã {code}.", f"No procedure with code {code}.")
    today = _today()
    try:
        in_force = catalogue.procedure(code, on=today).version
    except NotFound:
        in_force = None
    return render_template("catalogue/procedure.html", code=code, versions=versions, in_force=in_force,
                           today=today, form=form or _form_from(versions[0], today), errors=errors or {},
                           ), status


@bp.get("/catalogue/<code>")
@admin_required
def procedure(code: str):
    """One procedure's versions and the form for the next one (filled with the latest)."""
    return _procedure_page(code)


@bp.post("/catalogue/<code>/versions")
@admin_required
def new_version(code: str):
    """Publish version N+1 of `code`: one hub-signed `procedure` put, scope "*"."""
    if not catalogue.versions(code):
        raise NotFound(f"Không có thủ tục mã {code}.", f"No procedure with code {code}.")
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    try:
        fields = catalogue.check_new_version(code, form, _today())
    except ValidationFailed as exc:
        flash(_message(exc), "error")
        shown = dict(form, **{k: k in form for k in ("cutoff_15h", "interconnected", "active")})
        return _procedure_page(code, shown, _field_messages(exc.fields), 422)
    storage = hub().storage
    with storage.transaction():
        version = catalogue.last_version(code) + 1
        entity_id, payload = catalogue.procedure_change(fields, version)
        storage.write_change("procedure", entity_id, "put", payload, author=g.hub_user["username"])
    flash(_("Đã công bố phiên bản {version} của thủ tục {code}, áp dụng từ {day}.", version=version, code=code,
            day=date.fromisoformat(fields["effective_from"]).strftime("%d/%m/%Y")), "success")
    return redirect(url_for("catalogue.procedure", code=code)), 303


# ---------------------------------------------------------------- the hub's calendar

def hub_overrides(start: date, end: date) -> dict[date, catalogue.Override]:
    """What every commune gets between `start` and `end` (the seed, then the hub's days over it), before
    any commune's own override."""
    found = {d: catalogue.Override(d, kind, name, catalogue.BASE)
             for d, (kind, name) in seed_overrides(range(start.year, end.year + 1)).items() if start <= d <= end}
    found.update(catalogue.overrides_for(catalogue.HUB, start, end, layers=(catalogue.BASE, catalogue.HUB)))
    return dict(sorted(found.items()))


def _bad_year() -> NodeError:
    return NodeError(f"Năm phải từ {YEARS[0]} đến {YEARS[-1]}.", f"The year must be {YEARS[0]} to {YEARS[-1]}.")


def _calendar_page(year: int, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                   status: int = 200):
    found = hub_overrides(date(year, 1, 1), date(year, 12, 31))
    rows = [o for o in found.values() if o.kind != NORMAL]
    cal = WorkCalendar({o.day: o.kind for o in rows})
    months = []
    for month in range(1, 13):
        weeks = [[None if d.month != month else {"day": d.day, "cls": (
            "off" if d.weekday() < 5 and not cal.is_working_day(d) else
            "work" if d.weekday() >= 5 and cal.is_working_day(d) else "weekend" if d.weekday() >= 5 else "")}
            for d in week] for week in pycalendar.Calendar(firstweekday=0).monthdatescalendar(year, month)]
        months.append({"month": month, "weeks": weeks})
    listed = [{"day": o.day.isoformat(), "shown": o.day.strftime("%d/%m/%Y"), "kind": o.kind, "name": o.name,
               "layer": pick(LAYERS.get(o.layer)), "past": o.day < _today()} for o in rows]
    return render_template("catalogue/calendar.html", year=year, years=YEARS, rows=listed, months=months,
                           errors=errors or {}, values=values or {}, today=_today()), status


@bp.get("/calendar")
@admin_required
def calendar_page():
    """The hub's calendar for a year: the days every commune gets (seed and the hub's own), a form."""
    raw = request.args.get("year", "").strip()
    if not raw:
        return _calendar_page(min(max(_today().year, YEARS[0]), YEARS[-1]))
    if not raw.isdigit() or int(raw) not in YEARS:
        raise _bad_year()
    return _calendar_page(int(raw))


def check_day(raw_day: str, kind: str, name: str, today: date) -> tuple[date | None, dict[str, str]]:
    """Validate a hub calendar day: a real date in YEARS, not before today, a kind that fits the weekday."""
    errors: dict[str, str] = {}
    day = None
    try:
        day = date.fromisoformat(raw_day) if len(raw_day) == 10 else None
    except ValueError:
        day = None
    if day is None:
        errors["day"] = _("Ngày không hợp lệ (định dạng năm-tháng-ngày).")
    elif day.year not in YEARS:
        errors["day"] = _("Chỉ nhận ngày trong các năm {first}–{last}.", first=YEARS[0], last=YEARS[-1])
    elif day < today:
        errors["day"] = _("Không thể sửa ngày đã qua: thời hạn của hồ sơ đã tính theo lịch cũ.")
    if kind not in KINDS:
        errors["kind"] = _("Chọn ngày nghỉ hoặc ngày làm bù.")
    elif day is not None and "day" not in errors:
        if kind == WORKING_DAY and day.weekday() < 5:
            errors["kind"] = _("Ngày làm bù phải là thứ Bảy hoặc Chủ nhật.")
        if kind == DAY_OFF and day.weekday() >= 5:
            errors["kind"] = _("Ngày nghỉ thêm phải là ngày từ thứ Hai đến thứ Sáu.")
    if len(name) > NAME_MAX:
        errors["name"] = _("Tên tối đa {n} ký tự.", n=NAME_MAX)
    return day, errors


def _publish_day(day: date, kind: str, name: str) -> None:
    entity_id, payload = catalogue.calendar_change(catalogue.HUB, day, kind, name)
    hub().storage.write_change("calendar_day", entity_id, "put", payload, author=g.hub_user["username"])


@bp.post("/calendar/days")
@admin_required
def add_day():
    """Publish a day off or a working Saturday/Sunday to every commune: one hub-signed change."""
    raw_day, kind = request.form.get("day", "").strip(), request.form.get("kind", "")
    name = nfc(request.form.get("name", "")).strip()
    day, errors = check_day(raw_day, kind, name, _today())
    if errors or day is None:
        flash(_("Ngày chưa được lưu, hãy xem lại các ô báo lỗi."), "error")
        year = day.year if day is not None and day.year in YEARS else min(max(_today().year, YEARS[0]), YEARS[-1])
        return _calendar_page(year, errors, {"day": raw_day, "kind": kind, "name": name}, 422)
    _publish_day(day, kind, name)
    flash(_("Đã công bố ngày {day}: {kind}.", day=day.strftime("%d/%m/%Y"), kind=pick(KINDS[kind])), "success")
    return redirect(url_for("catalogue.calendar_page", year=day.year)), 303


@bp.post("/calendar/days/<day>/remove")
@admin_required
def remove_day(day: str):
    """Withdraw a day for every commune (back to the default week), by a new "normal" change."""
    try:
        parsed = date.fromisoformat(day) if len(day) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise NodeError("Ngày không hợp lệ.", "Not a valid date.")
    found = hub_overrides(parsed, parsed).get(parsed)
    if found is None or found.kind == NORMAL:
        raise NotFound("Ngày này không có trong lịch điều chỉnh.", "This day has no override.")
    if parsed < _today():
        raise ValidationFailed("Không thể sửa ngày đã qua: thời hạn của hồ sơ đã tính theo lịch cũ.",
                               "A past day cannot be changed: deadlines were computed over it.")
    _publish_day(parsed, NORMAL, "")
    flash(_("Đã bỏ ngày {day} khỏi lịch điều chỉnh.", day=parsed.strftime("%d/%m/%Y")), "success")
    return redirect(url_for("catalogue.calendar_page", year=parsed.year)), 303
