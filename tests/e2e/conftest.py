"""Multi-process end-to-end fixtures: real `motcua hub serve` / `motcua node serve` processes on 127.0.0.1.

Everything runs as a subprocess of the test (`sys.executable -m node.cli ...`): folders are made with the
CLI (`hub init`, `node init`, `hub token`, `node enroll`), syncs are `motcua node sync --data DIR` runs.
The test process never opens a Node or a Hub (node.sync.state.database is one proxy per process): data is
made by running THIS FILE as a script in a subprocess,

    python tests/e2e/conftest.py receptions DIR COUNT [--attach K] [--size BYTES] [--seed S]
    python tests/e2e/conftest.py updates DIR COUNT [--seed S]      (phone-number edits: many changes, cheaply)

and replicas are inspected with plain read-only SQL through sqlite3 (`Replica`). Every wait is bounded
in time; every process started here is killed at teardown (`Processes`).

Folders are copied from per-session templates (`Templates`: made once per xdist worker), so each test
gets fresh replicas in a second: hub, commune A (unit UNIT_A), commune B (UNIT_B), A2 (a second node of
UNIT_A) and BIG (UNIT_A with BIG_DOSSIERS dossiers and BIG_FILES scans of about 300 KB, never synced).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
PASSWORD = "mat-khau-e2e-2026"
RECEPTION = "tiepnhan1"
UNIT_A, UNIT_B = "000.00.19.H55", "000.00.19.H56"
NAMES = {UNIT_A: "UBND xã Tân Cương", UNIT_B: "UBND xã Phúc Xuân"}
BIG_DOSSIERS, BIG_FILES, FILE_SIZE = 400, 3, 300_000  # 2,000 changes and three scans
AGREES = "state digest agrees with the hub"  # what `motcua node sync` prints when digests agree
SCRUBBED_ENV = ("MOTCUA_HUB_URL", "MOTCUA_DATA", "MOTCUA_HUB_DATA", "MOTCUA_HUB_DATABASE_URL", "MOTCUA_HUB_DATA_DIR",
                "MOTCUA_LAN_URL", "MOTCUA_LAN_RELAY")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every subprocess: this tree first on the path, no stray MOTCUA_* folder settings."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(*args: str, timeout: float = 180, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run `motcua ARGS` to completion; with `check`, a non-zero exit fails the test with its output."""
    done = subprocess.run([PY, "-m", "node.cli", *args], cwd=ROOT, env=child_env(**env), capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"motcua {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_data(node_dir: Path, dossiers: int, *, attach: int = 0, size: int = FILE_SIZE, seed: int = 0) -> dict:
    """Receive `dossiers` dossiers (5 changes each) on a closed node, in a subprocess; returns its JSON report."""
    return finish_script(_spawn("receptions", node_dir, dossiers, "--attach", str(attach), "--size", str(size),
                                "--seed", str(seed)))


def make_updates(node_dir: Path, count: int, *, seed: int = 0) -> dict:
    """`count` changes (edits of existing dossiers) on a node, in a subprocess: a cheap backlog."""
    return finish_script(start_updates(node_dir, count, seed=seed))


def start_updates(node_dir: Path, count: int, *, seed: int = 0) -> subprocess.Popen:
    """`make_updates` in the background (while something else runs); finish it with `finish_script`."""
    return _spawn("updates", node_dir, count, "--seed", str(seed))


def _spawn(command: str, node_dir: Path, count: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen([PY, str(Path(__file__).resolve()), command, str(node_dir), str(count), *args],
                            cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_script(proc: subprocess.Popen) -> dict:
    """Wait (bounded) for a data-making script; its JSON report."""
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("a data-making script ran for more than 300 s")
    if proc.returncode != 0:
        pytest.fail(f"a data-making script failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- processes

class Processes:
    """Every server and sync process a test starts; `stop_all()` (teardown) leaves none behind."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[subprocess.Popen] = []

    def start(self, args: list[str], name: str, **env: str) -> subprocess.Popen:
        """`motcua ARGS` in the background, its output appended to logs/NAME.log, in its own session."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([PY, "-m", "node.cli", *args], cwd=ROOT, env=child_env(**env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_file = log  # type: ignore[attr-defined]
        proc.log_path = self.logs / f"{name}.log"  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal one process we started (and its session) and reap it."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
        proc.log_file.close()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM)
            else:
                proc.log_file.close()  # type: ignore[attr-defined]
        self.started.clear()


def log_tail(proc: subprocess.Popen, chars: int = 3000) -> str:
    try:
        return proc.log_path.read_text(errors="replace")[-chars:]  # type: ignore[attr-defined]
    except OSError:
        return ""


class Server:
    """A `motcua hub serve` or `motcua node serve` on 127.0.0.1:port; killable and restartable on that port."""

    def __init__(self, procs: Processes, kind: str, data: Path, port: int | None = None, **env: str):
        self.procs, self.kind, self.data = procs, kind, data
        self.port = port or free_port()
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def probe(self) -> str:
        return self.url + ("/api/v1/time" if self.kind == "hub" else "/login")

    def start(self, timeout: float = 60) -> Server:
        self.proc = self.procs.start([self.kind, "serve", "--data", str(self.data), "--host", "127.0.0.1",
                                      "--port", str(self.port)], f"{self.kind}-{self.data.name}", **self.env)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.kind} serve exited {self.proc.returncode}:\n{log_tail(self.proc)}")
            try:
                if requests.get(self.probe, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.kind} on port {self.port} did not answer within {timeout} s:\n{log_tail(self.proc)}")

    def kill9(self) -> None:
        if self.proc is not None:
            Processes.kill(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            Processes.kill(self.proc, signal.SIGTERM)

    def errors_logged(self) -> list[str]:
        """Lines of this server's log (every run) that report an unexpected error (a 500)."""
        path = self.procs.logs / f"{self.kind}-{self.data.name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [line for line in text.splitlines() if "unexpected" in line or "Traceback" in line]


# ---------------------------------------------------------------- looking into replicas

class Replica:
    """Read-only SQL on a replica's SQLite database (a node's motcua.db or the hub's hub.db)."""

    def __init__(self, db: Path):
        self.db = db

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def count(self, node_id: str | None = None) -> int:
        if node_id is None:
            return self.value("SELECT count(*) FROM change")
        return self.value("SELECT count(*) FROM change WHERE node_id = ?", node_id)

    def top(self, node_id: str) -> int:
        return self.value("SELECT coalesce(max(seq), 0) FROM change WHERE node_id = ?", node_id)

    def hashes(self, node_id: str | None = None) -> dict[tuple[str, int], str]:
        """(node_id, seq) -> hash of every change held (of one node)."""
        if node_id is None:
            rows = self.rows("SELECT node_id, seq, hash FROM change")
        else:
            rows = self.rows("SELECT node_id, seq, hash FROM change WHERE node_id = ?", node_id)
        return {(n, s): h for n, s, h in rows}

    def duplicates(self) -> list[tuple]:
        """Changes held more than once: the same (node_id, seq), or the same hash."""
        return (self.rows("SELECT node_id, seq, count(*) FROM change GROUP BY node_id, seq HAVING count(*) > 1")
                + self.rows("SELECT hash, count(*) FROM change GROUP BY hash HAVING count(*) > 1"))

    def setting(self, name: str) -> str:
        return self.value("SELECT value FROM node_setting WHERE key = ?", name) or ""


def hub_db(hub_dir: Path) -> Replica:
    return Replica(hub_dir / "hub.db")


def node_db(node_dir: Path) -> Replica:
    return Replica(node_dir / "motcua.db")


def node_id_of(folder: Path) -> str:
    name = "hub.json" if (folder / "hub_key.pem").exists() else "node.json"
    return json.loads((folder / name).read_text(encoding="utf-8"))["node_id"]


def hub_digest_for(hub_dir: Path, units: list[str]) -> dict:
    """The hub's digest of a node's scope (its units and "*"), computed here from the hub's tables."""
    from node.sync import protocol

    scopes = [*units, protocol.GLOBAL_SCOPE]
    marks = ",".join("?" * len(scopes))
    rows = hub_db(hub_dir).rows(f"SELECT c.hash FROM change c JOIN change_scope s ON s.change_id = c.id "
                                f"WHERE s.scope IN ({marks})", *scopes)
    return protocol.digest_of(h for (h,) in rows)


def node_digest(node_dir: Path) -> dict:
    from node.sync import protocol

    return protocol.digest_of(h for (h,) in node_db(node_dir).rows("SELECT hash FROM change"))


def attachment_shas(node_dir) -> list[str]:
    return [s for (s,) in node_db(node_dir).rows("SELECT sha256 FROM attachment ORDER BY sha256")]


def file_ok(folder, sha: str) -> bool:
    path = folder / "files" / sha[:2] / sha[2:]
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha


def assert_pushed_exactly_once(world, node_dir, note: str) -> None:
    """The hub holds every change of the node exactly once, as made, scoped; digests agree."""
    node_id = node_id_of(node_dir)
    hubdb, local = hub_db(world.hub_dir), node_db(node_dir)
    assert hubdb.duplicates() == [] and local.duplicates() == [], note
    assert hubdb.hashes(node_id) == local.hashes(node_id), note
    assert hubdb.count(node_id) == local.top(node_id), note
    assert hubdb.value("SELECT count(*) FROM change") == hubdb.value("SELECT count(*) FROM change_scope"), note
    assert hubdb.value("SELECT count(*) FROM fork_record") == 0, note
    assert node_digest(node_dir) == hub_digest_for(world.hub_dir, [UNIT_A]), note
    assert local.setting("sync.acked_seq") == str(local.top(node_id)), note
    for sha in attachment_shas(node_dir):
        assert file_ok(world.hub_dir, sha), f"{note}: file {sha} not complete on the hub"


# ---------------------------------------------------------------- templates and the per-test world

class Templates:
    """Folders made once per session (per xdist worker) with the CLI; copied into each test."""

    def __init__(self, base: Path):
        self.base = base
        self.made: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        if name not in self.made:
            target = self.base / name
            if name == "hub":
                cli("hub", "init", "--data", str(target), "--name", "Trung tâm huyện Đồng Hỷ",
                    "--admin-user", "hubadmin", "--admin-password", PASSWORD)
            else:
                unit = UNIT_B if name == "b" else UNIT_A
                cli("node", "init", "--data", str(target), "--unit-code", unit, "--unit-name", NAMES[unit],
                    "--province", "Thái Nguyên", "--admin-password", PASSWORD)
                if name == "big":
                    make_data(target, BIG_DOSSIERS, attach=BIG_FILES, seed=1)
                else:
                    make_data(target, 0)  # the reception officer only
            self.made[name] = target
        return self.made[name]


@pytest.fixture(scope="session")
def templates(tmp_path_factory) -> Templates:
    return Templates(tmp_path_factory.mktemp("e2e-templates"))


class World:
    """One test's hub and nodes: copies of the templates, servers, enrollments and syncs."""

    def __init__(self, base: Path, templates: Templates, procs: Processes):
        self.base, self.templates, self.procs = base, templates, procs
        self.hub_dir: Path | None = None
        self.hub_server: Server | None = None

    def copy(self, template: str, name: str) -> Path:
        target = self.base / name
        shutil.copytree(self.templates.path(template), target)
        return target

    def hub(self, name: str = "hub") -> Server:
        """A copy of the template hub, served on a free port."""
        self.hub_dir = self.copy("hub", name)
        self.hub_server = Server(self.procs, "hub", self.hub_dir).start()
        return self.hub_server

    def node(self, template: str, name: str, *, enroll: bool = True, kind: str = "commune") -> Path:
        """A copy of a node template, enrolled with this world's hub (one-time token made by the CLI)."""
        path = self.copy(template, name)
        if enroll:
            self.enroll(path, kind=kind)
        return path

    def token(self, unit: str, kind: str = "commune") -> str:
        return cli("hub", "token", "--data", str(self.hub_dir), "--scope", unit, "--kind", kind).stdout.split()[-1]

    def enroll(self, node_dir: Path, kind: str = "commune") -> None:
        unit = json.loads((node_dir / "node.json").read_text(encoding="utf-8"))["unit_code"]
        cli("node", "enroll", "--data", str(node_dir), "--hub", self.hub_server.url, "--token",
            self.token(unit, kind))

    def sync(self, node_dir: Path, *, hub_url: str | None = None, check: bool = True,
             timeout: float = 180) -> subprocess.CompletedProcess:
        """`motcua node sync` to completion (through `hub_url` instead of the pinned URL when given)."""
        env = {"MOTCUA_HUB_URL": hub_url} if hub_url else {}
        return cli("node", "sync", "--data", str(node_dir), timeout=timeout, check=check, **env)

    def start_sync(self, node_dir: Path, *, hub_url: str | None = None) -> subprocess.Popen:
        """`motcua node sync` in the background (to be killed)."""
        env = {"MOTCUA_HUB_URL": hub_url} if hub_url else {}
        return self.procs.start(["node", "sync", "--data", str(node_dir)], f"sync-{node_dir.name}", **env)

    def hub_nodes(self) -> str:
        return self.cli_hub("nodes")

    def cli_hub(self, command: str, *args: str) -> str:
        """`motcua hub COMMAND --data <this hub> ARGS`; its stdout (the test fails on a non-zero exit)."""
        return cli("hub", command, "--data", str(self.hub_dir), *args).stdout

    @staticmethod
    def cli(*args: str) -> str:
        return cli(*args).stdout


@pytest.fixture
def procs(tmp_path):
    p = Processes(tmp_path / "logs")
    yield p
    p.stop_all()


@pytest.fixture
def world(tmp_path, templates, procs) -> World:
    return World(tmp_path, templates, procs)


@pytest.fixture
def seed(request) -> int:
    """A random seed per test, printed in assertion messages; $MOTCUA_E2E_SEED replays one."""
    value = int(os.environ.get("MOTCUA_E2E_SEED") or random.randrange(1 << 31))
    print(f"{request.node.name}: seed {value}")
    return value


# ---------------------------------------------------------------- the data-making script

def _receptions(path: str, count: int, attach: int, size: int, seed: int) -> dict:
    """Open the node, make `count` dossiers (and `attach` scans), close it; what `make_data` runs."""
    from node import store, users, workflow
    from node.attachments import attach as attach_file
    from node.instance import Node
    from node.sync import log
    from node.sync.state import User

    rng = random.Random(seed)
    node = Node(Path(path))
    try:
        user = User.get_or_none(User.username == RECEPTION)
        if user is None:
            users.create_user(node, RECEPTION, "Nguyễn Thị Hoa", ["reception"], PASSWORD, author="e2e")
            user = User.get(User.username == RECEPTION)
        officer = users.Officer.of(user)
        before = log.last_of(node.node_id)[0]
        codes: list[str] = []
        shas: list[str] = []
        while len(codes) < count:
            with store.transaction(node):
                for _ in range(min(100, count - len(codes))):
                    dossier, _ = workflow.receive_dossier(node, officer, {
                        "procedure_code": "1.001193", "applicant_name": f"Nguyễn Văn {rng.randrange(10**6)}",
                        "applicant_id_number": "019305001234", "applicant_birth_date": "2005-04-12"})
                    codes.append(dossier.code)
                    if len(shas) < attach:
                        data = b"%PDF-1.4\n" + rng.randbytes(size)
                        attach_file(node, dossier.id, f"giay-to-{len(shas)}.pdf", data, "application/pdf", officer.id)
                        shas.append(hashlib.sha256(data).hexdigest())
        top = log.last_of(node.node_id)[0]
        return {"node_id": node.node_id, "added": top - before, "top": top, "codes": codes, "shas": shas}
    finally:
        node.close()


def _updates(path: str, count: int, seed: int) -> dict:
    """`count` edits of the node's own dossiers (one change each), through store.write."""
    from node import store
    from node.instance import Node
    from node.sync import log
    from node.sync.state import Dossier

    rng = random.Random(seed)
    node = Node(Path(path))
    try:
        ids = [d for (d,) in Dossier.select(Dossier.id).where(Dossier.unit_code == node.identity.unit_code).tuples()]
        before = log.last_of(node.node_id)[0]
        done = 0
        while done < count:
            with store.transaction(node):
                for _ in range(min(1000, count - done)):
                    phone = "09" + "".join(rng.choice("0123456789") for _ in range(8))
                    store.write(node, "dossier", rng.choice(ids), "update", {"set": {"applicant_phone": phone}},
                                RECEPTION)
                    done += 1
        top = log.last_of(node.node_id)[0]
        return {"node_id": node.node_id, "added": top - before, "top": top}
    finally:
        node.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Make test data on a closed node folder.")
    parser.add_argument("command", choices=["receptions", "updates"])
    parser.add_argument("path")
    parser.add_argument("count", type=int)
    parser.add_argument("--attach", type=int, default=0)
    parser.add_argument("--size", type=int, default=FILE_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args()
    if ns.command == "updates":
        print(json.dumps(_updates(ns.path, ns.count, ns.seed)))
    else:
        print(json.dumps(_receptions(ns.path, ns.count, ns.attach, ns.size, ns.seed)))
