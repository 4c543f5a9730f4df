"""The hub's indicator pages: dashboard (period, units, SVG chart, sortable table), drill-down, exports, the
overdue watch; every bad parameter is a 400 with a message. Data: a real node's dossier pushed to the hub,
plus rows of a second commune written straight into the hub's synced tables."""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from hubtest import (  # noqa: F401  (fixtures are imported by name; see hubtest.py)
    PASSWORD, api, hub, hub_app, hub_db_url, hub_dir, prepared, session,
)

from node import workflow as wf
from node.sync.ids import new_id
from node.sync.dossier_merge import documents_changed
from node.sync.state import Dossier, DossierDocument, NodeRecord

OTHER, OTHER_NAME = "000.00.19.H57", "UBND xã Quyết Thắng"
MARCH = "from=2026-03-01&to=2026-03-31"


def add_other_commune(hub) -> None:
    """A second commune with three dossiers of March: two finished early, one late with an apology."""
    with hub.storage.db.atomic():
        NodeRecord.insert(node_id="N-other", public_key="x" * 44, kind="commune", unit_code=OTHER,
                          unit_name=OTHER_NAME, scope=OTHER, status="active",
                          enrolled_at="2026-01-05 08:00:00").execute()
        for code, finished, original, apology in (
                ("Q-1", "2026-03-02 10:00:00", "", ""), ("Q-2", "2026-03-03 10:00:00", "", ""),
                ("Q-3", "2026-03-09 10:00:00", "2026-03-04 17:00:00", "2026-03-04 08:00:00")):
            dossier_id = new_id()
            Dossier.insert(id=dossier_id, code=code, unit_code=OTHER, procedure_code="1.004873", procedure_version=1,
                           channel=2, status=wf.RETURNED, applicant_name="Trần Văn Nam", matter="",
                           received_at="2026-03-02 09:00:00", appointment_at="2026-03-05 09:00:00",
                           original_appointment_at=original, apology_at=apology, finished_at=finished,
                           returned_at=finished, rating="satisfied", fee_amount=15000, paid_online=1).execute()
            DossierDocument.insert(id=new_id(), dossier_id=dossier_id, name="Tờ khai", digitised="digitised").execute()
            documents_changed(dossier_id)  # what the merge does when a document arrives


@pytest.fixture
def admin(hub_app, session, prepared, hub):
    """Logged in at the hub, with the prepared node's dossier pushed and a second commune's rows."""
    assert session.push(prepared.changes).status_code == 200
    add_other_commune(hub)
    client = hub_app.test_client()
    resp = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert resp.status_code == 302
    return client


def test_pages_need_a_login(hub_app):
    client = hub_app.test_client()
    for path in ("/indicators/", "/indicators/dossiers?figure=late", "/indicators/export.csv",
                 "/indicators/export.xlsx", "/indicators/watch"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], path


def test_dashboard_all_communes_chart_table_and_score(admin, prepared):
    html = admin.get(f"/indicators/?{MARCH}").get_data(as_text=True)
    assert 'class="nav-indicators"' in html and "<svg" in html and "Tỷ lệ giải quyết đúng hạn theo đơn vị" in html
    assert prepared.unit_name in html and OTHER_NAME in html
    # The pushed dossier is still running (received 2 March, due that day); the other commune: 2 of 3 on time.
    assert 'id="on-time-rate">66.7 %' in html
    assert f"/indicators/dossiers?figure=late&amp;from=2026-03-01&amp;to=2026-03-31&amp;unit={OTHER}" in html
    one = admin.get(f"/indicators/?{MARCH}&unit={OTHER}").get_data(as_text=True)
    assert 'id="on-time-rate">66.7 %' in one and prepared.unit_name not in one.split("<table")[-1]
    whole = admin.get(f"/indicators/?{MARCH}&unit=*")
    assert whole.status_code == 200 and OTHER_NAME in whole.get_data(as_text=True)
    en = admin.get(f"/indicators/?{MARCH}&lang=en").get_data(as_text=True)
    assert "Decision 766 indicators" in en and "On-time rate by unit" in en


def test_table_is_sorted_by_a_whitelisted_column(admin, prepared):
    asc = admin.get(f"/indicators/?{MARCH}&sort=finished&dir=asc").get_data(as_text=True)
    desc = admin.get(f"/indicators/?{MARCH}&sort=finished&dir=desc").get_data(as_text=True)
    body = lambda html: html.split('id="table"')[1]  # noqa: E731
    assert body(asc).index(prepared.unit_name) < body(asc).index(OTHER_NAME)
    assert body(desc).index(OTHER_NAME) < body(desc).index(prepared.unit_name)
    resp = admin.get(f"/indicators/?{MARCH}&sort=applicant_id_number")
    assert resp.status_code == 400 and "Không sắp xếp được" in resp.get_data(as_text=True)


@pytest.mark.parametrize("query,message", [
    ("from=2026-02-30", "Ngày bắt đầu không hợp lệ"),
    ("from=2026-03-31&to=2026-03-01", "Ngày bắt đầu phải trước"),
    ("to=%3Cscript%3E", "Ngày kết thúc không hợp lệ"),
    ("unit=000.99.99.X00", "Không có đơn vị mã"),
])
def test_bad_parameters_are_400_with_a_message(admin, query, message):
    for path in ("/indicators/", "/indicators/dossiers", "/indicators/export.csv", "/indicators/export.xlsx"):
        extra = "figure=late&" if path.endswith("dossiers") else ""
        resp = admin.get(f"{path}?{extra}{query}")
        html = resp.get_data(as_text=True)
        assert resp.status_code == 400 and message in html, path
        assert "<script>" not in html, "the bad value is escaped"
        assert 'name="from"' in html, "the period picker is shown again"


def test_bad_figure_and_bad_watch_list(admin):
    resp = admin.get(f"/indicators/dossiers?figure=secret&{MARCH}")
    assert resp.status_code == 400 and "Không có chỉ số" in resp.get_data(as_text=True)
    resp = admin.get("/indicators/watch?kind=everything")
    assert resp.status_code == 400 and "Không có danh sách" in resp.get_data(as_text=True)


def test_drill_down_lists_the_dossiers_behind_a_figure(admin, prepared):
    late = admin.get(f"/indicators/dossiers?figure=late&{MARCH}&unit={OTHER}").get_data(as_text=True)
    assert 'id="drill-total">1<' in late and "Q-3" in late and "Q-1" not in late
    running = admin.get(f"/indicators/dossiers?figure=in_progress&{MARCH}").get_data(as_text=True)
    assert prepared.dossier_code in running and 'id="drill-total">1<' in running
    applicant_id = "019305001234"
    assert applicant_id not in running, "no citizen ID number on the hub's lists"
    far = admin.get(f"/indicators/dossiers?figure=received&{MARCH}&page=99")
    assert far.status_code == 200 and "Trang" not in far.get_data(as_text=True).split("drill-total")[1][:10]


def test_exports_csv_with_bom_and_xlsx_with_the_sheet(admin, prepared):
    resp = admin.get(f"/indicators/export.csv?{MARCH}")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.data.startswith(b"\xef\xbb\xbf") and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    header = rows[0]
    by_unit = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert by_unit[OTHER]["Đơn vị"] == OTHER_NAME and by_unit[OTHER]["Đã giải quyết"] == "3"
    assert by_unit[OTHER]["Tỷ lệ đúng hạn"] == "66.67%" and by_unit[prepared.unit_code]["Đang giải quyết"] == "1"
    assert by_unit[OTHER]["Hồ sơ số hóa"] == "3" and by_unit[OTHER]["Thanh toán trực tuyến"] == "3"
    assert rows[-1][1] == "Tổng cộng"
    xlsx = admin.get(f"/indicators/export.xlsx?{MARCH}&unit={OTHER}")
    assert xlsx.status_code == 200 and xlsx.mimetype.endswith("spreadsheetml.sheet")
    with zipfile.ZipFile(io.BytesIO(xlsx.data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
        assert "xl/workbook.xml" in z.namelist()
    assert OTHER_NAME in sheet and "<v>3</v>" in sheet and "Tổng cộng" in sheet


def test_overdue_watch_across_communes(admin, prepared, clock):
    clock.set("2026-03-03 09:00")  # the pushed dossier was due on 2 March at 17:00
    html = admin.get("/indicators/watch").get_data(as_text=True)
    assert prepared.dossier_code in html and "Quá hạn" in html and "apology-no" in html
    assert 'id="watch-total">(1)' in html
    other = admin.get(f"/indicators/watch?unit={OTHER}").get_data(as_text=True)
    assert prepared.dossier_code not in other and 'id="watch-total">(0)' in other
    soon = admin.get("/indicators/watch?kind=due_soon").get_data(as_text=True)
    assert prepared.dossier_code not in soon
