"""Decision 766 indicators: formulas on a hand-built data set with answers computed by hand, drill-downs that
list exactly the dossiers counted, the workflow's own dossiers, empty and bad periods, the node's pages."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from fractions import Fraction

import pytest

from conftest import login, reception_body
from node import indicators as ind
from node import workflow as wf
from node.sync.ids import new_id
from node.sync.dossier_merge import documents_changed
from node.sync.state import Dossier, DossierDocument
from node.xlsx import Percent, csv_bytes, xlsx_bytes

U = "000.00.19.H55"  # the test node's unit (tests/conftest.py)
X = "000.00.19.H99"  # another unit, only counted when selected
MARCH = ind.Period(date(2026, 3, 1), date(2026, 3, 31))
NOW = datetime(2026, 3, 20, 10, 0)  # a Friday
BIRTH, COPY, MARITAL, SIGNATURE = "1.001193", "2.000815", "1.004873", "2.000884"  # full, partial, full, none


def put(code: str, procedure: str, status: int, received: str, appointment: str = "", *, unit: str = U,
        channel: int = 1, finished: str = "", returned: str = "", rating: str = "", original: str = "",
        apology: str = "", fee: int = 0, paid_online: int = 0, result_digitised: int = 0,
        docs: tuple[str, ...] = ()) -> None:
    """One dossier row (and its documents) written straight into the synced tables."""
    dossier_id = new_id()
    Dossier.insert(id=dossier_id, code=code, unit_code=unit, procedure_code=procedure, procedure_version=1,
                   channel=channel, status=status, applicant_name="Nguyễn Thị Hương", matter="",
                   received_at=received, appointment_at=appointment, original_appointment_at=original,
                   apology_at=apology, finished_at=finished, returned_at=returned, rating=rating,
                   fee_amount=fee, paid_online=paid_online, fee_paid=1 if fee else 0,
                   result_digitised=result_digitised).execute()
    for i, mark in enumerate(docs):
        DossierDocument.insert(id=new_id(), dossier_id=dossier_id, position=i, name=f"Giấy tờ {i}",
                               digitised=mark).execute()
    documents_changed(dossier_id)  # what the merge does when a document arrives


@pytest.fixture
def dataset(node):
    """Fifteen dossiers of March 2026 (and around it), each chosen for one rule."""
    with node.db.atomic():
        # finished early, returned, very satisfied; both documents digitised; electronic result
        put("A", BIRTH, wf.RETURNED, "2026-03-02 09:00:00", "2026-03-04 09:00:00", finished="2026-03-03 10:00:00",
            returned="2026-03-03 14:00:00", rating="very_satisfied", result_digitised=1,
            docs=("digitised", "digitised"))
        # online, finished on the appointment day (on time), paid online, one document reused
        put("B", COPY, wf.RETURNED, "2026-03-02 10:00:00", "2026-03-02 17:00:00", channel=2,
            finished="2026-03-02 16:00:00", returned="2026-03-02 16:30:00", rating="satisfied", fee=4000,
            paid_online=1, docs=("digitised", "reused_document"))
        # late: finished three days after the appointment, result not yet collected
        put("C", MARITAL, wf.READY, "2026-03-03 09:00:00", "2026-03-06 09:00:00", finished="2026-03-09 10:00:00",
            fee=15000, result_digitised=1, docs=("none", "digitised"))
        # an apology (form 04) and a new date, finished before the new date: still late
        put("D", SIGNATURE, wf.RETURNED, "2026-03-04 09:00:00", "2026-03-10 09:00:00",
            original="2026-03-04 17:00:00", apology="2026-03-04 10:00:00", finished="2026-03-09 09:00:00",
            returned="2026-03-09 10:00:00", rating="not_satisfied", fee=10000, result_digitised=1,
            docs=("reused_result",))
        # withdrawn the day after its appointment: finished (workflow.FINISHED) and late
        put("E", BIRTH, wf.WITHDRAWN, "2026-03-05 09:00:00", "2026-03-05 17:00:00", channel=2,
            finished="2026-03-06 08:00:00", docs=("digitised",))
        # paused for a supplement, appointment passed: in progress, never overdue
        put("F", COPY, wf.SUPPLEMENT, "2026-03-10 09:00:00", "2026-03-10 17:00:00", fee=4000, docs=("none",))
        # processing, appointment passed: overdue
        put("G", MARITAL, wf.PROCESSING, "2026-03-11 09:00:00", "2026-03-16 09:00:00", channel=2, fee=15000,
            docs=("digitised", "digitised"))
        # refused at reception and still newly registered online: in no figure
        put("H", BIRTH, wf.REFUSED, "2026-03-12 09:00:00", channel=2)
        put("I", BIRTH, wf.NEW, "2026-03-13 09:00:00", channel=2)
        # processing stopped: received, neither finished nor running
        put("J", SIGNATURE, wf.STOPPED, "2026-03-12 09:00:00", "2026-03-12 17:00:00", fee=10000,
            docs=("digitised",))
        # processing, due this afternoon: in progress, not overdue; no documents (so not digitised)
        put("K", BIRTH, wf.PROCESSING, "2026-03-20 08:00:00", "2026-03-20 17:00:00")
        # received and finished in February: outside the period
        put("L", BIRTH, wf.RETURNED, "2026-02-20 09:00:00", "2026-02-20 17:00:00", finished="2026-02-20 11:00:00",
            returned="2026-02-20 15:00:00", rating="satisfied", docs=("digitised",))
        # received in February, finished in March on the appointment day: finished on time, not received
        put("M", BIRTH, wf.READY, "2026-02-27 09:00:00", "2026-03-02 09:00:00", finished="2026-03-02 08:00:00")
        # another unit: counted only when that unit is selected
        put("N", BIRTH, wf.RETURNED, "2026-03-02 09:00:00", "2026-03-02 17:00:00", unit=X,
            finished="2026-03-02 10:00:00", returned="2026-03-02 11:00:00", rating="satisfied", docs=("none",))
        # online, withdrawn before it was ever accepted (no appointment): left out
        put("O", BIRTH, wf.WITHDRAWN, "2026-03-14 09:00:00", channel=2, finished="2026-03-15 09:00:00")
    return node


EXPECTED = {  # unit U in March 2026, by hand from the fixture above
    "received": 9,  # A B C D E F G J K
    "finished": 6, "early": 1, "on_time": 2, "late": 3,  # A | B M | C D E
    "apology": 1, "withdrawn": 1, "results": 5, "results_digitised": 3,  # D | E | A B C D M | A C D
    "rated": 3, "very_satisfied": 1, "satisfied": 1, "not_satisfied": 1,  # A B D
    "in_progress": 3, "overdue": 1, "paused": 1,  # F G K | G | F
    "online_eligible": 7, "online": 3,  # A B C E F G K | B E G
    "partial_eligible": 2, "partial_online": 1, "full_eligible": 5, "full_online": 2,  # B F | B | A C E G K | E G
    "fee": 6, "paid_online": 1,  # B C D F G J | B
    "documents": 12, "documents_digitised": 10, "documents_reused": 2,
    "dossiers_digitised": 6, "dossiers_reused": 2,  # A B D E G J | B D
}


def test_every_count_matches_the_hand_computed_answer(dataset):
    report = ind.compute(MARCH, [U], NOW)
    assert [r.unit_code for r in report.rows] == [U]
    figures = report.total
    assert {k: getattr(figures, k) for k in EXPECTED} == EXPECTED


def test_rates_and_the_score_by_group(dataset):
    f = ind.compute(MARCH, [U], NOW).total
    rates = {"on_time_rate": Fraction(3, 6), "online_rate": Fraction(3, 7), "partial_rate": Fraction(1, 2),
             "full_rate": Fraction(2, 5), "payment_rate": Fraction(1, 6), "digitised_rate": Fraction(6, 9),
             "reuse_rate": Fraction(2, 9), "document_digitised_rate": Fraction(10, 12),
             "e_result_rate": Fraction(3, 5), "satisfaction_rate": Fraction(2, 3)}
    for name, value in rates.items():
        assert getattr(f, name) == pytest.approx(float(value)), name
    digit = (Fraction(6, 9) + Fraction(2, 9) + Fraction(3, 5)) / 3
    points = {"on_time": 20 * Fraction(1, 2), "online": 12 * Fraction(3, 7), "payment": 10 * Fraction(1, 6),
              "satisfaction": 18 * Fraction(2, 3), "digitisation": 22 * digit}
    assert f.scores["publicity"] is None, "not measured from the synced data"
    for group, value in points.items():
        assert f.scores[group] == pytest.approx(float(value)), group
    assert f.score_total == pytest.approx(float(sum(points.values())))  # 39.73 of 82
    assert round(f.score_total, 2) == 39.73


def test_units_are_selected_and_grouped(dataset):
    one = ind.compute(MARCH, [X], NOW)
    assert (one.total.received, one.total.finished, one.total.on_time, one.total.documents) == (1, 1, 1, 1)
    assert one.total.dossiers_digitised == 0, "its only document is not digitised"
    both = ind.compute(MARCH, None, NOW)  # every unit held
    assert [r.unit_code for r in both.rows] == [U, X]
    assert both.total.received == 10 and both.total.finished == 7
    assert ind.held_units() == [U, X]
    assert ind.compute(MARCH, [U, X], NOW, parallel=True).total == both.total
    nobody = ind.compute(MARCH, [], NOW)
    assert nobody.rows == [] and nobody.total == ind.Figures()


def test_each_figure_lists_exactly_the_dossiers_it_counts(dataset):
    report = ind.compute(MARCH, [U], NOW)
    members = {
        "received": "ABCDEFGJK", "finished": "ABCDEM", "early": "A", "on_time": "BM", "late": "CDE", "apology": "D",
        "withdrawn": "E", "in_progress": "FGK", "overdue": "G", "paused": "F", "online": "BEG", "fee": "BCDFGJ",
        "paid_online": "B", "dossiers_digitised": "ABDEGJ", "dossiers_reused": "BD", "results_digitised": "ACD",
        "not_satisfied": "D", "rated": "ABD",
    }
    for figure in ind.FIGURES:
        page = ind.dossiers_behind(figure, MARCH, [U], NOW, size=100)
        assert page.total == getattr(report.total, figure), figure
        if figure in members:
            assert "".join(sorted(r.code for r in page.rows)) == members[figure], figure
    with pytest.raises(KeyError):
        ind.dossiers_behind("nonsense", MARCH, [U], NOW)
    paged = ind.dossiers_behind("received", MARCH, [U], NOW, page=2, size=4)
    assert (paged.total, paged.pages, paged.page, len(paged.rows)) == (9, 3, 2, 4)
    assert ind.dossiers_behind("received", MARCH, [U], NOW, page=99, size=4).page == 3, "clamped to the last page"


def test_timing_agrees_with_the_workflow(dataset):
    """The SQL early / on time / late is workflow.timing() for every finished dossier."""
    marks = wf.horizon(NOW)
    for figure in ("early", "on_time", "late"):
        for row in ind.dossiers_behind(figure, MARCH, None, NOW, size=100).rows:
            assert wf.timing(Dossier.get_by_id(row.id), marks) == figure, row.code


def test_overdue_watch(dataset):
    page = ind.watch([U], NOW)
    # G is overdue; K is due this afternoon; F (paused) is never listed.
    assert [r.code for r in page.rows] == ["G", "K"]
    assert [r.code for r in ind.watch([U], NOW, "overdue").rows] == ["G"]
    assert [r.code for r in ind.watch([U], NOW, "due_soon").rows] == ["K"]
    assert ind.watch_counts(None, NOW) == {U: {"overdue": 1, "due_soon": 1, "no_apology": 2}}
    assert ind.watch([], NOW).total == 0


def test_an_empty_period_is_zero_with_a_note(dataset):
    report = ind.compute(ind.Period(date(2020, 1, 1), date(2020, 1, 31)), [U], NOW)
    t = report.total
    assert (t.received, t.finished, t.on_time_rate, t.score_total) == (0, 0, 0.0, 0.0)
    assert t.in_progress == 0, "nothing received up to the end of that period"
    assert "mọi chỉ số bằng 0" in report.notes[0][0] and "every figure is 0" in report.notes[0][1]
    rows = ind.table_rows(report)
    assert rows[1][:3] == [U, U, 0] and rows[-1][1] == "Tổng cộng"


@pytest.mark.parametrize("start,end,message", [
    ("2026-02-30", "", "Ngày bắt đầu không hợp lệ"),
    ("hôm qua", "", "Ngày bắt đầu không hợp lệ"),
    ("", "2026/03/31", "Ngày kết thúc không hợp lệ"),
    ("2026-04-01", "2026-03-01", "Ngày bắt đầu phải trước"),
    ("1999-01-01", "2026-01-01", "2000–2099"),
    ("2000-01-01", "2026-01-01", "dài quá 10 năm"),
])
def test_bad_periods_are_refused_with_a_message(start, end, message):
    with pytest.raises(ind.BadPeriod) as err:
        ind.parse_period(start, end, date(2026, 3, 20))
    assert message in err.value.message("vi") and err.value.http_status == 400


def test_default_period_is_this_year_to_date():
    assert ind.parse_period(None, "", date(2026, 3, 20)) == ind.Period(date(2026, 1, 1), date(2026, 3, 20))
    assert ind.parse_period(" 2026-03-01 ", "2026-03-01", date(2026, 3, 20)).hi == "2026-03-02"


def test_dossiers_moved_by_the_workflow_are_counted(node, officers, clock):
    """Received, signed, returned, apologised and withdrawn through node.workflow, with the test clock."""
    reception, leader, specialist = officers["reception"], officers["leader"], officers["specialist"]

    def receive(code: str):
        d, _ = wf.receive_dossier(node, reception, reception_body(procedure_code=code))
        wf.perform(node, reception, d.code, "transfer")
        wf.perform(node, leader, d.code, "assign", {"handler_id": specialist.id})
        return d

    clock.set("2026-03-02 09:00")  # marital status certificate: 3 working days -> Thursday 5 March 09:00
    early = receive(MARITAL)
    late = receive(MARITAL)
    apologised = receive(MARITAL)
    withdrawn = receive(MARITAL)
    clock.set("2026-03-03 10:00")
    wf.perform(node, specialist, early.code, "propose")
    wf.perform(node, leader, early.code, "sign", {"result_digitised": "1"})
    wf.perform(node, reception, early.code, "return_result", {"rating": "very_satisfied"})
    wf.perform(node, leader, apologised.code, "apologise", {"reason": "Chờ xác minh",
                                                             "new_appointment": "2026-03-10 09:00"})
    wf.perform(node, reception, withdrawn.code, "withdraw", {"reason": "Người dân đề nghị"})
    clock.set("2026-03-06 09:00")
    for d in (late, apologised):
        wf.perform(node, specialist, d.code, "propose")
        wf.perform(node, leader, d.code, "sign")
    t = ind.compute(MARCH, None, datetime(2026, 3, 20, 10, 0)).total
    assert (t.received, t.finished, t.early, t.on_time, t.late, t.apology, t.withdrawn) == (4, 4, 2, 0, 2, 1, 1)
    assert (t.results, t.results_digitised, t.rated, t.very_satisfied) == (3, 1, 1, 1)
    assert t.documents == 4 * 2 and t.dossiers_digitised == 0, "the counter marks no document digitised"


# ---------------------------------------------------------------- exports

def test_xlsx_is_a_workbook_with_the_values():
    data = xlsx_bytes([["Đơn vị", "Tỷ lệ"], ["Xã Tân Cương", Percent(0.5)], ["=cmd()", 12]], sheet="Kỳ: 03/2026")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        names = set(z.namelist())
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml", "xl/styles.xml"} <= names
        sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
        workbook = z.read("xl/workbook.xml").decode("utf-8")
    assert "Xã Tân Cương" in sheet and '<c r="B2" s="1"><v>0.5</v></c>' in sheet and "<v>12</v>" in sheet
    assert "&apos;=cmd()" in sheet or "'=cmd()" in sheet, "a formula-like text is written as text"
    assert 'name="Kỳ  03 2026"' in workbook, "a sheet name without : or /"


def test_csv_has_a_bom_and_percentages():
    data = csv_bytes([["Đơn vị", "Tỷ lệ", "Số"], ["Xã Phúc Xuân", Percent(0.25), 3], ["@SUM(A1)", None, 0]])
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert text.splitlines() == ["Đơn vị,Tỷ lệ,Số", "Xã Phúc Xuân,25.00%,3", "'@SUM(A1),,0"]


# ---------------------------------------------------------------- the node's pages

@pytest.fixture
def leader_client(client, dataset):
    return login(client, "leader")


def test_node_dashboard_shows_figures_chart_and_drill_down(leader_client):
    html = leader_client.get("/indicators/?from=2026-03-01&to=2026-03-31").get_data(as_text=True)
    assert "<svg" in html and "Chỉ số Quyết định 766" in html
    assert 'id="on-time-rate">50.0 %' in html and 'id="score-total">39.7' in html
    assert "/indicators/dossiers?figure=late" in html
    drill = leader_client.get("/indicators/dossiers?figure=late&from=2026-03-01&to=2026-03-31")
    body = drill.get_data(as_text=True)
    assert drill.status_code == 200 and 'id="drill-total">3<' in body and "/dossier/C" in body
    en = leader_client.get("/indicators/?from=2026-03-01&to=2026-03-31&lang=en").get_data(as_text=True)
    assert "Decision 766 indicators" in en and "On-time rate" in en


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=2026-03-31&to=2026-03-01", "to=abc"])
def test_node_bad_period_is_400_with_a_message(leader_client, query):
    for path in ("/indicators/", "/indicators/dossiers?figure=late&", "/indicators/export.csv?"):
        sep = "" if path.endswith(("&", "?")) else "?"
        resp = leader_client.get(f"{path}{sep}{query}")
        assert resp.status_code == 400, path
        assert "flash error" in resp.get_data(as_text=True)
    assert leader_client.get("/indicators/dossiers?figure=nope").status_code == 400
    assert leader_client.get("/indicators/watch?kind=nope").status_code == 400


def test_node_exports(leader_client):
    csv_resp = leader_client.get("/indicators/export.csv?from=2026-03-01&to=2026-03-31")
    assert csv_resp.status_code == 200 and csv_resp.data.startswith(b"\xef\xbb\xbf")
    assert "UBND xã Tân Cương" in csv_resp.data.decode("utf-8-sig")
    xlsx = leader_client.get("/indicators/export.xlsx?from=2026-03-01&to=2026-03-31")
    assert xlsx.status_code == 200 and "attachment" in xlsx.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(xlsx.data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "UBND xã Tân Cương" in sheet and "<v>9</v>" in sheet


def test_node_watch_and_roles(client, dataset, clock):
    clock.set("2026-03-20 10:00")
    login(client, "reception")
    html = client.get("/indicators/watch").get_data(as_text=True)
    assert "/dossier/G" in html and "/dossier/K" in html and "/dossier/F" not in html and "Chưa gửi" in html
    assert 'class="nav-indicators"' in html
    client.post("/logout")
    login(client, "specialist")
    assert client.get("/indicators/").status_code == 403
    assert 'class="nav-indicators"' not in client.get("/search").get_data(as_text=True)
