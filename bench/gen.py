"""Fill a fresh node with N dossiers through the signed log, and cache the folder under bench/work/.

Every dossier is received and moved on through the workflow (one in `REAL_EVERY` by
`workflow.receive_dossier` / `workflow.perform` themselves, the others by their fast twin in `desk.py`,
which writes the same signed changes with `store.write`), with the node's clock set to the moment each
step happened, so the change log, the history and the search index are what officers' work would leave.

Dossiers are received over the year before `END`, on working days and in office hours; each then follows
its life (transfer, assignment, processing, signing, return) until its next step would come later than
`END`, so recent dossiers are still running and older ones are mostly finished. A few stall on purpose
(forgotten in processing, never collected, waiting for a supplement), as in a real commune. Many dossiers
share one outer transaction for speed.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from node import catalogue, users
from node.instance import Node, init_data_dir
from node.store import transaction
from node.sync.state import User

from .desk import FastDesk, RealDesk, payload_shapes_differ
from .people import person

VERSION = "g1"  # bump whenever what the generator writes changes: the cache is keyed by it
END = datetime(2026, 3, 2, 10, 0)  # "now" on the generated node: a Monday morning
DAYS = 365
UNIT_CODE = "000.00.19.H55"
PASSWORD = "bench-mat-khau-2026"
STAFF = {
    "reception": ["Nguyễn Thị Hoa", "Phạm Thu Trang"],
    "specialist": ["Trần Văn Đức", "Lê Thị Mai", "Hoàng Minh Quân", "Vũ Thị Hằng"],
    "leader": ["Đặng Quốc Hưng", "Bùi Văn Thành"],
    "admin": ["Lê Minh Tuấn"],
}
# How often each procedure is asked for at a commune desk (certified copies dominate).
PROCEDURE_WEIGHTS = {
    "2.000815": 34, "2.000884": 9, "1.001193": 8, "1.000656": 2, "1.000894": 3, "2.000635": 8, "1.004873": 8,
    "1.004222": 5, "1.004194": 7, "2.000986": 6, "2.002622": 3, "1.001731": 1,
}
WORK = Path(__file__).resolve().parent / "work"
MARKER = "bench-generated.json"
REAL_EVERY = 20  # one dossier in 20 goes through workflow.receive_dossier / perform themselves


class Clock:
    """A settable local clock for the node (`Node(path, now=clock)`)."""

    def __init__(self, value: datetime = END):
        self.value = value

    def __call__(self) -> datetime:
        return self.value


@dataclass
class Staff:
    reception: list[users.Officer]
    specialist: list[users.Officer]
    leader: list[users.Officer]
    admin: list[users.Officer]


def username(role: str, i: int) -> str:
    return f"{role}{i + 1}"


def create_staff(node: Node) -> Staff:
    """One account per name in STAFF (`reception1`, `specialist3`, ...), all with PASSWORD."""
    out: dict[str, list[users.Officer]] = {}
    for role, names in STAFF.items():
        out[role] = []
        for i, full_name in enumerate(names):
            uid = users.create_user(node, username(role, i), full_name, [role], PASSWORD, author="system")
            out[role].append(users.Officer.of(User.get_by_id(uid)))
    return Staff(**out)


def working_moments(cal, end: datetime, days: int) -> list[date]:
    """The working days of the `days` calendar days up to `end`'s date."""
    first = end.date() - timedelta(days=days)
    return [first + timedelta(days=i) for i in range(days + 1) if cal.is_working_day(first + timedelta(days=i))]


def _at_minute(cal, day: date, minute: int) -> datetime:
    """The moment `minute` working minutes after opening on `day` (never at lunch)."""
    for start, stop in cal.periods:
        length = (stop.hour * 60 + stop.minute) - (start.hour * 60 + start.minute)
        if minute < length:
            return datetime.combine(day, start) + timedelta(minutes=minute)
        minute -= length
    return cal.closing(day) - timedelta(minutes=5)


def _received_at(rng: random.Random, cal, days: list[date], end: datetime) -> datetime:
    """A random moment in office hours on one of `days`, before `end`."""
    for _ in range(100):
        when = _at_minute(cal, rng.choice(days), rng.randrange(0, cal.minutes_per_day))
        if when < end:
            return when
    return end - timedelta(minutes=1)


class Life:
    """One dossier's life: steps happen at increasing moments until one would pass `end`."""

    def __init__(self, desk, clock: Clock, end: datetime, start: datetime):
        self.desk, self.clock, self.cal, self.end = desk, clock, desk.cal, end
        self.t = start
        self.d = None

    def later(self, minutes: float) -> bool:
        """Move the clock `minutes` working minutes on; False (and no move) if that passes `end`."""
        nxt = self.cal.add_working_minutes(self.t, max(1, int(minutes)))
        if nxt >= self.end:
            return False
        self.t = nxt
        self.clock.value = nxt
        return True

    def do(self, officer: users.Officer, action: str, **params) -> None:
        self.d = self.desk.perform(officer, self.d, action, **params)

    def due(self) -> datetime:
        return datetime.strptime(self.d.appointment_at, "%Y-%m-%d %H:%M:%S")


def live(life: Life, rng: random.Random, staff: Staff, proc, body: dict, online: bool) -> int:
    """Receive one dossier and carry it as far as the clock allows; returns the number of steps taken."""
    rec = rng.choice(staff.reception)
    lead = rng.choice(staff.leader)
    life.clock.value = life.t
    life.d = life.desk.receive(None if online else rec, body, online)
    steps = 1
    if online:
        if not life.later(rng.randint(20, 480)):
            return steps
        roll = rng.random()
        if roll < 0.04:
            life.do(rec, "refuse", reason="Thủ tục không thuộc thẩm quyền của UBND xã.")
            return steps + 1
        if roll < 0.07:
            life.do(rec, "request_supplement", reason="Ảnh chụp giấy tờ không đọc được.",
                    items=["Bản chụp rõ nét giấy tờ tùy thân"])
            return steps + 1
        life.do(rec, "accept")
        steps += 1
    due = life.due()
    budget = max(60, life.cal.working_minutes_between(life.t, due))
    if not life.later(budget * rng.uniform(0.02, 0.1)):
        return steps
    if rng.random() < 0.012:
        life.do(rec, "withdraw", reason="Người nộp đề nghị rút hồ sơ.")
        return steps + 1
    life.do(rec, "transfer")
    if not life.later(budget * rng.uniform(0.02, 0.1)):
        return steps + 1
    specialist = rng.choice(staff.specialist)
    life.do(lead, "assign", handler_id=specialist.id)
    steps += 2
    roll = rng.random()
    late = rng.random() < 0.08
    new = life.cal.add_working_minutes(due, rng.choice([480, 960, 1440]))
    if late and rng.random() < 0.4 and life.later(15) and new > life.t:
        life.do(lead, "apologise", reason="Cần xác minh thêm thông tin với cơ quan liên quan.",
                new_appointment=new.strftime("%Y-%m-%d %H:%M"))
        steps += 1
    if roll < 0.006:  # forgotten in processing: becomes overdue
        return steps
    if roll < 0.036:
        if not life.later(budget * rng.uniform(0.1, 0.4)):
            return steps
        life.do(specialist, "request_supplement", reason="Hồ sơ còn thiếu giấy tờ.",
                items=["Bản sao giấy tờ chứng minh chỗ ở hợp pháp"])
        steps += 1
        if rng.random() < 0.2 or not life.later(rng.randint(240, 4800)):
            return steps  # the applicant never came back (or has not yet)
        life.do(rec, "supplement_received")
        steps += 1
    elif roll < 0.046:
        if life.later(budget * rng.uniform(0.1, 0.5)):
            life.do(lead, "stop", reason="Người yêu cầu không đủ điều kiện theo quy định.")
            steps += 1
        return steps
    elif roll < 0.096 and proc.fee_for(2) > 0:
        if not life.later(budget * rng.uniform(0.1, 0.3)):
            return steps
        life.do(specialist, "request_payment", amount=max(proc.fee_for(2), 20000))
        steps += 1
        if rng.random() < 0.1 or not life.later(rng.randint(30, 2400)):
            return steps
        life.do(rec, "record_payment", online=rng.random() < 0.3)
        steps += 1
    left = life.cal.working_minutes_between(life.t, life.due())
    work = left + rng.randint(60, 2400) if late else max(5, left * rng.uniform(0.3, 0.85))
    if not life.later(work):
        return steps
    life.do(specialist, "propose", note="Đủ điều kiện, đề nghị ký.")
    if not life.later(max(5, budget * rng.uniform(0.01, 0.08))):
        return steps + 1
    life.do(lead, "sign", result_digitised=rng.random() < 0.7)
    steps += 2
    if rng.random() < 0.02 or not life.later(rng.expovariate(1 / 900) + 20):
        return steps  # result never collected (or not yet)
    rating = rng.choices(["very_satisfied", "satisfied", "not_satisfied"], [55, 42, 3])[0]
    life.do(rec, "return_result", rating=rating, rating_reason="Phải chờ lâu." if rating == "not_satisfied" else "")
    return steps + 1


def generate(path: Path, n: int, *, seed: int = 2026, batch: int = 500, end: datetime = END,
             progress: Callable[[str], None] = print) -> dict:
    """Create a node in `path` (must not exist) holding `n` dossiers; returns generation figures."""
    t0 = time.perf_counter()
    init_data_dir(path, unit_code=UNIT_CODE, unit_name="UBND xã Tân Cương", province_name="Thái Nguyên",
                  unit_address="Xóm Hồng Thái 2, xã Tân Cương, tỉnh Thái Nguyên")
    clock = Clock(end - timedelta(days=DAYS + 1))
    node = Node(path, now=clock)
    try:
        catalogue.seed(node)
        staff = create_staff(node)
        setup_s = time.perf_counter() - t0
        rng = random.Random(seed)
        cal = catalogue.work_calendar()
        procs = {p.code: p for p in catalogue.current_procedures(end.date())}
        codes = [c for c in PROCEDURE_WEIGHTS if c in procs]
        weights = [PROCEDURE_WEIGHTS[c] for c in codes]
        days = working_moments(cal, end, DAYS)
        # Received moments, sorted so codes and history grow in time order as on a real desk.
        moments = sorted(_received_at(rng, cal, days, end) for _ in range(n))
        real, fast = RealDesk(node, cal), FastDesk(node, cal)
        real_ids: list[str] = []
        fast_ids: list[str] = []
        changes0 = node.db.execute_sql("SELECT count(*) FROM change").fetchone()[0]
        t1 = time.perf_counter()
        steps = 0
        last_report = t1
        for first in range(0, n, batch):
            with transaction(node):
                for when in moments[first:first + batch]:
                    proc = procs[rng.choices(codes, weights)[0]]
                    body = dict(person(rng, end.date()), procedure_code=proc.code, sets=rng.choice([1, 1, 1, 2]),
                                pages=rng.randint(1, 8), return_method=rng.choices(["desk", "post", "online"],
                                                                                   [85, 5, 10])[0])
                    online = proc.online_level != "none" and rng.random() < 0.2
                    desk = real if len(real_ids) * REAL_EVERY <= len(fast_ids) else fast
                    life = Life(desk, clock, end, when)
                    steps += live(life, rng, staff, proc, body, online)
                    (real_ids if desk is real else fast_ids).append(life.d.id)
            done = min(first + batch, n)
            now = time.perf_counter()
            if now - last_report > 10 or done == n:
                last_report = now
                rate = done / (now - t1)
                progress(f"  generated {done:,}/{n:,} dossiers ({rate:,.0f}/s, about {(n - done) / rate:,.0f} s left)")
        gen_s = time.perf_counter() - t1
        changes = node.db.execute_sql("SELECT count(*) FROM change").fetchone()[0] - changes0
        differ = payload_shapes_differ(node.db, real_ids, fast_ids)
        for shape in differ:
            progress(f"  WARNING: the fast desk wrote a change the workflow never did: {shape}")
        node.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        node.db.execute_sql("ANALYZE")
    finally:
        node.close()
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {
        "version": VERSION, "dossiers": n, "seed": seed, "batch": batch, "end": end.strftime("%Y-%m-%d %H:%M"),
        "setup_s": round(setup_s, 2), "seconds": round(gen_s, 2), "dossiers_per_s": round(n / gen_s, 1),
        "changes": changes, "changes_per_s": round(changes / gen_s, 1), "workflow_steps": steps,
        "folder_bytes": size, "through_workflow": len(real_ids), "through_fast_desk": len(fast_ids),
        "shape_mismatches": differ,
    }


def cached_node(n: int, *, fresh: bool = False, progress: Callable[[str], None] = print) -> tuple[Path, dict]:
    """The generated folder for `n` dossiers (made once, reused while VERSION stays); returns (path, figures)."""
    target = WORK / f"node-{n}-{VERSION}"
    marker = target / MARKER
    if fresh and target.exists():
        shutil.rmtree(target)
    if marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        info["cached"] = True
        return target, info
    if target.exists():
        shutil.rmtree(target)  # an interrupted generation
    tmp = WORK / f"node-{n}-{VERSION}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    WORK.mkdir(parents=True, exist_ok=True)
    progress(f"Generating a node with {n:,} dossiers in {tmp} ...")
    info = generate(tmp, n, progress=progress)
    (tmp / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
    tmp.rename(target)
    info["cached"] = False
    return target, info
