"""`motcua demo` (what `make run` starts): a hub and two commune nodes on 127.0.0.1, enrolled and syncing.

First run: the hub and both communes are created (sample officers and dossiers through the signed log),
each node is enrolled with a one-time token, one online submission is made at the hub for the first
commune so that it arrives there on the next pull, and one of that commune's dossiers goes to the police
at the hub and comes back with its result (node/demo_story.py). Later runs just start the servers again.
Every server is a separate process (`motcua hub serve`, `motcua node serve`); Ctrl+C stops them all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
import requests

from . import demo_story, sample

PASSWORD = sample.PASSWORD
COMMUNES = [
    ("xa-tan-cuong", "000.00.19.H55", "UBND xã Tân Cương"),
    ("xa-phuc-xuan", "000.00.19.H56", "UBND xã Phúc Xuân"),
]
PROVINCE = "Thái Nguyên"


def _cli(*args: str, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "node.cli", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip() if capture else ""


def _wait_for(url: str, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise click.ClickException(f"{url} did not answer within {seconds:.0f} s")


def _serve(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "node.cli", *args], env=env)


def run(base: Path, port: int, hub_port: int) -> None:
    base.mkdir(parents=True, exist_ok=True)
    hub_dir = base / "hub"
    hub_url = f"http://127.0.0.1:{hub_port}"
    env = dict(os.environ, MOTCUA_SYNC_INTERVAL=os.environ.get("MOTCUA_SYNC_INTERVAL", "30"))
    first = not (hub_dir / "hub.json").exists()
    if first:
        click.echo(f"Creating the hub and two sample communes in {base} (a minute or two)...")
        _cli("hub", "init", "--data", str(hub_dir), "--name", f"Trung tâm phục vụ hành chính công tỉnh {PROVINCE}",
             "--admin-user", "hubadmin", "--admin-password", PASSWORD)
        for folder, code, name in COMMUNES:
            if not (base / folder / "node.json").exists():
                _cli("node", "init", "--data", str(base / folder), "--unit-code", code, "--unit-name", name,
                     "--province", PROVINCE, "--sample")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_serve(["hub", "serve", "--data", str(hub_dir), "--host", "127.0.0.1", "--port",
                             str(hub_port)], env))
        _wait_for(f"{hub_url}/api/v1/time")
        for folder, code, _name in COMMUNES:
            if not (base / folder / "hub.json").exists():
                token = _cli("hub", "token", "--data", str(hub_dir), "--scope", code, capture=True)
                _cli("node", "enroll", "--data", str(base / folder), "--hub", hub_url, "--token", token.split()[-1])
        if first:
            _cli("hub", "submit", "--data", str(hub_dir), "--unit", COMMUNES[0][1], "--procedure", "1.001193",
                 "--applicant-name", "Trịnh Thị Lụa", "--id-number", "019305004321", "--birth-date", "2005-06-01",
                 "--address", "Xóm Chợ, xã Tân Cương", "--phone", "0987654321")
        story = base / "interconnected.txt"
        if first:
            # An interconnected dossier: sent by the first commune to the police, answered at the hub.
            _cli("hub", "add-user", "--data", str(hub_dir), demo_story.AGENCY_USER, "--full-name",
                 "Trần Quốc Bảo (Công an huyện)", *demo_story.AGENCY_USER_ARGS, "--password", PASSWORD)
            code = demo_story.send_to_police(base / COMMUNES[0][0])
            _cli("node", "sync", "--data", str(base / COMMUNES[0][0]))
            demo_story.police_answers(hub_url, code, PASSWORD)
            story.write_text(code, encoding="utf-8")
        for i, (folder, _code, _name) in enumerate(COMMUNES):
            procs.append(_serve(["node", "serve", "--data", str(base / folder), "--host", "127.0.0.1", "--port",
                                 str(port + i)], env))
        for i in range(len(COMMUNES)):
            _wait_for(f"http://127.0.0.1:{port + i}/login")
        click.echo("")
        click.echo(f"  Hub:      {hub_url}/nodes      login hubadmin / {PASSWORD}")
        click.echo(f"  Online submission (public): {hub_url}/nop-ho-so   status by code: {hub_url}/tra-cuu-ho-so")
        for i, (_folder, code, name) in enumerate(COMMUNES):
            click.echo(f"  Commune:  http://127.0.0.1:{port + i}/   {name} ({code})")
        click.echo(f"  Commune logins (password {PASSWORD}): " +
                   ", ".join(f"{u} ({role})" for u, _p, role in sample.CREDENTIALS))
        if story.exists():
            click.echo(f"  Interconnected: dossier {story.read_text(encoding='utf-8').strip()} went from "
                       f"{COMMUNES[0][2]} to the police at the hub and came back with its result; hub login "
                       f"{demo_story.AGENCY_USER} / {PASSWORD} at {hub_url}/transfers")
        click.echo(f"  Indicators: {hub_url}/indicators/ (hub) and /indicators/ on each commune.")
        click.echo("  Public lookup: /tra-cuu on each commune. Nodes sync every 30 s and soon after each write.")
        click.echo("  Ctrl+C stops everything.")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        raise click.ClickException("a server stopped; see its output above")
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
