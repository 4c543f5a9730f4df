"""The dossier state machine as a table (every action x role x status), then the rules one by one."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from conftest import ROLES, UNIT_CODE, FakeNow, reception_body
from node import workflow as wf
from node.errors import PermissionDenied, TransitionNotAllowed, ValidationFailed
from node.instance import Node
from node.sync.log import Change
from node.sync.state import Dossier, DossierEvent, User, database
from node.users import Officer

MARITAL = "1.004873"  # marital status certificate: 3 working days, restart rule, fee 15,000 đ
FUNERAL = "1.001731"  # funeral support: 3 working days, pause rule
LINKED = "2.000986"  # interconnected: birth, residence and health card for a child, 5 working days
LATER = "2026-03-20 10:00"  # a Friday, after every appointment the table builds
ASK = {"reason": "Thiếu giấy tờ", "items": ["Bản sao giấy khai sinh"]}

# How to reach each status: (registered online?, [(action, role), ...]). "4s" is processing at the signing
# step, "4a" processing after an apology (a second one is refused). "4i" is an interconnected procedure in
# processing, "4g" that dossier sent to an agency, "4r" received there (states with i/g/r use LINKED).
PATHS: dict[str, tuple[bool, list[tuple[str, str]]]] = {
    "1": (True, []),
    "2": (False, []),
    "3": (True, [("refuse", "reception")]),
    "4": (False, [("transfer", "reception")]),
    "4s": (False, [("transfer", "reception"), ("propose", "specialist")]),
    "4a": (False, [("transfer", "reception"), ("apologise", "leader")]),
    "4i": (False, [("transfer", "reception")]),
    "4g": (False, [("transfer", "reception"), ("send_to_agency", "specialist")]),
    "4r": (False, [("transfer", "reception"), ("send_to_agency", "leader"), ("agency_accept", "agency")]),
    "5": (False, [("transfer", "reception"), ("request_supplement", "specialist")]),
    "6": (False, [("transfer", "reception"), ("request_payment", "specialist")]),
    "7": (False, [("withdraw", "reception")]),
    "8": (False, [("transfer", "reception"), ("stop", "leader")]),
    "9": (False, [("transfer", "reception"), ("propose", "specialist"), ("sign", "leader")]),
    "10": (False, [("transfer", "reception"), ("propose", "specialist"), ("sign", "leader"),
                   ("return_result", "reception")]),
}


def status_of(state: str) -> int:
    return int(state.rstrip("asigr"))


def valid_params(action: str, officers: dict[str, Officer]) -> dict:
    """Parameters that make `action` succeed whenever the state machine allows it."""
    return {
        "refuse": {"reason": "Không thuộc thẩm quyền của xã"},
        "request_supplement": ASK,
        "assign": {"handler_id": officers["specialist"].id},
        "request_payment": {"amount": 15000},
        "record_payment": {"online": "1"},
        "stop": {"reason": "Không đủ điều kiện"},
        "apologise": {"reason": "Chờ xác minh", "new_appointment": LATER},
        "withdraw": {"reason": "Người dân xin rút"},
        "return_result": {"rating": "satisfied"},
        "send_to_agency": {"agency": "police"},
        "agency_return": {"reason": "Thiếu xác nhận nơi cư trú"},
    }.get(action, {})


def build(node: Node, officers: dict[str, Officer], state: str, procedure: str = MARITAL) -> str:
    """A new dossier driven to `state` through the workflow itself; returns its code."""
    online, steps = PATHS[state]
    body = reception_body(procedure_code=LINKED if state[-1] in "igr" else procedure)
    d, _warnings = wf.receive_dossier(node, None if online else officers["reception"], body, online=online)
    for action, role in steps:
        d = wf.perform(node, officers[role], d.code, action, valid_params(action, officers))
    assert d.status == status_of(state)
    assert (d.step == "signing") == state.endswith("s")
    return d.code


def expected_refusal(action: wf.Action, role: str, d: Dossier):
    """The rules restated from domain.md: None when allowed, else the error class."""
    if role not in action.roles:
        return PermissionDenied
    if d.status not in action.froms:
        return TransitionNotAllowed
    if action.name == "request_supplement" and d.status == wf.NEW and role != "reception":
        return TransitionNotAllowed
    if action.name == "propose" and d.step != "processing":
        return TransitionNotAllowed
    if action.name == "sign" and d.step != "signing":
        return TransitionNotAllowed
    if action.name == "apologise" and d.original_appointment_at:
        return TransitionNotAllowed
    if action.name == "send_to_agency" and (d.step != "processing" or d.procedure_code != LINKED):
        return TransitionNotAllowed
    at = d.step.split(":") if d.step.startswith("agency:") else None
    if action.name in ("agency_result", "agency_return") and (at is None or at[-1] != "received"):
        return TransitionNotAllowed
    if action.name == "agency_accept" and (at is None or at[-1] == "received"):
        return TransitionNotAllowed
    return None


def snapshot(code: str) -> tuple[dict, int, int]:
    row = Dossier.select().where(Dossier.code == code).dicts().get()
    events = DossierEvent.select().where(DossierEvent.dossier_id == row["id"]).count()
    return row, Change.select().count(), events


# A hub officer of an interconnected agency: the role only the hub gives (never a commune user's).
AGENCY_OFFICER = Officer("hub:chuyenvien", "chuyenvien", "Chuyên viên Công an huyện", frozenset({wf.AGENCY}))
TABLE_ROLES = ROLES + ("agency",)


def officers_of() -> dict[str, Officer]:
    return dict({role: Officer.of(User.get(User.username == f"{role}1")) for role in ROLES}, agency=AGENCY_OFFICER)


# ---------------------------------------------------------------- the table

@pytest.fixture(scope="module")
def _table_node(tmp_path_factory, _template_node):
    path = tmp_path_factory.mktemp("workflow-table") / "node"
    shutil.copytree(_template_node, path)
    n = Node(path, now=FakeNow())
    yield SimpleNamespace(node=n, officers=officers_of(), refused={})
    n.close()


@pytest.fixture
def table(_table_node):
    # The database proxy is global: other tests of this module bind their own node in between.
    database.initialize(_table_node.node.db)
    return _table_node


CASES = [(a, r, s) for a in wf.ACTIONS for r in TABLE_ROLES for s in PATHS]


@pytest.mark.parametrize("action_name,role,state", CASES, ids=[f"{a}-{r}-{s}" for a, r, s in CASES])
def test_transition_table(table, action_name, role, state):
    node, officers = table.node, table.officers
    action = wf.ACTIONS[action_name]
    # A refused action changes nothing, so dossiers for refusals are built once per state and shared.
    code = table.refused.get(state)
    if code is None:
        code = build(node, officers, state)
    d = wf.get_dossier(code)
    refusal = expected_refusal(action, role, d)
    if refusal is not None:
        table.refused.setdefault(state, code)
    elif code == table.refused.get(state):
        code = build(node, officers, state)
        d = wf.get_dossier(code)
    officer = officers[role]
    assert (action in wf.allowed_actions(officer, d)) == (refusal is None)
    before, changes, events = snapshot(code)
    params = valid_params(action_name, officers)
    if refusal is not None:
        with pytest.raises(refusal) as info:
            wf.perform(node, officer, code, action_name, params)
        assert info.value.http_status == (403 if refusal is PermissionDenied else 409)
        assert snapshot(code) == (before, changes, events)
        return
    after = wf.perform(node, officer, code, action_name, params)
    assert after.status == (action.to if action.to is not None else before["status"])
    assert Change.select().count() == changes + 1
    event = (DossierEvent.select().where(DossierEvent.dossier_id == after.id)
             .order_by(DossierEvent.hlc.desc()).first())
    assert (event.action, event.from_status, event.to_status, event.applied) == (
        action_name, before["status"], after.status, 1)
    assert event.by_user == officer.id


def test_table_covers_every_action_role_and_status():
    statuses = {status_of(s) for s in PATHS}
    assert statuses == set(wf.STATUSES) == set(range(1, 11))
    assert {a for a, _r, _s in CASES} == set(wf.ACTIONS)


def test_actions_follow_the_domain_transitions():
    # domain.md §2: 1->2|3|5; 2->4; 4<->5; 4<->6; 4->8; 4->9->10; 7 from any running state before 9.
    domain = {(1, 2), (1, 3), (1, 5), (2, 4), (4, 5), (5, 4), (4, 6), (6, 4), (4, 8), (4, 9), (9, 10)}
    domain |= {(s, wf.WITHDRAWN) for s in (1, 2, 4, 5, 6)}
    edges = {(f, a.to) for a in wf.ACTIONS.values() if a.to is not None for f in a.froms}
    assert edges == domain
    assert all(not a.froms or set(a.froms) <= set(range(1, 9)) for a in wf.ACTIONS.values() if a.to is None)


# ---------------------------------------------------------------- reception and appointments

@pytest.mark.parametrize("procedure,received,appointment,step_deadline", [
    (MARITAL, "2026-03-02 09:00", "2026-03-05 09:00:00", "2026-03-02 17:00:00"),  # Mon + 3 wd = Thu, same hour
    # After closing: counting starts Tuesday 07:00, so three whole days Tue-Thu, and the paper goes the same
    # working day it counts as received.
    (MARITAL, "2026-03-02 17:30", "2026-03-05 17:00:00", "2026-03-03 17:00:00"),
    ("1.001193", "2026-03-02 09:00", "2026-03-02 17:00:00", "2026-03-02 17:00:00"),  # same day
    ("1.001193", "2026-03-02 15:30", "2026-03-03 17:00:00", "2026-03-03 11:30:00"),  # after 15:00: next day
    ("1.004222", "2026-03-02 09:00", "2026-03-11 09:00:00", "2026-03-02 17:00:00"),  # 7 working days
])
def test_appointment_set_at_reception(node, officers, clock, procedure, received, appointment, step_deadline):
    clock.set(received)
    d, _ = wf.receive_dossier(node, officers["reception"], reception_body(procedure_code=procedure))
    assert (d.status, d.step, d.procedure_code) == (wf.ACCEPTED, "reception", procedure)
    assert d.received_at == received + ":00"
    assert d.appointment_at == appointment
    assert d.step_deadline == step_deadline


def test_online_registration_has_no_appointment_until_accepted(node, officers, clock):
    d, _ = wf.receive_dossier(node, None, reception_body(procedure_code=MARITAL), online=True)
    assert (d.status, d.channel, d.appointment_at) == (wf.NEW, 2, "")
    clock.set("2026-03-03 10:00")
    d = wf.perform(node, officers["reception"], d.code, "accept")
    assert (d.status, d.appointment_at, d.received_by) == (wf.ACCEPTED, "2026-03-06 10:00:00",
                                                          officers["reception"].id)


def test_only_reception_receives(node, officers):
    for role in ("specialist", "leader", "admin"):
        with pytest.raises(PermissionDenied):
            wf.receive_dossier(node, officers[role], reception_body())
    assert Dossier.select().count() == 0


def test_codes_count_per_day_and_restart_next_day(node, officers, clock):
    codes = [wf.receive_dossier(node, officers["reception"], reception_body())[0].code for _ in range(3)]
    codes.append(wf.receive_dossier(node, None, reception_body(), online=True)[0].code)
    assert codes == [f"{UNIT_CODE}-260302-{n:04d}" for n in (1, 2, 3, 4)]
    clock.set("2026-03-03 08:00")
    assert wf.receive_dossier(node, officers["reception"], reception_body())[0].code == f"{UNIT_CODE}-260303-0001"
    assert wf.receive_dossier(node, officers["reception"], reception_body())[0].code == f"{UNIT_CODE}-260303-0002"


# ---------------------------------------------------------------- supplements: restart or pause

def test_supplement_restart_rule_counts_again_from_the_supplement(node, officers, clock):
    code = build(node, officers, "4")  # received Mon 2 March 09:00, due Thu 09:00
    clock.set("2026-03-03 10:00")
    d = wf.perform(node, officers["specialist"], code, "request_supplement", ASK)
    assert (d.status, d.paused_at) == (wf.SUPPLEMENT, "2026-03-03 10:00:00")
    clock.set("2026-03-04 14:00")
    d = wf.perform(node, officers["reception"], code, "supplement_received")
    assert (d.status, d.step, d.appointment_at) == (wf.PROCESSING, "processing", "2026-03-09 14:00:00")
    assert (d.paused_at, d.paused_minutes_left) == ("", 0)


def test_supplement_pause_rule_carries_the_remaining_minutes(node, officers, clock):
    code = build(node, officers, "4", procedure=FUNERAL)
    assert wf.get_dossier(code).appointment_at == "2026-03-05 09:00:00"
    clock.set("2026-03-03 09:00")
    d = wf.perform(node, officers["leader"], code, "request_supplement", ASK)
    assert d.paused_minutes_left == 960  # Tue 09:00-17:00 (360) + Wed (480) + Thu 07:00-09:00 (120)
    clock.set("2026-03-09 09:00")
    d = wf.perform(node, officers["reception"], code, "supplement_received")
    assert d.appointment_at == "2026-03-11 09:00:00"


def test_supplement_needs_reason_and_items(node, officers):
    code = build(node, officers, "4")
    for params in ({"items": ["x"]}, {"reason": "Thiếu"}, {"reason": "Thiếu", "items": []},
                   {"reason": "Thiếu", "items": [""]}):
        with pytest.raises(ValidationFailed):
            wf.perform(node, officers["specialist"], code, "request_supplement", params)
    d = wf.perform(node, officers["specialist"], code, "request_supplement",
                   {"reason": "Thiếu", "items": "Giấy chứng sinh\n\nTờ khai\n"})
    assert d.supplement_items == '["Giấy chứng sinh", "Tờ khai"]'


# ---------------------------------------------------------------- apology, return, withdrawal

def test_apology_once_later_and_on_a_working_day(node, officers, clock):
    code = build(node, officers, "4")
    leader = officers["leader"]
    bad = {
        "2026-03-04 10:00": "before the old appointment",
        "2026-03-07 10:00": "a Saturday",
        "2026-04-30 10:00": "a public holiday",
        "20/03/2026": "not a date",
    }
    for when in bad:
        with pytest.raises(ValidationFailed) as info:
            wf.perform(node, leader, code, "apologise", {"reason": "Chờ xác minh", "new_appointment": when})
        assert "new_appointment" in info.value.fields, bad[when]
    with pytest.raises(ValidationFailed):
        wf.perform(node, leader, code, "apologise", {"new_appointment": LATER})
    d = wf.perform(node, leader, code, "apologise", {"reason": "Chờ xác minh", "new_appointment": LATER})
    assert (d.status, d.original_appointment_at, d.appointment_at) == (
        wf.PROCESSING, "2026-03-05 09:00:00", "2026-03-20 10:00:00")
    assert (d.apology_at, d.apology_reason) == ("2026-03-02 09:00:00", "Chờ xác minh")
    assert wf.ACTIONS["apologise"] not in wf.allowed_actions(leader, d)
    with pytest.raises(TransitionNotAllowed):
        wf.perform(node, leader, code, "apologise", {"reason": "Lần nữa", "new_appointment": "2026-03-27 10:00"})
    assert wf.get_dossier(code).appointment_at == "2026-03-20 10:00:00"


def test_return_not_satisfied_needs_a_reason(node, officers):
    code = build(node, officers, "9")
    before, changes, events = snapshot(code)
    with pytest.raises(ValidationFailed) as info:
        wf.perform(node, officers["reception"], code, "return_result", {"rating": "not_satisfied"})
    assert "rating_reason" in info.value.fields and info.value.http_status == 422
    assert snapshot(code) == (before, changes, events)
    with pytest.raises(ValidationFailed):
        wf.perform(node, officers["reception"], code, "return_result", {"rating": "great"})
    d = wf.perform(node, officers["reception"], code, "return_result",
                   {"rating": "not_satisfied", "rating_reason": "Phải chờ lâu"})
    assert (d.status, d.rating, d.rating_reason, d.returned_at) == (
        wf.RETURNED, "not_satisfied", "Phải chờ lâu", "2026-03-02 09:00:00")


@pytest.mark.parametrize("state,allowed", [("1", True), ("2", True), ("4", True), ("5", True), ("6", True),
                                           ("9", False), ("10", False), ("3", False), ("8", False)])
def test_withdraw_before_a_result_only(node, officers, state, allowed):
    code = build(node, officers, state)
    params = valid_params("withdraw", officers)
    if not allowed:
        with pytest.raises(TransitionNotAllowed):
            wf.perform(node, officers["reception"], code, "withdraw", params)
        return
    with pytest.raises(ValidationFailed):
        wf.perform(node, officers["reception"], code, "withdraw", {})
    d = wf.perform(node, officers["reception"], code, "withdraw", params)
    assert (d.status, d.step, d.finished_at) == (wf.WITHDRAWN, "closed", "2026-03-02 09:00:00")


def test_propose_by_another_specialist_is_refused(node, officers):
    code = build(node, officers, "4")
    wf.perform(node, officers["leader"], code, "assign", {"handler_id": officers["specialist"].id})
    with pytest.raises(ValidationFailed):
        wf.perform(node, officers["leader"], code, "assign", {"handler_id": officers["reception"].id})
    from node import users

    other_id = users.create_user(node, "specialist2", "Phạm Thu Trang", ["specialist"], "mat-khau-2026")
    other = Officer.of(User.get_by_id(other_id))
    with pytest.raises(PermissionDenied):
        wf.perform(node, other, code, "propose")
    d = wf.perform(node, officers["specialist"], code, "propose")
    assert d.step == "signing"


# ---------------------------------------------------------------- timing(): derived, never stored

def _timing(code: str, clock: FakeNow) -> str:
    return wf.timing(wf.get_dossier(code), wf.horizon(clock()))


def test_timing_of_running_dossiers(node, officers, clock):
    code = build(node, officers, "4")  # due Thu 5 March 09:00
    assert _timing(code, clock) == "in_time"
    clock.set("2026-03-03 10:00")
    assert _timing(code, clock) == "in_time"
    clock.set("2026-03-04 09:30")  # less than one working day ahead
    assert _timing(code, clock) == "due_soon"
    clock.set("2026-03-05 09:00")
    assert _timing(code, clock) == "due_soon"
    clock.set("2026-03-05 09:01")
    assert _timing(code, clock) == "overdue"
    clock.set("2026-03-09 10:00")
    assert _timing(code, clock) == "overdue"
    d = wf.perform(node, officers["specialist"], code, "request_supplement", ASK)
    assert wf.timing(d, wf.horizon(clock())) == "in_time"  # the applicant holds it


def test_timing_without_a_deadline(node, officers, clock):
    for state in ("1", "3", "8"):
        assert _timing(build(node, officers, state), clock) == ""


@pytest.mark.parametrize("signed,expected", [("2026-03-04 10:00", "early"), ("2026-03-05 16:00", "on_time"),
                                             ("2026-03-06 08:00", "late")])
def test_timing_of_finished_dossiers_by_day(node, officers, clock, signed, expected):
    code = build(node, officers, "4s")
    clock.set(signed)
    wf.perform(node, officers["leader"], code, "sign")
    assert _timing(code, clock) == expected
    clock.set("2026-03-10 10:00")  # returned later: the result date counts, not the return
    wf.perform(node, officers["reception"], code, "return_result", {"rating": "very_satisfied"})
    assert _timing(code, clock) == expected


def test_timing_late_once_apologised(node, officers, clock):
    code = build(node, officers, "4s")
    wf.perform(node, officers["leader"], code, "apologise", {"reason": "Chờ xác minh", "new_appointment": LATER})
    clock.set("2026-03-04 10:00")  # before both the old and the new date
    wf.perform(node, officers["leader"], code, "sign")
    assert _timing(code, clock) == "late"


def test_timing_of_a_withdrawal(node, officers, clock):
    code = build(node, officers, "4")
    clock.set("2026-03-03 10:00")
    wf.perform(node, officers["reception"], code, "withdraw", valid_params("withdraw", officers))
    assert _timing(code, clock) == "early"
