"""`motcua node ...` as an officer or an installer runs it: real processes, one-line errors."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import reception_body
from node import catalogue, store, workflow as wf
from node.cli import main
from test_durability import cli_env, motcua, run_cli

PASSWORD = "mat-khau-2026"


def one_line_error(result) -> str:
    """The result failed with exactly one line on stderr and no traceback."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("motcua: ")
    return lines[0]


def due(cwd: Path, *args: str):
    return run_cli("node", "due", *args, cwd=cwd)


@pytest.mark.parametrize("procedure,received,expected", [
    ("1.001193", "2026-03-02 16:00", "2026-03-03 17:00"),  # birth: after 15:00, closing of the next day
    ("1.001193", "2026-03-02 10:00", "2026-03-02 17:00"),
    ("1.004873", "2026-03-02 10:00", "2026-03-05 10:00"),  # 3 working days keep the hour
    ("1.004873", "2026-02-13 10:00", "2026-02-25 10:00"),  # Tết 2026: 16-20 February off
    ("1.004873", "2026-03-02T10:00", "2026-03-05 10:00"),  # as an HTML datetime input sends it
    ("1.004222", "2026-04-28 09:00", "2026-05-11 09:00"),  # 7 working days over 30/4 and 1/5
])
def test_due_without_a_node(tmp_path, procedure, received, expected):
    result = due(tmp_path, "--procedure", procedure, "--received", received)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("received", ["bad", "2026-13-01 10:00", "02/03/2026 10:00", "", "2026-03-02 25:00"])
def test_due_refuses_a_bad_time(tmp_path, received):
    line = one_line_error(due(tmp_path, "--procedure", "1.004873", "--received", received))
    assert "--received" in line


def test_due_refuses_an_unknown_procedure(tmp_path, node_dir):
    one_line_error(due(tmp_path, "--procedure", "9.999999", "--received", "2026-03-02 10:00"))
    one_line_error(due(tmp_path, "--data", str(node_dir), "--procedure", "9.999999", "--received",
                       "2026-03-02 10:00"))


def test_due_needs_its_options(tmp_path):
    result = due(tmp_path, "--procedure", "1.004873")
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_due_uses_the_node_calendar(tmp_path, node, node_dir):
    # The node's administrator declares Tuesday 3 March 2026 a day off: a node-only fact.
    with store.transaction(node):
        catalogue.set_calendar_day(node, date(2026, 3, 3), "day_off", "Nghỉ theo thông báo", author="test")
    args = ("--procedure", "1.004873", "--received", "2026-03-02 10:00")
    with_node = due(tmp_path, "--data", str(node_dir), *args)
    assert (with_node.returncode, with_node.stdout.strip()) == (0, "2026-03-06 10:00"), with_node.stderr
    without = due(tmp_path, *args)
    assert (without.returncode, without.stdout.strip()) == (0, "2026-03-05 10:00")
    import subprocess

    env = dict(cli_env(), MOTCUA_DATA=str(node_dir))
    from_env = subprocess.run(motcua() + ["node", "due", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
    assert from_env.stdout.strip() == "2026-03-06 10:00", from_env.stderr


# ---------------------------------------------------------------- help text everywhere

def _walk(command: click.Command, path: tuple[str, ...]):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, path + (name,))


COMMANDS = list(_walk(main, ("motcua",)))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path, command):
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help text"
    result = CliRunner().invoke(main, list(path[1:]) + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_the_tree_has_the_node_commands():
    names = {" ".join(p) for p, _ in COMMANDS}
    for cmd in ("init", "serve", "due", "verify-log", "backup", "add-user"):
        assert f"motcua node {cmd}" in names


# ---------------------------------------------------------------- init, verify-log, backup

@pytest.fixture
def fresh(tmp_path) -> Path:
    data = tmp_path / "commune"
    result = run_cli("node", "init", "--data", str(data), "--admin-password", PASSWORD, "--unit-code",
                     "000.00.19.H55", "--unit-name", "UBND xã Tân Cương", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "000.00.19.H55" in result.stdout
    return data


def test_init_twice_fails_cleanly(tmp_path, fresh):
    identity = (fresh / "node.json").read_bytes()
    key = (fresh / "node_key.pem").read_bytes()
    line = one_line_error(run_cli("node", "init", "--data", str(fresh), "--admin-password", PASSWORD, cwd=tmp_path))
    assert "already" in line
    assert (fresh / "node.json").read_bytes() == identity and (fresh / "node_key.pem").read_bytes() == key
    assert json.loads(identity)["unit_code"] == "000.00.19.H55"


def test_init_refuses_a_short_password_and_leaves_nothing(tmp_path):
    data = tmp_path / "x"
    line = one_line_error(run_cli("node", "init", "--data", str(data), "--admin-password", "short", cwd=tmp_path))
    assert "8" in line
    assert not (data / "node.json").exists()  # so the installer can simply run it again
    result = run_cli("node", "init", "--data", str(data), "--admin-password", PASSWORD, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_verify_log_on_a_fresh_node_then_after_tampering(tmp_path, fresh):
    result = run_cli("node", "verify-log", "--data", str(fresh), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    db = sqlite3.connect(fresh / "motcua.db")
    with db:
        changed = db.execute("""UPDATE "change" SET payload = replace(payload, '"admin"', '"root"')
                                WHERE entity = 'user'""").rowcount
    db.close()
    assert changed == 1
    line = one_line_error(run_cli("node", "verify-log", "--data", str(fresh), cwd=tmp_path))
    assert "NOT verify" in line


def test_commands_on_a_folder_without_a_node_fail_cleanly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run_cli("node", "verify-log", "--data", str(empty), cwd=tmp_path))
    one_line_error(run_cli("node", "backup", "--data", str(empty), "--to", str(tmp_path / "b.db"), cwd=tmp_path))
    one_line_error(run_cli("node", "add-user", "--data", str(empty), "--username", "a", "--full-name", "A",
                           "--role", "admin", "--password", PASSWORD, cwd=tmp_path))
    assert list(empty.iterdir()) == [] and not (tmp_path / "b.db").exists()


def test_add_user_then_refuse_the_same_name(tmp_path, fresh):
    args = ("node", "add-user", "--data", str(fresh), "--username", "reception1", "--full-name", "Nguyễn Thị Hoa",
            "--role", "reception", "--password", PASSWORD)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    one_line_error(run_cli(*args, cwd=tmp_path))


def test_backup_is_a_sqlite_copy_with_the_same_dossiers(tmp_path, node, node_dir, officers):
    for name in ("Nguyễn Thị Hương", "Đặng Văn Đức", "Lê Văn Tám"):
        wf.receive_dossier(node, officers["reception"], reception_body(applicant_name=name))
    target = tmp_path / "backup" / "motcua-2026-03-02.db"
    target.parent.mkdir()
    result = run_cli("node", "backup", "--data", str(node_dir), "--to", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:16] == b"SQLite format 3\x00"
    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT count(*) FROM dossier").fetchone() == (3,)
        names = sorted(n for (n,) in copy.execute("SELECT applicant_name FROM dossier"))
        assert names == ["Lê Văn Tám", "Nguyễn Thị Hương", "Đặng Văn Đức"]
        changes = copy.execute('SELECT count(*) FROM "change"').fetchone()[0]
    finally:
        copy.close()
    assert changes == node.db.execute_sql('SELECT count(*) FROM "change"').fetchone()[0]
