"""The commune administrator's pages: officers, the work calendar, a read-only view of the catalogue.

Every write goes through `users.create_user` / `users.update_user` or `catalogue.set_calendar_day`, so it
is a signed change like any other; a calendar override is withdrawn by a new change (kind "normal"),
never deleted. Passwords are never sent back into a form.
"""

from __future__ import annotations

import calendar as pycalendar
from datetime import date
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from .. import catalogue, store, timeutil, users
from ..deadlines import DAY_OFF, NORMAL, WORKING_DAY, WorkCalendar
from ..errors import NodeError, NotFound, ValidationFailed, field_messages
from ..sync.state import User
from ..text import nfc
from . import current_node
from .auth import login_required
from .i18n import gettext as _, lang

bp = Blueprint("admin", __name__, url_prefix="/admin")

YEARS = range(2024, 2031)
NAME_MAX = 200
KINDS = {DAY_OFF: ("Ngày nghỉ", "Day off"), WORKING_DAY: ("Ngày làm bù", "Extra working day")}
WEEKDAYS = (("T2", "Mo"), ("T3", "Tu"), ("T4", "We"), ("T5", "Th"), ("T6", "Fr"), ("T7", "Sa"), ("CN", "Su"))
WEEKDAY_NAMES = (("Thứ Hai", "Monday"), ("Thứ Ba", "Tuesday"), ("Thứ Tư", "Wednesday"), ("Thứ Năm", "Thursday"),
                 ("Thứ Sáu", "Friday"), ("Thứ Bảy", "Saturday"), ("Chủ nhật", "Sunday"))
MONTHS = tuple(zip((f"Tháng {m}" for m in range(1, 13)), (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December"), strict=True))
ONLINE_LEVELS = {"none": ("Không trực tuyến", "Not online"), "partial": ("Trực tuyến một phần", "Partly online"),
                 "full": ("Trực tuyến toàn trình", "Fully online")}
SUPPLEMENT_RULES = {"pause": ("Tạm dừng, tính tiếp thời gian còn lại", "Paused; the remaining time resumes"),
                    "restart": ("Tính lại từ đầu", "Restarts from the beginning")}


def pick(pair: tuple[str, str] | None, fallback: str = "") -> str:
    """The (vi, en) label in the user's language."""
    if not pair:
        return fallback
    return pair[1] if lang() == "en" else pair[0]


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"pick": pick, "ROLES": users.ROLES, "KINDS": KINDS, "role_labels": _role_labels}


# ---------------------------------------------------------------- officers

def _users_page(errors: dict[str, str] | None = None, form_for: str | None = None,
                values: dict[str, Any] | None = None, status: int = 200):
    rows = list(User.select().order_by(User.active.desc(), User.username))
    return render_template("admin/users.html", rows=rows, errors=errors or {}, form_for=form_for,
                           values=values or {}), status


def _role_labels(roles: str) -> list[str]:
    return [pick(users.ROLES.get(r), r) for r in roles.split(",") if r]


@bp.route("/users", endpoint="users")
@login_required("admin")
def users_page():
    """The officers of the commune, a form to add one, and an edit form per officer."""
    return _users_page()


@bp.route("/users/new", methods=["POST"], endpoint="create_user")
@login_required("admin")
def create_user():
    """Add an officer; field errors come back next to the fields with status 422."""
    form = request.form
    username = form.get("username", "").strip()
    full_name = nfc(form.get("full_name", ""))
    roles = form.getlist("roles")
    password = form.get("password", "")
    values = {"username": username, "full_name": full_name, "roles": roles}
    if password != form.get("password2", ""):
        errors = {"password2": _("Mật khẩu nhập lại không khớp.")}
        flash(_("Thông tin người dùng chưa hợp lệ."), "error")
        return _users_page(errors, "new", values, 422)
    try:
        users.create_user(current_node(), username, full_name, roles, password, author=g.officer.id)
    except ValidationFailed as exc:
        flash(exc.message(lang()), "error")
        return _users_page(field_messages(exc.fields, lang()), "new", values, 422)
    flash(_("Đã thêm người dùng {username}.", username=username.lower()), "success")
    return redirect(url_for("admin.users")), 303


@bp.route("/users/<user_id>", methods=["POST"], endpoint="update_user")
@login_required("admin")
def update_user(user_id: str):
    """Change an officer's name, roles, active flag or password (an administrator cannot lock themself out)."""
    row = User.get_or_none(User.id == user_id)
    if row is None:
        raise NotFound("Không tìm thấy người dùng.", "No such user.")
    form = request.form
    full_name = nfc(form.get("full_name", ""))
    roles = sorted(set(form.getlist("roles")))
    active = form.get("active") == "on"
    password = form.get("password", "")
    values = {"full_name": full_name, "roles": roles, "active": active}
    errors: dict[str, str] = {}
    if password and password != form.get("password2", ""):
        errors["password2"] = _("Mật khẩu nhập lại không khớp.")
    if user_id == g.officer.id:
        if not active:
            errors["active"] = _("Bạn không thể tự khóa tài khoản của chính mình.")
        if "admin" not in roles:
            errors["roles"] = _("Bạn không thể tự bỏ vai trò quản trị của chính mình.")
    if errors:
        flash(_("Thông tin người dùng chưa hợp lệ."), "error")
        return _users_page(errors, user_id, values, 422)
    old_roles = sorted(r for r in row.roles.split(",") if r)
    changes = {
        "full_name": full_name if full_name != row.full_name else None,
        "roles": roles if roles != old_roles else None,
        "active": active if active != bool(row.active) else None,
        "password": password or None,
    }
    if all(v is None for v in changes.values()):
        flash(_("Không có thay đổi."), "info")
        return redirect(url_for("admin.users")), 303
    try:
        users.update_user(current_node(), user_id, author=g.officer.id, **changes)
    except ValidationFailed as exc:
        flash(exc.message(lang()), "error")
        return _users_page(field_messages(exc.fields, lang()), user_id, values, 422)
    flash(_("Đã lưu người dùng {username}.", username=row.username), "success")
    return redirect(url_for("admin.users")), 303


# ---------------------------------------------------------------- work calendar

def _bad_year() -> NodeError:
    return NodeError(f"Năm phải từ {YEARS[0]} đến {YEARS[-1]}.", f"The year must be {YEARS[0]} to {YEARS[-1]}.")


def _default_year() -> int:
    return min(max(current_node().now().year, YEARS[0]), YEARS[-1])


def month_grid(year: int, overrides: dict[date, str], names: dict[date, str], today: date) -> list[dict]:
    """Twelve mini months: weeks of cells (None outside the month) with a class for the colour."""
    cal = WorkCalendar(overrides)
    months = []
    for month in range(1, 13):
        weeks = []
        for week in pycalendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
            cells: list[dict | None] = []
            for d in week:
                if d.month != month:
                    cells.append(None)
                    continue
                weekend, working = d.weekday() >= 5, cal.is_working_day(d)
                cls = "off" if not weekend and not working else "work" if weekend and working else \
                    "weekend" if weekend else ""
                cells.append({"day": d.day, "cls": cls + (" today" if d == today else ""),
                              "title": names.get(d, "")})
            weeks.append(cells)
        months.append({"label": pick(MONTHS[month - 1]), "weeks": weeks})
    return months


SOURCES = {catalogue.BASE: ("Lịch gốc", "Seed calendar"), catalogue.HUB: ("Trung tâm", "Hub")}


def _source(layer: str) -> str:
    return pick(SOURCES.get(layer, ("Của xã", "This commune")))


def _unit() -> str:
    return current_node().identity.unit_code


def _calendar_page(year: int, errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                   status: int = 200):
    found = catalogue.overrides_for(_unit(), date(year, 1, 1), date(year, 12, 31))
    rows = [o for o in found.values() if o.kind != NORMAL]
    overrides = {o.day: o.kind for o in rows}
    names = {o.day: o.name for o in rows}
    months = month_grid(year, overrides, names, current_node().now().date())
    listed = [{"day": o.day.isoformat(), "shown": o.day.strftime("%d/%m/%Y"), "kind": o.kind, "name": o.name,
               "source": _source(o.layer), "weekday": pick(WEEKDAY_NAMES[o.day.weekday()])} for o in rows]
    return render_template("admin/calendar.html", year=year, years=YEARS, rows=listed, months=months,
                           weekdays=[pick(w) for w in WEEKDAYS], errors=errors or {},
                           values=values or {}), status


@bp.route("/calendar", endpoint="calendar")
@login_required("admin")
def calendar_page():
    """A year's overrides over the Monday–Friday week, a form to add one, and the year as 12 mini months."""
    raw = request.args.get("year", "").strip()
    if not raw:
        return _calendar_page(_default_year())
    if not raw.isdigit() or int(raw) not in YEARS:
        raise _bad_year()
    return _calendar_page(int(raw))


def check_calendar_day(raw_day: str, kind: str, name: str, today: date | None = None
                       ) -> tuple[date | None, dict[str, str]]:
    """Validate an override from the form: the date (not before `today`: deadlines already computed over a
    past day stay as they are), that the kind fits the weekday, the name's length."""
    errors: dict[str, str] = {}
    day = None
    try:
        day = timeutil.parse_date(raw_day)
    except ValueError:
        errors["day"] = _("Ngày không hợp lệ (định dạng năm-tháng-ngày).")
    if day is not None and day.year not in YEARS:
        errors["day"] = _("Chỉ nhận ngày trong các năm {first}–{last}.", first=YEARS[0], last=YEARS[-1])
    elif day is not None and today is not None and day < today:
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


@bp.route("/calendar/days", methods=["POST"], endpoint="add_calendar_day")
@login_required("admin")
def add_calendar_day():
    """Add an extra day off (a weekday) or an extra working Saturday/Sunday for this commune: one signed
    change in the commune's own layer (it wins over the hub's calendar here, and only here)."""
    node = current_node()
    raw_day, kind = request.form.get("day", "").strip(), request.form.get("kind", "")
    name = nfc(request.form.get("name", ""))
    day, errors = check_calendar_day(raw_day, kind, name, node.now().date())
    if errors or day is None:
        flash(_("Ngày chưa được lưu, hãy xem lại các ô báo lỗi."), "error")
        year = day.year if day is not None and day.year in YEARS else _default_year()
        return _calendar_page(year, errors, {"day": raw_day, "kind": kind, "name": name}, 422)
    with store.transaction(node):
        catalogue.set_calendar_day(node, day, kind, name, author=g.officer.id)
    flash(_("Đã lưu ngày {day}: {kind}.", day=day.strftime("%d/%m/%Y"), kind=pick(KINDS[kind])), "success")
    return redirect(url_for("admin.calendar", year=day.year)), 303


@bp.route("/calendar/days/<day>/remove", methods=["POST"], endpoint="remove_calendar_day")
@login_required("admin")
def remove_calendar_day(day: str):
    """Withdraw an override for this commune: a new change setting the day back to "normal" in the
    commune's layer (the default week applies here, whoever set the override)."""
    try:
        parsed = timeutil.parse_date(day)
    except ValueError:
        raise NodeError("Ngày không hợp lệ.", "Not a valid date.") from None
    found = catalogue.overrides_for(_unit(), parsed, parsed).get(parsed)
    if found is None or found.kind == NORMAL:
        raise NotFound("Ngày này không có trong lịch điều chỉnh.", "This day has no override.")
    node = current_node()
    if parsed < node.now().date():
        raise ValidationFailed("Không thể sửa ngày đã qua: thời hạn của hồ sơ đã tính theo lịch cũ.",
                               "A past day cannot be changed: deadlines were computed over it.")
    with store.transaction(node):
        catalogue.set_calendar_day(node, parsed, NORMAL, "", author=g.officer.id)
    flash(_("Đã bỏ ngày {day} khỏi lịch điều chỉnh.", day=parsed.strftime("%d/%m/%Y")), "success")
    return redirect(url_for("admin.calendar", year=parsed.year)), 303


# ---------------------------------------------------------------- catalogue (read-only)

def _money(amount: Any) -> str:
    return f"{int(amount or 0):,}".replace(",", ".") + " đ"


def fee_summary(rule: dict[str, Any]) -> str:
    """One line describing a fee rule, in the user's language (the rule's note is kept as written)."""
    kind, en = rule.get("kind", "free"), lang() == "en"
    if kind == "free":
        text = "Free" if en else "Miễn phí"
    elif kind == "fixed":
        text = _money(rule.get("amount"))
    elif kind == "per_copy":
        text = _money(rule.get("amount")) + (" per copy" if en else " / bản")
    elif kind == "per_page":
        first = int(rule.get("first_pages", 0))
        first_amount, amount = _money(rule.get("first_amount")), _money(rule.get("amount"))
        if en:
            text = f"{first_amount}/page for the first {first} pages, then {amount}/page"
        else:
            text = f"{first_amount}/trang cho {first} trang đầu, từ trang {first + 1}: {amount}/trang"
        if rule.get("max"):
            text += (", at most " if en else ", tối đa ") + _money(rule["max"])
    else:
        text = str(kind)
    return text + (f" ({rule['note']})" if rule.get("note") else "")


@bp.route("/procedures", endpoint="procedures")
@login_required("admin")
def procedures():
    """The procedures in force today, read-only: the hub publishes the catalogue."""
    today = current_node().now().date()
    procs = [{"p": p, "fee": fee_summary(p.fee_rule), "online": pick(ONLINE_LEVELS.get(p.online_level),
                                                                      p.online_level),
              "supplement": pick(SUPPLEMENT_RULES.get(p.supplement_rule), p.supplement_rule)}
             for p in catalogue.current_procedures(today)]
    return render_template("admin/procedures.html", procs=procs, today=today)
