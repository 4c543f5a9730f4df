"""The peer (issue 5, scenario 4): PouchDB replication to express-pouchdb, side by side with motcua's sync.

People choosing offline-first sync would otherwise pick CouchDB/PouchDB replication, so motcua is measured
against it on the same machine in the same run:

- the peer: node A's changes (bench/sync.py), each as one JSON document (the very object motcua sends, so
  both move the same bytes of content), loaded into a PouchDB (leveldb on disk, PouchDB's default in
  Node.js) and replicated over HTTP on 127.0.0.1 to an express-pouchdb server (leveldb on disk), then from
  the server into a second, empty PouchDB; then 100 of the documents are changed (a new revision each) and
  both replications run again (the re-sync). Times are taken inside the Node.js process around
  `PouchDB.replicate` (PouchDB's default batches of 100 documents), so process start-up is not counted;
- motcua: the same thing through `bench.sync.end_to_end` (node A -> hub -> node B, every change signed
  and every signature checked, `SyncReport.duration` of each sync), then A moves 100 dossiers on (one
  signed change each) and A and B sync again;
- bytes on the wire: every TCP byte both ways, counted the same way for both, by tests/e2e/proxy.py's
  FlakyProxy (no cuts) between client and server.

The Node.js packages (bench/peer_js/package.json: pouchdb, express-pouchdb, express) are installed with npm
into bench/work/peer/ (git-ignored) on the first run and reused after; the scripts in bench/peer_js/ are
copied there each run. Without Node.js and npm the scenario is skipped with a message.

Ratios (goals of issue 5): motcua end-to-end changes/s / the peer's documents/s >= 1.5; motcua bytes per
change / the peer's bytes per document <= 0.25 (each way); motcua re-sync time / the peer's <= 0.5.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import sync

JS = Path(__file__).resolve().parent / "peer_js"
SCRIPTS = ("server.js", "client.js")
DB = "bench"  # the database's name on the express-pouchdb server
GOALS = {"e2e_ratio": 1.5, "bytes_ratio": 0.25, "resync_ratio": 0.5}
SEED = 5


class PeerUnavailable(RuntimeError):
    """Node.js or npm is missing, or the npm install failed: the peer cannot be measured here."""


# ================================================================ Node.js and the packages

def _version(exe: str) -> str:
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip()


def install(work: Path, progress=print) -> dict:
    """bench/work/peer/ with node_modules installed from bench/peer_js/package.json (once; cached by its hash)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if not p)
        raise PeerUnavailable(f"{missing} not found on PATH: the peer scenario (PouchDB) needs Node.js 18 or "
                              "later with npm (Debian/Ubuntu: apt-get install nodejs npm). The other scenarios "
                              "run without it.")
    version = _version(node)
    if int(version.lstrip("v").split(".")[0] or 0) < 18:
        raise PeerUnavailable(f"Node.js {version} is too old for the peer scenario: 18 or later is needed")
    folder = work / "peer"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = (JS / "package.json").read_bytes()
    stamp, want = folder / ".installed", hashlib.sha256(manifest).hexdigest()
    if not (stamp.exists() and stamp.read_text() == want and (folder / "node_modules" / "pouchdb").is_dir()):
        progress("  installing pouchdb, express-pouchdb and express with npm into bench/work/peer/ (once) ...")
        (folder / "package.json").write_bytes(manifest)
        try:
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                                  capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise PeerUnavailable("npm install took more than 15 minutes: is the npm registry reachable?") from exc
        if proc.returncode != 0:
            raise PeerUnavailable(f"npm install failed in {folder}: {proc.stderr.strip()[-1500:]}")
        stamp.write_text(want)
    for name in SCRIPTS:
        shutil.copyfile(JS / name, folder / name)
    packages = {}
    for name in ("pouchdb", "express-pouchdb", "express", "leveldown"):
        meta = folder / "node_modules" / name / "package.json"
        packages[name] = json.loads(meta.read_text())["version"] if meta.exists() else None
    return {"folder": str(folder), "node": node, "node_version": version, "npm_version": _version(npm),
            "packages": packages}


def js(env: dict, *args: Any, timeout: float = 1800) -> dict:
    """Run `node client.js ARGS` in the peer folder; its last stdout line is JSON."""
    proc = subprocess.run([env["node"], "client.js", *map(str, args)], cwd=env["folder"], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"node client.js {args[0]} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Server:
    """express-pouchdb (`node server.js DIR`) on 127.0.0.1, a free port; stopped on exit."""

    def __init__(self, env: dict, folder: Path):
        self.env, self.folder = env, folder
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = open(self.folder.with_suffix(".log"), "wb")
        self.proc = subprocess.Popen([self.env["node"], "server.js", str(self.folder)], cwd=self.env["folder"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)  # bounded: the server prints its port once listening
        if not line or not line[0].strip():
            self.__exit__()
            raise RuntimeError(f"express-pouchdb did not start: {self.folder.with_suffix('.log').read_text()[-2000:]}")
        self.port = int(json.loads(line[0])["port"])
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # the server ends when its stdin closes ...
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()  # ... or on SIGTERM
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            self.proc.stdout.close()
            self.proc = None
        self.log.close()


# ================================================================ the documents

def export_docs(path: Path, out: Path) -> dict:
    """Node A's changes as peer documents, one JSON object a line: each change as motcua sends it, with an
    `_id` (node id and seq). Returns their count and mean sizes."""
    import orjson

    from node.instance import Node
    from node.sync import log

    node = Node(path)
    try:
        count = change_bytes = doc_bytes = 0
        with open(out, "wb") as fh:
            for change in log.iter_changes(node.node_id):
                doc = orjson.dumps(dict(change, _id=f"{change['node_id']}:{change['seq']:09d}"))
                fh.write(doc + b"\n")
                count += 1
                change_bytes += len(orjson.dumps(change))
                doc_bytes += len(doc)
        return {"docs": count, "change_json_bytes": round(change_bytes / count, 1),
                "doc_json_bytes": round(doc_bytes / count, 1)}
    finally:
        node.close()


def docs_file(nodes: dict, work: Path) -> tuple[Path, dict]:
    """The cached documents file of node A (next to the sync nodes)."""
    folder = Path(nodes["A"]["path"]).parent
    target, marker = folder / "peer-docs-A.jsonl", folder / "peer-docs-A.json"
    if not marker.exists():
        out = sync.run_worker("peer-docs", nodes["A"]["path"], target)
        marker.write_text(json.dumps({k: v for k, v in out.items() if k != "wall_s"}))
    return target, json.loads(marker.read_text())


# ================================================================ the scenario

def peer_runs(env: dict, docs: Path, work: Path, runs: int, resync: int, progress=print) -> dict:
    """Each run: a fresh server and fresh PouchDBs; push, pull, change `resync` documents, push and pull again."""
    proxies = sync.proxy_module()
    keys = ["push_s", "pull_s", "push_per_s", "pull_per_s", "total_per_s", "push_bytes", "pull_bytes", "pushed",
            "pulled", "resync_s", "resync_push_s", "resync_pull_s", "resync_bytes", "resync_pushed", "resync_pulled"]
    out: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(runs):
        folder = work / f"peer-{r}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        source, target = folder / "source", folder / "target"
        try:
            js(env, "load", source, docs)
            with Server(env, folder / "server") as server, proxies.FlakyProxy(server.port) as proxy:
                url = f"http://127.0.0.1:{proxy.port}/{DB}"

                def moved() -> int:
                    return proxy.bytes_up + proxy.bytes_down

                b0 = moved()
                push = js(env, "push", source, url)
                b1 = moved()
                pull = js(env, "pull", target, url)
                b2 = moved()
                js(env, "change", source, resync, SEED + r)
                b3 = moved()
                push2 = js(env, "push", source, url)
                pull2 = js(env, "pull", target, url)
                b4 = moved()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        push_s, pull_s = push["ms"] / 1000, pull["ms"] / 1000
        out["push_s"].append(push_s)
        out["pull_s"].append(pull_s)
        out["push_per_s"].append(push["docs_written"] / push_s)
        out["pull_per_s"].append(pull["docs_written"] / pull_s)
        out["total_per_s"].append(push["docs_written"] / (push_s + pull_s))
        out["push_bytes"].append((b1 - b0) / push["docs_written"])
        out["pull_bytes"].append((b2 - b1) / pull["docs_written"])
        out["pushed"].append(push["docs_written"])
        out["pulled"].append(pull["docs_written"])
        out["resync_push_s"].append(push2["ms"] / 1000)
        out["resync_pull_s"].append(pull2["ms"] / 1000)
        out["resync_s"].append((push2["ms"] + pull2["ms"]) / 1000)
        out["resync_bytes"].append(b4 - b3)
        out["resync_pushed"].append(push2["docs_written"])
        out["resync_pulled"].append(pull2["docs_written"])
        progress(f"    peer run {r + 1}: push {out['push_per_s'][-1]:,.0f} docs/s, pull {out['pull_per_s'][-1]:,.0f}"
                 f" docs/s, re-sync {out['resync_s'][-1]:.2f} s")
    return out


def ratio(mine: list[float], peer: list[float]) -> dict:
    """motcua / peer: the ratio of the medians, with the worst and best pairings of runs as min and max."""
    return {"median": round(statistics.median(mine) / statistics.median(peer), 3),
            "min": round(min(mine) / max(peer), 3), "max": round(max(mine) / min(peer), 3)}


def measure(work: Path, *, runs: int = 3, quick: bool = False, motcua: dict | None = None,
            proposals: bool = True, progress=print) -> dict:
    """The peer and motcua side by side; `motcua` reuses `sync.end_to_end` figures of this run (with re-sync).

    `proposals` is accepted for bench/run.py's --no-proposals and changes nothing here: the proposals this
    scenario measured (a running state digest, no GET /time when the clock offset is known) are built in
    node/ and central/ now, so motcua's own figures include them.
    """
    env = install(work, progress)
    nodes = sync.prepare(work, quick, progress)
    resync = sync.WAITING["A"]
    docs, sizes = docs_file(nodes, work)
    scratch = work / f"peer-run-{time.time_ns()}"
    interleaved = motcua is None or "resync_s" not in motcua
    try:
        progress(f"  peer: {sizes['docs']:,} documents PouchDB -> express-pouchdb -> PouchDB, then {resync} "
                 f"changed ({env['packages']['pouchdb']} / express-pouchdb {env['packages']['express-pouchdb']}) ...")
        if interleaved:
            # One motcua run, then one peer run, and so on: both sides meet the same load drift on this shared
            # machine (all motcua runs first and the peer's after skewed the ratio either way).
            progress(f"  motcua: {nodes['A']['changes']:,} changes A -> hub -> B, then {resync} changed dossiers, "
                     f"run by run with the peer's ...")
            mine: list[dict] = []
            theirs: list[dict] = []
            for r in range(runs):
                mine.append(sync.end_to_end(nodes, scratch / f"motcua-{r}", 1, resync=resync))
                theirs.append(peer_runs(env, docs, scratch / f"peer-{r}", 1, resync, progress))
                progress(f"    motcua run {r + 1}: re-sync {mine[-1]['resync_s'][0]:.3f} s (peer "
                         f"{theirs[-1]['resync_s'][0]:.3f} s); load {[round(x, 2) for x in os.getloadavg()]}")
            motcua = {k: [v for m in mine for v in m[k]] for k in mine[0]}
            peer = {k: [v for t in theirs for v in t[k]] for k in theirs[0]}
        else:
            peer = peer_runs(env, docs, scratch, runs, resync, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows: list[dict] = []

    def row(name: str, unit: str, figures: dict, goal: str = "", passed: bool | None = None) -> None:
        rows.append(dict(name=name, unit=unit, goal=goal, passed=passed, **figures))

    n, m = int(statistics.median(peer["pushed"])), int(statistics.median(motcua["pushed"]))
    row(f"peer: PouchDB -> express-pouchdb, push of {n:,} docs", "docs/s", sync.figure(peer["push_per_s"]))
    row("  bytes on the wire per document, push", "B", sync.figure(peer["push_bytes"]))
    row(f"peer: express-pouchdb -> PouchDB, pull of {int(statistics.median(peer['pulled'])):,}", "docs/s",
        sync.figure(peer["pull_per_s"]))
    row("  bytes on the wire per document, pull", "B", sync.figure(peer["pull_bytes"]))
    row("peer: end to end (push time + pull time)", "docs/s", sync.figure(peer["total_per_s"]))
    row(f"peer: re-sync of {resync} changed documents (push + pull)", "s", sync.figure(peer["resync_s"]))
    row(f"motcua: node A -> hub, push of {m:,} changes", "changes/s", sync.figure(motcua["push_per_s"]))
    row("  bytes on the wire per change, push", "B", sync.figure(motcua["push_bytes"]))
    row(f"motcua: hub -> node B, pull of {int(statistics.median(motcua['pulled'])):,}", "changes/s",
        sync.figure(motcua["pull_per_s"]))
    row("  bytes on the wire per change, pull", "B", sync.figure(motcua["pull_bytes"]))
    row("motcua: end to end (push time + pull time)", "changes/s", sync.figure(motcua["total_per_s"]))
    row(f"motcua: re-sync of {resync} changed dossiers (push + pull)", "s", sync.figure(motcua["resync_s"]))
    goal_e2e, goal_bytes, goal_resync = GOALS["e2e_ratio"], GOALS["bytes_ratio"], GOALS["resync_ratio"]
    for way in ("push", "pull"):
        row(f"ratio motcua / peer: {way} per second", "x", ratio(motcua[f"{way}_per_s"], peer[f"{way}_per_s"]))
    r = ratio(motcua["total_per_s"], peer["total_per_s"])
    row("ratio motcua / peer: end to end per second", "x", r, f">= {goal_e2e}", r["median"] >= goal_e2e)
    for way in ("push", "pull"):
        r = ratio(motcua[f"{way}_bytes"], peer[f"{way}_bytes"])
        row(f"ratio motcua / peer: bytes per change, {way}", "x", r, f"<= {goal_bytes}", r["median"] <= goal_bytes)
    r = ratio(motcua["resync_s"], peer["resync_s"])
    row(f"ratio motcua / peer: re-sync time of {resync}", "x", r, f"<= {goal_resync}", r["median"] <= goal_resync)
    if interleaved:  # each motcua run against the peer run right after it (same load), median of those ratios
        paired = [m / p for m, p in zip(motcua["resync_s"], peer["resync_s"], strict=True) if p > 0]
        if paired:
            row("  same, run by run (motcua run / the peer run after it)", "x",
                {"median": round(statistics.median(paired), 3), "min": round(min(paired), 3),
                 "max": round(max(paired), 3)})
    return {"runs": runs, "quick": quick, "peer_env": {k: v for k, v in env.items() if k not in ("folder", "node")},
            "documents": sizes, "scenarios": rows, "peer": peer, "motcua": motcua}


def resync_rounds(work: Path, rounds: int, *, quick: bool = False, progress=print) -> dict:
    """motcua's re-sync alone, `rounds` times from one synced state (for profiling; no peer, no goal).

    A, B and a SQLite hub are synced once (kept in bench/work/peer-resync/, remade with the nodes' cache);
    each round copies them, starts the hub on the copy behind a FlakyProxy, moves the 100 waiting dossiers
    of A on and times A's sync then B's (`SyncReport.duration`, with the seconds of each stage).
    """
    nodes = sync.prepare(work, quick, progress)
    base = work / "peer-resync"
    stamp = f"{nodes['A']['path']}\n{sync.schema_tag()}"
    if not (base / "stamp").exists() or (base / "stamp").read_text() != stamp:
        shutil.rmtree(base, ignore_errors=True)
        hub = sync.Hub(base / "hub")
        try:
            url = hub.serve(1)[0]
            a, b = sync._copy_node(nodes, "A", base / "A"), sync._copy_node(nodes, "B", base / "B")
            sync.run_worker("enroll", a, url, hub.token(sync.NODES["A"][0]))
            sync.run_worker("enroll", b, url, hub.token(f"{sync.NODES['B'][0]},{sync.NODES['A'][0]}", "laptop"))
            for name in ("B", "A", "B"):
                sync._checked(sync.run_worker("sync", base / name))
        finally:
            hub.stop()
        (base / "stamp").write_text(stamp)
    proxies = sync.proxy_module()
    out: dict[str, list] = {"resync_s": [], "resync_push_s": [], "resync_pull_s": [], "resync_stages": []}
    before = os.environ.get("MOTCUA_HUB_URL")
    for r in range(rounds):
        folder = work / "peer-resync-round"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(base, folder)
        hub = sync.Hub.__new__(sync.Hub)  # the synced hub folder, not a new one
        hub.folder, hub.procs, hub.urls = folder / "hub", [], []
        try:
            port = int(hub.serve(1)[0].rsplit(":", 1)[1])
            with proxies.FlakyProxy(port) as proxy:
                os.environ["MOTCUA_HUB_URL"] = f"http://127.0.0.1:{proxy.port}"  # the pinned URL's stand-in
                sync.run_worker("change", folder / "A", sync.WAITING["A"])
                again = sync._checked(sync.run_worker("sync", folder / "A"))
                again_b = sync._checked(sync.run_worker("sync", folder / "B"))
        finally:
            if before is None:
                os.environ.pop("MOTCUA_HUB_URL", None)
            else:
                os.environ["MOTCUA_HUB_URL"] = before
            hub.stop()
            shutil.rmtree(folder, ignore_errors=True)
        out["resync_s"].append(again["duration"] + again_b["duration"])
        out["resync_push_s"].append(again["duration"])
        out["resync_pull_s"].append(again_b["duration"])
        out["resync_stages"].append({k: round(again["stages"].get(k, 0) + again_b["stages"].get(k, 0), 3)
                                     for k in again["stages"]})
        progress(f"  round {r + 1}: {out['resync_s'][-1]:.3f} s (A {again['duration']:.3f}, B "
                 f"{again_b['duration']:.3f}); seconds per stage, A + B: {out['resync_stages'][-1]}")
    progress(f"  median {statistics.median(out['resync_s']):.3f} s over {rounds} rounds; load "
             f"{[round(x, 2) for x in os.getloadavg()]}")
    return out


if __name__ == "__main__":  # python -m bench.peer resync [ROUNDS] [--quick]: motcua's re-sync alone
    if len(sys.argv) > 1 and sys.argv[1] == "resync":
        from .gen import WORK

        count = next((int(a) for a in sys.argv[2:] if a.isdigit()), 5)
        resync_rounds(WORK, count, quick="--quick" in sys.argv)
        sys.exit(0)
    print("usage: python -m bench.run --only peer (both sides), or python -m bench.peer resync [ROUNDS] [--quick]")
    sys.exit(2)
