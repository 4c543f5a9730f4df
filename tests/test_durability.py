"""Nothing lost: a dossier whose receipt the officer saw survives a killed server, and a write that fails
half-way leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import reception_body
from node import attachments, store, workflow as wf
from node.sync import log
from node.sync.errors import ChangeNotApplicable
from node.errors import ValidationFailed

REPO = Path(__file__).resolve().parents[1]
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PASSWORD = "mat-khau-2026"
ROUNDS = 3
ROUND_SECONDS = 6  # posting stops after this even if the kill timer misfired
SYNCED = ("procedure", "calendar_day", "user", "dossier", "dossier_document", "attachment", "dossier_event")


def motcua() -> list[str]:
    """The CLI entry point: the installed script when there is one, else the module."""
    script = Path(sys.executable).with_name("motcua")
    return [str(script)] if script.exists() else [sys.executable, "-m", "node.cli"]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(motcua() + list(args), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`motcua node serve` in a child process, bound to 127.0.0.1 on a free port."""

    def __init__(self, data: Path, logfile: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(logfile, "ab")
        self.proc = subprocess.Popen(
            motcua() + ["node", "serve", "--data", str(data), "--host", "127.0.0.1", "--port", str(self.port),
                        "--threads", "2"],
            cwd=data.parent, env=cli_env(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"server exited early, see {logfile}"
            try:
                if requests.get(self.base + "/login", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "server did not come up in 30 s"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no handler runs, no clean shutdown
        self.proc.wait(timeout=10)
        self._log.close()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(resp: requests.Response) -> str:
    assert resp.status_code == 200, resp.status_code
    match = CSRF.search(resp.text)
    assert match, "no csrf_token in the form"
    return match.group(1)


def log_in(session: requests.Session, base: str) -> None:
    token = csrf_of(session.get(base + "/login", timeout=10))
    resp = session.post(base + "/login", data={"username": "reception1", "password": PASSWORD,
                                                "csrf_token": token}, allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.status_code


def counter_form(token: str, n: int) -> tuple[dict, dict]:
    body = reception_body(procedure_code="1.004873", applicant_name=f"Nguyễn Văn Thử {n}")
    body.update(csrf_token=token, return_method="desk", sets="1", pages="1",
                doc_name=["Tờ khai theo mẫu", "Căn cước công dân của người yêu cầu"],
                doc_include_0="on", doc_kind_0="original", doc_count_0="1",
                doc_include_1="on", doc_kind_1="photocopy", doc_count_1="1", doc_digitised_1="on")
    scan = PDF + f"% scan {n}\n".encode()
    return body, {"files": (f"to-khai-{n}.pdf", scan, "application/pdf")}


def receive_until_killed(server: Server, session: requests.Session, rng: random.Random, start: int) -> list[str]:
    """Post the counter form in a loop; SIGKILL the server at a random moment. Returns the codes of the
    receipts that were confirmed (a redirect to the new dossier)."""
    token = csrf_of(session.get(server.base + "/counter", timeout=10))
    codes: list[str] = []
    # The timer starts with the first confirmed receipt, so every round has at least one to check.
    timer = threading.Timer(rng.uniform(0.1, 1.2), server.kill)
    ends = time.monotonic() + ROUND_SECONDS
    n = start
    try:
        while time.monotonic() < ends:
            body, files = counter_form(token, n)
            n += 1
            try:
                resp = session.post(server.base + "/counter", data=body, files=files, allow_redirects=False,
                                    timeout=10)
            except requests.RequestException:  # refused, reset or cut off mid-reply: the kill
                break
            assert resp.status_code in (302, 303), resp.text[:500]
            match = re.search(r"/dossier/([^/?#]+)$", resp.headers["Location"])
            assert match, resp.headers["Location"]
            codes.append(requests.utils.unquote(match.group(1)))
            if len(codes) == 1:
                timer.start()
    finally:
        timer.cancel()
        server.kill()
    return codes


def check_everything_is_there(data: Path, server: Server, session: requests.Session, codes: list[str]) -> None:
    for code in codes:
        resp = session.get(f"{server.base}/dossier/{code}", timeout=10)
        assert resp.status_code == 200 and code in resp.text, code
    db = sqlite3.connect(data / "motcua.db", timeout=10)
    try:
        stored = {c for (c,) in db.execute("SELECT code FROM dossier")}
        assert set(codes) <= stored
        # Every dossier in the file is whole, including one whose reply the kill cut off.
        for dossier_id, code in db.execute("SELECT id, code FROM dossier"):
            docs = db.execute("SELECT name FROM dossier_document WHERE dossier_id = ? ORDER BY position",
                              (dossier_id,)).fetchall()
            assert [d for (d,) in docs] == ["Tờ khai theo mẫu", "Căn cước công dân của người yêu cầu"], code
            files = db.execute("SELECT sha256, size FROM attachment WHERE dossier_id = ?", (dossier_id,)).fetchall()
            assert len(files) == 1, code
            sha, size = files[0]
            blob = (data / "files" / sha[:2] / sha[2:]).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == sha and len(blob) == size
            events = db.execute("SELECT action FROM dossier_event WHERE dossier_id = ?", (dossier_id,)).fetchall()
            assert events == [("receive",)], code
    finally:
        db.close()
    result = run_cli("node", "verify-log", "--data", str(data), cwd=data.parent)
    assert result.returncode == 0, result.stderr


def test_receipts_survive_sigkill(tmp_path):
    data = tmp_path / "node"
    result = run_cli("node", "init", "--data", str(data), "--admin-password", PASSWORD, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_cli("node", "add-user", "--data", str(data), "--username", "reception1", "--full-name",
                     "Nguyễn Thị Hoa", "--role", "reception", "--password", PASSWORD, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rng = random.Random(2026)
    confirmed: list[str] = []
    session = requests.Session()
    server = Server(data, tmp_path / "server.log")
    try:
        log_in(session, server.base)
        for round_ in range(ROUNDS):
            codes = receive_until_killed(server, session, rng, start=round_ * 1000)
            assert codes, f"round {round_}: no receipt before the kill"
            confirmed += codes
            server = Server(data, tmp_path / "server.log")
            if session.get(server.base + "/counter", allow_redirects=False, timeout=10).status_code != 200:
                log_in(session, server.base)  # the signed session cookie should outlive a restart
            check_everything_is_there(data, server, session, confirmed)
        assert len(confirmed) == len(set(confirmed))
    finally:
        server.kill()
        session.close()


# ---------------------------------------------------------------- a failing transaction leaves nothing

def counts(node) -> dict[str, int]:
    tables = SYNCED + ("change",)
    out = {t: node.db.execute_sql(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    out["dossier_fts"] = node.db.execute_sql("SELECT count(*) FROM dossier_fts").fetchone()[0]
    return out


def _bad_scan(node, d, officer):
    attachments.attach(node, d.id, "to-khai.pdf", PDF, "application/pdf", officer.id)
    attachments.check_upload("anh.jpg", b"not a picture", 10 * 1024 * 1024)


def _broken_attach(node, d, officer):
    attachments.attach(node, d.id, "to-khai.pdf", "not bytes", "application/pdf", officer.id)  # type: ignore


def _unknown_change(node, d, officer):
    store.write(node, "dossier", d.id, "explode", {}, officer.id)


@pytest.mark.parametrize("fail,error", [(_bad_scan, ValidationFailed), (_broken_attach, TypeError),
                                        (_unknown_change, ChangeNotApplicable)])
def test_failed_transaction_leaves_no_partial_rows(node, officers, fail, error):
    before = counts(node)
    seq = log.last_of(node.node_id)
    with pytest.raises(error):
        with store.transaction(node):
            d, _ = wf.receive_dossier(node, officers["reception"], reception_body())
            assert counts(node)["dossier"] == before["dossier"] + 1  # written, not yet committed
            fail(node, d, officers["reception"])
    assert counts(node) == before
    assert log.last_of(node.node_id) == seq
    d, _ = wf.receive_dossier(node, officers["reception"], reception_body())
    assert d.code.endswith("-0001")  # the failed receipt used no number
    assert log.verify_log(node.node_id, node.identity.public_key) == seq[0] + 2 + len(wf.documents_of(d))


def test_counter_with_a_bad_scan_stores_nothing(app, reception_client):
    node = app.extensions["motcua_node"]
    before = counts(node)
    body = reception_body(procedure_code="1.004873")
    from io import BytesIO

    body["files"] = [(BytesIO(PDF), "to-khai.pdf"), (BytesIO(b"MZ not a pdf"), "virus.pdf")]
    resp = reception_client.post("/counter", data=body, content_type="multipart/form-data")
    assert resp.status_code == 422
    assert counts(node) == before
