"""The sample commune for `make run` and `motcua node init --sample`.

Every sample write goes through the signed log like any other: the dossiers are received and moved on
by the workflow functions, with the node's clock set back to the moment each step happened.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from . import catalogue, users, workflow as wf
from .instance import Node
from .sync.state import User

UNIT_CODE = "000.00.19.H55"
UNIT_NAME = "UBND xã Tân Cương"
ADDRESS = "Xóm Hồng Thái 2, xã Tân Cương, tỉnh Thái Nguyên"
PROVINCE = "Thái Nguyên"
PASSWORD = "motcua-2026"
CREDENTIALS = [
    ("tiepnhan", PASSWORD, "reception"),
    ("chuyenvien", PASSWORD, "specialist"),
    ("lanhdao", PASSWORD, "leader"),
    ("quantri", PASSWORD, "admin"),
]
NAMES = {
    "reception": "Nguyễn Thị Hoa", "specialist": "Trần Văn Đức", "leader": "Đặng Quốc Hưng",
    "admin": "Lê Minh Tuấn",
}
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
          "Dương", "Lý"]
MIDDLE_M = ["Văn", "Hữu", "Đức", "Quang", "Minh", "Công"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh", "Mai", "Kim"]
GIVEN_M = ["Hùng", "Dũng", "Tuấn", "Long", "Nam", "Phúc", "Khánh", "Đạt", "Thắng", "Hiếu", "Sơn", "Trung"]
GIVEN_F = ["Hương", "Lan", "Hà", "Linh", "Trang", "Ngọc", "Thảo", "Yến", "Hạnh", "Nhung", "Ánh", "Duyên"]
HAMLETS = ["Xóm Hồng Thái 1", "Xóm Hồng Thái 2", "Xóm Nam Đồng", "Xóm Guộc", "Xóm Soi Mít", "Xóm Chợ"]
# Final status of each sample dossier, with weights: a commune's month at the counter.
PLAN = [(wf.RETURNED, 120), (wf.READY, 25), (wf.PROCESSING, 55), (wf.ACCEPTED, 12), (wf.SUPPLEMENT, 15),
        (wf.PAYMENT, 10), (wf.NEW, 15), (wf.REFUSED, 8), (wf.WITHDRAWN, 10), (wf.STOPPED, 8)]


def _person(rng: random.Random, commune: str = "xã Tân Cương") -> dict:
    female = rng.random() < 0.5
    name = " ".join([rng.choice(FAMILY), rng.choice(MIDDLE_F if female else MIDDLE_M),
                     rng.choice(GIVEN_F if female else GIVEN_M)])
    year = rng.randint(1950, 2005)
    birth = f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    century = 0 if year < 2000 else 2
    gender_digit = century + (1 if female else 0)
    id_number = f"019{gender_digit}{year % 100:02d}{rng.randint(0, 999999):06d}"
    return {
        "applicant_name": name, "applicant_id_number": id_number, "applicant_birth_date": birth,
        "applicant_gender": "female" if female else "male",
        "applicant_address": f"{rng.choice(HAMLETS)}, {commune}",
        "applicant_phone": f"09{rng.randint(10000000, 99999999)}",
    }


def create_sample(node: Node, count: int = 300, seed: int = 2026) -> list[tuple[str, str, str]]:
    """Create the officers and `count` dossiers across every status; returns the credentials."""
    rng = random.Random(seed)
    officers = {}
    for username, password, role in CREDENTIALS:
        uid = users.create_user(node, username, NAMES[role], [role], password, author="system")
        officers[role] = users.Officer.of(User.get_by_id(uid))
    real_now = node._now
    end = real_now().replace(second=0, microsecond=0)
    cal = catalogue.work_calendar()
    procs = [p for p in catalogue.current_procedures(end.date())]
    weights = [w for _, w in PLAN]
    try:
        for i in range(count):
            target = rng.choices([s for s, _ in PLAN], weights)[0]
            _one(node, rng, officers, procs, cal, end, target, i)
    finally:
        node._now = real_now
    return list(CREDENTIALS)


def _at(node: Node, when: datetime) -> None:
    node._now = lambda: when


def _one(node, rng, officers, procs, cal, end, target, i) -> None:
    rec, spec, lead = officers["reception"], officers["specialist"], officers["leader"]
    overdue_case = target == wf.PROCESSING and i % 4 == 0
    running = target in (wf.PROCESSING, wf.PAYMENT) and not overdue_case
    recent = target in (wf.NEW, wf.ACCEPTED) or running
    days_back = rng.randint(0, 2) if recent else rng.randint(1, 40)
    day = end.date() - timedelta(days=days_back)
    while not cal.is_working_day(day):
        day -= timedelta(days=1)
    when = datetime.combine(day, datetime.min.time()) + timedelta(minutes=rng.randint(7 * 60 + 5, 16 * 60 + 40))
    when = min(when, end - timedelta(minutes=5))
    slow = [p for p in procs if p.time_kind != "same_day"]
    proc = rng.choice(slow if running or overdue_case else procs)
    commune = node.identity.unit_name.removeprefix("UBND ").strip()
    body = dict(_person(rng, commune), procedure_code=proc.code, sets=1, pages=rng.randint(1, 6))
    online = target in (wf.NEW, wf.REFUSED) or rng.random() < 0.15
    _at(node, when)
    d, _ = wf.receive_dossier(node, None if online else rec, body, online=online)
    if target == wf.NEW:
        return
    step = [when]

    def later(minutes: int) -> bool:
        nxt = cal.add_working_minutes(step[0], minutes)
        if nxt >= end:
            return False
        step[0] = nxt
        _at(node, nxt)
        return True

    def do(officer, action, **params) -> None:
        wf.perform(node, officer, d.id, action, params)

    if target == wf.REFUSED:
        later(20)
        do(rec, "refuse", reason="Thủ tục không thuộc thẩm quyền của UBND xã; hướng dẫn đến cơ quan công an.")
        return
    if online:
        if not later(30):
            return
        do(rec, "accept")
    if target == wf.ACCEPTED or not later(rng.randint(10, 90)):
        return
    if target == wf.WITHDRAWN and rng.random() < 0.5:
        do(rec, "withdraw", reason="Người nộp đề nghị rút hồ sơ.")
        return
    do(rec, "transfer")
    if not later(rng.randint(10, 120)):
        return
    do(lead, "assign", handler_id=spec.id)
    if target == wf.WITHDRAWN:
        later(60)
        do(rec, "withdraw", reason="Người nộp đề nghị rút hồ sơ.")
        return
    if target == wf.SUPPLEMENT:
        later(60)
        do(spec, "request_supplement", reason="Hồ sơ còn thiếu giấy tờ.",
           items=["Bản sao giấy tờ chứng minh chỗ ở hợp pháp"])
        return
    if target == wf.PAYMENT:
        later(60)
        do(spec, "request_payment", amount=max(proc.fee_for(2), 20000))
        return
    if target == wf.STOPPED:
        later(120)
        do(lead, "stop", reason="Người yêu cầu không đủ điều kiện theo quy định.")
        return
    if overdue_case:
        # Late: the leader apologises before the deadline, and the new date has passed too.
        due = datetime.strptime(wf.get_dossier(d.id).appointment_at, "%Y-%m-%d %H:%M:%S")
        before = cal.add_working_minutes(step[0], 30)
        if before < due and before < end:
            _at(node, before)
            new = cal.add_working_minutes(due, 480)
            if new < end and (i // 4) % 2 == 0:
                do(lead, "apologise", reason="Cần xác minh thêm thông tin với cơ quan công an.",
                   new_appointment=new.strftime("%Y-%m-%d %H:%M"))
        return
    if target == wf.PROCESSING:
        return
    due = datetime.strptime(wf.get_dossier(d.id).appointment_at, "%Y-%m-%d %H:%M:%S")
    left = cal.working_minutes_between(step[0], due)
    work = max(20, int(left * rng.uniform(0.3, 0.95))) if rng.random() < 0.9 else left + rng.randint(60, 960)
    if not later(work):
        return
    do(spec, "propose", note="Đủ điều kiện, đề nghị ký.")
    if not later(rng.randint(10, 60)):
        return
    do(lead, "sign", result_digitised=rng.random() < 0.7)
    if target == wf.READY or not later(rng.randint(30, 2000)):
        return
    rating = rng.choices(["very_satisfied", "satisfied", "not_satisfied"], [50, 45, 5])[0]
    do(rec, "return_result", rating=rating,
       rating_reason="Phải chờ lâu." if rating == "not_satisfied" else "")
