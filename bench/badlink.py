"""The bad link (issue 5, scenario 5): node -> hub -> node through a slow, far and flaky line.

A `ShapingProxy` on 127.0.0.1 stands between the nodes and a real `motcua hub serve`: 256 kbit/s each way
(shared by every connection of that direction), 300 ms one-way delay (a new connection also pays its
handshake, one round trip, before its first byte), and every connection cut every 20 seconds (what is in
flight is lost; the first cut comes 5, 12.5 or 20 s after the start, one per run, so the runs see the cuts
at different points of the sync). Node L (LINK_DOSSIERS dossiers, about 2,900 changes: a size that crosses
such a link in about a minute) pushes its whole log, then node B (a laptop of L's unit) pulls it, each in a
worker process that runs `syncer.sync_once` until it completes (at most MAX_ATTEMPTS, as the node's
background thread would, without its 30 s pause between attempts) with $MOTCUA_HUB_URL pointing at the proxy.

Figures, each the median, min and max of several runs (fresh hub and node copies each run):

- time taken (push + pull, wall time of the sync attempts) against the time the bytes alone need at
  256 kbit/s: the bytes the same two syncs move on a clean link (measured in the same run through a counting
  proxy without shaping); the line is full duplex, so each sync needs its larger direction's bytes divided
  by 32,000 bytes/s (both directions added, the figure before 2026-11-23, is shown too: about 1 % more
  time, so a ratio about 0.01 lower); goal <= 1.3x;
- bytes sent again after cuts: bytes on the bad link less the clean link's, per cut, against the largest
  exchange a cut can lose (the pipelined pushes in flight: PIPELINE_WINDOW batches of PIPELINE_BATCH, or
  a pull page of PULL_LIMIT): goal: no more than what is in flight at each cut.

With PROPOSAL set (empty today), the same runs again with those bench/patches.py monkeypatches applied in
the bench's own hub and node processes, reported apart, never as a goal. The proposals of 22 Nov (pipelined
pushes, framed pulls, no GET /time once the clock offset is known) are code since 23 Nov.

`python -m bench.run --only badlink [--batch N] [--no-proposals]`; `--batch` sets the push batch and pull
page (at most the hub's 1,000) through `sync_once`'s session options, to show what another batch size
would give (pipelined pushes stay at most PIPELINE_BATCH changes each, node/sync/pushpipe.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from node.sync.client import PIPELINE_BATCH, PIPELINE_WINDOW

from . import patches, sync

RATE = 256_000 // 8  # bytes per second, each way
DELAY = 0.3  # seconds, each way
CUT_EVERY = 20.0
LINK = ("000.00.19.H59", "UBND xã Linh Sơn", 21)  # unit code, name, seed of node L
LINK_DOSSIERS, QUICK_LINK_DOSSIERS = 300, 120
MAX_ATTEMPTS = 20
GOALS = {"time_ratio": 1.3}


# ================================================================ the shaping proxy

class _Link:
    """One direction of the line: bytes are serialised one after another at `rate` bytes/s."""

    def __init__(self, rate: float):
        self.rate = rate
        self.free_at = 0.0  # loop time when the line is free again

    def occupy(self, now: float, size: int) -> float:
        """Put `size` bytes on the line; returns the loop time their last byte has left."""
        self.free_at = max(now, self.free_at) + size / self.rate
        return self.free_at


class ShapingProxy:
    """TCP proxy on 127.0.0.1: `rate` bytes/s each way, `delay` s one way, every connection cut every `cut_every`.

    Bytes are counted when they go on the line (`bytes_up`: client to server, `bytes_down`), so what a cut
    loses in flight is counted as sent. Runs its own event loop in a thread; a context manager.

        with ShapingProxy(hub_port, rate=32_000, delay=0.3, cut_every=20) as proxy:
            url = f"http://127.0.0.1:{proxy.port}"
    """

    CHUNK = 4096  # bytes put on the line at a time: fine enough that two connections share it fairly

    def __init__(self, target_port: int, *, rate: float | None = RATE, delay: float = DELAY,
                 cut_every: float | None = CUT_EVERY, first_cut: float | None = None):
        self.target = ("127.0.0.1", target_port)
        self.rate, self.delay, self.cut_every = rate, delay, cut_every
        self.first_cut = cut_every if first_cut is None else first_cut  # seconds from the start to the first cut
        self.port = 0
        self.bytes_up = self.bytes_down = 0
        self.cuts = 0  # cuts that found at least one open connection
        self.connections = 0
        self.requests = 0  # HTTP requests seen going up (their request lines)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    def __enter__(self) -> ShapingProxy:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="shaping-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("shaping proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(15)

    @property
    def moved(self) -> int:
        return self.bytes_up + self.bytes_down

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._links = {"up": _Link(self.rate or 1), "down": _Link(self.rate or 1)}
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        cutter = asyncio.create_task(self._cutter()) if self.cut_every else None
        await self._stop.wait()
        if cutter:
            cutter.cancel()
        server.close()
        for w in list(self._writers):
            w.transport.abort()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await server.wait_closed()

    async def _cutter(self) -> None:
        wait = self.first_cut
        while True:
            await asyncio.sleep(wait)
            wait = self.cut_every
            if self._writers:
                self.cuts += 1
            for w in list(self._writers):
                w.transport.abort()
            now = asyncio.get_running_loop().time()
            for link in self._links.values():
                link.free_at = min(link.free_at, now)  # what was queued on the line is gone with the cut

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        up_writer = None
        try:
            if self.delay:
                await asyncio.sleep(2 * self.delay)  # the TCP handshake over the line: one round trip
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer, "up"), self._pipe(up_reader, writer, "down"),
                                 return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        """Read, occupy the line (the reader waits while its bytes are on it: backpressure), deliver `delay` later."""
        loop = asyncio.get_running_loop()
        link = self._links[way]
        queue: asyncio.Queue = asyncio.Queue()
        deliverer = asyncio.create_task(self._deliver(queue, writer))
        try:
            while True:
                data = await reader.read(self.CHUNK)
                if not data or writer.is_closing():  # end, or cut: what the reader still buffers is gone
                    break
                now = loop.time()
                done = link.occupy(now, len(data)) if self.rate else now
                if way == "up":
                    self.bytes_up += len(data)
                    self.requests += data.count(b" HTTP/1.1\r\n")
                else:
                    self.bytes_down += len(data)
                queue.put_nowait((done + self.delay, data))
                if done > now:
                    await asyncio.sleep(done - now)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            queue.put_nowait(None)  # end of stream: half-close once everything before it arrived
            try:
                await deliverer
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass

    async def _deliver(self, queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await queue.get()
            if item is None or writer.is_closing():
                break
            at, data = item
            if at > loop.time():
                await asyncio.sleep(at - loop.time())
            if writer.is_closing():
                break
            writer.write(data)
            await writer.drain()
        try:
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


# ================================================================ worker: sync until it completes

def sync_until_done(path: Path, attempts: int, batch: int | None) -> dict:
    """`syncer.sync_once` again after each failure (at most `attempts`); wall time over all of them."""
    from node import syncer
    from node.instance import Node

    options: dict[str, Any] = {"push_batch": batch, "pull_limit": min(batch, 1000)} if batch else {}
    stages: dict[str, float] = {}
    mark = [time.perf_counter(), ""]

    def on_stage(stage: str) -> None:  # seconds in each stage, added over the attempts
        now = time.perf_counter()
        if mark[1]:
            stages[mark[1]] = round(stages.get(mark[1], 0.0) + now - mark[0], 3)
        mark[:] = [now, stage]

    node = Node(path)
    errors, pushed, pulled, tried = [], 0, 0, 0
    t0 = time.perf_counter()
    try:
        for _ in range(attempts):
            tried += 1
            report = syncer.sync_once(node, on_stage=on_stage, **options)
            on_stage("")
            pushed, pulled = pushed + report.pushed, pulled + report.pulled
            if report.ok:
                break
            errors.append(f"{report.stage}: {report.error_code}")
        return {"ok": report.ok, "attempts": tried, "errors": errors, "pushed": pushed, "pulled": pulled,
                "wall_s": time.perf_counter() - t0, "stages": stages}
    finally:
        node.close()


def worker(argv: list[str]) -> int:
    """`python -m bench.badlink worker sync NODE ATTEMPTS [BATCH]`: prints one JSON line."""
    patches.apply_node()  # only what $MOTCUA_BENCH_PATCH names (bench/patches.py); nothing by default
    out = sync_until_done(Path(argv[1]), int(argv[2]), int(argv[3]) if len(argv) > 3 and argv[3] != "0" else None)
    print(json.dumps(out))
    return 0


def _sync_through(node: Path, url: str, batch: int | None) -> dict:
    env = dict(os.environ, MOTCUA_HUB_URL=url)
    proc = subprocess.run([sys.executable, "-m", "bench.badlink", "worker", "sync", str(node), str(MAX_ATTEMPTS),
                           str(batch or 0)], cwd=sync.ROOT, capture_output=True, text=True, timeout=3600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bad-link sync worker failed: {proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out["ok"]:
        raise RuntimeError(f"sync did not complete in {MAX_ATTEMPTS} attempts: {out['errors']}")
    return out


# ================================================================ the scenario

def prepare(work: Path, quick: bool, progress) -> dict:
    """Node L (generated once, next to the sync nodes) and the sync nodes (B is the pulling laptop)."""
    nodes = sync.prepare(work, quick, progress)
    cache = Path(nodes["A"]["path"]).parent
    n = QUICK_LINK_DOSSIERS if quick else LINK_DOSSIERS
    folder, marker = cache / f"node-L{n}", cache / f"node-L{n}.json"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        progress(f"  generating node L: {n:,} dossiers over 365 days ...")
        made = sync.run_worker("make-node", folder, LINK[0], LINK[1], n, 365, LINK[2],
                               datetime(2026, 3, 2, 10, 0).isoformat())
        marker.write_text(json.dumps(made), encoding="utf-8")
    nodes["L"] = dict(json.loads(marker.read_text(encoding="utf-8")), path=str(folder))
    return nodes


def one_run(nodes: dict, folder: Path, *, shaped: bool, batch: int | None, first_cut: float | None = None) -> dict:
    """A fresh hub; L pushes everything and B pulls it, through a shaping proxy (or a clean counting one)."""
    hub = sync.Hub(folder / "hub")
    try:
        url = hub.serve(1)[0]
        port = int(url.rsplit(":", 1)[1])
        l_node = sync._copy_node(nodes, "L", folder / "L")
        b_node = sync._copy_node(nodes, "B", folder / "B")
        sync.run_worker("enroll", l_node, url, hub.token(LINK[0]))
        sync.run_worker("enroll", b_node, url, hub.token(f"{sync.NODES['B'][0]},{LINK[0]}", "laptop"))
        sync._checked(sync.run_worker("sync", b_node))  # B's own first changes, on a clean line, not measured
        options = {"first_cut": first_cut} if shaped else {"rate": None, "delay": 0.0, "cut_every": None}
        with ShapingProxy(port, **options) as proxy:
            purl = f"http://127.0.0.1:{proxy.port}"
            push = _sync_through(l_node, purl, batch)
            up1, down1, cuts1, req1 = proxy.bytes_up, proxy.bytes_down, proxy.cuts, proxy.requests
            pull = _sync_through(b_node, purl, batch)
            up2, down2, cuts2, req2 = proxy.bytes_up, proxy.bytes_down, proxy.cuts, proxy.requests
        return {"push_s": push["wall_s"], "pull_s": pull["wall_s"], "push_up": up1, "push_down": down1,
                "pull_up": up2 - up1, "pull_down": down2 - down1, "cuts_push": cuts1, "cuts_pull": cuts2 - cuts1,
                "attempts": push["attempts"] + pull["attempts"], "errors": push["errors"] + pull["errors"],
                "pushed": push["pushed"], "pulled": pull["pulled"], "connections": proxy.connections,
                "requests_push": req1, "requests_pull": req2 - req1, "stages_push": push["stages"],
                "stages_pull": pull["stages"]}
    finally:
        hub.stop()
        shutil.rmtree(folder, ignore_errors=True)


PROPOSAL = ""  # bench/patches.py: proposed client and hub changes, by monkeypatch (none at present: they became code)


def _runs(nodes: dict, scratch: Path, runs: int, batch: int | None, push_batch: int, pull_page: int,
          progress) -> list[dict]:
    """`runs` pairs of a clean run (the bytes the syncs need) and a bad-link run, each on a fresh hub."""
    raw: list[dict] = []
    for r in range(runs):
        clean = one_run(nodes, scratch / f"clean-{r}", shaped=False, batch=batch)
        # the first cut comes at another moment in each run (5, 12.5, 20, 7.5 ... s), so the runs see the
        # cuts at different points of the sync rather than the same ones
        first_cut = 5.0 + (r * 7.5) % CUT_EVERY
        bad = one_run(nodes, scratch / f"bad-{r}", shaped=True, batch=batch, first_cut=first_cut)
        clean_bytes = clean["push_up"] + clean["push_down"] + clean["pull_up"] + clean["pull_down"]
        bad_bytes = bad["push_up"] + bad["push_down"] + bad["pull_up"] + bad["pull_down"]
        taken = bad["push_s"] + bad["pull_s"]
        # the time the bytes alone need: the line carries RATE each way at once (full duplex), so each sync
        # needs at least its larger direction's bytes / RATE; adding both directions (the figure before
        # 2026-11-23, kept as bytes_sum_s) would count the answers' bytes as if they could not overlap
        bytes_only = (max(clean["push_up"], clean["push_down"]) + max(clean["pull_up"], clean["pull_down"])) / RATE
        cuts = bad["cuts_push"] + bad["cuts_pull"]
        # the largest exchange a cut can lose: the pushes in flight (PIPELINE_WINDOW pipelined batches of
        # `push_batch`) or a full pull page down (from the clean run)
        push_exchange = PIPELINE_WINDOW * clean["push_up"] / max(1, -(-clean["pushed"] // push_batch))
        pull_exchange = clean["pull_down"] / max(1, -(-clean["pulled"] // pull_page))
        raw.append(dict(clean=clean, bad=bad, first_cut_s=first_cut, clean_bytes=clean_bytes, bad_bytes=bad_bytes,
                        taken_s=taken, bytes_only_s=bytes_only, ratio=taken / bytes_only,
                        bytes_sum_s=clean_bytes / RATE, ratio_sum=taken / (clean_bytes / RATE),
                        resent=bad_bytes - clean_bytes, cuts=cuts, in_flight_max=max(push_exchange, pull_exchange)))
        progress(f"    run {r + 1}: {taken:.1f} s against {bytes_only:.1f} s for the bytes alone "
                 f"({taken / bytes_only:.2f}x); {cuts} cuts, {bad_bytes - clean_bytes:,} bytes sent again; "
                 f"{bad['attempts']} sync attempts")
    return raw


def measure(work: Path, *, runs: int = 3, quick: bool = False, batch: int | None = None, proposals: bool = True,
            progress=print) -> dict:
    """Clean and bad-link runs side by side; with `proposals`, the same again with PROPOSAL's patches."""
    from node.sync import protocol

    nodes = prepare(work, quick, progress)
    scratch = work / f"badlink-run-{os.getpid()}"
    push_batch = min(batch or protocol.PUSH_BATCH, PIPELINE_BATCH)  # stage_push pipelines batches of this
    pull_page = min(batch or protocol.PULL_LIMIT, 1000)
    progress(f"  bad link: {nodes['L']['changes']:,} changes L -> hub -> B at {RATE * 8 // 1000} kbit/s, "
             f"{DELAY * 1000:.0f} ms each way, cut every {CUT_EVERY:.0f} s; push batch {push_batch}, "
             f"pull page {pull_page} ...")
    proposed: list[dict] = []
    try:
        raw = _runs(nodes, scratch, runs, batch, push_batch, pull_page, progress)
        if proposals and PROPOSAL:
            progress(f"  the same with the proposed changes ({PROPOSAL}; bench/patches.py, monkeypatch) ...")
            before = os.environ.get(patches.ENV)
            os.environ[patches.ENV] = PROPOSAL
            try:
                proposed = _runs(nodes, scratch, runs, None, min(protocol.PUSH_BATCH, PIPELINE_BATCH),
                                 getattr(patches, "FRAME", pull_page), progress)
            finally:
                if before is None:
                    os.environ.pop(patches.ENV, None)
                else:
                    os.environ[patches.ENV] = before
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows: list[dict] = []

    def row(name: str, unit: str, values: list[float], goal: str = "", passed: bool | None = None) -> None:
        rows.append(dict(name=name, unit=unit, goal=goal, passed=passed, **sync.figure(values)))

    med = lambda key: statistics.median(x[key] for x in raw)  # noqa: E731
    n = int(statistics.median(x["bad"]["pushed"] for x in raw))
    goal = GOALS["time_ratio"]
    row(f"bad link: L -> hub -> B, {n:,} changes, time taken", "s", [x["taken_s"] for x in raw])
    row("  time the bytes alone need at 256 kbit/s (clean-link bytes)", "s", [x["bytes_only_s"] for x in raw])
    row("  time taken / bytes-only time", "x", [x["ratio"] for x in raw], f"<= {goal}", med("ratio") <= goal)
    row("  time taken / both directions' bytes at 256 kbit/s (the figure before 2026-11-23)", "x",
        [x["ratio_sum"] for x in raw])
    row("  of which push (wall time of the attempts)", "s", [x["bad"]["push_s"] for x in raw])
    row("  of which pull", "s", [x["bad"]["pull_s"] for x in raw])
    row("  cuts during the syncs", "cuts", [x["cuts"] for x in raw])
    row("  bytes on the clean link", "KB", [x["clean_bytes"] / 1000 for x in raw])
    row("  bytes sent again after cuts", "KB", [x["resent"] / 1000 for x in raw])
    per_cut = [x["resent"] / max(1, x["cuts"]) / 1000 for x in raw]
    in_flight = [x["in_flight_max"] / 1000 for x in raw]
    row("  bytes sent again per cut", "KB", per_cut, f"<= {statistics.median(in_flight):,.0f} KB",
        all(x["resent"] <= max(1, x["cuts"]) * x["in_flight_max"] for x in raw))
    row("  largest batch in flight (push batch or pull page)", "KB", in_flight)
    if proposed:
        today = statistics.median(x["bytes_only_s"] for x in raw)
        row("proposal (patch): time taken", "s", [x["taken_s"] for x in proposed])
        row("  / its own bytes-only time (not counted)", "x", [x["ratio"] for x in proposed], f"(<= {goal})")
        row("  / today's bytes-only time (not counted)", "x", [x["taken_s"] / today for x in proposed],
            f"(<= {goal})")
        row("  bytes on the clean link", "KB", [x["clean_bytes"] / 1000 for x in proposed])
        row("  bytes sent again per cut", "KB", [x["resent"] / max(1, x["cuts"]) / 1000 for x in proposed])
    return {"runs": runs, "quick": quick, "changes": nodes["L"]["changes"], "rate_bytes_per_s": RATE,
            "delay_s": DELAY, "cut_every_s": CUT_EVERY, "push_batch": push_batch, "pull_page": pull_page,
            "scenarios": rows, "raw": raw, "proposal": PROPOSAL if proposed else None, "proposal_raw": proposed}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "worker":
        sys.exit(worker(sys.argv[2:]))
    print("usage: python -m bench.run --only badlink")
    sys.exit(2)
