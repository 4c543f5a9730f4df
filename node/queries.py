"""Read side: worklists and search, shared by the UI and the JSON API.

Overdue and due-soon are computed from the appointment at query time (never stored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import workflow as wf
from .sync.state import Dossier
from .text import check_id_number, fts_query
from .users import Officer

RUNNING = (wf.ACCEPTED, wf.PROCESSING, wf.PAYMENT)
WORKLISTS = {
    "mine": ("Của tôi", "Mine"),
    "due_soon": ("Sắp đến hạn", "Due soon"),
    "overdue": ("Quá hạn", "Overdue"),
    "supplement": ("Chờ bổ sung", "Waiting for a supplement"),
    "new": ("Mới đăng ký trực tuyến", "Newly registered online"),
    "all": ("Tất cả đang xử lý", "All in progress"),
}
CODE_LIKE = re.compile(r"^[0-9A-Za-z.]+-\d{0,6}(-\d{0,4})?$")


@dataclass
class Page:
    rows: list[Dossier]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _mine(officer: Officer):
    conds = []
    if officer.has("reception"):
        conds.append(Dossier.status.in_([wf.NEW, wf.ACCEPTED, wf.PAYMENT, wf.READY]))
    if officer.has("specialist"):
        conds.append((Dossier.status == wf.PROCESSING) & (Dossier.handler_id == officer.id)
                     & (Dossier.step == "processing"))
    if officer.has("leader"):
        conds.append((Dossier.status == wf.PROCESSING) & ((Dossier.step == "signing") | (Dossier.handler_id == "")))
    if not conds:
        return Dossier.status.in_(RUNNING)
    expr = conds[0]
    for c in conds[1:]:
        expr = expr | c
    return expr


def worklist_query(name: str, officer: Officer, marks: tuple[str, str]):
    now_text, soon_text = marks
    if name == "mine":
        where = _mine(officer)
    elif name == "due_soon":
        where = Dossier.status.in_(RUNNING) & (Dossier.appointment_at >= now_text) & \
            (Dossier.appointment_at <= soon_text)
    elif name == "overdue":
        where = Dossier.status.in_(RUNNING) & (Dossier.appointment_at < now_text) & (Dossier.appointment_at != "")
    elif name == "supplement":
        where = Dossier.status == wf.SUPPLEMENT
    elif name == "new":
        where = Dossier.status == wf.NEW
    elif name == "all":
        where = Dossier.status.in_(RUNNING + (wf.SUPPLEMENT, wf.NEW))
    else:
        raise KeyError(name)
    return Dossier.select().where(where)


def worklist(name: str, officer: Officer, marks: tuple[str, str], page: int = 1, size: int = 50) -> Page:
    query = worklist_query(name, officer, marks)
    total = query.count()
    rows = list(query.order_by(Dossier.appointment_at, Dossier.code).paginate(max(1, page), size))
    return Page(rows, total, page, size)


def counts(officer: Officer, marks: tuple[str, str]) -> dict[str, int]:
    return {name: worklist_query(name, officer, marks).count() for name in WORKLISTS}


def search(text: str, page: int = 1, size: int = 50) -> Page:
    """By dossier code (or its start), by ID number, or by name with or without diacritics."""
    text = (text or "").strip()[:100]
    if not text:
        return Page([], 0, page, size)
    digits = re.sub(r"[\s.\-]", "", text)
    if digits.isdigit() and len(digits) in (9, 12):
        number = check_id_number(digits).number
        query = Dossier.select().where(Dossier.applicant_id_number == number)
    elif CODE_LIKE.match(text) and "-" in text:
        prefix = text.upper()
        # A range, not LIKE: SQLite's LIKE ignores case and so cannot use the code index.
        query = Dossier.select().where((Dossier.code >= prefix) & (Dossier.code < prefix + "\uffff"))
    else:
        match = fts_query(text)
        if match is None:
            return Page([], 0, page, size)
        db = Dossier._meta.database
        total = db.execute_sql("SELECT count(*) FROM dossier_fts WHERE dossier_fts MATCH ?", (match,)).fetchone()[0]
        ids = [r[0] for r in db.execute_sql(
            # Newest first by rowid (arrival order): sorting tens of thousands of hits for a common family
            # name by received_at would cost more than the whole search budget.
            "SELECT d.id FROM dossier_fts f JOIN dossier d ON d.rowid = f.rowid WHERE dossier_fts MATCH ? "
            "ORDER BY f.rowid DESC LIMIT ? OFFSET ?", (match, size, (max(1, page) - 1) * size)).fetchall()]
        by_id = {d.id: d for d in Dossier.select().where(Dossier.id.in_(ids))} if ids else {}
        return Page([by_id[i] for i in ids], total, page, size)
    total = query.count()
    rows = list(query.order_by(Dossier.received_at.desc()).paginate(max(1, page), size))
    return Page(rows, total, page, size)
