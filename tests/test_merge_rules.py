"""The merge rules of design.md §4, one table row at a time, between real node replicas.

Every scenario is run in both delivery orders (and with duplicates): the replicas must end byte-identical.
"""

from __future__ import annotations

import json

import pytest

from conftest import reception_body
from node import store, workflow
from node.attachments import attach
from node.sync import conflicts
from node.sync.state import CalendarDay, Conflict, Dossier, DossierEvent, DuplicateFlag, User
from replicas import Replica

UNIT = "000.00.19.H55"


@pytest.fixture
def pair(tmp_path, _template_node, clock):
    """A commune node and a field laptop of the same commune, apart."""
    a = Replica(_template_node, tmp_path / "a", clock, unit_code=UNIT, name="commune")
    b = Replica(_template_node, tmp_path / "b", clock, unit_code=UNIT, name="laptop", code_tag="L1")
    b.ms += 7  # distinct clocks
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def third(tmp_path, _template_node, clock):
    c = Replica(_template_node, tmp_path / "c", clock, unit_code=UNIT, name="hub-like", code_tag="L2")
    yield c
    c.close()


def receive(r: Replica, **over):
    node = r.use()
    d, _ = workflow.receive_dossier(node, r.officer("reception"), reception_body(**over))
    r.tick()
    return d.id


def act(r: Replica, dossier_id: str, action: str, role: str = "reception", **params):
    node = r.use()
    d = workflow.perform(node, r.officer(role), dossier_id, action, params)
    r.tick()
    return d


def edit(r: Replica, dossier_id: str, **fields):
    node = r.use()
    d = workflow.edit_dossier(node, r.officer("reception"), dossier_id, fields)
    r.tick()
    return d


def dossier(r: Replica, dossier_id: str) -> Dossier:
    r.use()
    return Dossier.get_by_id(dossier_id)


def settle(*replicas: Replica, reverse: bool = False) -> None:
    """Everyone gets everything, in arrival order or reversed, twice (duplicates are harmless)."""
    pool = {}
    for r in replicas:
        for c in r.changes():
            pool[(c["node_id"], c["seq"])] = c
    changes = list(pool.values())
    if reverse:
        changes.reverse()
    for r in replicas:
        r.deliver(changes)
        r.deliver(changes[: len(changes) // 2])


def same(*replicas: Replica) -> None:
    first = replicas[0].rows()
    for r in replicas[1:]:
        rows = r.rows()
        for table, expected in first.items():
            got = rows[table]
            assert len(got) == len(expected), (table, r.name, len(got), len(expected))
            for g, e in zip(got, expected, strict=True):
                diff = {k: (g[k], e[k]) for k in e if g.get(k) != e[k]}
                assert not diff, (table, r.name, replicas[0].name, diff)


def started(a: Replica, b: Replica, status_to: str | None = None) -> str:
    """A dossier received at `a` (and transferred when asked), known to both."""
    d = receive(a)
    if status_to == "processing":
        act(a, d, "transfer")
    settle(a, b)
    return d


# ---------------------------------------------------------------- plain fields

@pytest.mark.parametrize("reverse", [False, True])
def test_concurrent_edits_of_one_field_are_one_conflict_and_the_later_wins(pair, reverse):
    a, b = pair
    d = started(a, b)
    edit(a, d, applicant_phone="0912000111")
    b.ms = a.ms + 5_000  # the laptop edits later (by its clock)
    edit(b, d, applicant_phone="0988000222")
    settle(a, b, reverse=reverse)
    same(a, b)
    for r in (a, b):
        assert dossier(r, d).applicant_phone == "0988000222"
        rows = conflicts.of_dossier(d)
        assert len(rows) == 1 and rows[0]["field"] == "applicant_phone" and not rows[0]["resolved"]
        values = sorted(c["value"] for c in rows[0]["candidates"])
        assert values == ["0912000111", "0988000222"]
        assert [c["winner"] for c in rows[0]["candidates"]] == [False, True]


def test_an_edit_made_after_seeing_the_other_is_no_conflict(pair):
    a, b = pair
    d = started(a, b)
    edit(a, d, applicant_phone="0912000111")
    settle(a, b)
    edit(b, d, applicant_phone="0988000222")
    settle(a, b)
    same(a, b)
    assert dossier(a, d).applicant_phone == "0988000222"
    assert Conflict.select().count() == 0


def test_edits_of_different_fields_merge_without_conflict(pair):
    a, b = pair
    d = started(a, b)
    edit(a, d, applicant_phone="0912000111")
    edit(b, d, applicant_address="Xóm Gò, xã Tân Cương")
    settle(a, b, reverse=True)
    same(a, b)
    row = dossier(b, d)
    assert (row.applicant_phone, row.applicant_address) == ("0912000111", "Xóm Gò, xã Tân Cương")
    assert Conflict.select().count() == 0


def test_the_same_value_written_twice_is_no_conflict(pair):
    a, b = pair
    d = started(a, b)
    edit(a, d, applicant_phone="0912000111")
    edit(b, d, applicant_phone="0912000111")
    settle(a, b)
    same(a, b)
    assert Conflict.select().count() == 0


def test_a_skewed_clock_wins_but_never_silently(pair):
    a, b = pair
    d = started(a, b)
    b.ms += 3_600_000  # the laptop's clock is an hour ahead
    edit(b, d, applicant_name="Nguyễn Thị Lan")
    edit(a, d, applicant_name="Nguyễn Thị Lân")
    settle(a, b)
    same(a, b)
    assert dossier(a, d).applicant_name == "Nguyễn Thị Lan"
    assert conflicts.open_count() == 1  # the commune's edit is kept for a person


# ---------------------------------------------------------------- status by transitions

@pytest.mark.parametrize("reverse", [False, True])
def test_concurrent_transitions_follow_precedence_and_the_other_is_not_applied(pair, reverse):
    a, b = pair
    d = started(a, b, "processing")
    act(a, d, "request_supplement", role="specialist", reason="Thiếu giấy", items="Bản sao CCCD")
    act(b, d, "withdraw", reason="Công dân xin rút")
    settle(a, b, reverse=reverse)
    same(a, b)
    for r in (a, b):
        row = dossier(r, d)
        assert row.status == workflow.WITHDRAWN  # withdraw ranks before a supplement request
        assert row.paused_at == ""  # the supplement's fields are not applied either
        events = {e.action: e.applied for e in DossierEvent.select().where(DossierEvent.dossier_id == d)}
        assert events["withdraw"] == 1 and events["request_supplement"] == 0
        rows = conflicts.of_dossier(d)
        assert [c["kind"] for c in rows] == ["status"]
        assert {c["action"]: c["winner"] for c in rows[0]["candidates"]} == {"withdraw": True,
                                                                              "request_supplement": False}


def test_actions_after_a_losing_action_are_not_applied_and_visible(pair):
    a, b = pair
    d = started(a, b, "processing")
    act(b, d, "request_payment", role="specialist", amount=50000)
    act(b, d, "record_payment")  # continues the laptop's branch
    act(a, d, "stop", role="leader", reason="Hồ sơ giả mạo")
    settle(a, b)
    same(a, b)
    # request_payment (35) and stop (70) share a base: stop wins, so the payment branch is off the chain.
    row = dossier(a, d)
    assert row.status == workflow.STOPPED and row.fee_paid == 0
    flags = {e.action: e.applied for e in DossierEvent.select().where(DossierEvent.dossier_id == d)}
    assert flags == {"receive": 1, "transfer": 1, "request_payment": 0, "record_payment": 0, "stop": 1}


def test_an_action_arriving_before_its_base_waits_for_it(pair, third):
    a, b = pair
    d = started(a, b)
    act(a, d, "transfer")
    settle(a, b)
    act(b, d, "request_supplement", role="specialist", reason="Thiếu", items="Tờ khai")
    act(b, d, "supplement_received")
    own = a.changes() + b.changes()
    # The third replica gets everything backwards: actions before their bases, before the create.
    third.deliver(list(reversed(own)))
    settle(a, b)
    same(a, b, third)
    assert dossier(third, d).status == workflow.PROCESSING
    assert Conflict.select().count() == 0


def test_a_create_arriving_after_edits_and_actions(pair, third):
    a, b = pair
    d = started(a, b)
    edit(b, d, applicant_phone="0912000111")
    act(b, d, "transfer")
    third.deliver(b.changes(own=True))  # only the laptop's: no create yet
    third.use()
    assert Dossier.get_or_none(Dossier.id == d) is None
    third.deliver(a.changes(own=True))
    settle(a, b)
    same(a, b, third)
    row = dossier(third, d)
    assert (row.status, row.applicant_phone) == (workflow.PROCESSING, "0912000111")


# ---------------------------------------------------------------- a person's decisions

def _resolve(r: Replica, conflict_id: str, choice: str, **kw):
    node = r.use()
    entity, entity_id, op, payload = conflicts.resolution(conflict_id, choice, **kw)
    with store.transaction(node):
        store.write(node, entity, entity_id, op, payload, "leader")
    r.tick()


def test_resolving_takes_the_other_value_as_a_new_change_everywhere(pair):
    a, b = pair
    d = started(a, b)
    edit(a, d, applicant_phone="0912000111")
    edit(b, d, applicant_phone="0988000222")
    settle(a, b)
    a.use()
    [c] = conflicts.of_dossier(d)
    loser = [x for x in c["candidates"] if not x["winner"]][0]
    _resolve(a, c["id"], "take", take=loser["version"])
    settle(a, b)
    same(a, b)
    for r in (a, b):
        r.use()
        assert dossier(r, d).applicant_phone == loser["value"]
        assert conflicts.open_count() == 0
        assert conflicts.of_dossier(d)[0]["resolution"]["choice"] == "take"


def test_keep_and_new_value(pair):
    a, b = pair
    d = started(a, b)
    edit(a, d, matter="Đăng ký khai sinh cho con")
    edit(b, d, matter="Đăng ký khai sinh (bản sao)")
    settle(a, b)
    a.use()
    [c] = conflicts.of_dossier(d)
    _resolve(a, c["id"], "new", value="Đăng ký khai sinh cho con thứ hai")
    settle(a, b)
    same(a, b)
    assert dossier(b, d).matter == "Đăng ký khai sinh cho con thứ hai"
    assert conflicts.open_count() == 0


def test_a_late_third_candidate_reopens_a_resolved_conflict(pair, third):
    a, b = pair
    d = started(a, b)
    settle(a, third)
    edit(a, d, applicant_phone="0912000111")
    edit(b, d, applicant_phone="0988000222")
    edit(third, d, applicant_phone="0977000333")  # offline, same base
    settle(a, b)
    a.use()
    [c] = conflicts.of_dossier(d)
    _resolve(a, c["id"], "keep")
    settle(a, b)
    assert conflicts.open_count() == 0
    settle(a, b, third)
    same(a, b, third)
    a.use()
    assert conflicts.open_count() == 1  # the decision did not see the third value


def test_bad_choices_are_refused(pair):
    a, b = pair
    d = started(a, b, "processing")
    act(a, d, "stop", role="leader", reason="x")
    act(b, d, "assign", role="leader", handler_id=b.officer("specialist").id)
    settle(a, b)
    a.use()
    [c] = conflicts.of_dossier(d)
    with pytest.raises(conflicts.ResolutionInvalid):
        conflicts.resolution(c["id"], "take", take=c["candidates"][0]["version"])
    with pytest.raises(conflicts.ResolutionInvalid):
        conflicts.resolution(c["id"], "drop")
    with pytest.raises(conflicts.ResolutionInvalid):
        conflicts.resolution("nope", "keep")


# ---------------------------------------------------------------- duplicates, tombstones, puts

def test_the_same_person_and_procedure_on_two_nodes_is_flagged_on_both(pair, clock):
    a, b = pair
    da = receive(a, applicant_id_number="019305001234")
    db = receive(b, applicant_id_number="019305001234")
    receive(a, applicant_id_number="019305001234")  # same node again: a real second request, not flagged
    settle(a, b, reverse=True)
    same(a, b)
    for r in (a, b):
        r.use()
        flags = list(DuplicateFlag.select())
        assert len(flags) == 2 and all(not f.reviewed for f in flags)
        assert any({f.dossier_a, f.dossier_b} == {da, db} for f in flags)
    a.use()
    entity, entity_id, op, payload = conflicts.review(f"{min(da, db)}|{max(da, db)}", "distinct", "Hai lần khai sinh")
    with store.transaction(a.node):
        store.write(a.node, entity, entity_id, op, payload, "leader")
    settle(a, b)
    same(a, b)
    b.use()
    assert conflicts.open_duplicates_count() == 1


def test_outside_the_window_is_not_a_duplicate(pair, clock):
    a, b = pair
    receive(a, applicant_id_number="019305001234")
    clock.set("2026-05-04 09:00")
    receive(b, applicant_id_number="019305001234")
    settle(a, b)
    assert DuplicateFlag.select().count() == 0


def test_a_deleted_attachment_stays_deleted_whatever_the_order(pair, third):
    from node import attachments
    from node.sync.state import Attachment, Tombstone

    a, b = pair
    d = started(a, b)
    node = a.use()
    with store.transaction(node):
        att_id = attach(node, d, "to-khai.pdf", b"%PDF-1.4\n" + b"x" * 2000, "application/pdf", "reception")
    attachments.remove(node, a.officer("reception"), att_id)
    third.deliver(list(reversed(a.changes())))
    settle(a, b)
    same(a, b, third)
    for r in (a, b, third):
        r.use()
        assert Attachment.get_or_none(Attachment.id == att_id) is None
        assert Tombstone.select().count() == 1
    node = a.use()
    act(a, d, "transfer")
    with pytest.raises(Exception, match="No such file|Không tìm thấy"):
        attachments.remove(node, a.officer("reception"), att_id)


def test_calendar_and_user_writes_take_the_latest_whatever_the_order(pair):
    a, b = pair
    for r, kind in ((a, "day_off"), (b, "working_day")):
        node = r.use()
        with store.transaction(node):
            store.write(node, "calendar_day", "2026-06-13", "put", {"fields": {"kind": kind, "name": r.name}}, "admin")
        r.tick(5000)
    uid = a.officer("specialist").id
    for r, phone in ((b, "0911111111"), (a, "0922222222")):
        node = r.use()
        r.ms = max(a.ms, b.ms) + 20_000  # the commune writes last
        with store.transaction(node):
            store.write(node, "user", uid, "update", {"set": {"phone": phone}}, "admin")
    settle(a, b, reverse=True)
    for r in (a, b):
        r.use()
        assert CalendarDay.get_by_id("2026-06-13").kind == "working_day"
        assert User.get_by_id(uid).phone == "0922222222"
        assert json.loads(User.get_by_id(uid).field_versions)["phone"].endswith(a.node_id)


def test_the_readme_walkthrough(pair, clock):
    """README "Walkthrough": commune edits the phone and transfers; the laptop, offline, edits it later."""
    commune, laptop = pair
    d = started(commune, laptop)
    clock.set("2026-03-02 09:12")
    edit(commune, d, applicant_phone="0911111111")
    act(commune, d, "transfer")
    clock.set("2026-03-02 09:20")
    laptop.ms = commune.ms + 8 * 60_000
    edit(laptop, d, applicant_phone="0922222222")
    exchange_both = settle
    exchange_both(commune, laptop)
    same(commune, laptop)
    for r in (commune, laptop):
        row = dossier(r, d)
        assert (row.applicant_phone, row.status) == ("0922222222", workflow.PROCESSING)
        assert conflicts.open_count() == 1
    commune.use()
    [c] = conflicts.of_dossier(d)
    by_value = {x["value"]: x for x in c["candidates"]}
    assert by_value["0922222222"]["winner"] and by_value["0911111111"]["at"] == "2026-03-02 09:12:00"
    _resolve(commune, c["id"], "take", take=by_value["0911111111"]["version"])
    settle(commune, laptop)
    same(commune, laptop)
    assert dossier(laptop, d).applicant_phone == "0911111111" and conflicts.open_count() == 0
