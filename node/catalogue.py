"""The catalogue of procedures and the work calendar: versioned data with effective dates.

A dossier keeps the procedure version in force on the day it was received; the calendar is a table of
overrides (extra days off, extra working Saturdays) over the default Monday–Friday week.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from . import store
from .deadlines import WorkCalendar, seed_overrides
from .errors import NotFound
from .instance import Identity, Node
from .sync.state import CalendarDay, NodeRecord, Procedure

CIVIL, CERT, RES, SOCIAL, LINKED = "Hộ tịch", "Chứng thực", "Cư trú", "Bảo trợ xã hội", "Liên thông"


def _docs(*items: tuple[str, str, str, int]) -> list[dict[str, Any]]:
    return [{"name_vi": vi, "name_en": en, "copy_kind": kind, "count": n} for vi, en, kind, n in items]


FORM = ("Tờ khai theo mẫu", "Declaration form", "original", 1)
ID_CARD = ("Căn cước công dân của người yêu cầu", "Requester's citizen ID card", "photocopy", 1)

# Seed catalogue (domain.md §6). Values marked unsure there are data, editable as new versions.
SEED_PROCEDURES: list[dict[str, Any]] = [
    dict(code="1.001193", name_vi="Đăng ký khai sinh", name_en="Birth registration", field=CIVIL,
         time_kind="same_day", time_value=0, cutoff_15h=1, online_level="full",
         fee_rule={"kind": "free", "note": "Miễn lệ phí nếu đăng ký đúng hạn (60 ngày)"},
         documents=_docs(FORM, ("Giấy chứng sinh", "Birth certificate from the hospital", "original", 1), ID_CARD)),
    dict(code="1.000656", name_vi="Đăng ký khai tử", name_en="Death registration", field=CIVIL,
         time_kind="same_day", time_value=0, cutoff_15h=1, online_level="full",
         fee_rule={"kind": "free", "note": "Miễn lệ phí nếu đăng ký đúng hạn (60 ngày)"},
         documents=_docs(FORM, ("Giấy báo tử", "Death notice", "original", 1), ID_CARD)),
    dict(code="1.000894", name_vi="Đăng ký kết hôn", name_en="Marriage registration", field=CIVIL,
         time_kind="same_day", time_value=0, cutoff_15h=1, online_level="partial",
         fee_rule={"kind": "free"},
         documents=_docs(FORM, ("Giấy xác nhận tình trạng hôn nhân", "Marital status certificate", "original", 2),
                         ID_CARD)),
    dict(code="2.000635", name_vi="Cấp bản sao trích lục hộ tịch", name_en="Copy of civil-status extract",
         field=CIVIL, time_kind="same_day", time_value=0, cutoff_15h=1, online_level="full",
         fee_rule={"kind": "per_copy", "amount": 8000}, documents=_docs(FORM, ID_CARD)),
    dict(code="1.004873", name_vi="Cấp Giấy xác nhận tình trạng hôn nhân", name_en="Marital status certificate",
         field=CIVIL, time_kind="working_days", time_value=3, cutoff_15h=0, online_level="full",
         fee_rule={"kind": "fixed", "amount": 15000, "note": "Theo mức của tỉnh"}, documents=_docs(FORM, ID_CARD)),
    dict(code="2.000815", name_vi="Chứng thực bản sao từ bản chính", name_en="Certified copy from original",
         field=CERT, time_kind="same_day", time_value=0, cutoff_15h=1, online_level="partial",
         fee_rule={"kind": "per_page", "first_pages": 2, "first_amount": 2000, "amount": 1000, "max": 200000},
         documents=_docs(("Bản chính giấy tờ cần chứng thực", "Original document", "original", 1),
                         ("Bản sao cần chứng thực", "Copies to certify", "photocopy", 1))),
    dict(code="2.000884", name_vi="Chứng thực chữ ký", name_en="Signature certification", field=CERT,
         time_kind="same_day", time_value=0, cutoff_15h=1, online_level="none",
         fee_rule={"kind": "fixed", "amount": 10000},
         documents=_docs(("Giấy tờ cần chứng thực chữ ký", "Paper to be signed", "original", 1), ID_CARD)),
    dict(code="1.004222", name_vi="Đăng ký thường trú", name_en="Permanent residence registration", field=RES,
         time_kind="working_days", time_value=7, cutoff_15h=0, online_level="full", interconnected=1,
         fee_rule={"kind": "fixed", "amount": 20000, "note": "Theo mức của tỉnh"},
         documents=_docs(("Tờ khai thay đổi thông tin cư trú (CT01)", "Residence change form CT01", "original", 1),
                         ("Giấy tờ chứng minh chỗ ở hợp pháp", "Proof of lawful residence", "certified", 1))),
    dict(code="1.004194", name_vi="Đăng ký tạm trú", name_en="Temporary residence registration", field=RES,
         time_kind="working_days", time_value=3, cutoff_15h=0, online_level="full", interconnected=1,
         fee_rule={"kind": "fixed", "amount": 15000, "note": "Theo mức của tỉnh"},
         documents=_docs(("Tờ khai thay đổi thông tin cư trú (CT01)", "Residence change form CT01", "original", 1),
                         ("Giấy tờ chứng minh chỗ ở hợp pháp", "Proof of lawful residence", "certified", 1))),
    dict(code="2.000986", name_vi="Liên thông đăng ký khai sinh, thường trú, cấp thẻ BHYT cho trẻ dưới 6 tuổi",
         name_en="Linked: birth, permanent residence and health insurance card for a child under 6",
         field=LINKED, time_kind="working_days", time_value=5, cutoff_15h=0, online_level="full",
         interconnected=1, fee_rule={"kind": "free"},
         documents=_docs(FORM, ("Giấy chứng sinh", "Birth certificate from the hospital", "original", 1), ID_CARD)),
    dict(code="2.002622", name_vi="Liên thông đăng ký khai tử, xóa đăng ký thường trú, hưởng mai táng phí",
         name_en="Linked: death, residence removal and funeral allowance", field=LINKED,
         time_kind="working_days", time_value=18, cutoff_15h=0, online_level="partial", interconnected=1,
         fee_rule={"kind": "free"}, supplement_rule="pause",
         documents=_docs(FORM, ("Giấy báo tử", "Death notice", "original", 1), ID_CARD)),
    dict(code="1.001731", name_vi="Hỗ trợ chi phí mai táng cho đối tượng bảo trợ xã hội",
         name_en="Funeral support for social-assistance beneficiaries", field=SOCIAL,
         time_kind="working_days", time_value=3, cutoff_15h=0, online_level="partial",
         fee_rule={"kind": "free"}, supplement_rule="pause",
         documents=_docs(("Tờ khai đề nghị hỗ trợ chi phí mai táng", "Funeral support request", "original", 1),
                         ("Giấy chứng tử", "Death certificate", "certified", 1))),
]


@dataclass(frozen=True)
class ProcedureView:
    """A procedure version with its JSON columns parsed."""

    row: Procedure
    fee_rule: dict[str, Any]
    documents: list[dict[str, Any]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)

    def name(self, lang: str = "vi") -> str:
        return self.row.name_en if lang == "en" else self.row.name_vi

    def time_label(self, lang: str = "vi") -> str:
        kind, n = self.row.time_kind, self.row.time_value
        if kind == "same_day":
            if lang == "en":
                return "Same day" + (" (after 15:00: next working day)" if self.row.cutoff_15h else "")
            return "Trong ngày" + (" (sau 15 giờ: ngày làm việc tiếp theo)" if self.row.cutoff_15h else "")
        if kind == "working_days":
            return f"{n} working days" if lang == "en" else f"{n} ngày làm việc"
        return f"{n} calendar days" if lang == "en" else f"{n} ngày"

    def fee_for(self, pages: int = 1, copies: int = 1) -> int:
        rule = self.fee_rule
        kind = rule.get("kind", "free")
        if kind == "fixed":
            return int(rule.get("amount", 0))
        if kind == "per_copy":
            return int(rule.get("amount", 0)) * max(1, copies)
        if kind == "per_page":
            first = int(rule.get("first_pages", 0))
            fee = min(pages, first) * int(rule.get("first_amount", 0)) + max(0, pages - first) * int(rule["amount"])
            return min(fee, int(rule.get("max", fee)))
        return 0

    def to_dict(self, lang: str = "vi") -> dict[str, Any]:
        r = self.row
        return {
            "code": r.code, "version": r.version, "effective_from": r.effective_from, "name": self.name(lang),
            "name_vi": r.name_vi, "name_en": r.name_en, "field": r.field, "level": r.level,
            "time_kind": r.time_kind, "time_value": r.time_value, "cutoff_15h": bool(r.cutoff_15h),
            "time_label": self.time_label(lang), "fee_rule": self.fee_rule, "documents": self.documents,
            "online_level": r.online_level, "interconnected": bool(r.interconnected),
            "supplement_rule": r.supplement_rule,
        }


def _view(row: Procedure) -> ProcedureView:
    return ProcedureView(row, json.loads(row.fee_rule or "{}"), json.loads(row.documents or "[]"))


def current_procedures(on: date) -> list[ProcedureView]:
    """Every active procedure, in the version in force on `on`, sorted by code."""
    latest: dict[str, Procedure] = {}
    rows = Procedure.select().where(Procedure.effective_from <= on.isoformat()).order_by(Procedure.version)
    for row in rows:
        latest[row.code] = row
    return [_view(r) for code, r in sorted(latest.items()) if r.active]


def procedure(code: str, on: date | None = None, version: int | None = None) -> ProcedureView:
    """The version of `code` in force on `on` (or the exact `version`); NotFound otherwise."""
    query = Procedure.select().where(Procedure.code == code)
    if version is not None:
        query = query.where(Procedure.version == version)
    elif on is not None:
        query = query.where(Procedure.effective_from <= on.isoformat())
    row = query.order_by(Procedure.version.desc()).first()
    if row is None:
        raise NotFound(f"Không có thủ tục mã {code}.", f"No procedure with code {code}.")
    return _view(row)


def procedure_change(fields: dict[str, Any], version: int) -> tuple[str, dict[str, Any]]:
    """(entity id, payload) of the `procedure` put publishing `fields` as `version` (JSON columns as text)."""
    row = dict(fields, version=version)
    for key in ("fee_rule", "documents"):
        if not isinstance(row.get(key), str):
            row[key] = json.dumps(row.get(key, {} if key == "fee_rule" else []), ensure_ascii=False, sort_keys=True)
    return f"{row['code']}@{version}", {"fields": row}


def last_version(code: str) -> int:
    """The highest version of `code` this replica holds (0 when none)."""
    top = Procedure.select(Procedure.version).where(Procedure.code == code).order_by(Procedure.version.desc())
    return top.scalar() or 0


def put_procedure(node: Node, fields: dict[str, Any], author: str = "") -> None:
    """Publish a new version of a procedure (inside a transaction)."""
    entity_id, payload = procedure_change(fields, last_version(fields["code"]) + 1)
    store.write(node, "procedure", entity_id, "put", payload, author)


def seed(node: Node, effective_from: str = "2024-01-01") -> None:
    """Seed the catalogue and the 2024–2027 calendar through the signed log (the calendar's base layer)."""
    with store.transaction(node):
        for proc in SEED_PROCEDURES:
            put_procedure(node, dict(proc, effective_from=effective_from), author="system")
        for day, (kind, name) in sorted(seed_overrides().items()):
            set_calendar_day(node, day, kind, name, author="system", unit=BASE)


# ---------------------------------------------------------------- the work calendar, in layers
#
# Row ids: "<day>" the base layer (the seed, rows from before per-unit keys), "*:<day>" the hub's calendar
# (every unit), "<unit code>:<day>" a commune's own override (that unit only). For a unit, the highest layer
# holding a day decides it; "normal" there means the default week (so a commune can cancel a hub day off
# for itself, and the hub a seeded one). The layer is read from the id, the key the merge upserts on.

BASE, HUB = "", "*"
KINDS = ("day_off", "working_day", "normal")


def calendar_id(unit: str, day: date) -> str:
    """The row id (and change entity id) of `unit`'s override of `day`."""
    return f"{unit}:{day.isoformat()}" if unit else day.isoformat()


def _layer_of(row_id: str) -> tuple[str, date] | None:
    unit, _, text = row_id.rpartition(":")
    try:
        return unit, date.fromisoformat(text)
    except ValueError:
        return None


def calendar_change(unit: str, day: date, kind: str, name: str = "") -> tuple[str, dict[str, Any]]:
    """(entity id, payload) of the `calendar_day` put setting `day` to `kind` in `unit`'s layer."""
    if kind not in KINDS:
        raise ValueError(kind)
    return calendar_id(unit, day), {"fields": {"unit": unit, "day": day.isoformat(), "kind": kind, "name": name}}


def set_calendar_day(node: Node, day: date, kind: str, name: str = "", author: str = "",
                     unit: str | None = None) -> None:
    """Write an override of `day` (inside a transaction); by default in the node's own unit's layer."""
    entity_id, payload = calendar_change(node.identity.unit_code if unit is None else unit, day, kind, name)
    store.write(node, "calendar_day", entity_id, "put", payload, author)


@dataclass(frozen=True)
class Override:
    day: date
    kind: str
    name: str
    layer: str  # BASE, HUB or the unit code


def overrides_for(unit: str, start: date | None = None, end: date | None = None,
                  layers: tuple[str, ...] | None = None) -> dict[date, Override]:
    """The override deciding each day for `unit` (its own layer over the hub's over the base), between
    `start` and `end` when given; `layers` narrows which layers count (e.g. the hub's page: BASE, HUB)."""
    wanted = layers or (BASE, HUB, unit)
    rank = {layer: i for i, layer in enumerate(wanted)}
    # The hub's layer counts only as written by a hub key (a commune cannot speak for every unit).
    hubs = {n for (n,) in NodeRecord.select(NodeRecord.node_id).where(NodeRecord.kind == "hub").tuples()}
    query = CalendarDay.select(CalendarDay.id, CalendarDay.kind, CalendarDay.name, CalendarDay.version)
    if start is not None and end is not None:
        query = query.where(CalendarDay.day.between(start.isoformat(), end.isoformat()) | (CalendarDay.day == ""))
    found: dict[date, tuple[int, Override]] = {}
    for row in query:
        parsed = _layer_of(row.id)
        if parsed is None or parsed[0] not in rank:
            continue
        layer, day = parsed
        if layer == HUB and row.version.rpartition("~")[2] not in hubs:
            continue
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        if day not in found or rank[layer] > found[day][0]:
            found[day] = (rank[layer], Override(day, row.kind, row.name, layer))
    return {day: o for day, (_, o) in sorted(found.items())}


def _default_unit() -> str:
    """The unit of the node whose database is bound (its node.json lies beside the file); the hub: "*"."""
    db = CalendarDay._meta.database.obj
    key = id(db)
    unit = _units.get(key)
    if unit is None:
        folder = Path(str(getattr(db, "database", "") or "")).parent
        try:
            unit = Identity.load(folder / "node.json").unit_code if (folder / "node.json").is_file() else HUB
        except (OSError, ValueError, TypeError, KeyError):
            unit = HUB
        _units[key] = unit
    return unit


_calendars: dict[tuple[int, str], WorkCalendar] = {}
_units: dict[int, str] = {}


def work_calendar(unit: str | None = None) -> WorkCalendar:
    """`unit`'s calendar as it stands now (base, the hub's days, the unit's own; by default the unit of the
    node whose database is bound), cached per database until a calendar change is applied."""
    unit = _default_unit() if unit is None else unit
    key = (id(CalendarDay._meta.database.obj), unit)
    cal = _calendars.get(key)
    if cal is None:
        overrides = {day: o.kind for day, o in overrides_for(unit).items() if o.kind != "normal"}
        cal = _calendars[key] = WorkCalendar(overrides)
    return cal


def forget_calendar() -> None:
    _calendars.clear()


# ---------------------------------------------------------------- publishing a new version (the hub)

TIME_KINDS = ("same_day", "working_days", "calendar_days")
ONLINE_LEVELS = ("none", "partial", "full")
SUPPLEMENT_RULES = ("pause", "restart")
FEE_KINDS = ("free", "fixed", "per_copy", "per_page")
COPY_KINDS = ("original", "certified", "photocopy")
TEXT_MAX, MAX_DOCUMENTS, MAX_DAYS, MAX_AMOUNT = 300, 50, 365, 100_000_000

# English twins of the field messages below (the hub's pages show them in the user's language).
MESSAGES_EN = {
    "Ngày áp dụng không hợp lệ (định dạng năm-tháng-ngày).": "Invalid effective date (year-month-day).",
    "Ngày áp dụng phải từ ngày mai trở đi: hồ sơ đã nhận giữ phiên bản cũ.":
        "The effective date must be tomorrow or later: dossiers already received keep their version.",
    "Cần nhập tên thủ tục.": "Enter the procedure's name.",
    "Tối đa 300 ký tự.": "At most 300 characters.",
    "Chọn cách tính thời hạn.": "Choose how the time limit is counted.",
    "Thời hạn phải là số nguyên từ 0 đến 365.": "The time limit must be a whole number from 0 to 365.",
    "Thủ tục giải quyết trong ngày có thời hạn 0.": "A same-day procedure has a time limit of 0.",
    "Thời hạn phải ít nhất 1 ngày.": "The time limit must be at least 1 day.",
    "Chọn mức độ trực tuyến.": "Choose the online level.",
    "Chọn cách tính khi yêu cầu bổ sung.": "Choose what a supplement request does to the clock.",
    "Chọn loại phí, lệ phí.": "Choose the kind of fee.",
    "Số tiền phải là số nguyên từ 0 đến 100.000.000 đồng.": "Amounts must be whole numbers from 0 to 100,000,000 đ.",
    "Mỗi dòng: tên tiếng Việt | tên tiếng Anh | original/certified/photocopy | số bản (1–99); tối đa 50 dòng.":
        "One line each: Vietnamese name | English name | original/certified/photocopy | copies (1–99); "
        "at most 50 lines.",
    "Cần ít nhất một giấy tờ.": "At least one document is needed.",
}


def message_en(vi: str) -> str:
    """The English twin of a publishing field message (the Vietnamese when there is none)."""
    return MESSAGES_EN.get(vi, vi)


def _int(raw: Any, low: int, high: int) -> int | None:
    text = str(raw if raw is not None else "").strip()
    if not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if low <= value <= high else None


def _documents(raw: str) -> list[dict[str, Any]] | None:
    lines = [line.strip() for line in raw.replace("\r", "").split("\n") if line.strip()]
    if len(lines) > MAX_DOCUMENTS:
        return None
    out = []
    for line in lines:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 4 or not parts[0] or len(parts[0]) > TEXT_MAX or len(parts[1]) > TEXT_MAX:
            return None
        count = _int(parts[3], 1, 99)
        if parts[2] not in COPY_KINDS or count is None:
            return None
        out.append({"name_vi": parts[0], "name_en": parts[1], "copy_kind": parts[2], "count": count})
    return out


def documents_text(documents: list[dict[str, Any]]) -> str:
    """The documents of a version as the form's lines (the inverse of the form's parsing)."""
    return "\n".join(f"{d.get('name_vi', '')} | {d.get('name_en', '')} | {d.get('copy_kind', 'original')} | "
                     f"{d.get('count', 1)}" for d in documents)


def check_new_version(code: str, form: dict[str, Any], today: date) -> dict[str, Any]:
    """Validate a new version of procedure `code` from a form (strings; check boxes present or not) and
    return its fields; NotFound for an unknown code, ValidationFailed ({field: Vietnamese message}) for bad
    input. The effective date must be after `today`: a dossier keeps the version it was received under."""
    from .errors import ValidationFailed
    from .text import nfc

    current = Procedure.select().where(Procedure.code == code).order_by(Procedure.version.desc()).first()
    if current is None:
        raise NotFound(f"Không có thủ tục mã {code}.", f"No procedure with code {code}.")
    errors: dict[str, str] = {}

    def text(name: str, required: bool = False) -> str:
        value = nfc(str(form.get(name, "") or "")).strip()
        if required and not value:
            errors[name] = "Cần nhập tên thủ tục."
        elif len(value) > TEXT_MAX:
            errors[name] = "Tối đa 300 ký tự."
        return value

    def choice(name: str, allowed: tuple[str, ...], message: str) -> str:
        value = str(form.get(name, "") or "")
        if value not in allowed:
            errors[name] = message
        return value

    effective = None
    try:
        effective = date.fromisoformat(str(form.get("effective_from", "")).strip())
    except ValueError:
        errors["effective_from"] = "Ngày áp dụng không hợp lệ (định dạng năm-tháng-ngày)."
    if effective is not None and effective <= today:
        errors["effective_from"] = "Ngày áp dụng phải từ ngày mai trở đi: hồ sơ đã nhận giữ phiên bản cũ."
    fields: dict[str, Any] = {
        "code": code, "level": current.level, "name_vi": text("name_vi", True), "name_en": text("name_en"),
        "field": text("field"),
        "time_kind": choice("time_kind", TIME_KINDS, "Chọn cách tính thời hạn."),
        "online_level": choice("online_level", ONLINE_LEVELS, "Chọn mức độ trực tuyến."),
        "supplement_rule": choice("supplement_rule", SUPPLEMENT_RULES, "Chọn cách tính khi yêu cầu bổ sung."),
        "cutoff_15h": int(bool(form.get("cutoff_15h"))), "interconnected": int(bool(form.get("interconnected"))),
        "active": int(bool(form.get("active"))),
    }
    time_value = _int(form.get("time_value"), 0, MAX_DAYS)
    if time_value is None:
        errors["time_value"] = "Thời hạn phải là số nguyên từ 0 đến 365."
    elif fields["time_kind"] == "same_day" and time_value != 0:
        errors["time_value"] = "Thủ tục giải quyết trong ngày có thời hạn 0."
    elif fields["time_kind"] in ("working_days", "calendar_days") and time_value < 1:
        errors["time_value"] = "Thời hạn phải ít nhất 1 ngày."
    fields["time_value"] = time_value or 0
    fee_kind = choice("fee_kind", FEE_KINDS, "Chọn loại phí, lệ phí.")
    fee: dict[str, Any] = {"kind": fee_kind}
    needed = {"fixed": ("amount",), "per_copy": ("amount",),
              "per_page": ("amount", "first_pages", "first_amount")}.get(fee_kind, ())
    for key in needed + (("max",) if fee_kind == "per_page" else ()):
        raw = str(form.get(f"fee_{key}", "") or "").strip()
        if key == "max" and not raw:
            continue
        value = _int(raw, 0, MAX_AMOUNT)
        if value is None:
            errors[f"fee_{key}"] = "Số tiền phải là số nguyên từ 0 đến 100.000.000 đồng."
        fee[key] = value or 0
    note = text("fee_note")
    if note:
        fee["note"] = note
    fields["fee_rule"] = fee
    documents = _documents(str(form.get("documents", "") or ""))
    if documents is None:
        errors["documents"] = ("Mỗi dòng: tên tiếng Việt | tên tiếng Anh | original/certified/photocopy | số bản "
                               "(1–99); tối đa 50 dòng.")
    elif not documents:
        errors["documents"] = "Cần ít nhất một giấy tờ."
    fields["documents"] = documents or []
    if errors:
        raise ValidationFailed("Phiên bản mới chưa hợp lệ, hãy xem lại các ô báo lỗi.",
                               "The new version is not valid; see the fields marked.", fields=errors)
    fields["effective_from"] = effective.isoformat() if effective else ""
    return fields


def versions(code: str) -> list[ProcedureView]:
    """Every version of `code`, newest first."""
    return [_view(r) for r in Procedure.select().where(Procedure.code == code).order_by(Procedure.version.desc())]


def procedure_codes() -> list[str]:
    """Every procedure code this replica holds, sorted."""
    return [c for (c,) in Procedure.select(Procedure.code).distinct().order_by(Procedure.code).tuples()]
