"""Catalogue and calendar publishing (issue 6 item 3): the hub publishes procedure versions and calendar days
as hub-signed changes; they reach every node by pull and apply to dossiers received from their date, never
to dossiers received before (their appointment is computed at reception and stored).

The hub is the real hub storage in-process (as in test_convergence.py); nodes are real node replicas.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import peewee as pw
import pytest
from conftest import FakeNow, reception_body

from central.storage import HubSigner, open_storage
from node import catalogue, store, workflow
from node.errors import NotFound, ValidationFailed
from node.sync import hlc, keys
from node.sync.ids import new_id
from node.sync.log import Change
from node.sync.scope import scopes_for
from node.sync.state import CalendarDay, Dossier, NodeRecord, convert_calendar_days, database
from replicas import KEYS, Replica

UA, UB = "000.00.19.H55", "000.00.21.H55"
MARITAL = "1.004873"  # 3 working days in the seed


class Hub:
    """The hub's real storage with its own key, bound on use."""

    def __init__(self, url: str):
        self.key = keys.NodeKey.generate()
        self.signer = HubSigner("H" + new_id()[-12:], self.key, hlc.Clock())
        KEYS[self.signer.node_id] = self.key.public_b64
        self.storage = open_storage(url, self.signer)
        self.storage.create_schema()
        self.cursor: dict[str, int] = {}
        self.put_node(self.signer.node_id, "hub", "hub", "*")

    @property
    def node_id(self) -> str:
        return self.signer.node_id

    def use(self):
        database.initialize(self.storage.db)
        return self.storage

    def put_node(self, node_id: str, kind: str, unit: str, scope: str) -> None:
        self.use().write_change("node", node_id, "put", {"fields": {
            "node_id": node_id, "public_key": KEYS[node_id], "kind": kind, "unit_code": unit, "scope": scope,
            "status": "active"}})

    def publish_day(self, day: date, kind: str, name: str = "") -> dict:
        entity_id, payload = catalogue.calendar_change(catalogue.HUB, day, kind, name)
        return self.use().write_change("calendar_day", entity_id, "put", payload, "admin")

    def publish_version(self, code: str, fields: dict) -> dict:
        storage = self.use()
        entity_id, payload = catalogue.procedure_change(fields, catalogue.last_version(code) + 1)
        return storage.write_change("procedure", entity_id, "put", payload, "admin")

    def pull_into(self, r: Replica) -> int:
        """One pull of `r`'s scope (its units and "*") after its cursor, delivered through the real ingest."""
        page = self.use().pull(r.node_id, list(r.units) + ["*"], self.cursor.get(r.node_id, 0))
        self.cursor[r.node_id] = page.position
        return r.deliver(list(page.changes)) if page.changes else 0


@pytest.fixture
def world(tmp_path: Path, _template_node):
    clock = FakeNow()  # Monday 2 March 2026, 09:00
    a = Replica(_template_node, tmp_path / "a", clock, unit_code=UA, name="commune A")
    b = Replica(_template_node, tmp_path / "b", clock, unit_code=UB, name="commune B")
    b.ms += 1
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    for r in (a, b):
        hub.put_node(r.node_id, "commune", r.node.identity.unit_code, r.node.identity.unit_code)
    seeded = a.changes()  # the template node's log: its seed catalogue and calendar reach the hub
    hub.put_node(seeded[0]["node_id"], "commune", UA, UA)
    hub.use().ingest_push(seeded[0]["node_id"], seeded, now=clock())
    yield clock, a, b, hub
    a.close()
    b.close()
    hub.storage.close()


def receive(r: Replica, code: str = MARITAL) -> Dossier:
    node = r.use()
    d, _ = workflow.receive_dossier(node, r.officer("reception"), reception_body(procedure_code=code))
    return Dossier.get_by_id(d.id)


def new_version_fields(code: str, effective: str, days: int) -> dict:
    view = catalogue.procedure(code, on=date(2026, 3, 2))
    form = {"effective_from": effective, "name_vi": view.name_vi, "name_en": view.name_en, "field": view.field,
            "time_kind": "working_days", "time_value": str(days), "online_level": view.online_level,
            "supplement_rule": view.supplement_rule, "active": "on", "fee_kind": "fixed", "fee_amount": "20000",
            "documents": catalogue.documents_text(view.documents)}
    return catalogue.check_new_version(code, form, date(2026, 3, 2))


def test_a_future_version_does_not_change_current_deadlines(world):
    clock, a, b, hub = world
    hub.use()
    fields = new_version_fields(MARITAL, "2026-03-09", 10)
    change = hub.publish_version(MARITAL, fields)
    assert change["entity_id"] == f"{MARITAL}@2"
    for r in (a, b):
        assert hub.pull_into(r) >= 1
    before = receive(a)  # received today, 2 March: version 1, 3 working days
    assert (before.procedure_version, before.appointment_at) == (1, "2026-03-05 09:00:00")
    assert catalogue.procedure(MARITAL, on=date(2026, 3, 8)).version == 1
    clock.set("2026-03-09 09:00")  # the effective date
    after = receive(a)
    assert after.procedure_version == 2
    assert after.appointment_at == "2026-03-23 09:00:00"  # 10 working days
    assert after.fee_amount == 20000
    assert Dossier.get_by_id(before.id).appointment_at == "2026-03-05 09:00:00"  # unchanged
    assert catalogue.procedure(MARITAL, version=before.procedure_version).time_value == 3
    b.use()
    assert receive(b).procedure_version == 2  # every node got it


def test_a_hub_day_off_reaches_the_nodes_and_moves_only_later_appointments(world):
    clock, a, b, hub = world
    first = receive(a)
    assert first.appointment_at == "2026-03-05 09:00:00"
    hub.publish_day(date(2026, 3, 4), "day_off", "Nghỉ theo thông báo của tỉnh")
    assert hub.pull_into(a) >= 1
    a.use()
    assert not catalogue.work_calendar().is_working_day(date(2026, 3, 4))
    assert Dossier.get_by_id(first.id).appointment_at == "2026-03-05 09:00:00"  # received before: unchanged
    second = receive(a)
    assert second.appointment_at == "2026-03-06 09:00:00"
    hub.pull_into(b)
    b.use()
    assert receive(b).appointment_at == "2026-03-06 09:00:00"
    # a working Saturday published by the hub counts too
    hub.publish_day(date(2026, 3, 7), "working_day", "Làm bù")
    hub.pull_into(a)
    a.use()
    clock.set("2026-03-05 09:00")
    assert receive(a).appointment_at == "2026-03-09 09:00:00"  # Fri 6, Sat 7 (worked), Mon 9; else Tue 10


def test_a_commune_override_wins_for_that_commune_only(world):
    clock, a, b, hub = world
    hub.publish_day(date(2026, 3, 4), "day_off", "Nghỉ của tỉnh")
    for r in (a, b):
        hub.pull_into(r)
    node = a.use()
    with store.transaction(node):
        catalogue.set_calendar_day(node, date(2026, 3, 4), "normal", "", author="admin")  # A works that day
        catalogue.set_calendar_day(node, date(2026, 3, 5), "day_off", "Nghỉ riêng của xã A", author="admin")
    own = [c for c in a.changes(own=True) if c["entity"] == "calendar_day"][-2:]
    assert [c["entity_id"] for c in own] == [f"{UA}:2026-03-04", f"{UA}:2026-03-05"]
    cal = catalogue.work_calendar()
    assert cal.is_working_day(date(2026, 3, 4)) and not cal.is_working_day(date(2026, 3, 5))
    # the hub scopes a commune's calendar change to that commune, its own to every node
    hub.use()
    assert scopes_for(own, hub.node_id) == [UA, UA]
    hub_change = Change.get((Change.node_id == hub.node_id) & (Change.entity == "calendar_day"))
    assert hub_change.entity_id == "*:2026-03-04"
    # B keeps the hub's calendar even if A's overrides reach it (e.g. relayed by mistake)
    b.deliver(own)
    b.use()
    cal_b = catalogue.work_calendar()
    assert not cal_b.is_working_day(date(2026, 3, 4)) and cal_b.is_working_day(date(2026, 3, 5))
    assert CalendarDay.get_by_id(f"{UA}:2026-03-05").unit == UA  # held, but not A's calendar here
    # a commune cannot write the hub's layer: a "*" row signed by A counts nowhere
    node = a.use()
    with store.transaction(node):
        catalogue.set_calendar_day(node, date(2026, 3, 6), "day_off", "Giả danh trung tâm", author="x", unit="*")
    assert catalogue.work_calendar().is_working_day(date(2026, 3, 6))
    assert CalendarDay.get_by_id("*:2026-03-06").kind == "day_off"
    # the hub's later change for the day does not override A's own choice for A
    hub.publish_day(date(2026, 3, 5), "normal")
    hub.pull_into(a)
    a.use()
    assert not catalogue.work_calendar().is_working_day(date(2026, 3, 5))


def test_version_input_is_validated_and_nothing_is_written(world):
    clock, a, b, hub = world
    hub.use()
    today = date(2026, 3, 2)
    good = {"effective_from": "2026-03-09", "name_vi": "Cấp Giấy xác nhận tình trạng hôn nhân",
            "time_kind": "working_days", "time_value": "5", "online_level": "full", "supplement_rule": "restart",
            "fee_kind": "free", "documents": "Tờ khai | Form | original | 1"}
    assert catalogue.check_new_version(MARITAL, good, today)["time_value"] == 5
    for field, value in (("effective_from", "2026-03-02"), ("effective_from", "2026-03-01"),
                         ("effective_from", "09/03/2026"), ("time_value", "2.5"), ("time_value", "ba"),
                         ("time_value", "-1"), ("time_value", "400"), ("time_kind", "weeks"),
                         ("online_level", "level 4"), ("documents", "Tờ khai | Form | scan | 1"),
                         ("documents", ""), ("name_vi", " ")):
        with pytest.raises(ValidationFailed) as caught:
            catalogue.check_new_version(MARITAL, dict(good, **{field: value}), today)
        assert field in caught.value.fields, (field, value)
    with pytest.raises(ValidationFailed) as caught:
        catalogue.check_new_version(MARITAL, dict(good, time_kind="same_day"), today)
    assert "time_value" in caught.value.fields
    with pytest.raises(ValidationFailed):
        catalogue.check_new_version(MARITAL, dict(good, fee_kind="fixed", fee_amount="mười nghìn"), today)
    with pytest.raises(NotFound):
        catalogue.check_new_version("9.999999", good, today)
    assert catalogue.last_version(MARITAL) == 1


def test_calendar_ids_by_layer():
    assert catalogue.calendar_change("*", date(2026, 3, 4), "day_off")[0] == "*:2026-03-04"
    assert catalogue.calendar_change(UA, date(2026, 3, 4), "day_off")[1]["fields"]["unit"] == UA
    assert catalogue.calendar_id("", date(2026, 3, 4)) == "2026-03-04"
    with pytest.raises(ValueError):
        catalogue.calendar_change("*", date(2026, 3, 4), "holiday")


def test_an_old_calendar_table_is_converted(tmp_path):
    """A table keyed by day (before migration 5) keeps its rows, as the base layer, under their old key."""
    db = pw.SqliteDatabase(str(tmp_path / "old.db"))
    db.execute_sql('CREATE TABLE calendar_day (day VARCHAR(255) PRIMARY KEY, kind VARCHAR(255), name TEXT, '
                   'version VARCHAR(255))')
    db.execute_sql("INSERT INTO calendar_day VALUES ('2026-09-02', 'day_off', 'Quốc khánh', 'v1')")
    old = database.obj
    database.initialize(db)
    try:
        assert convert_calendar_days(db) == 1
        assert convert_calendar_days(db) == 0  # once
        row = CalendarDay.get_by_id("2026-09-02")
        assert (row.unit, row.day, row.kind, row.name) == ("", "2026-09-02", "day_off", "Quốc khánh")
        db.create_tables([NodeRecord])
        catalogue.forget_calendar()
        assert not catalogue.work_calendar(UA).is_working_day(date(2026, 9, 2))
    finally:
        database.initialize(old)
        catalogue.forget_calendar()
        db.close()


def test_the_node_migration_is_recorded(world):
    clock, a, b, hub = world
    a.use()
    done = {v for (v,) in a.node.db.execute_sql("SELECT version FROM schema_migration").fetchall()}
    assert 5 in done
    assert datetime(2026, 3, 2) <= clock()
