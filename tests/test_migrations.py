"""A node made by an earlier version (schema 3: before versions, conflicts, per-unit calendars, document
counters) opens with this one: every migration runs, the file stays sound, nothing is lost, work goes on.

tests/data/node-schema-3 was made by the version at commit 495d469 (one dossier, one calendar override).
"""

from __future__ import annotations

import shutil

from node import catalogue, workflow
from node.instance import Node
from node.sync import log
from node.sync.state import CalendarDay, Dossier, DossierDocument, User
from node.users import Officer

from pathlib import Path

OLD = Path(__file__).parent / "data" / "node-schema-3"


def test_a_schema_3_node_migrates_and_works(tmp_path, clock):
    target = tmp_path / "node"
    shutil.copytree(OLD, target)
    (target / "files").mkdir(exist_ok=True)
    node = Node(target, now=clock)
    try:
        done = [v for (v,) in node.db.execute_sql("SELECT version FROM schema_migration ORDER BY version")]
        assert done == [1, 2, 3, 4, 5, 6, 7]
        assert node.db.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert log.verify_log(node.node_id, node.identity.public_key) > 0
        d = Dossier.get()
        docs = DossierDocument.select().where(DossierDocument.dossier_id == d.id).count()
        assert docs > 0 and d.doc_total == docs  # counted by migration 6
        assert CalendarDay.get_by_id("2026-06-13").kind == "working_day"  # kept, in the base layer
        assert catalogue.work_calendar().is_working_day(__import__("datetime").date(2026, 6, 13))
        reception = Officer.of(User.get(User.username == "tiepnhan"))
        moved = workflow.perform(node, reception, d.code, "transfer", {})
        assert moved.status == workflow.PROCESSING and moved.status_version
        edited = workflow.edit_dossier(node, reception, d.code, {"applicant_phone": "0911222333"})
        assert edited.applicant_phone == "0911222333"
        assert log.verify_log(node.node_id, node.identity.public_key) > 0
    finally:
        node.close()


HUB = Path(__file__).parent / "data" / "hub-schema-3"


def test_a_schema_3_hub_upgrades_and_serves(tmp_path):
    """A hub made by the same earlier version, holding that node's changes: it opens, its tables gain the
    newer columns (counters counted), the file stays sound, and it still serves pulls and merges pushes."""
    from central.instance import Hub
    from node.sync.state import Dossier as D

    target = tmp_path / "hub"
    shutil.copytree(HUB, target)
    (target / "files").mkdir(exist_ok=True)
    hub = Hub(target)
    try:
        hub.storage.connect()
        assert hub.storage.db.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
        d = D.get()
        assert d.doc_total > 0 and d.status_version == ""  # counted; a dossier from before versions
        page = hub.storage.pull("someone", [d.unit_code, "*"], 0)
        assert any(c["entity"] == "dossier" and c["op"] == "create" for c in page.changes)
    finally:
        hub.close()
