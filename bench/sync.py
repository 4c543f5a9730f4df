"""Sync benchmarks (issue 3): hub ingest, node -> hub -> node end to end, a 30-day catch-up.

Every server is a real subprocess on 127.0.0.1 (`motcua hub serve`), every node works in a subprocess of
its own (`python -m bench.sync worker ...`: a node and a hub never share a process), and each figure is
the median, min and max of several runs, each on a fresh hub:

1. raw Ed25519 verify rate of this machine, in this run (`bench.raw`);
2. hub ingest: pre-encoded, pre-signed push requests of 500 changes of an enrolled node POSTed back to back
   (SQLite; PostgreSQL with one hub process, and two hub processes on one database pushed by two nodes in
   parallel, when a PostgreSQL URL is given), as changes/s and as a share of the raw verify rate;
3. end to end: node A's changes pushed to the hub (`syncer.sync_once`), then pulled by node B: changes/s
   and bytes on the wire per change each way (TCP bytes counted by tests/e2e/proxy.py's FlakyProxy); then
   the re-sync (issue 5): A moves 100 waiting dossiers on and A and B sync again (time of both syncs);
4. catch-up: a node that worked 30 days offline (with 2,000 attached files of 300 KB, issue 5) pushes
   everything, and a second node of its scope pulls it all: time (and the part spent on files) and peak
   memory (VmHWM) of the node processes and of the hub.

The nodes are generated once through the workflow's signed changes (`bench.gen`'s desk and dossier lives)
and cached in bench/work/sync-<VERSION>-<schema>/. bench/peer.py and bench/badlink.py reuse them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import patches, syncnodes
from .syncnodes import FILE_BYTES

ROOT = Path(__file__).resolve().parent.parent
VERSION = "s2"  # bump when what the nodes hold changes: the cache is keyed by it
PASSWORD = "bench-hub-mat-khau-2026"
BATCH = 500  # changes per pushed request, as protocol.PUSH_BATCH
GOALS = {"ingest_share": 0.70, "several_processes": 1.1, "e2e_per_s": 3000, "bytes_per_change": 200, "peak_mb": 150}
# name -> (unit code, unit name, dossiers, days of work before `end`, seed); `end` None = the generation day
NODES = {
    "A": ("000.00.19.H55", "UBND xã Tân Cương", 1100, 365, 11),
    "P": ("000.00.19.H56", "UBND xã Phúc Xuân", 1100, 365, 12),
    "B": ("000.00.19.H57", "UBND xã Quyết Thắng", 0, 1, 13),
    "C": ("000.00.19.H58", "UBND xã Phúc Trìu", 1700, 30, 14),
}
QUICK_DOSSIERS = {"A": 250, "P": 250, "B": 0, "C": 400}
WAITING = {"A": 100}  # dossiers left at the desk on A: the re-sync scenario transfers them (issue 5)
FILES = {"C": 2000}  # scans attached to the catch-up node (issue 5: 2,000 files of 300 KB)
QUICK_FILES = {"C": 200}


# ================================================================ workers (run in subprocesses)

def peak_kb() -> int:
    """VmHWM (peak resident memory) of this process in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(argv: list[str]) -> int:
    """`python -m bench.sync worker make-node|export|enroll|sync|change|peer-docs ...`: prints one JSON line."""
    cmd, path = argv[0], Path(argv[1])
    patches.apply_node()  # only what $MOTCUA_BENCH_PATCH names (bench/patches.py); nothing by default
    if cmd == "make-node":
        unit, name, dossiers, days, seed, end = argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]), argv[7]
        files, waiting = (int(argv[8]), int(argv[9])) if len(argv) > 9 else (0, 0)
        out = syncnodes.make_node(path, unit, name, dossiers, days, seed, datetime.fromisoformat(end), files,
                                  waiting)
    elif cmd == "change":
        out = syncnodes.move_on(path, int(argv[2]))
    elif cmd == "peer-docs":
        from .peer import export_docs

        out = export_docs(path, Path(argv[2]))
    elif cmd == "export":
        out = syncnodes.export_batches(path, Path(argv[2]), BATCH)
    else:
        from node import syncer
        from node.instance import Node

        node = Node(path)
        try:
            if cmd == "enroll":
                out = {"record": syncer.enroll(node, argv[2], argv[3])}
            else:
                stages: dict[str, float] = {}
                mark = [time.perf_counter(), ""]

                def on_stage(stage: str) -> None:  # seconds spent in each stage of the session
                    now = time.perf_counter()
                    if mark[1]:
                        stages[mark[1]] = round(now - mark[0], 3)
                    mark[:] = [now, stage]

                report = syncer.sync_once(node, on_stage=on_stage)
                on_stage("")
                out = {"ok": report.ok, "error": report.error, "pushed": report.pushed, "pulled": report.pulled,
                       "files_up": report.files_up, "files_down": report.files_down,
                       "duration": report.duration, "digest_ok": report.digest_ok, "repaired": report.repaired,
                       "stages": stages}
        finally:
            node.close()
    out["peak_kb"] = peak_kb()
    print(json.dumps(out, ensure_ascii=False))
    return 0


# ================================================================ processes

def run_worker(*args: Any) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.sync", "worker", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed: {proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def motcua_command() -> list[str]:
    """How to run `motcua`: the venv's script, or the module when the script is missing."""
    exe = Path(sys.executable).with_name("motcua")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "node.cli"]


def motcua(*args: str) -> str:
    proc = subprocess.run(motcua_command() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"motcua {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """A hub folder (`motcua hub init`) and its `motcua hub serve` processes on 127.0.0.1."""

    def __init__(self, folder: Path, database_url: str | None = None):
        self.folder = folder
        extra = ["--database-url", database_url] if database_url else []
        motcua("hub", "init", "--data", str(folder), "--name", "Bench hub", "--admin-password", PASSWORD, *extra)
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []

    def token(self, scope: str, kind: str = "commune") -> str:
        return motcua("hub", "token", "--data", str(self.folder), "--scope", scope, "--kind", kind)

    def serve(self, copies: int = 1) -> list[str]:
        """Start `copies` hub processes on the same data (a copy of the folder each beyond the first)."""
        import requests

        for i in range(copies):
            data = self.folder
            if i:
                data = self.folder.with_name(f"{self.folder.name}-{i + 1}")
                shutil.copytree(self.folder, data, ignore=shutil.ignore_patterns("files", "hub.db*"))
            port = free_port()
            command = patches.hub_command() if patches.wanted() else motcua_command()
            with open(self._log(i), "wb") as log:
                self.procs.append(subprocess.Popen(
                    command + ["hub", "serve", "--data", str(data), "--host", "127.0.0.1", "--port",
                                        str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log))
            self.urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(self.urls, self.procs, strict=True):
            for _ in range(300):  # bounded: 30 s
                if proc.poll() is not None:
                    raise RuntimeError(f"hub exited: {self._log(self.procs.index(proc)).read_text()[-2000:]}")
                try:
                    if requests.get(f"{url}/api/v1/time", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("hub did not start in 30 s")
        return self.urls

    def _log(self, i: int) -> Path:
        return self.folder.with_name(f"{self.folder.name}-{i + 1}.log")  # a file: a pipe could fill and block

    def peak_kb(self, i: int = 0) -> int:
        for line in Path(f"/proc/{self.procs[i].pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def postgres_schema(base_url: str):
    """A fresh schema on the PostgreSQL server; yields a URL whose search_path is that schema."""
    import psycopg
    from psycopg import sql

    name = "motcua_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


# ================================================================ the scenarios

def figure(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "runs": [round(v, 2) for v in values]}


def schema_tag() -> str:
    """A short fingerprint of the node's tables and columns: cached nodes made under another schema are
    made again (a copy of an old node may lack a column the code now writes)."""
    import hashlib

    from node.sync.state import SYNCED_MODELS

    columns = sorted(f"{m._meta.table_name}.{f.column_name}" for m in SYNCED_MODELS for f in m._meta.fields.values())
    return hashlib.sha256("\n".join(columns).encode()).hexdigest()[:8]


def prepare(work: Path, quick: bool, progress, names: tuple[str, ...] | None = None) -> dict:
    """Generate (once per VERSION and schema) the nodes and the pre-encoded push bodies of A and P
    (`names`: only these nodes, e.g. ("A", "P") for the ingest scenarios)."""
    suffix = "-quick" if quick else ""
    cache = work / f"sync-{VERSION}-{schema_tag()}{suffix}"
    for old in work.glob(f"sync-{VERSION}*"):  # the same nodes under an older schema (about 650 MB)
        if old.is_dir() and old != cache and old.name.endswith("-quick") == quick:
            shutil.rmtree(old, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    end_recent = datetime.now().replace(second=0, microsecond=0) - timedelta(hours=1)
    for name, (unit, unit_name, dossiers, days, seed) in NODES.items():
        if names is not None and name not in names:
            continue
        folder, marker = cache / f"node-{name}", cache / f"node-{name}.json"
        if not marker.exists():
            shutil.rmtree(folder, ignore_errors=True)
            n = QUICK_DOSSIERS[name] if quick else dossiers
            end = end_recent if name == "C" else datetime(2026, 3, 2, 10, 0)
            files = (QUICK_FILES if quick else FILES).get(name, 0)
            progress(f"  generating node {name}: {n:,} dossiers over {days} days"
                     f"{f', {files:,} files of {FILE_BYTES // 1024} KB' if files else ''} ...")
            made = run_worker("make-node", folder, unit, unit_name, n, days, seed, end.isoformat(), files,
                              WAITING.get(name, 0))
            if name in ("A", "P"):
                made["export"] = run_worker("export", folder, cache / f"push-{name}.bin")
            marker.write_text(json.dumps(made, ensure_ascii=False), encoding="utf-8")
        info[name] = dict(json.loads(marker.read_text(encoding="utf-8")), path=str(folder),
                          bodies=str(cache / f"push-{name}.bin"))
    return info


def read_bodies(path: str) -> list[tuple[bytes, int]]:
    data, out, i = Path(path).read_bytes(), [], 0
    while i < len(data):
        size, count = int.from_bytes(data[i:i + 4], "big"), int.from_bytes(data[i + 4:i + 8], "big")
        out.append((data[i + 8:i + 8 + size], count))
        i += 8 + size
    return out


def _enroll_raw(url: str, hub: Hub, export: dict) -> None:
    import requests

    token = hub.token(export["unit_code"])
    resp = requests.post(f"{url}/api/v1/enroll", timeout=30, json={
        "token": token, "node_id": export["node_id"], "public_key": export["public_key"],
        "unit_code": export["unit_code"], "unit_name": export["unit_name"], "software_version": "bench"})
    resp.raise_for_status()


def _signed(node_path: str, node_id: str, bodies: list[tuple[bytes, int]]) -> list[tuple[bytes, dict, int]]:
    """Push requests signed now (the hub accepts a request time within 15 minutes of its clock)."""
    from node.sync import hlc, keys, protocol

    key = keys.NodeKey.load(Path(node_path) / "node_key.pem")
    out = []
    for body, count in bodies:
        t = hlc.wall_ms()
        sig = key.sign(protocol.request_message("POST", "/api/v1/sync/push", t, node_id, body))
        out.append((body, {"X-Motcua-Node": node_id, "X-Motcua-Time": str(t), "X-Motcua-Signature": sig,
                           "X-Motcua-Protocol": str(protocol.PROTOCOL_VERSION), "X-Motcua-Version": "bench",
                           "Content-Type": protocol.MEDIA_TYPE}, count))
    return out


def _push_all(url: str, requests_: list[tuple[bytes, dict, int]]) -> int:
    import requests

    with requests.Session() as http:
        sent = 0
        for body, headers, count in requests_:
            resp = http.post(f"{url}/api/v1/sync/push", data=body, headers=headers, timeout=300)
            if resp.status_code != 200:
                raise RuntimeError(f"push refused: {resp.status_code} {resp.text[:300]}")
            sent += count
        return sent


def _push_parallel(targets: list[tuple[str, list[tuple[bytes, dict, int]]]]) -> float:
    """Push each request list to its hub URL, all in parallel; changes per second over the whole."""
    results: list[int] = []
    errors: list[BaseException] = []

    def push(url: str, prepared: list[tuple[bytes, dict, int]]) -> None:
        try:
            results.append(_push_all(url, prepared))
        except BaseException as exc:  # re-raised by the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=push, args=target) for target in targets]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(results) / elapsed


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process of this machine (Linux /proc), None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _backends(base_url: str, application: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving connections named `application`."""
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        return [pid for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                               (application,))]


def _cpu_of(pids: list[int]) -> dict[int, float]:
    return {pid: t for pid in pids if (t := _cpu_seconds(pid)) is not None}


def hub_ingest(nodes: dict, work: Path, runs: int, database: str | None, processes: int,
               cpu: dict[str, list[float]] | None = None) -> list[float]:
    """Changes per second a fresh hub ingests from pre-signed pushes (one node per hub process).

    `cpu`: filled with the CPU time per 1,000 changes (ms) of the hub processes ("hub") and, when the
    PostgreSQL server runs on this machine, of its backends serving them ("database"), summed over the
    processes: unlike changes/s, these hardly depend on what else the machine is doing."""
    names = ["A", "P"][:processes]
    rates = []
    for r in range(runs):
        folder = work / f"ingest-{database and 'pg' or 'sqlite'}-{processes}-{r}"
        application = f"motcua-bench-{uuid.uuid4().hex[:8]}"
        with postgres_schema(database) if database else nullcontext() as url:
            if url:  # names the hub's connections, to find their backends
                url += f"&application_name={application}"
            hub = Hub(folder / "hub", url)
            try:
                urls = hub.serve(processes)
                for name, hub_url in zip(names, urls, strict=True):
                    _enroll_raw(hub_url, hub, nodes[name]["export"])
                signed = {n: _signed(nodes[n]["path"], nodes[n]["export"]["node_id"], read_bodies(nodes[n]["bodies"]))
                          for n in names}
                hub_before = _cpu_of([p.pid for p in hub.procs])
                db_before = _cpu_of(_backends(database, application)) if database else {}
                rates.append(_push_parallel([(u, signed[n]) for n, u in zip(names, urls, strict=True)]))
                hub_after = _cpu_of([p.pid for p in hub.procs])
                db_after = _cpu_of(_backends(database, application)) if database else {}
                changes = sum(int(nodes[n]["export"]["changes"]) for n in names) / 1000
                if cpu is not None and hub_after and len(hub_after) == len(hub_before):
                    cpu.setdefault("hub", []).append(1000 * sum(hub_after[p] - hub_before[p] for p in hub_after)
                                                     / changes)
                if cpu is not None and db_after:
                    cpu.setdefault("database", []).append(
                        1000 * sum(t - db_before.get(p, 0.0) for p, t in db_after.items()) / changes)
            finally:
                hub.stop()
                shutil.rmtree(folder, ignore_errors=True)
    return rates


def _copy_node(nodes: dict, name: str, target: Path) -> Path:
    return Path(shutil.copytree(nodes[name]["path"], target))


def proxy_module():
    """tests/e2e/proxy.py (FlakyProxy: a TCP proxy on 127.0.0.1 that counts bytes, and can cut), loaded by path."""
    spec = importlib.util.spec_from_file_location("bench_proxy", ROOT / "tests" / "e2e" / "proxy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def end_to_end(nodes: dict, work: Path, runs: int, resync: int = 0) -> dict:
    """A's log pushed to a fresh SQLite hub, then pulled by B (a laptop whose scope covers A's unit).

    With `resync`, A then moves `resync` dossiers on (one signed change each, `move_on`) and the time of the
    next sync of A (push) plus that of B (pull) is the re-sync time.
    """
    proxies = proxy_module()  # FlakyProxy without cuts: it counts every TCP byte both ways
    keys = ["push_per_s", "pull_per_s", "push_bytes", "pull_bytes", "total_per_s", "pushed", "pulled",
            "push_s", "pull_s"]
    if resync:
        keys += ["resync_s", "resync_push_s", "resync_pull_s", "resync_bytes", "resync_pushed", "resync_pulled",
                 "resync_stages"]
    out: dict[str, list] = {k: [] for k in keys}
    unit_a, unit_b = NODES["A"][0], NODES["B"][0]
    for r in range(runs):
        folder = work / f"e2e-{r}"
        hub = Hub(folder / "hub")
        try:
            port = int(hub.serve(1)[0].rsplit(":", 1)[1])
            with proxies.FlakyProxy(port) as proxy:
                url = f"http://127.0.0.1:{proxy.port}"
                a, b = _copy_node(nodes, "A", folder / "A"), _copy_node(nodes, "B", folder / "B")
                run_worker("enroll", a, url, hub.token(unit_a))
                run_worker("enroll", b, url, hub.token(f"{unit_b},{unit_a}", "laptop"))
                _checked(run_worker("sync", b))  # B's own first changes, out of the measurement
                sent = proxy.bytes_up + proxy.bytes_down
                pushed = _checked(run_worker("sync", a))
                mid = proxy.bytes_up + proxy.bytes_down
                pulled = _checked(run_worker("sync", b))
                end = proxy.bytes_up + proxy.bytes_down
                if resync:
                    run_worker("change", a, resync)
                    again = _checked(run_worker("sync", a))
                    again_b = _checked(run_worker("sync", b))
                    out["resync_bytes"].append(proxy.bytes_up + proxy.bytes_down - end)
                    out["resync_s"].append(again["duration"] + again_b["duration"])
                    out["resync_push_s"].append(again["duration"])
                    out["resync_pull_s"].append(again_b["duration"])
                    out["resync_pushed"].append(again["pushed"])
                    out["resync_pulled"].append(again_b["pulled"])
                    out["resync_stages"].append({k: round(again["stages"].get(k, 0) + again_b["stages"].get(k, 0), 3)
                                                 for k in again["stages"]})  # A's and B's seconds per stage
            out["push_s"].append(pushed["duration"])
            out["pull_s"].append(pulled["duration"])
            out["push_per_s"].append(pushed["pushed"] / pushed["duration"])
            out["pull_per_s"].append(pulled["pulled"] / pulled["duration"])
            out["push_bytes"].append((mid - sent) / pushed["pushed"])
            out["pull_bytes"].append((end - mid) / pulled["pulled"])
            out["total_per_s"].append(pushed["pushed"] / (pushed["duration"] + pulled["duration"]))
            out["pushed"].append(pushed["pushed"])
            out["pulled"].append(pulled["pulled"])
        finally:
            hub.stop()
            shutil.rmtree(folder, ignore_errors=True)
    return out


def _checked(result: dict) -> dict:
    if not result.get("ok"):
        raise RuntimeError(f"sync failed: {result.get('error')}")
    if result.get("repaired"):  # the digests differed and the scope was pulled again: not what we measure
        raise RuntimeError("sync needed a full re-pull (state digests differed)")
    return result


def catch_up(nodes: dict, work: Path, runs: int) -> dict:
    """C (30 days offline) pushes everything to a fresh hub; D, a laptop of C's unit, then pulls it all."""
    out: dict[str, list[float]] = {k: [] for k in ("push_s", "push_peak_mb", "hub_peak_mb", "pull_s",
                                                   "pull_peak_mb", "pushed", "pulled", "files_up", "files_down",
                                                   "files_up_s", "files_down_s")}
    unit_c, unit_b = NODES["C"][0], NODES["B"][0]
    for r in range(runs):
        folder = work / f"catchup-{r}"
        hub = Hub(folder / "hub")
        try:
            url = hub.serve(1)[0]
            c, d = _copy_node(nodes, "C", folder / "C"), _copy_node(nodes, "B", folder / "D")
            run_worker("enroll", c, url, hub.token(unit_c))
            run_worker("enroll", d, url, hub.token(f"{unit_b},{unit_c}", "laptop"))
            pushed = _checked(run_worker("sync", c))
            pulled = _checked(run_worker("sync", d))
            out["hub_peak_mb"].append(hub.peak_kb() / 1024)
        finally:
            hub.stop()
            shutil.rmtree(folder, ignore_errors=True)
        out["push_s"].append(pushed["duration"])
        out["pull_s"].append(pulled["duration"])
        out["push_peak_mb"].append(pushed["peak_kb"] / 1024)
        out["pull_peak_mb"].append(pulled["peak_kb"] / 1024)
        out["pushed"].append(pushed["pushed"])
        out["pulled"].append(pulled["pulled"])
        out["files_up"].append(pushed["files_up"])
        out["files_down"].append(pulled["files_down"])
        out["files_up_s"].append(pushed["stages"].get("files_up", 0.0))
        out["files_down_s"].append(pulled["stages"].get("files_down", 0.0))
    return out


def measure(work: Path, *, runs: int = 3, postgres: str | None = None, quick: bool = False,
            progress=print, only: str | None = None) -> dict:
    """Every sync scenario; returns {"nodes", "raw_verify", "scenarios": [rows]} (see `table`).

    `only="ingest"` (or $MOTCUA_BENCH_SYNC_ONLY=ingest, so `python -m bench.run --only sync` honours it):
    the raw verify rate and the hub ingest scenarios only (nodes A and P generated, nothing else)."""
    from . import raw

    only = only or os.environ.get("MOTCUA_BENCH_SYNC_ONLY") or None
    if only not in (None, "ingest"):
        raise ValueError(f"unknown sync part {only!r}: only 'ingest' can be chosen")
    work.mkdir(parents=True, exist_ok=True)
    nodes = prepare(work, quick, progress, ("A", "P") if only == "ingest" else None)
    e2e: dict = {}
    scratch = work / f"sync-run-{os.getpid()}"
    rows: list[dict] = []

    def row(name: str, unit: str, values: list[float], goal: str = "", passed: bool | None = None) -> dict:
        rows.append(dict(name=name, unit=unit, goal=goal, passed=passed, **figure(values)))
        return rows[-1]

    def at_least(value: float, goal: float) -> bool:
        return value >= goal

    try:
        progress("  raw Ed25519 verify rate ...")
        _, verify = raw.ed25519(rounds=5)
        ceiling = verify["median_per_s"]
        row("raw Ed25519 verify, one core", "/s", [verify["min_per_s"], verify["median_per_s"], verify["max_per_s"]])
        share = GOALS["ingest_share"]
        backends = [("SQLite", None, 1)] + ([("PostgreSQL", postgres, 1), ("PostgreSQL", postgres, 2)]
                                            if postgres else [])
        one_process: float | None = None
        for label, url, processes in backends:
            progress(f"  hub ingest, {label}, {processes} process(es) ...")
            cpu: dict[str, list[float]] = {}
            rates = hub_ingest(nodes, scratch, runs, url, processes, cpu)
            name = f"hub ingest, {label}, {processes} hub process{'es' if processes > 1 else ''}"
            if processes == 1:
                row(name, "changes/s", rates)
                shares = [100 * r / ceiling for r in rates]
                row("  as a share of the raw verify rate", "%", shares, f">= {share:.0%}",
                    at_least(statistics.median(shares), 100 * share))
                one_process = statistics.median(rates)
                if cpu.get("hub"):
                    row("  CPU of the hub process per 1,000 changes", "ms", cpu["hub"])
                if cpu.get("database"):
                    row("  CPU of its PostgreSQL backends per 1,000 changes", "ms", cpu["database"])
            else:
                more = GOALS["several_processes"]  # "more": clearly more, not a draw within the noise
                row(name + " (2 nodes in parallel)", "changes/s", rates, f">= {more}x 1",
                    one_process is not None and statistics.median(rates) >= more * one_process)
                row("  per process, as a share of the raw verify rate", "%",
                    [100 * r / processes / ceiling for r in rates])
        if only == "ingest":
            return {"runs": runs, "postgres": bool(postgres), "quick": quick, "raw_verify": verify, "only": only,
                    "nodes": {k: {f: v for f, v in n.items() if f not in ("path", "bodies")}
                              for k, n in nodes.items()}, "scenarios": rows, "end_to_end": e2e}
        progress(f"  end to end, {nodes['A']['changes']:,} changes A -> hub -> B ...")
        resync = WAITING["A"]
        e2e = end_to_end(nodes, scratch, runs, resync=resync)
        goal, size = GOALS["e2e_per_s"], GOALS["bytes_per_change"]
        n = int(statistics.median(e2e["pushed"]))
        row(f"end to end: node A -> hub, push of {n:,}", "changes/s", e2e["push_per_s"], f">= {goal:,}",
            at_least(statistics.median(e2e["push_per_s"]), goal))
        row("  bytes on the wire per change, push", "B", e2e["push_bytes"], f"<= {size}",
            statistics.median(e2e["push_bytes"]) <= size)
        row(f"end to end: hub -> node B, pull of {int(statistics.median(e2e['pulled'])):,}", "changes/s",
            e2e["pull_per_s"], f">= {goal:,}", at_least(statistics.median(e2e["pull_per_s"]), goal))
        row("  bytes on the wire per change, pull", "B", e2e["pull_bytes"], f"<= {size}",
            statistics.median(e2e["pull_bytes"]) <= size)
        row("end to end: A -> hub -> B (push time + pull time)", "changes/s", e2e["total_per_s"])
        row(f"re-sync of {resync} changed dossiers: A -> hub -> B (push + pull)", "s", e2e["resync_s"])
        files = nodes["C"].get("files", 0)
        with_files = f" and {files:,} files of {nodes['C'].get('file_bytes', 0) // 1024} KB" if files else ""
        progress(f"  catch-up, {nodes['C']['changes']:,} changes{with_files} made offline over "
                 f"{NODES['C'][3]} days ...")
        cu = catch_up(nodes, scratch, runs)
        peak = GOALS["peak_mb"]
        up, down = int(statistics.median(cu["files_up"])), int(statistics.median(cu["files_down"]))
        row(f"catch-up: node pushes {int(statistics.median(cu['pushed'])):,} changes"
            f"{f' + {up:,} files' if files else ''}", "s", cu["push_s"])
        if files:
            row("  of which uploading the files", "s", cu["files_up_s"])
        row("  peak memory of the node", "MB", cu["push_peak_mb"], f"< {peak}",
            statistics.median(cu["push_peak_mb"]) < peak)
        row(f"catch-up: a second node pulls {int(statistics.median(cu['pulled'])):,} changes"
            f"{f' + {down:,} files' if files else ''}", "s", cu["pull_s"])
        if files:
            row("  of which downloading the files", "s", cu["files_down_s"])
        row("  peak memory of the pulling node", "MB", cu["pull_peak_mb"], f"< {peak}",
            statistics.median(cu["pull_peak_mb"]) < peak)
        row("  peak memory of the hub (both)", "MB", cu["hub_peak_mb"], f"< {peak}",
            statistics.median(cu["hub_peak_mb"]) < peak)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"runs": runs, "postgres": bool(postgres), "quick": quick, "raw_verify": verify,
            "nodes": {k: {f: v for f, v in n.items() if f not in ("path", "bodies")} for k, n in nodes.items()},
            "scenarios": rows, "end_to_end": e2e}


def table(rows: list[dict]) -> str:
    """The sync figures with goals and PASS/FAIL."""
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'scenario':<{width}}  {'median':>10}  {'min':>10}  {'max':>10}  {'unit':<9}  {'goal':>9}  result",
             "-" * (width + 70)]
    for r in rows:
        result = "" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
        f = ",.2f" if r["unit"] in ("x", "s") else ",.1f"
        lines.append(f"{r['name']:<{width}}  {r['median']:>10{f}}  {r['min']:>10{f}}  {r['max']:>10{f}}  "
                     f"{r['unit']:<9}  {r['goal']:>9}  {result}")
    return "\n".join(lines)


def ingest_main(argv: list[str]) -> int:
    """`python -m bench.sync ingest [--postgres URL] [--runs N] [--quick]`: the ingest scenarios only
    (the same as `MOTCUA_BENCH_SYNC_ONLY=ingest python -m bench.run --only sync`), printed, not saved."""
    import argparse

    from . import gen

    parser = argparse.ArgumentParser(prog="python -m bench.sync ingest")
    parser.add_argument("--postgres", default=os.environ.get("MOTCUA_TEST_POSTGRES_URL") or None)
    parser.add_argument("--runs", type=int, default=3, choices=range(1, 21), metavar="1..20")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    out = measure(gen.WORK, runs=args.runs, postgres=args.postgres, quick=args.quick, only="ingest",
                  progress=lambda s: print(s, flush=True))
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    print(table(out["scenarios"]))
    print(f"load average at the end: {load}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        sys.exit(worker(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "ingest":
        sys.exit(ingest_main(sys.argv[2:]))
    print("usage: python -m bench.run --only sync   (this module's `worker` commands are for bench.run)")
    sys.exit(2)
