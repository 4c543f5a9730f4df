"""Online submission on the hub's public pages (central/public_views.py).

A resident chooses a commune and a procedure, fills the form, attaches scans, answers the arithmetic
question and gets a dossier code; the dossier is registered "newly registered" (status 1, channel online)
in the commune's scope, with its scans in the hub's file store, and can be followed by code. Every refusal
(bad ID number, wrong or too large file, missing / wrong / expired answer, honeypot, rate limit) answers
4xx with a clear message and stores nothing: no change, no dossier, no file, no rate-limit hit.
"""
# ruff: noqa: F811  (pytest fixtures imported from hubtest are parameters here)

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from hubtest import PASSWORD, NodeSession, hub_db_url  # noqa: F401  (fixtures are imported by name; see hubtest.py)

from central import create_app
from central.instance import init_hub
from central.models import SubmissionHit
from central.public_views import WORDS_VI
from central.storage.testing import UNIT_A, UNIT_B, NodeWriter
from central.tokens import create_token
from node.sync import protocol
from node.sync.state import Attachment, Dossier, DossierEvent

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 500
ID_NUMBER = "019305001234"  # Thái Nguyên, a woman born in 2005
NAME_A, NAME_B = "UBND xã Tân Cương", "UBND xã Hóa Thượng"
PROCEDURE = "1.001193"  # birth registration: full online


@pytest.fixture
def public(tmp_path, clock, hub_db_url):
    """(hub app, hub, the two commune writers) with communes A and B enrolled."""
    path = tmp_path / "hub"
    init_hub(path, "Trung tâm huyện Đồng Hỷ", "admin", PASSWORD, hub_db_url)
    app = create_app({"DATA_DIR": str(path), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock,
                      "DATABASE_URL": hub_db_url})
    hub = app.extensions["motcua_hub"]
    client = app.test_client()
    writers = {}
    for unit, name in ((UNIT_A, NAME_A), (UNIT_B, NAME_B)):
        writer = NodeWriter(unit)
        token = create_token(hub, [unit], "commune")
        resp = client.post("/api/v1/enroll", json={"token": token, "software_version": "0.1.0",
                                                   **dict(writer.record(), unit_name=name)})
        assert resp.status_code == 200, resp.data
        writers[unit] = writer
    yield app, hub, writers
    hub.close()


def solve(html: str) -> tuple[str, str]:
    """(token, answer) of the question on a form page, read as a person would."""
    question = re.search(r'class="label challenge-question">([^<]+)<', html).group(1)
    a, op, b = re.match(r"(\S+) (cộng|trừ) (\S+) bằng mấy\?", question).groups()
    x, y = WORDS_VI.index(a.lower()), WORDS_VI.index(b)
    token = re.search(r'name="challenge_token" value="([^"]+)"', html).group(1)
    return token, str(x + y if op == "cộng" else x - y)


def form_page(client, unit: str = UNIT_A, procedure: str = PROCEDURE) -> str:
    resp = client.get(f"/nop-ho-so?unit={unit}&procedure={procedure}")
    assert resp.status_code == 200, resp.data[:500]
    return resp.get_data(as_text=True)


def body(client, **over) -> dict:
    token, answer = solve(form_page(client))
    data = {"unit": UNIT_A, "procedure": PROCEDURE, "applicant_name": "Nguyễn Thị Hương", "id_number": ID_NUMBER,
            "birth_date": "2005-04-12", "gender": "female", "address": "Xóm Chè, xã Tân Cương",
            "phone": "0987 654 321", "email": "huong@example.vn", "matter": "", "challenge_token": token,
            "challenge_answer": answer, "website": ""}
    files = over.pop("files", [(PDF, "giay-chung-sinh.pdf"), (PNG, "cccd-me.png")])
    # Fresh streams for every request: a parametrized case runs once per backend, and werkzeug closes them.
    files = [(io.BytesIO(f) if isinstance(f, bytes) else f, name) for f, name in files]
    data.update(over)
    data["scans"] = files
    return data


def post(client, data, addr: str = "10.0.0.7"):
    return client.post("/nop-ho-so", data=data, content_type="multipart/form-data",
                       environ_base={"REMOTE_ADDR": addr})


def held_files(hub) -> list[Path]:
    return [p for p in Path(hub.files.root).rglob("*") if p.is_file() and "partial" not in p.parts]


def snapshot(hub) -> tuple[int, int, int, int, int]:
    return (hub.storage.change_count(), Dossier.select().count(), Attachment.select().count(), len(held_files(hub)),
            SubmissionHit.select().count())


def test_choose_lists_enrolled_communes_and_online_procedures(public):
    app, _hub, _ = public
    client = app.test_client()
    html = client.get("/nop-ho-so").get_data(as_text=True)
    assert NAME_A in html and NAME_B in html
    assert PROCEDURE in html
    assert "2.000815" in html  # certified copy: partial online
    assert "2.000884" not in html  # signature certification: at the counter only
    resp = client.get("/nop-ho-so?unit=NOPE&procedure=9.999")
    assert resp.status_code == 400
    text = resp.get_data(as_text=True)
    assert "Vui lòng chọn xã, phường nhận hồ sơ." in text and "Vui lòng chọn một thủ tục" in text
    assert "Online submission" in client.get("/nop-ho-so?lang=en").get_data(as_text=True)
    english = client.get(f"/nop-ho-so?unit={UNIT_A}&procedure={PROCEDURE}").get_data(as_text=True)
    assert re.search(r"What is \w+ (plus|minus) \w+\?", english) and "Personal ID number (CCCD)" in english


def test_a_submission_reaches_the_commune_and_can_be_followed(public, clock):
    app, hub, writers = public
    client = app.test_client()
    before = hub.storage.change_count()
    resp = post(client, body(client))
    assert resp.status_code == 303, resp.data[:800]
    code = re.search(r"code=([^&]+)$", resp.headers["Location"]).group(1)
    assert re.fullmatch(rf"{re.escape(UNIT_A)}\.HUB-260302-0001", code)
    d = Dossier.get(Dossier.code == code)
    assert (d.status, d.channel, d.unit_code, d.applicant_id_number) == (1, 2, UNIT_A, ID_NUMBER)
    assert d.applicant_phone == "0987654321" and d.applicant_birth_date == "2005-04-12"
    assert DossierEvent.select().where(DossierEvent.dossier_id == d.id).count() == 1
    atts = list(Attachment.select().where(Attachment.dossier_id == d.id).order_by(Attachment.filename))
    assert [(a.filename, a.mime, a.size) for a in atts] == [("cccd-me.png", "image/png", len(PNG)),
                                                            ("giay-chung-sinh.pdf", "application/pdf", len(PDF))]
    for att, data in zip(atts, (PNG, PDF), strict=True):
        assert att.sha256 == hashlib.sha256(data).hexdigest()
        assert hub.files.path(att.sha256).read_bytes() == data
        assert hub.storage.file_in_scope(att.sha256, [UNIT_A]) and not hub.storage.file_in_scope(att.sha256, [UNIT_B])
    assert SubmissionHit.select().count() == 1
    assert "10.0.0.7" not in str(list(SubmissionHit.select().dicts()))

    # Scoped to commune A: its node's pull gets the dossier, its documents and the scans; B's gets none of it.
    written = hub.storage.change_count() - before
    a = writers[UNIT_A]
    page = hub.storage.pull(a.node_id, [UNIT_A, protocol.GLOBAL_SCOPE], 0, limit=1000)
    mine = [c for c in page.changes if c["node_id"] == hub.node_id and c["entity"] in ("dossier", "document",
                                                                                       "attachment")]
    assert len(mine) == written
    assert {c["entity"] for c in mine} == {"dossier", "document", "attachment"}
    b = writers[UNIT_B]
    other = hub.storage.pull(b.node_id, [UNIT_B, protocol.GLOBAL_SCOPE], 0, limit=1000)
    assert not [c for c in other.changes if c["entity"] in ("dossier", "document", "attachment")]
    # ...and its "files down" stage can fetch the scans; the other commune's node cannot.
    for att, data in zip(atts, (PNG, PDF), strict=True):
        got = NodeSession(client, a.node_id, a.key).call("GET", f"/api/v1/files/{att.sha256}")
        assert got.status_code == 200 and got.data == data
        assert NodeSession(client, b.node_id, b.key).call("GET", f"/api/v1/files/{att.sha256}").status_code == 404

    # The receipt and the lookup show progress, never the person.
    receipt = client.get(resp.headers["Location"])
    text = receipt.get_data(as_text=True)
    assert receipt.status_code == 200 and code in text and "Mới đăng ký" in text and NAME_A in text
    looked = client.get(f"/tra-cuu-ho-so?code={code}")
    text = looked.get_data(as_text=True)
    assert looked.status_code == 200 and "Mới đăng ký" in text and "Chưa có (hồ sơ chưa được tiếp nhận)" in text
    for secret in (ID_NUMBER, "Xóm Chè", "Nguyễn Thị Hương", "0987654321"):
        assert secret not in text
    # The next one of the day follows on.
    clock.value += timedelta(minutes=5)
    resp = post(client, body(client))
    assert resp.status_code == 303 and resp.headers["Location"].endswith("-0002")


def test_lookup_of_an_unknown_or_malformed_code(public):
    app, _hub, _ = public
    client = app.test_client()
    resp = client.get(f"/tra-cuu-ho-so?code={UNIT_A}.HUB-260302-0999")
    assert resp.status_code == 404 and "Không tìm thấy hồ sơ" in resp.get_data(as_text=True)
    resp = client.get("/tra-cuu-ho-so?code=<script>")
    assert resp.status_code == 400 and "Mã hồ sơ không hợp lệ." in resp.get_data(as_text=True)
    assert client.get("/tra-cuu-ho-so").status_code == 200
    assert client.get(f"/nop-ho-so/da-nop?code={UNIT_A}.HUB-260302-0999").status_code == 404


def test_lookup_follows_the_status_set_at_the_commune(public, clock):
    app, _hub, _ = public
    client = app.test_client()
    code = re.search(r"code=(.+)$", post(client, body(client)).headers["Location"]).group(1)
    # The commune's progress, as its synced changes leave the hub's replica (the merge itself is tested
    # with the sync code): accepted with an appointment, then overdue, then returned.
    Dossier.update(status=2, appointment_at="2026-03-02 16:30:00").where(Dossier.code == code).execute()
    text = client.get(f"/tra-cuu-ho-so?code={code}").get_data(as_text=True)
    assert "Đã tiếp nhận" in text and "16:30 02/03/2026" in text and "quá hạn" not in text
    clock.value += timedelta(days=1)
    assert "Hồ sơ đã quá hạn hẹn trả" in client.get(f"/tra-cuu-ho-so?code={code}").get_data(as_text=True)
    Dossier.update(status=10, returned_at="2026-03-03 10:00:00").where(Dossier.code == code).execute()
    text = client.get(f"/tra-cuu-ho-so?code={code}&lang=en").get_data(as_text=True)
    assert "Result returned" in text and "10:00 03/03/2026" in text and "past its appointment" not in text


BAD = [
    ("id_number", {"id_number": "01930500123X"}, 400, "chỉ được gồm các chữ số"),
    ("id_length", {"id_number": "12345"}, 400, "phải có 12 chữ số"),
    ("id_birth_mismatch", {"birth_date": "1990-01-01"}, 400, "xác nhận"),
    ("no_name", {"applicant_name": "  "}, 400, "Vui lòng nhập họ và tên."),
    ("phone", {"phone": "12ab"}, 400, "Số điện thoại gồm 9–15 chữ số."),
    ("email", {"email": "not-an-email"}, 400, "Địa chỉ email không hợp lệ."),
    ("birth_future", {"birth_date": "2030-01-01"}, 400, "không sau hôm nay"),
    ("fake_pdf", {"files": [(b"just some text, not a PDF", "giay-to.pdf")]}, 400,
     "không phải PDF, JPEG hoặc PNG"),
    ("exe", {"files": [(b"MZ\x90\x00", "virus.exe")]}, 400, "không phải PDF, JPEG hoặc PNG"),
    ("pdf_named_png", {"files": [(PDF, "anh.png")]}, 400, "không phải PDF, JPEG hoặc PNG"),
    ("no_file", {"files": []}, 400, "Vui lòng đính kèm"),
    ("too_large", {"files": [(b"%PDF-" + b"0" * (10 * 1024 * 1024), "lon.pdf")]}, 413, "quá lớn"),
    ("too_many", {"files": [(PDF, f"t{i}.pdf") for i in range(11)]}, 400, "Tối đa 10 tệp"),
    ("no_answer", {"challenge_answer": ""}, 400, "Vui lòng trả lời câu hỏi kiểm tra."),
    ("wrong_answer", {"challenge_answer": "99"}, 400, "Câu trả lời kiểm tra chưa đúng."),
    ("forged_token", {"challenge_token": "9999999999.abcd.0000"}, 400, "Câu trả lời kiểm tra chưa đúng."),
    ("no_token", {"challenge_token": ""}, 400, "không hợp lệ"),
    ("honeypot", {"website": "http://spam.example"}, 400, "Không gửi được hồ sơ."),
    ("unit", {"unit": "000.00.99.H99"}, 400, "Vui lòng chọn xã, phường nhận hồ sơ."),
    ("offline_procedure", {"procedure": "9.999999"}, 400, "không nhận hồ sơ trực tuyến"),
]


@pytest.mark.parametrize("case,over,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_and_stores_nothing(public, case, over, status, message):
    app, hub, _ = public
    client = app.test_client()
    data = body(client, **over)
    before = snapshot(hub)
    resp = post(client, data)
    text = resp.get_data(as_text=True)
    assert resp.status_code == status, text[:800]
    assert message in text
    assert snapshot(hub) == before


def test_an_id_number_that_disagrees_with_the_birth_date_needs_a_confirmation(public):
    app, hub, _ = public
    client = app.test_client()
    resp = post(client, body(client, birth_date="1990-01-01"))
    assert resp.status_code == 400 and 'name="id_confirm"' in resp.get_data(as_text=True)
    resp = post(client, body(client, birth_date="1990-01-01", id_confirm="1"))
    assert resp.status_code == 303
    assert Dossier.select().count() == 1


def test_an_expired_question_is_refused(public, clock):
    app, hub, _ = public
    client = app.test_client()
    data = body(client)
    clock.value += timedelta(minutes=31)
    before = snapshot(hub)
    resp = post(client, data)
    assert resp.status_code == 400 and "Câu hỏi kiểm tra đã hết hạn" in resp.get_data(as_text=True)
    assert snapshot(hub) == before


def test_rate_limit_per_address(public, clock):
    app, hub, _ = public
    client = app.test_client()
    for i in range(5):
        clock.value += timedelta(minutes=1)
        assert post(client, body(client)).status_code == 303, i
    before = snapshot(hub)
    resp = post(client, body(client))
    text = resp.get_data(as_text=True)
    assert resp.status_code == 429 and "quá nhiều hồ sơ" in text
    assert 0 < int(resp.headers["Retry-After"]) <= 3600
    assert snapshot(hub) == before
    assert post(client, body(client), addr="10.0.0.8").status_code == 303  # another address is not limited
    clock.value += timedelta(hours=1)
    assert post(client, body(client)).status_code == 303  # the hour has passed


def test_daily_limit(public, clock):
    app, hub, _ = public
    app.config.update(PUBLIC_PER_HOUR=100, PUBLIC_PER_DAY=2)
    client = app.test_client()
    for _ in range(2):
        assert post(client, body(client)).status_code == 303
    resp = post(client, body(client))
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 3600
    clock.value += timedelta(days=1, minutes=1)
    assert post(client, body(client)).status_code == 303


def test_csrf_is_checked_on_the_submission(public):
    app, hub, _ = public
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    data = body(client)
    before = snapshot(hub)
    resp = post(client, data)
    assert resp.status_code == 400 and "Phiên làm việc đã hết hạn" in resp.get_data(as_text=True)
    assert snapshot(hub) == before
    html = form_page(client)
    data = body(client)
    data["csrf_token"] = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert post(client, data).status_code == 303


def test_a_body_over_the_total_limit_is_refused_before_it_is_read(public):
    app, hub, _ = public
    app.config.update(PUBLIC_MAX_FILE_BYTES=1024 * 1024, PUBLIC_MAX_TOTAL_BYTES=1024 * 1024)
    client = app.test_client()
    big = b"%PDF-" + b"0" * (700 * 1024)
    before = snapshot(hub)
    resp = post(client, body(client, files=[(io.BytesIO(big), "a.pdf"), (io.BytesIO(big), "b.pdf")]))
    assert resp.status_code == 413 and "Tổng dung lượng các tệp vượt quá 1 MB." in resp.get_data(as_text=True)
    resp = post(client, body(client, files=[(io.BytesIO(big * 5), "c.pdf")]))
    assert resp.status_code == 413 and "Tổng dung lượng các tệp vượt quá 1 MB." in resp.get_data(as_text=True)
    assert snapshot(hub) == before


def test_a_failed_write_keeps_no_file(public, monkeypatch):
    from central.submit import submit_dossier

    app, hub, _ = public
    before = snapshot(hub)
    real = hub.storage.write_change
    seen = []

    def failing(entity, *args, **kw):
        if entity == "attachment":
            seen.append(entity)
            if len(seen) == 2:
                raise RuntimeError("disk full")
        return real(entity, *args, **kw)

    monkeypatch.setattr(hub.storage, "write_change", failing)
    with app.app_context(), pytest.raises(RuntimeError):
        submit_dossier(hub, unit_code=UNIT_A, procedure_code=PROCEDURE, applicant_name="Lò Thị Mai",
                       id_number=ID_NUMBER, attachments=[("a.pdf", PDF, "application/pdf"),
                                                         ("b.png", PNG, "image/png")])
    assert snapshot(hub) == before and held_files(hub) == []
