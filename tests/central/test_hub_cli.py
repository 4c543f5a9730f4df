"""`motcua hub ...` as a district administrator runs it: real processes, one-line errors, help everywhere."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import requests

from central.cli import hub_group
from test_durability import cli_env, free_port, motcua

PASSWORD = "mat-khau-hub-2026"
UNIT = "000.00.19.H55"


def hub_cmd() -> list[str]:
    """`motcua hub` once node/cli.py registers it, else the module directly."""
    from node.cli import main

    return motcua() + ["hub"] if "hub" in main.commands else [sys.executable, "-m", "central.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(hub_cmd() + list(args), cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=120)


def one_line_error(result) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("motcua: ")
    return lines[0]


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "hub"
    result = run("init", "--data", str(path), "--name", "Huyện Đồng Hỷ", "--admin-password", PASSWORD, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert "created in" in result.stdout
    return path


def test_every_command_and_option_has_help():
    for name, command in hub_group.commands.items():
        assert command.help, f"hub {name} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"hub {name} {param.opts} has no help"


def test_init_refuses_an_existing_hub_and_a_short_password(hub_folder, tmp_path):
    one_line_error(run("init", "--data", str(hub_folder), "--admin-password", PASSWORD, cwd=tmp_path))
    line = one_line_error(run("init", "--data", str(tmp_path / "h2"), "--admin-password", "short", cwd=tmp_path))
    assert "8 characters" in line
    assert not (tmp_path / "h2" / "hub.json").exists()


def test_init_with_an_unreachable_database_leaves_nothing(tmp_path):
    url = "postgresql://nobody:secret@127.0.0.1:1/none"
    line = one_line_error(run("init", "--data", str(tmp_path / "h3"), "--admin-password", PASSWORD,
                              "--database-url", url, cwd=tmp_path))
    assert "cannot use the database" in line and "secret" not in line
    assert not (tmp_path / "h3" / "hub.json").exists()
    line = one_line_error(run("init", "--data", str(tmp_path / "h4"), "--admin-password", PASSWORD,
                              "--database-url", "mysql://x", cwd=tmp_path))
    assert "unsupported database URL" in line


def test_token_prints_only_the_token(hub_folder, tmp_path):
    result = run("token", "--data", str(hub_folder), "--scope", UNIT, "--expires", "2h", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 30 and " " not in lines[0]
    laptop = run("token", "--data", str(hub_folder), "--scope", f"{UNIT},000.00.21.H55", "--kind", "laptop",
                 cwd=tmp_path)
    assert laptop.returncode == 0, laptop.stderr


@pytest.mark.parametrize("args,words", [
    (["--scope", f"{UNIT},000.00.21.H55"], "exactly one unit"),
    (["--scope", UNIT, "--expires", "forever"], "30m, 24h or 7d"),
    (["--scope", UNIT, "--expires", "90d"], "30 days"),
    (["--scope", "bad unit!"], "unit code"),
])
def test_token_refusals(hub_folder, tmp_path, args, words):
    assert words in one_line_error(run("token", "--data", str(hub_folder), *args, cwd=tmp_path))


def test_nodes_revoke_and_submit(hub_folder, tmp_path):
    token = run("token", "--data", str(hub_folder), "--scope", UNIT, cwd=tmp_path).stdout.strip()
    line = one_line_error(run("submit", "--data", str(hub_folder), "--unit", UNIT, "--procedure", "1.001193",
                              "--applicant-name", "Lò Thị Mai", "--id-number", "019305001234", cwd=tmp_path))
    assert "no enrolled node receives unit" in line
    from node.sync.keys import NodeKey

    from central import create_app

    app = create_app({"DATA_DIR": str(hub_folder), "TESTING": True})
    try:
        resp = app.test_client().post("/api/v1/enroll", json={
            "token": token, "node_id": "NCLI000000001", "public_key": NodeKey.generate().public_b64,
            "unit_code": UNIT, "unit_name": "UBND xã Tân Cương"})
        assert resp.status_code == 200, resp.data
    finally:
        app.extensions["motcua_hub"].close()
    table = run("nodes", "--data", str(hub_folder), cwd=tmp_path)
    assert table.returncode == 0 and "NCLI000000001" in table.stdout and "active" in table.stdout
    assert table.stdout.splitlines()[0].split()[:4] == ["NODE", "UNIT", "KIND", "STATUS"]
    submitted = run("submit", "--data", str(hub_folder), "--unit", UNIT, "--procedure", "1.001193",
                    "--applicant-name", "Lò Thị Mai", "--id-number", "019305001234", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip().startswith(f"{UNIT}.HUB-") and submitted.stdout.strip().endswith("-0001")
    assert "019305001234" not in submitted.stdout + submitted.stderr
    assert "12 digits" in one_line_error(run("submit", "--data", str(hub_folder), "--unit", UNIT, "--procedure",
                                             "1.001193", "--applicant-name", "A", "--id-number", "123",
                                             cwd=tmp_path))
    revoked = run("revoke", "--data", str(hub_folder), "NCLI000000001", cwd=tmp_path)
    assert revoked.returncode == 0 and "revoked on" in revoked.stdout
    assert "revoked" in run("nodes", "--data", str(hub_folder), cwd=tmp_path).stdout
    assert "no node" in one_line_error(run("revoke", "--data", str(hub_folder), "NNOBODY", cwd=tmp_path))


def test_a_folder_without_a_hub_is_a_one_line_error(tmp_path):
    line = one_line_error(run("nodes", "--data", str(tmp_path / "empty"), cwd=tmp_path))
    assert "holds no hub" in line and "motcua hub init" in line


def test_serve_answers_on_127_0_0_1(hub_folder, tmp_path):
    port = free_port()
    proc = subprocess.Popen(hub_cmd() + ["serve", "--data", str(hub_folder), "--port", str(port)], cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/api/v1/time", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert body["hub_node_id"].startswith("H")
        assert requests.get(f"http://127.0.0.1:{port}/nodes", timeout=5, allow_redirects=False).status_code == 302
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
