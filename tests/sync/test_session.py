"""A sync as named stages against a fake hub in memory: batches, saved progress, interruptions at every
stage, the cursor moved only after a commit, the digest check and its repair, the pinned hub key; then the
node's glue: the background thread, the sync page, the button and the CLI."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from click.testing import CliRunner

from node import attachments, store, syncer, workflow as wf
from node.models import NodeSetting
from node.sync import keys, protocol
from node.sync.client import HubUnreachable, Reply
from node.sync.log import Change
from node.sync.session import STAGES
from node.sync.state import Attachment, CalendarDay, Dossier
from tests.conftest import UNIT_CODE, login, reception_body
from tests.sync.fakehub import SECRET, FakeHub

HUB_URL = "http://hub.test:9000"
PDF = b"%PDF-1.4\n"


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def enrolled(node, hub):
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    return node


def sync(node, hub, **over):
    options = dict(transport=hub, retries=0, push_batch=10, pull_limit=7)
    options.update(over)
    return syncer.sync_once(node, **options)


def setting(name: str) -> str:
    row = NodeSetting.get_or_none(NodeSetting.key == name)
    return row.value if row else ""


def blob(size: int, seed: int = 0) -> bytes:
    body = hashlib.shake_256(f"scan-{seed}".encode()).digest(size)
    return PDF + body[: size - len(PDF)]


def receive_with_scan(node, officers, size: int = 600_000, seed: int = 0):
    dossier, _ = wf.receive_dossier(node, officers["reception"], reception_body())
    with store.transaction(node):
        attachments.attach(node, dossier.id, "scan.pdf", blob(size, seed), "application/pdf",
                           officers["reception"].id)
    return dossier


def other_commune_data(hub: FakeHub, *, files: int = 2, hub_has_files: bool = True):
    """Another replica of the same commune (a field laptop) with a dossier and scans, already on the hub."""
    other = hub.add_node(UNIT_CODE)
    other.write("dossier", "DOTHER1", "create", {"fields": {
        "code": "000.00.19.H55-260302-9001", "unit_code": UNIT_CODE, "procedure_code": "1.001193",
        "procedure_version": 1, "status": 2, "applicant_name": "Trần Văn Bình", "received_at": "2026-03-02 09:00:00"}})
    for i in range(files):
        data = blob(300_000 + i, seed=100 + i)
        sha = hashlib.sha256(data).hexdigest()
        other.write("attachment", f"AOTHER{i}", "create", {"fields": {
            "dossier_id": "DOTHER1", "sha256": sha, "filename": f"p{i}.pdf", "mime": "application/pdf",
            "size": len(data)}})
        if hub_has_files:
            hub.files[sha] = bytearray(data)
    for i in range(6):
        other.write("document", f"DOC{i}", "create", {"fields": {"dossier_id": "DOTHER1", "name": f"Giấy {i}"}})
    return other


def assert_converged(node, hub):
    """Every own change on the hub exactly once, the hub's scope all here, every file on both sides."""
    top = Change.select().where(Change.node_id == node.node_id).count()
    assert [c["seq"] for c in hub.held_of(node.node_id)] == list(range(1, top + 1))
    here = [h for (h,) in Change.select(Change.hash).tuples()]
    assert len(here) == len(set(here))
    assert set(here) == {c["hash"] for _, c in hub._in_scope(hub.records[node.node_id])}
    for att in Attachment.select():
        assert attachments.path_for(node, att.sha256).exists()
        assert hashlib.sha256(bytes(hub.files.get(att.sha256, b""))).hexdigest() == att.sha256


# ---------------------------------------------------------------- enrollment and the pinned key

def test_enrollment_pins_the_hubs_key(node, hub):
    record = syncer.enroll(node, HUB_URL + "/", hub.token(UNIT_CODE), transport=hub)
    pin = json.loads((node.path / "hub.json").read_text())
    assert pin["url"] == HUB_URL and pin["hub_public_key"] == hub.key.public_b64
    assert record["node_id"] == node.node_id and pin["record"] == record
    keys.verify(hub.key.public_b64, __import__("node.sync.encoding").sync.encoding.canonical(record),
                pin["record_sig"])
    with pytest.raises(syncer.AlreadyEnrolled):
        syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)


def test_a_used_token_is_refused_and_nothing_is_pinned(node, hub):
    from node.sync.client import HubRefused

    with pytest.raises(HubRefused) as info:
        syncer.enroll(node, HUB_URL, "never-issued", transport=hub)
    assert info.value.status == 403 and not (node.path / "hub.json").exists()


def test_a_hub_with_another_key_is_refused(enrolled, hub):
    hub.key = keys.NodeKey.generate()  # an impostor at the pinned URL
    report = sync(enrolled, hub)
    assert report.error_code == "hub_key_mismatch" and report.stage == "time"
    assert hub.held_of(enrolled.node_id) == []
    assert json.loads((enrolled.path / "hub.json").read_text())["hub_public_key"] != hub.key.public_b64


def test_sync_without_enrollment_says_so(node, hub):
    report = sync(node, hub)
    assert report.error_code == "not_enrolled" and not report.ok


# ---------------------------------------------------------------- push

def test_push_goes_in_batches_and_keeps_progress_per_batch(enrolled, hub):
    top = Change.select().where(Change.node_id == enrolled.node_id).count()
    hub.fail_at("POST", "/sync/push", 3)
    report = sync(enrolled, hub)
    assert report.error_code == "hub_unreachable" and report.stage == "push" and report.pushed == 20
    assert setting("sync.acked_seq") == "20" and len(hub.held_of(enrolled.node_id)) == 20
    assert report.changes_waiting == top - 20
    report = sync(enrolled, hub)
    assert report.ok, report.error
    assert report.pushed == top - 20 and report.changes_waiting == 0
    assert hub.calls.count(("POST", "/sync/push")) == 3 + (top - 20 + 9) // 10
    assert_converged(enrolled, hub)


def test_a_lost_acknowledged_seq_resumes_from_the_hubs(enrolled, hub):
    assert sync(enrolled, hub).ok
    NodeSetting.delete().where(NodeSetting.key == "sync.acked_seq").execute()
    before = len(hub.calls)
    report = sync(enrolled, hub)
    assert report.ok and report.pushed == 0
    assert ("POST", "/sync/push") not in hub.calls[before:]


def test_a_fork_answer_stops_the_sync_and_says_quarantined(enrolled, hub):
    hub.script("POST", "/sync/push", Reply(409, {"Content-Type": "application/json"},
                                           b'{"error": {"code": "fork", "message": "fork at seq 1"}}'))
    report = sync(enrolled, hub)
    assert report.error_code == "fork" and report.stage == "push"
    assert setting("sync.acked_seq") == "0"


def test_a_node_restored_from_an_older_backup_is_stopped_before_it_pushes(enrolled, hub):
    assert sync(enrolled, hub).ok
    held = hub.held_of(enrolled.node_id)
    forged = dict(held[-1], seq=held[-1]["seq"] + 1, prev=held[-1]["hash"], hash="ab" * 32)
    hub.store(forged, UNIT_CODE)  # the hub holds more of this node than the node itself
    report = sync(enrolled, hub)
    assert report.error_code == "fork" and report.stage == "time" and "backup" in report.error
    assert hub.held_of(enrolled.node_id)[-1] is forged


def test_another_change_at_an_acknowledged_seq_is_a_fork(enrolled, hub):
    assert sync(enrolled, hub).ok
    index = next(i for i, (c, _) in enumerate(hub.changes) if c["node_id"] == enrolled.node_id
                 and c["seq"] == 5)
    hub.changes[index] = (dict(hub.changes[index][0], hash="cd" * 32), UNIT_CODE)
    last = hub.held_of(enrolled.node_id)[-1]
    hub.changes.remove((last, UNIT_CODE))
    hub.changes.append((dict(last, hash="ef" * 32), UNIT_CODE))
    report = sync(enrolled, hub)
    assert report.error_code == "fork" and report.stage == "time"


# ---------------------------------------------------------------- pull

def test_pull_applies_pages_and_observes_their_clocks(enrolled, hub):
    other_commune_data(hub)
    made = hub.hub_write("dossier", "DHUB1", "create", {"fields": {
        "code": "000.00.19.H55-260302-0501", "unit_code": UNIT_CODE, "procedure_code": "1.001193",
        "procedure_version": 1, "channel": 2, "status": 1, "applicant_name": "Lê Thị Mai",
        "received_at": "2026-03-02 10:00:00"}}, UNIT_CODE)
    elsewhere = hub.add_node("000.00.19.H99")
    elsewhere.write("document", "DOC-ELSEWHERE", "create", {"fields": {"dossier_id": "X", "name": "n"}})
    report = sync(enrolled, hub)
    assert report.ok, report.error
    assert Dossier.get_by_id("DOTHER1").applicant_name == "Trần Văn Bình"
    assert Dossier.get_by_id("DHUB1").channel == 2  # a dossier that started at the hub reached its commune
    assert str(enrolled.clock.last) >= made["hlc"]
    assert report.pulled == len([c for _, c in hub._in_scope(hub.records[enrolled.node_id])
                                 if c["node_id"] != enrolled.node_id])
    assert report.digest_ok and not report.repaired
    assert not Change.select().where(Change.entity_id == "DOC-ELSEWHERE").exists()
    assert_converged(enrolled, hub)


def test_the_cursor_moves_only_when_the_page_committed(enrolled, hub, monkeypatch):
    other_commune_data(hub, files=0)
    real = store.apply_change
    seen = []

    def flaky(change):
        seen.append(change["hash"])
        if len(seen) == 10:  # the third change of the second page of 7
            raise OSError("disk unplugged")
        return real(change)

    monkeypatch.setattr(store, "apply_change", flaky)
    report = sync(enrolled, hub)
    assert report.error_code == "internal_error" and report.stage == "pull"
    record = hub.records[enrolled.node_id]
    first_page = [c for i, c in hub._in_scope(record) if c["node_id"] != enrolled.node_id][:7]
    cursor = protocol.read_cursor(SECRET, enrolled.node_id, setting("sync.cursor"))
    assert cursor == hub.changes.index((first_page[-1], "*" if first_page[-1]["node_id"] == hub.node_id
                                        else UNIT_CODE)) + 1
    pulled = {h for (h,) in Change.select(Change.hash).where(Change.node_id != enrolled.node_id).tuples()}
    assert pulled == {c["hash"] for c in first_page}
    # nothing of the rolled-back second page is in the state
    assert DossierDocumentCount() == len([c for c in first_page if c["entity"] == "document"]) < 6
    monkeypatch.setattr(store, "apply_change", real)
    report = sync(enrolled, hub)
    assert report.ok, report.error
    assert DossierDocumentCount() == 6
    assert_converged(enrolled, hub)


def DossierDocumentCount() -> int:
    from node.sync.state import DossierDocument

    return DossierDocument.select().where(DossierDocument.dossier_id == "DOTHER1").count()


# ---------------------------------------------------------------- the digest

def test_a_digest_mismatch_is_repaired_by_a_full_re_pull(enrolled, hub):
    hub.hub_write("calendar_day", "2026-04-30", "put", {"fields": {"kind": "day_off", "name": "Giải phóng"}}, "*")
    assert sync(enrolled, hub).ok
    lost = Change.get((Change.node_id == hub.node_id) & (Change.entity == "calendar_day"))
    with store.transaction(enrolled):  # a change lost here (say, a bad restore of part of the database)
        lost.delete_instance()
        CalendarDay.delete().where(CalendarDay.day == "2026-04-30").execute()
    pulls = hub.calls.count(("POST", "/sync/pull"))
    report = sync(enrolled, hub)
    assert report.ok and report.digest_ok and report.repaired
    assert hub.calls.count(("POST", "/sync/pull")) - pulls > 1  # the ordinary pull, then the whole scope again
    assert CalendarDay.get_by_id("2026-04-30").kind == "day_off"
    assert setting("sync.repull") == ""
    assert_converged(enrolled, hub)


def test_a_digest_that_stays_different_is_a_clear_error(enrolled, hub):
    hub.digest_extra = ["ab" * 32]
    report = sync(enrolled, hub)
    assert report.error_code == "digest_mismatch" and report.digest_ok is False
    assert "full re-pull" in report.error
    hub.digest_extra = []
    report = sync(enrolled, hub)
    assert report.ok and report.digest_ok and report.repaired


# ---------------------------------------------------------------- files

def test_uploads_resume_from_what_the_hub_holds(enrolled, hub, officers):
    receive_with_scan(enrolled, officers, size=600_000)
    sha = Attachment.get().sha256
    hub.fail_at("PUT", "/files", 2)
    report = sync(enrolled, hub)
    assert report.stage == "files_up" and report.files_waiting == 1
    assert len(hub.files[sha]) == 256 * 1024
    report = sync(enrolled, hub)
    assert report.ok and report.files_up == 1 and report.files_waiting == 0
    assert hub.puts == [(sha, 0), (sha, 262144), (sha, 524288)]  # nothing sent twice
    assert_converged(enrolled, hub)
    assert sync(enrolled, hub).files_up == 0


def test_an_upload_realigns_when_the_hub_holds_less_than_it_said(enrolled, hub, officers):
    receive_with_scan(enrolled, officers, size=600_000)
    att = Attachment.get()
    data = attachments.path_for(enrolled, att.sha256).read_bytes()
    hub.fail_at("PUT", "/files", 1)
    assert sync(enrolled, hub).stage == "files_up"
    hub.files[att.sha256] = bytearray(data[:262144])
    hub.script("HEAD", "/files", Reply(200, {"X-Motcua-Size": "524288"}, b""))  # a stale answer
    report = sync(enrolled, hub)
    assert report.ok, report.error
    assert bytes(hub.files[att.sha256]) == data
    assert hub.puts == [(att.sha256, 524288), (att.sha256, 262144), (att.sha256, 524288)]


def test_a_dossier_never_waits_for_its_files(enrolled, hub):
    other_commune_data(hub, files=1, hub_has_files=False)
    report = sync(enrolled, hub)
    assert report.ok and report.files_down == 0 and report.files_waiting == 1
    att = Attachment.get_by_id("AOTHER0")
    assert Dossier.get_by_id("DOTHER1") and not attachments.path_for(enrolled, att.sha256).exists()
    hub.files[att.sha256] = bytearray(blob(300_000, seed=100))  # its laptop uploads it later
    report = sync(enrolled, hub)
    assert report.ok and report.files_down == 1 and report.files_waiting == 0
    assert attachments.path_for(enrolled, att.sha256).read_bytes() == blob(300_000, seed=100)


# ---------------------------------------------------------------- interruptions at every stage

LINK_CUTS = [("time", ("GET", "/time")), ("time", ("POST", "/sync/status")), ("push", ("POST", "/sync/push")),
             ("files_up", ("PUT", "/files")), ("pull", ("POST", "/sync/pull")), ("files_down", ("GET", "/files"))]


@pytest.mark.parametrize("stage, how", [(s, "hook") for s in STAGES] + LINK_CUTS,
                         ids=[f"{s}-start" for s in STAGES] + [f"{s}-{m}{p}" for s, (m, p) in LINK_CUTS])
def test_an_interrupted_sync_completes_on_the_next_run(enrolled, hub, officers, stage, how):
    receive_with_scan(enrolled, officers, size=600_000)
    other_commune_data(hub, files=2)
    options = {}
    if how == "hook":
        def cut(name):
            if name == stage:
                raise HubUnreachable(f"link cut as {name} began")
        options["on_stage"] = cut
    else:
        method, path = how
        hub.fail_at(method, path, 1 if path in ("/time", "/sync/status") else 2)
    report = sync(enrolled, hub, **options)
    assert report.error_code == "hub_unreachable" and report.stage == stage
    assert setting("sync.stage") == "" and json.loads(setting("sync.last_error"))["stage"] == stage
    assert syncer.status(enrolled)["state"] == "offline"
    report = sync(enrolled, hub)
    assert report.ok, report.error
    assert report.digest_ok and report.changes_waiting == 0 and report.files_waiting == 0
    assert_converged(enrolled, hub)
    assert syncer.status(enrolled)["state"] == "online"


# ---------------------------------------------------------------- the node's glue

def test_two_syncs_never_overlap(enrolled, hub):
    before = len(hub.calls)
    with syncer.sync_lock(enrolled):
        report = syncer.sync_once(enrolled, transport=hub, wait=False)
    assert report.error_code == "busy" and len(hub.calls) == before


def test_status_reports_waiting_work_and_clock_skew(node, officers):
    hub = FakeHub(skew_ms=7 * 60 * 1000)
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    assert sync(node, hub).ok
    receive_with_scan(node, officers)
    info = syncer.status(node)
    assert info["enrolled"] and info["hub_url"] == HUB_URL and info["state"] == "online"
    assert info["changes_waiting"] > 0 and info["files_waiting"] == 1
    assert info["clock_warning"] and -8 * 60_000 < info["clock_skew_ms"] < -6 * 60_000  # this node is behind
    top = Change.select().where(Change.node_id == node.node_id).count()
    assert hub.reported[node.node_id]["clock_skew_ms"] == info["clock_skew_ms"]
    assert hub.reported[node.node_id]["backlog"] < top  # as the sync began: the first sync pushed 68
    headers = hub.last_headers[node.node_id]  # the backlog after the push travels on every later request
    assert headers["X-Motcua-Backlog"] == "0" and headers["X-Motcua-Clock-Skew"] == str(info["clock_skew_ms"])


def test_the_background_thread_syncs_soon_after_a_write(enrolled, hub, officers):
    thread = syncer.SyncThread(enrolled, interval=60, debounce=0.05, transport_factory=lambda url: hub)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while thread.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert thread.last_report and thread.last_report.ok, thread.last_report
        dossier, _ = wf.receive_dossier(enrolled, officers["reception"], reception_body())
        while thread.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert thread.runs >= 2
        assert any(c["entity_id"] == dossier.id for c in hub.held_of(enrolled.node_id))
    finally:
        thread.stop()
    assert not thread.is_alive() and enrolled.on_write is None


@pytest.fixture
def sync_app(node_dir, clock, hub, monkeypatch):
    from node.instance import Node
    from node.web import create_app

    with_node = Node(node_dir, now=clock)
    syncer.enroll(with_node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    monkeypatch.setattr(syncer, "RequestsTransport", lambda url: hub)
    app = create_app({"DATA_DIR": str(node_dir), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock,
                      "SYNC_BACKGROUND": False})
    yield app
    app.extensions["motcua_node"].close()


def test_the_sync_page_and_the_button(sync_app, hub):
    client = login(sync_app.test_client(), "specialist")
    page = client.get("/sync").get_data(as_text=True)
    assert HUB_URL in page and "Chưa đồng bộ" in page and 'id="sync-now"' in page
    resp = client.post("/sync/now", data={"next": "/sync"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/sync")
    page = client.get("/sync").get_data(as_text=True)
    assert "Đã đồng bộ: gửi" in page and "sync-badge" in page and 'id="changes-waiting">0<' in page
    hub.script("GET", "/time", *[Reply(503, {"Retry-After": "0"}, b"")] * 2)  # the button retries once
    client.post("/sync/now", data={"next": "//evil.example/"})
    page = client.get("/sync?lang=en").get_data(as_text=True)
    assert "Cannot reach the district hub" in page and "Offline" in page
    assert "motcua_sync_thread" not in sync_app.extensions


def test_the_sync_page_needs_a_login(sync_app):
    assert sync_app.test_client().get("/sync").status_code == 302


def test_cli_sync_and_status(node_dir, hub, monkeypatch):
    from node.cli import main
    from node.instance import Node

    runner = CliRunner()
    result = runner.invoke(main, ["node", "sync", "--data", str(node_dir)])
    assert result.exit_code == 1 and "not enrolled" in result.output
    monkeypatch.setattr(syncer, "RequestsTransport", lambda url: hub)
    result = runner.invoke(main, ["node", "enroll", "--data", str(node_dir), "--hub", HUB_URL,
                                  "--token", hub.token(UNIT_CODE)])
    assert result.exit_code == 0, result.output
    assert "enrolled" in result.output
    result = runner.invoke(main, ["node", "sync", "--data", str(node_dir)])
    assert result.exit_code == 0, result.output
    assert "pushed 68 changes" in result.output
    hub.records[Node(node_dir).node_id]["status"] = "revoked"
    result = runner.invoke(main, ["node", "sync", "--data", str(node_dir)])
    assert result.exit_code == 1 and "node_revoked" in result.output
    result = runner.invoke(main, ["node", "status", "--data", str(node_dir)])
    assert result.exit_code == 0
    assert "changes waiting: 0" in result.output and HUB_URL in result.output and "node_revoked" in result.output


def test_create_app_starts_the_background_sync_only_when_enrolled_and_asked(node_dir, clock, hub, monkeypatch):
    from node.instance import Node
    from node.web import create_app

    config = {"DATA_DIR": str(node_dir), "TESTING": True, "NOW": clock, "SYNC_INTERVAL": 3600}
    app = create_app(config)
    assert "motcua_sync_thread" not in app.extensions  # not enrolled
    app.extensions["motcua_node"].close()
    syncer.enroll(Node(node_dir, now=clock), HUB_URL, hub.token(UNIT_CODE), transport=hub)
    monkeypatch.setattr(syncer, "RequestsTransport", lambda url: hub)
    app = create_app(dict(config, SYNC_BACKGROUND="false"))
    assert "motcua_sync_thread" not in app.extensions
    app = create_app(config)
    thread = app.extensions["motcua_sync_thread"]
    try:
        assert thread.is_alive() and thread.interval == 3600
        assert app.extensions["motcua_node"].on_write == thread.nudge
    finally:
        thread.stop()
        app.extensions["motcua_node"].close()


def test_enrollment_saves_the_hub_clock_so_the_first_sync_needs_no_time_request(node):
    hub = FakeHub(skew_ms=7 * 60 * 1000)  # the hub's clock is 7 minutes ahead of this node's
    syncer.enroll(node, HUB_URL, hub.token(UNIT_CODE), transport=hub)
    saved = int(NodeSetting.get(NodeSetting.key == "sync.clock_skew_ms").value)
    assert -8 * 60_000 < saved < -6 * 60_000  # this node's clock minus the hub's, as a sync saves it
    before = len(hub.calls)
    report = syncer.sync_once(node, transport=hub)
    assert report.ok
    # the first request is /sync/status, no GET /time before it (FakeHub answers /sync/status as an older hub,
    # without its key, so the key is checked by a GET /time after it; a current hub names itself there)
    assert hub.calls[before] == ("POST", "/sync/status"), hub.calls[before:]
    assert -8 * 60_000 < syncer.status(node)["clock_skew_ms"] < -6 * 60_000
