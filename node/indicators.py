"""Decision 766 indicators (domain.md §7) over the synced tables: a pure read side, the same on node and hub.

Every figure is a COUNT or SUM(CASE ...) in SQL grouped by `unit_code` (no loop over dossiers in Python),
over one of three anchors, for a period of whole days [start, end] and a set of units:

    received   received in the period and accepted (status not 1 or 3, an appointment set)
               -> online share by level, online payment share, digitisation of the documents
    finished   status 7, 9 or 10 (workflow.FINISHED) with `finished_at` in the period and an appointment
               -> early / on time / late, electronic results, satisfaction ratings given at return
    running    status 2, 4, 5 or 6 now, received up to the end of the period -> in progress, overdue

Followed from domain.md and workflow.timing(): finished = withdrawn, result ready or returned; the
processing-end date is compared with the appointment by day; an apology (form 04) means late; a dossier
paused for a supplement (5) is in progress but never overdue; refused (3) and stopped (8) dossiers are
neither finished nor timed. Where domain.md is silent (also in the README): a dossier withdrawn before
it was accepted (no appointment) is left out; in progress and overdue are the state now (no past status
is kept), for the dossiers received up to the end of the period; ratings count with the period in which
the dossier was finished; fee dossiers are those with a fee (`fee_amount > 0`) whether paid or not; a
dossier is digitised when it has documents and every one is digitised or reused; online share =
submitted online / received of procedure versions offering partial or full online service; each group
scores rate × points, digitisation is the mean of three rates (dossiers digitised, dossiers reusing
data, electronic results), satisfaction = (very satisfied + satisfied) / rated, and the publicity group
(18 points) has no data here, so the score is out of 82. A rate over nothing is 0, with a note.

Indexes: RECOMMENDED_INDEXES are covering indexes that start with unit_code (one commune is one range,
the province 150 ranges); `index_sql()` creates them where the models do not declare them yet, on
PostgreSQL with the received and finished ones replaced by the smaller partial POSTGRES_INDEXES, and sets
the dossier table's autovacuum thresholds (AUTOVACUUM) there. On PostgreSQL the received figures come from
a GROUP BY unit, procedure version and channel, and each query runs with a custom plan and no parallel
workers (see `_anchor_rows`).
"""

from __future__ import annotations

import operator
import re
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from peewee import SQL, Case, fn

from . import catalogue, workflow as wf
from .errors import NodeError
from .sync.state import Dossier, DossierDocument, NodeRecord, Procedure
from .indicator_indexes import AUTOVACUUM, POSTGRES_INDEXES, RECOMMENDED_INDEXES, _on_postgres, index_sql  # noqa: F401
from .timeutil import to_text

RUNNING = (wf.ACCEPTED, wf.PROCESSING, wf.SUPPLEMENT, wf.PAYMENT)  # in progress
CLOCK_RUNNING = (wf.ACCEPTED, wf.PROCESSING, wf.PAYMENT)  # may be overdue (5 = paused for a supplement)
RESULTS = (wf.READY, wf.RETURNED)
# Templates both the hub's and a commune's indicator pages include (charts, their style): one copy, added
# to each app's template search path by `shared_templates(app)`.
TEMPLATES = Path(__file__).parent / "templates"


def shared_templates(app) -> None:
    """Let a Flask app find the indicator templates shared by hub and node."""
    from jinja2 import ChoiceLoader, FileSystemLoader

    app.jinja_loader = ChoiceLoader([app.jinja_loader, FileSystemLoader(str(TEMPLATES))])


REUSED = ("reused_document", "reused_result")
MAX_DAYS = 3700  # about ten years: a longer period is refused
POINTS = {"publicity": 18, "on_time": 20, "online": 12, "payment": 10, "satisfaction": 18, "digitisation": 22}
GROUPS = {  # group -> (Vietnamese, English)
    "publicity": ("Công khai, minh bạch", "Publicity and transparency"),
    "on_time": ("Tiến độ giải quyết", "On-time processing"),
    "online": ("Dịch vụ trực tuyến", "Online services"),
    "payment": ("Thanh toán trực tuyến", "Online payment"),
    "satisfaction": ("Mức độ hài lòng", "Satisfaction"),
    "digitisation": ("Số hóa hồ sơ", "Digitisation"),
}
MEASURED_POINTS = sum(v for k, v in POINTS.items() if k != "publicity")  # 82

# The covering indexes of the pages and the PostgreSQL settings behind them: node/indicator_indexes.py.


class BadParameter(NodeError):
    """A period, unit, figure or sort the pages cannot use (400, with a message that says which)."""

    http_status = 400
    code = "bad_parameter"


class BadPeriod(BadParameter):
    """The period asked for is not two valid dates in order."""

    code = "bad_period"


# ---------------------------------------------------------------- periods

@dataclass(frozen=True)
class Period:
    """Whole days from `start` to `end`, both included."""

    start: date
    end: date

    @property
    def lo(self) -> str:
        return self.start.isoformat()

    @property
    def hi(self) -> str:
        """The day after `end`: stored times compare as text, so `t < hi` keeps all of `end`."""
        return (self.end + timedelta(days=1)).isoformat()

    def between(self, column) -> Any:
        return (column >= self.lo) & (column < self.hi)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_day(raw: str, vi_name: str, en_name: str) -> date:
    shown = raw[:20]
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadPeriod(f"Ngày {vi_name} không hợp lệ: “{shown}”. Hãy nhập theo dạng YYYY-MM-DD, ví dụ 2026-01-31.",
                        f"The {en_name} date is not valid: “{shown}”. Use YYYY-MM-DD, for example 2026-01-31.",
                        fields={en_name: "YYYY-MM-DD"}) from None
    if not 2000 <= day.year <= 2099:
        raise BadPeriod(f"Ngày {vi_name} phải trong các năm 2000–2099.", f"The {en_name} date must be in 2000–2099.",
                        fields={en_name: "2000–2099"})
    return day


def parse_period(start: str | None, end: str | None, today: date) -> Period:
    """A period from two `YYYY-MM-DD` texts; a missing one defaults to 1 January of this year / today."""
    start, end = (start or "").strip(), (end or "").strip()
    first = _parse_day(start, "bắt đầu", "from") if start else date(today.year, 1, 1)
    last = _parse_day(end, "kết thúc", "to") if end else today
    if first > last:
        raise BadPeriod("Ngày bắt đầu phải trước hoặc bằng ngày kết thúc.", "The start date must not be after the end.",
                        fields={"from": "≤ to"})
    if (last - first).days > MAX_DAYS:
        raise BadPeriod("Kỳ báo cáo dài quá 10 năm.", "The period is longer than 10 years.", fields={"to": "≤ 10y"})
    return Period(first, last)


# ---------------------------------------------------------------- figures

def _rate(whole: str, *parts: str) -> property:
    """A read-only share: the sum of the `parts` counts over the `whole` count (0.0 over nothing)."""

    def share(self) -> float:
        total = getattr(self, whole)
        return sum(getattr(self, p) for p in parts) / total if total else 0.0

    return property(share, doc=f"({' + '.join(parts)}) / {whole}")


@dataclass
class Figures:
    """The counts of one unit (or of a total) for one period; rates and points are derived."""

    received: int = 0
    finished: int = 0
    early: int = 0
    on_time: int = 0
    late: int = 0
    apology: int = 0
    withdrawn: int = 0
    results: int = 0
    results_digitised: int = 0
    in_progress: int = 0
    overdue: int = 0
    paused: int = 0
    online_eligible: int = 0
    online: int = 0
    partial_eligible: int = 0
    partial_online: int = 0
    full_eligible: int = 0
    full_online: int = 0
    fee: int = 0
    paid_online: int = 0
    documents: int = 0
    documents_digitised: int = 0
    documents_reused: int = 0
    dossiers_digitised: int = 0
    dossiers_reused: int = 0
    rated: int = 0
    very_satisfied: int = 0
    satisfied: int = 0
    not_satisfied: int = 0

    def add(self, other: "Figures") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    on_time_rate = _rate("finished", "early", "on_time")
    online_rate = _rate("online_eligible", "online")
    partial_rate = _rate("partial_eligible", "partial_online")
    full_rate = _rate("full_eligible", "full_online")
    payment_rate = _rate("fee", "paid_online")
    digitised_rate = _rate("received", "dossiers_digitised")
    reuse_rate = _rate("received", "dossiers_reused")
    document_digitised_rate = _rate("documents", "documents_digitised")
    document_reused_rate = _rate("documents", "documents_reused")
    e_result_rate = _rate("results", "results_digitised")
    satisfaction_rate = _rate("rated", "very_satisfied", "satisfied")

    @property
    def scores(self) -> dict[str, float | None]:
        """Points per group of Decision 766 (None: not measured from the synced data)."""
        digit = (self.digitised_rate + self.reuse_rate + self.e_result_rate) / 3
        return {"publicity": None, "on_time": POINTS["on_time"] * self.on_time_rate,
                "online": POINTS["online"] * self.online_rate, "payment": POINTS["payment"] * self.payment_rate,
                "satisfaction": POINTS["satisfaction"] * self.satisfaction_rate,
                "digitisation": POINTS["digitisation"] * digit}

    @property
    def score_total(self) -> float:
        return sum(v for v in self.scores.values() if v is not None)

    def value(self, key: str) -> float:
        """A count, a rate (`*_rate`), a group's points (`points_<group>`) or `score_total` by name."""
        if key.startswith("points_"):
            return self.scores.get(key[7:]) or 0.0
        return getattr(self, key)


# Columns of the per-unit table and of the exports: (key, Vietnamese, English, kind, figure to drill into).
COLUMNS: list[tuple[str, str, str, str, str | None]] = [
    ("received", "Tiếp nhận", "Received", "count", "received"),
    ("finished", "Đã giải quyết", "Finished", "count", "finished"),
    ("early", "Trước hạn", "Early", "count", "early"),
    ("on_time", "Đúng hạn", "On time", "count", "on_time"),
    ("late", "Trễ hạn", "Late", "count", "late"),
    ("apology", "Có thư xin lỗi", "With an apology", "count", "apology"),
    ("withdrawn", "Rút hồ sơ", "Withdrawn", "count", "withdrawn"),
    ("on_time_rate", "Tỷ lệ đúng hạn", "On-time rate", "rate", None),
    ("in_progress", "Đang giải quyết", "In progress", "count", "in_progress"),
    ("overdue", "Quá hạn", "Overdue", "count", "overdue"),
    ("online_eligible", "Hồ sơ của TTHC trực tuyến", "Dossiers of online procedures", "count", "online_eligible"),
    ("online", "Nộp trực tuyến", "Submitted online", "count", "online"),
    ("online_rate", "Tỷ lệ trực tuyến", "Online share", "rate", None),
    ("partial_rate", "Trực tuyến một phần", "Partial online share", "rate", None),
    ("full_rate", "Trực tuyến toàn trình", "Full online share", "rate", None),
    ("fee", "Hồ sơ có phí", "Fee dossiers", "count", "fee"),
    ("paid_online", "Thanh toán trực tuyến", "Paid online", "count", "paid_online"),
    ("payment_rate", "Tỷ lệ thanh toán trực tuyến", "Online payment share", "rate", None),
    ("dossiers_digitised", "Hồ sơ số hóa", "Dossiers digitised", "count", "dossiers_digitised"),
    ("digitised_rate", "Tỷ lệ số hóa hồ sơ", "Digitised share", "rate", None),
    ("dossiers_reused", "Tái sử dụng dữ liệu", "Reusing data", "count", "dossiers_reused"),
    ("reuse_rate", "Tỷ lệ tái sử dụng", "Reuse share", "rate", None),
    ("document_digitised_rate", "Giấy tờ đã số hóa", "Documents digitised", "rate", None),
    ("results", "Có kết quả", "With a result", "count", "results"),
    ("results_digitised", "Kết quả điện tử", "Electronic results", "count", "results_digitised"),
    ("e_result_rate", "Tỷ lệ kết quả điện tử", "Electronic result share", "rate", None),
    ("rated", "Lượt đánh giá", "Ratings", "count", "rated"),
    ("not_satisfied", "Không hài lòng", "Not satisfied", "count", "not_satisfied"),
    ("satisfaction_rate", "Tỷ lệ hài lòng", "Satisfaction", "rate", None),
] + [(f"points_{g}", f"Điểm: {vi}", f"Points: {en}", "points", None)
     for g, (vi, en) in GROUPS.items() if g != "publicity"] + [
    ("score_total", "Tổng điểm (/82)", "Score (/82)", "points", None),
]
COLUMN_KEYS = {c[0] for c in COLUMNS}


@dataclass
class UnitRow:
    unit_code: str
    unit_name: str
    figures: Figures


@dataclass
class Report:
    period: Period
    rows: list[UnitRow]
    total: Figures
    notes: list[tuple[str, str]] = field(default_factory=list)  # (Vietnamese, English)
    now: str = ""


# ---------------------------------------------------------------- the conditions, one place

D, DD = Dossier, DossierDocument


def _sum(cond) -> Any:
    return fn.SUM(Case(None, [(cond, 1)], 0))


def _day(column) -> Any:
    return fn.SUBSTR(column, 1, 10)


def _within(cond, units: list[str] | None):
    """`cond` limited to `units` (None: every unit held)."""
    return cond if units is None else cond & D.unit_code.in_(units)


ANCHORS = {  # anchor -> (condition for a period, column the drill-down list is ordered by)
    "received": (lambda p: p.between(D.received_at) & D.status.not_in([wf.NEW, wf.REFUSED]) & (D.appointment_at != ""),
                 D.received_at),
    "finished": (lambda p: p.between(D.finished_at) & D.status.in_(wf.FINISHED) & (D.appointment_at != ""),
                 D.finished_at),
    "running": (lambda p: D.status.in_(RUNNING) & (D.received_at < p.hi), D.appointment_at),
}
NO_APOLOGY = D.original_appointment_at == ""
EARLY = NO_APOLOGY & (D.finished_at < _day(D.appointment_at))
# Not late: the processing end's day is not after the appointment's. `finished_at < appointment_at` implies
# it and, when false, only the same day remains; it is the common case and spares the two SUBSTR calls.
NOT_LATE = NO_APOLOGY & ((D.finished_at < D.appointment_at) | (_day(D.finished_at) == _day(D.appointment_at)))
ON_TIME = NO_APOLOGY & (_day(D.finished_at) == _day(D.appointment_at))
LATE = ~NO_APOLOGY | (_day(D.finished_at) > _day(D.appointment_at))


def online_levels() -> dict[str, tuple[set[str], list[tuple[str, int]]]]:
    """level -> (codes whose every version offers it, (code, version) pairs of codes whose versions differ).

    From the procedure versions held; a code not held at all (a hub without the catalogue) takes the seed's."""
    by_code: dict[str, dict[int, str]] = {}
    for code, version, level in Procedure.select(Procedure.code, Procedure.version, Procedure.online_level).tuples():
        by_code.setdefault(code, {})[version] = level
    for p in catalogue.SEED_PROCEDURES:
        by_code.setdefault(p["code"], {0: p.get("online_level", "none")})
    out: dict[str, tuple[set[str], list[tuple[str, int]]]] = {"partial": (set(), []), "full": (set(), [])}
    for code, versions in by_code.items():
        for level, (codes, pairs) in out.items():
            if all(v == level for v in versions.values()):
                codes.add(code)
            else:
                pairs.extend((code, n) for n, v in versions.items() if v == level)
    return out


class _Ctx:
    """What the conditions need besides the columns: the time now and the online levels of procedures."""

    def __init__(self, now: datetime):
        self.now_text = to_text(now)
        self.levels = online_levels()

    def level(self, *levels: str):
        parts = []
        for name in levels:
            codes, pairs = self.levels[name]
            if codes:
                parts.append(D.procedure_code.in_(sorted(codes)))
            parts += [(D.procedure_code == c) & (D.procedure_version == v) for c, v in pairs]
        return reduce(operator.or_, parts) if parts else (D.procedure_code.is_null())

    def overdue(self):
        return D.status.in_(CLOCK_RUNNING) & (D.appointment_at != "") & (D.appointment_at < self.now_text)

    def offers(self, level: str, code: str, version: int) -> bool:
        """Whether procedure `code` version `version` offers `level` online: `level(...)` in Python."""
        codes, pairs = self.levels[level]
        return code in codes or (code, version) in pairs


# figure -> (anchor, condition within the anchor (None: all of it), Vietnamese, English)
FIGURES: dict[str, tuple[str, Any, str, str]] = {
    "received": ("received", None, "Hồ sơ tiếp nhận", "Dossiers received"),
    "online_eligible": ("received", lambda c: c.level("partial", "full"),
                        "Hồ sơ của thủ tục có dịch vụ trực tuyến", "Dossiers of procedures offered online"),
    "online": ("received", lambda c: c.level("partial", "full") & (D.channel == 2),
               "Hồ sơ nộp trực tuyến", "Dossiers submitted online"),
    "partial_eligible": ("received", lambda c: c.level("partial"), "Hồ sơ của thủ tục trực tuyến một phần",
                         "Dossiers of partial online procedures"),
    "partial_online": ("received", lambda c: c.level("partial") & (D.channel == 2),
                       "Nộp trực tuyến (một phần)", "Submitted online (partial)"),
    "full_eligible": ("received", lambda c: c.level("full"), "Hồ sơ của thủ tục trực tuyến toàn trình",
                      "Dossiers of full online procedures"),
    "full_online": ("received", lambda c: c.level("full") & (D.channel == 2),
                    "Nộp trực tuyến (toàn trình)", "Submitted online (full)"),
    "fee": ("received", lambda c: D.fee_amount > 0, "Hồ sơ có phí, lệ phí", "Dossiers with a fee"),
    "paid_online": ("received", lambda c: (D.fee_amount > 0) & (D.paid_online == 1),
                    "Hồ sơ thanh toán trực tuyến", "Dossiers paid online"),
    "dossiers_digitised": ("received", lambda c: (D.doc_total > 0) & (D.doc_digitised == D.doc_total),
                           "Hồ sơ đã số hóa toàn bộ giấy tờ", "Dossiers with every document digitised"),
    "dossiers_reused": ("received", lambda c: D.doc_reused > 0,
                        "Hồ sơ tái sử dụng dữ liệu số", "Dossiers reusing digital data"),
    "finished": ("finished", None, "Hồ sơ đã giải quyết", "Dossiers finished"),
    "early": ("finished", lambda c: EARLY, "Giải quyết trước hạn", "Finished early"),
    "on_time": ("finished", lambda c: ON_TIME, "Giải quyết đúng hạn", "Finished on time"),
    "late": ("finished", lambda c: LATE, "Giải quyết trễ hạn", "Finished late"),
    "apology": ("finished", lambda c: ~NO_APOLOGY, "Trễ hạn, có thư xin lỗi (mẫu 04)",
                "Late with an apology (form 04)"),
    "withdrawn": ("finished", lambda c: D.status == wf.WITHDRAWN, "Rút hồ sơ", "Withdrawn"),
    "results": ("finished", lambda c: D.status.in_(RESULTS), "Hồ sơ có kết quả", "Dossiers with a result"),
    "results_digitised": ("finished", lambda c: D.status.in_(RESULTS) & (D.result_digitised == 1),
                          "Kết quả điện tử", "Electronic results"),
    "rated": ("finished", lambda c: D.rating.in_(list(wf.RATINGS)), "Có đánh giá khi trả kết quả",
              "Rated at return"),
    "very_satisfied": ("finished", lambda c: D.rating == "very_satisfied", "Rất hài lòng", "Very satisfied"),
    "satisfied": ("finished", lambda c: D.rating == "satisfied", "Hài lòng", "Satisfied"),
    "not_satisfied": ("finished", lambda c: D.rating == "not_satisfied", "Không hài lòng", "Not satisfied"),
    "in_progress": ("running", None, "Đang giải quyết", "In progress"),
    "overdue": ("running", lambda c: c.overdue(), "Đang giải quyết, quá hạn", "In progress, overdue"),
    "paused": ("running", lambda c: D.status == wf.SUPPLEMENT, "Tạm dừng chờ bổ sung", "Paused for a supplement"),
}
# Figures summed straight from their condition, per anchor; the rest are derived (see _aggregate).
_DIRECT = {
    "received": ["partial_eligible", "partial_online", "full_eligible", "full_online", "fee", "paid_online",
                 "dossiers_digitised", "dossiers_reused"],
    "finished": ["early", "apology", "withdrawn", "results_digitised", "very_satisfied", "satisfied",
                 "not_satisfied"],
    "running": ["overdue", "paused"],
}
_TOTALS = {"received": "received", "finished": "finished", "running": "in_progress"}


# ---------------------------------------------------------------- aggregation

def compute(period: Period, units: list[str] | None, now: datetime, names: dict[str, str] | None = None,
            parallel: bool = False) -> Report:
    """Every figure for `period` and `units` (None: every unit held), one row per unit plus the total.

    `parallel` runs the finished dossiers' query in a second thread with its own connection while this
    thread runs the others (many units: a province)."""
    per: dict[str, Figures] = {}
    if units is None:
        units = held_units()
    if units:
        ctx = _Ctx(now)
        _aggregate(period, units, ctx, per, parallel=parallel and len(units) > 1)
    names = names if names is not None else unit_names()
    rows = [UnitRow(u, names.get(u, u), per.get(u) or Figures()) for u in sorted(set(per) | set(units))]
    total = Figures()
    for r in rows:
        total.add(r.figures)
    return Report(period, rows, total, _notes(total), to_text(now))


def _aggregate(period: Period, units: list[str], ctx: _Ctx, per: dict[str, Figures], parallel: bool = False) -> None:
    """One GROUP BY unit_code query per anchor, each along a covering index (RECOMMENDED_INDEXES). Figures
    that are sums or differences of others are not asked of the database (each CASE costs on every row).
    `parallel`: the finished anchor's query runs in a second thread on its own connection meanwhile."""
    found: dict[str, list[tuple]] = {}
    if parallel:
        with ThreadPoolExecutor(max_workers=1) as pool:
            aside = pool.submit(_in_own_connection, _anchor_rows, "finished", period, units, ctx)
            for anchor in ("received", "running"):
                found[anchor] = _anchor_rows(anchor, period, units, ctx)
            found["finished"] = aside.result()
    else:
        found = {anchor: _anchor_rows(anchor, period, units, ctx) for anchor in _DIRECT}
    for anchor, keys in _DIRECT.items():
        for unit, count, *values in found[anchor]:
            f = per.setdefault(unit, Figures())
            setattr(f, _TOTALS[anchor], count)
            for key, value in zip(keys, values, strict=False):
                setattr(f, key, int(value or 0))
            if anchor == "received":
                f.online_eligible = f.partial_eligible + f.full_eligible
                f.online = f.partial_online + f.full_online
                f.documents, f.documents_digitised, f.documents_reused = (int(v or 0) for v in values[-3:])
            elif anchor == "finished":
                not_late = int(values[-1] or 0)
                f.on_time, f.late = not_late - f.early, count - not_late
                f.results = count - f.withdrawn  # finished = withdrawn (7), result ready (9) or returned (10)
                f.rated = f.very_satisfied + f.satisfied + f.not_satisfied


def _anchor_rows(anchor: str, period: Period, units: list[str], ctx: _Ctx) -> list[tuple]:
    if not _on_postgres():
        return list(_anchor_query(anchor, period, units, ctx))
    # PostgreSQL. psycopg prepares a statement run 5 times on a connection, and PostgreSQL may then plan it
    # once for any parameters ("generic plan"): the partial indexes (POSTGRES_INDEXES) cannot be proven to
    # hold for unknown parameters, so the scans fall back to the table (6-10 s instead of 0.3-0.6 s for the
    # province). A custom plan for each run costs about a millisecond. And no parallel workers: the
    # dashboard already runs two of these queries at once on two connections; a worker each on top
    # oversubscribes a small server's cores, and a leader then waits for a descheduled worker.
    db = D._meta.database
    with db.atomic():
        db.execute_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        db.execute_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        if anchor == "received":
            return _received_by_procedure(period, units, ctx)
        return list(_anchor_query(anchor, period, units, ctx))


# The received figures that do not depend on the procedure or the channel (the last `_DIRECT` ones).
_RECEIVED_PLAIN = _DIRECT["received"][4:]
assert _DIRECT["received"][:4] == ["partial_eligible", "partial_online", "full_eligible", "full_online"]


def _received_by_procedure(period: Period, units: list[str], ctx: _Ctx) -> list[tuple]:
    """The received anchor's rows (as `_anchor_query` gives them) from a GROUP BY unit, procedure version
    and channel: PostgreSQL then tests each row's procedure once (a hash) instead of the online levels'
    IN lists in four CASEs; the levels are applied here to a few thousand groups. SQLite, whose GROUP BY
    would sort outside the index order, keeps the one-row-per-unit query."""
    sums = [_sum(FIGURES[k][1](ctx)) for k in _RECEIVED_PLAIN]
    query = (D.select(D.unit_code, D.procedure_code, D.procedure_version, D.channel, fn.COUNT(SQL("*")), *sums,
                      fn.SUM(D.doc_total), fn.SUM(D.doc_digitised), fn.SUM(D.doc_reused))
             .where(_within(ANCHORS["received"][0](period), units))
             .group_by(D.unit_code, D.procedure_code, D.procedure_version, D.channel).tuples())
    width = 1 + 4 + len(_RECEIVED_PLAIN) + 3
    per: dict[str, list[int]] = {}
    offers: dict[tuple[str, int], tuple[bool, bool]] = {}
    for unit, code, version, channel, count, *rest in query:
        row = per.setdefault(unit, [0] * width)
        level = offers.get((code, version))
        if level is None:
            level = offers[code, version] = (ctx.offers("partial", code, version), ctx.offers("full", code, version))
        online = channel == 2
        row[0] += count
        # partial_eligible, partial_online, full_eligible, full_online: the order of _DIRECT["received"]
        row[1] += count if level[0] else 0
        row[2] += count if level[0] and online else 0
        row[3] += count if level[1] else 0
        row[4] += count if level[1] and online else 0
        for i, value in enumerate(rest, start=5):
            row[i] += int(value or 0)
    return [(unit, *values) for unit, values in per.items()]


def _anchor_query(anchor: str, period: Period, units: list[str], ctx: _Ctx):
    keys = _DIRECT[anchor]
    extra = [_sum(NOT_LATE)] if anchor == "finished" else []
    if anchor == "received":  # the documents' figures ride along the same index scan
        extra = [fn.SUM(D.doc_total), fn.SUM(D.doc_digitised), fn.SUM(D.doc_reused)]
    sums = [_sum(FIGURES[k][1](ctx)) for k in keys] + extra
    cond = ANCHORS[anchor][0](period)
    if anchor == "running" and period.hi > ctx.now_text:
        cond = D.status.in_(RUNNING)  # nothing is received after now: the status index alone serves
    query = (D.select(D.unit_code, fn.COUNT(SQL("*")), *sums).where(_within(cond, units))
             .group_by(D.unit_code).tuples())
    return query


def _in_own_connection(func, *args):
    """Run `func` in this (worker) thread on its own connection, closed afterwards."""
    db = D._meta.database
    try:
        db.connect(reuse_if_open=True)
        return func(*args)
    finally:
        if not db.is_closed():
            db.close()


def _notes(total: Figures) -> list[tuple[str, str]]:
    notes = [("Nhóm công khai, minh bạch (18 điểm) chưa đo được từ dữ liệu đồng bộ: tổng điểm tính trên 82.",
              "The publicity group (18 points) is not measured from the synced data: the score is out of 82.")]
    if not (total.received or total.finished or total.rated or total.in_progress):
        notes.insert(0, ("Không có hồ sơ nào trong kỳ và đơn vị đã chọn: mọi chỉ số bằng 0.",
                         "No dossier in this period and selection: every figure is 0."))
        return notes
    for count, vi, en in ((total.finished, "hồ sơ đã giải quyết", "finished dossier"),
                          (total.online_eligible, "hồ sơ của thủ tục có dịch vụ trực tuyến",
                           "dossier of a procedure offered online"),
                          (total.fee, "hồ sơ có phí", "dossier with a fee"),
                          (total.received, "hồ sơ tiếp nhận", "dossier received"),
                          (total.results, "hồ sơ có kết quả", "dossier with a result"),
                          (total.rated, "lượt đánh giá", "rating")):
        if not count:
            notes.append((f"Chưa có {vi} trong kỳ: các tỷ lệ dựa trên số này tính là 0.",
                          f"No {en} in the period: the rates over it count as 0."))
    return notes


# ---------------------------------------------------------------- drill-down and the overdue watch

@dataclass
class Page:
    rows: list[Dossier]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


LIST_FIELDS = (D.id, D.code, D.unit_code, D.procedure_code, D.matter, D.status, D.channel, D.received_at,
               D.appointment_at, D.original_appointment_at, D.apology_at, D.finished_at, D.returned_at, D.rating,
               D.fee_amount, D.paid_online, D.result_digitised, D.handler_id)


def _page(query, order, page: int, size: int) -> Page:
    total = query.count()
    page = max(1, min(page, max(1, -(-total // size))))
    return Page(list(query.order_by(*order).paginate(page, size)), total, page, size)


def dossiers_behind(figure: str, period: Period, units: list[str] | None, now: datetime, page: int = 1,
                    size: int = 50) -> Page:
    """The dossiers counted in `figure` (a key of FIGURES), newest first; KeyError for an unknown figure."""
    anchor, extra, _vi, _en = FIGURES[figure]
    base, order = ANCHORS[anchor]
    cond = base(period) if extra is None else base(period) & extra(_Ctx(now))
    if units is not None and not units:
        return Page([], 0, 1, size)
    return _page(D.select(*LIST_FIELDS).where(_within(cond, units)), (order.desc(), D.code), page, size)


WATCH_KINDS = {"all": ("Quá hạn và sắp đến hạn", "Overdue and due soon"), "overdue": ("Quá hạn", "Overdue"),
               "due_soon": ("Sắp đến hạn", "Due soon")}


def watch(units: list[str] | None, now: datetime, kind: str = "all", page: int = 1, size: int = 50) -> Page:
    """Running dossiers past their appointment or due within one working day, soonest first.

    A dossier paused for a supplement is not listed (its clock is stopped, as in workflow.timing)."""
    now_text, soon_text = wf.horizon(now)
    cond = D.status.in_(CLOCK_RUNNING) & (D.appointment_at != "") & (D.appointment_at <= soon_text)
    if kind == "overdue":
        cond = cond & (D.appointment_at < now_text)
    elif kind == "due_soon":
        cond = cond & (D.appointment_at >= now_text)
    if units is not None and not units:
        return Page([], 0, 1, size)
    return _page(D.select(*LIST_FIELDS).where(_within(cond, units)), (D.appointment_at, D.code), page, size)


def watch_counts(units: list[str] | None, now: datetime) -> dict[str, dict[str, int]]:
    """Per unit: overdue, due soon, and how many of those have no apology (form 04) yet."""
    now_text, soon_text = wf.horizon(now)
    cond = D.status.in_(CLOCK_RUNNING) & (D.appointment_at != "") & (D.appointment_at <= soon_text)
    if units is not None and not units:
        return {}
    overdue = D.appointment_at < now_text
    query = (D.select(D.unit_code, _sum(overdue), _sum(~overdue), _sum(D.apology_at == ""))
             .where(_within(cond, units))
             .group_by(D.unit_code).tuples())
    return {u: {"overdue": a or 0, "due_soon": b or 0, "no_apology": c or 0} for u, a, b, c in query}


# ---------------------------------------------------------------- tables for the pages and the exports

def sort_rows(report: Report, key: str, descending: bool = False) -> list[UnitRow]:
    """The report's rows sorted by a column key (COLUMN_KEYS), "unit_code" or "unit_name"."""
    if key in ("unit_code", "unit_name"):
        return sorted(report.rows, key=lambda r: (getattr(r, key).casefold(), r.unit_code), reverse=descending)
    if key not in COLUMN_KEYS:
        raise BadParameter(f"Không sắp xếp được theo “{key[:30]}”.", f"Cannot sort by “{key[:30]}”.")
    return sorted(report.rows, key=lambda r: (r.figures.value(key), r.unit_code), reverse=descending)


def table_rows(report: Report, lang: str = "vi") -> list[list[Any]]:
    """Header, one row per unit, the total: counts as integers, rates as `xlsx.Percent`, points rounded."""
    from .xlsx import Percent

    en = lang == "en"
    header = ["Unit code" if en else "Mã đơn vị", "Unit" if en else "Đơn vị"] + [c[2] if en else c[1] for c in COLUMNS]

    def cells(f: Figures) -> list[Any]:
        out: list[Any] = []
        for key, _vi, _en, kind, _fig in COLUMNS:
            value = f.value(key)
            out.append(Percent(value) if kind == "rate" else round(value, 2) if kind == "points" else int(value))
        return out

    rows = [header] + [[r.unit_code, r.unit_name] + cells(r.figures) for r in report.rows]
    rows.append(["", "Total" if en else "Tổng cộng"] + cells(report.total))
    return rows


# ---------------------------------------------------------------- units and names

def unit_names() -> dict[str, str]:
    """unit code -> name, from the key registry (any node other than the hub that has a name)."""
    out: dict[str, str] = {}
    for code, name in (NodeRecord.select(NodeRecord.unit_code, NodeRecord.unit_name)
                       .where(NodeRecord.kind != "hub").order_by(NodeRecord.enrolled_at).tuples()):
        if code and name:
            out[code] = name
    return out


def held_units() -> list[str]:
    """Every unit code the dossier table holds: one index seek per unit (a recursive "loose index scan"),
    not a scan of the whole table. The same SQL runs on SQLite and PostgreSQL."""
    table = D._meta.table_name
    sql = (f'WITH RECURSIVE u(code) AS (SELECT MIN(unit_code) FROM "{table}" UNION ALL '
           f'SELECT (SELECT MIN(unit_code) FROM "{table}" WHERE unit_code > u.code) FROM u WHERE u.code IS NOT NULL) '
           f'SELECT code FROM u WHERE code IS NOT NULL')
    return [row[0] for row in D._meta.database.execute_sql(sql).fetchall()]


def commune_units() -> list[str]:
    """Unit codes of the enrolled communes (active, revoked or quarantined alike: their history counts)."""
    return sorted({c for (c,) in NodeRecord.select(NodeRecord.unit_code)
                   .where((NodeRecord.kind == "commune") & (NodeRecord.unit_code != "")).tuples()})


def procedure_names(lang: str = "vi") -> dict[str, str]:
    """procedure code -> name of its newest version held (else the seed's)."""
    out = {p["code"]: p["name_en" if lang == "en" else "name_vi"] for p in catalogue.SEED_PROCEDURES}
    for code, vi, en in (Procedure.select(Procedure.code, Procedure.name_vi, Procedure.name_en)
                         .order_by(Procedure.version).tuples()):
        out[code] = en if lang == "en" and en else vi
    return out
