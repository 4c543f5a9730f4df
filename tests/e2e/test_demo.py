"""`motcua demo` (what `make run` starts): a hub and two sample communes as real processes on 127.0.0.1.

The demo is started as a subprocess, its printed URLs are awaited (bounded), the servers are probed, the
dossier submitted at the hub is looked up on the first commune's public page once the background sync has
brought it, and Ctrl+C (SIGINT) must stop every child process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from .conftest import PY, ROOT, child_env, cli, free_port, hub_db, node_db, node_id_of
from .proxy import wait_until

READY_LINE = "Ctrl+C stops everything."


def two_free_ports() -> int:
    """A port P with P + 1 free as well (the demo's second commune)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    pytest.fail("no two consecutive free ports")


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def json_unit(node_dir: Path) -> str:
    return json.loads((node_dir / "node.json").read_text(encoding="utf-8"))["unit_code"]


def answers(url: str, status: int = 200) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == status
    except requests.RequestException:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list child processes")
def test_demo_runs_a_hub_and_two_communes_and_stops_cleanly(tmp_path):
    port, hub_port = two_free_ports(), free_port()
    data = tmp_path / "demo"
    lines: list[str] = []
    proc = subprocess.Popen([PY, "-m", "node.cli", "demo", "--data", str(data), "--port", str(port),
                             "--hub-port", str(hub_port)], cwd=ROOT, env=child_env(MOTCUA_SYNC_INTERVAL="5"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    children: list[int] = []
    try:
        ready = wait_until(lambda: any(READY_LINE in line for line in lines) or proc.poll() is not None, 240, 0.2)
        output = "".join(lines)
        assert ready and proc.poll() is None, f"the demo did not come up:\n{output[-3000:]}"
        hub_url = re.search(r"Hub:\s+(http://127\.0\.0\.1:\d+)/", output).group(1)
        communes = re.findall(r"Commune:\s+(http://127\.0\.0\.1:\d+)/", output)
        assert hub_url == f"http://127.0.0.1:{hub_port}" and len(communes) == 2, output
        assert communes == [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"], output
        assert answers(f"{hub_url}/api/v1/time")
        for url in communes:
            assert answers(f"{url}/login")
        children = children_of(proc.pid)
        assert len(children) == 3, children  # the hub and two node servers

        # The dossier submitted at the hub reaches the first commune on its next (background) pull.
        hub_dir, first, second = data / "hub", data / "xa-tan-cuong", data / "xa-phuc-xuan"
        rows = hub_db(hub_dir).rows("SELECT d.code, d.unit_code FROM dossier d JOIN change c ON c.entity_id = d.id "
                                    "WHERE c.entity = 'dossier' AND c.op = 'create' AND c.node_id = ?",
                                    node_id_of(hub_dir))
        assert len(rows) == 1, rows
        code, unit = rows[0]
        assert unit == json_unit(first)
        assert wait_until(lambda: answers(f"{communes[0]}/tra-cuu/{code}"), 90, 0.5), (
            f"{code} never reached the first commune:\n{''.join(lines)[-2000:]}")
        assert answers(f"{communes[1]}/tra-cuu/{code}", 404)
        assert node_db(second).value("SELECT count(*) FROM dossier WHERE code = ?", code) == 0
        # The dossier the first commune sent to the police comes back from the hub with its result.
        sent = re.search(r"Interconnected: dossier (\S+) went from", output).group(1)
        assert wait_until(lambda: node_db(first).value("SELECT status FROM dossier WHERE code = ?", sent) == 9,
                          90, 0.5), f"{sent} never came back:\n{''.join(lines)[-2000:]}"
        history = node_db(first).rows("SELECT e.action FROM dossier_event e JOIN dossier d ON d.id = e.dossier_id "
                                      "WHERE d.code = ? AND e.applied = 1 ORDER BY e.hlc", sent)
        assert [a for (a,) in history][-3:] == ["send_to_agency", "agency_accept", "agency_result"], history
        status = cli("node", "status", "--data", str(first)).stdout
        assert "online" in status and "127.0.0.1" in status, status
        assert wait_until(lambda: "changes waiting: 0" in cli("node", "status", "--data", str(second)).stdout,
                          60, 1.0)

        # Ctrl+C stops the demo and every server it started.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "".join(lines)[-2000:]
        reader.join(10)
        assert "stopping" in "".join(lines)
        assert wait_until(lambda: not any(alive(pid) for pid in children), 30), [p for p in children if alive(p)]
        for url in [hub_url, *communes]:
            assert not answers(f"{url}/login", 200) and not answers(f"{url}/api/v1/time", 200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        reader.join(10)
        proc.stdout.close()
