"""The catalogue of procedures and the work calendar: versioned data with effective dates.

A dossier keeps the procedure version in force on the day it was received; the calendar is a table of
overrides (extra days off, extra working Saturdays) over the default Monday–Friday week.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from . import store
from .deadlines import WorkCalendar, seed_overrides
from .errors import NotFound
from .instance import Node
from .sync.state import CalendarDay, Procedure

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


def put_procedure(node: Node, fields: dict[str, Any], author: str = "") -> None:
    """Publish a new version of a procedure (inside a transaction)."""
    code = fields["code"]
    top = Procedure.select(Procedure.version).where(Procedure.code == code).order_by(Procedure.version.desc())
    last = top.scalar() or 0
    row = dict(fields, version=last + 1)
    for key in ("fee_rule", "documents"):
        if not isinstance(row.get(key), str):
            row[key] = json.dumps(row.get(key, {} if key == "fee_rule" else []), ensure_ascii=False, sort_keys=True)
    store.write(node, "procedure", f"{code}@{last + 1}", "put", {"fields": row}, author)


def seed(node: Node, effective_from: str = "2024-01-01") -> None:
    """Seed the catalogue and the 2024–2027 calendar through the signed log."""
    with store.transaction(node):
        for proc in SEED_PROCEDURES:
            put_procedure(node, dict(proc, effective_from=effective_from), author="system")
        for day, (kind, name) in sorted(seed_overrides().items()):
            set_calendar_day(node, day, kind, name, author="system")


def set_calendar_day(node: Node, day: date, kind: str, name: str = "", author: str = "") -> None:
    if kind not in ("day_off", "working_day", "normal"):
        raise ValueError(kind)
    store.write(node, "calendar_day", day.isoformat(), "put", {"fields": {"kind": kind, "name": name}}, author)


_calendars: dict[int, WorkCalendar] = {}


def work_calendar() -> WorkCalendar:
    """The node's calendar as it stands now (seed plus the administrator's edits), cached per database
    until a calendar change is applied (`forget_calendar`)."""
    key = id(CalendarDay._meta.database.obj)
    cal = _calendars.get(key)
    if cal is None:
        overrides = {date.fromisoformat(r.day): r.kind for r in CalendarDay.select() if r.kind != "normal"}
        cal = _calendars[key] = WorkCalendar(overrides)
    return cal


def forget_calendar() -> None:
    _calendars.clear()
