"""`make bench`: the node's server times on a generated node, the machine's raw limits, and sync.

    python -m bench.run                    100,000 dossiers (generated once, then cached in bench/work/)
    python -m bench.run --dossiers 20000   a quicker run
    python -m bench.run --quick            5,000 dossiers, fewer repetitions, smaller sync nodes
    python -m bench.run --only indicators  the hub's indicator pages at 150 communes / 1,000,000 dossiers
    python -m bench.run --only sync        one part only: sync (bench/sync.py), peer (bench/peer.py: PouchDB
                                           side by side), badlink (bench/badlink.py), ui or raw

Prints a table (scenario, median, p95, goal, PASS/FAIL) and writes every figure, with the machine and
package versions, to bench/results/YYYY-MM-DD-HHMM.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

import apsw

from . import badlink, gen, peer, raw, sync
from .timing import Result, run_all

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ["flask", "werkzeug", "jinja2", "flask-wtf", "peewee", "apsw", "cryptography", "orjson",
            "argon2-cffi", "holidays", "zstandard", "requests", "waitress", "psycopg"]


def machine() -> dict:
    """Platform, Python, CPUs (with the model from /proc/cpuinfo when present), memory and load."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "cpu_count": os.cpu_count(),
            "sqlite": apsw.sqlite_lib_version()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(first[1]) / 1024 / 1024, 1)
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def packages() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def verdict(r: Result) -> str:
    if not r.samples:
        return "SKIP"
    if r.passed is None:
        return "ERRORS" if r.errors else "-"
    return "PASS" if r.passed else "FAIL"


def table(results: list[Result]) -> str:
    width = max([len(r.name) for r in results] + [20])
    lines = [f"{'scenario':<{width}}  {'median ms':>9}  {'p95 ms':>8}  {'cpu ms':>7}  {'goal':>6}  result",
             "-" * (width + 50)]
    for r in results:
        goal = f"< {r.goal_ms:.0f}" if r.goal_ms else ""
        if r.samples:
            med, p95, cpu = f"{r.median:9.2f}", f"{r.figure(0.95):8.2f}", f"{statistics.median(r.cpu):7.2f}"
        else:
            med, p95, cpu = f"{'':9}", f"{'':8}", f"{'':7}"
        extra = f"  ({r.errors} unexpected statuses: {dict(r.statuses)})" if r.errors else ""
        extra += f"  [{r.note}]" if r.note else ""
        lines.append(f"{r.name:<{width}}  {med}  {p95}  {cpu}  {goal:>6}  {verdict(r)}{extra}")
    return "\n".join(lines)


def raw_table(figures: dict) -> str:
    labels = {"ed25519_verify": "Ed25519 verify (one core)", "ed25519_sign": "Ed25519 sign (one core)",
              "sha256_450B": "SHA-256 of 450-byte messages",
              "sqlite_insert_rows_1000_per_tx": "SQLite rows inserted, 1,000-row transactions, WAL, sync=FULL"}
    return "\n".join(f"{labels[k]:<62} {v['median_per_s']:>12,}/s  (min {v['min_per_s']:,}, max {v['max_per_s']:,})"
                     for k, v in figures.items())


def results_path(stamp: datetime) -> Path:
    base = RESULTS / stamp.strftime("%Y-%m-%d-%H%M")
    path, n = base.with_suffix(".json"), 2
    while path.exists():
        path, n = Path(f"{base}-{n}.json"), n + 1
    return path


def node_ui(args, n: int, reps: int, info: dict) -> list[Result]:
    """The node UI scenarios on a copy of the cached node with `n` dossiers; records generation in `info`."""
    source, generation = gen.cached_node(n, fresh=args.fresh, progress=lambda s: print(s, flush=True))
    info["generation"] = generation
    how = "cached" if generation.get("cached") else "generated"
    print(f"Node {how}: {generation['dossiers']:,} dossiers and {generation['changes']:,} signed changes in "
          f"{generation['seconds']:,.0f} s ({generation['dossiers_per_s']:,.0f} dossiers/s, "
          f"{generation['changes_per_s']:,.0f} changes/s); folder {generation['folder_bytes'] / 2**20:,.0f} MiB")

    work = gen.WORK / f"run-{os.getpid()}"
    shutil.copytree(source, work)  # the receptions measured below must not change the cache
    from .node_ui import Bench

    try:
        bench = Bench.open(work)
        try:
            reads = bench.ui()
            api = bench.api()
            if not api:
                print("No JSON API in this build: its scenarios are skipped.")
            print(f"Measuring {len(reads) + len(api)} reading scenarios ...", flush=True)
            run_all(reads + api, reps, budget_s=args.budget)
            receptions = bench.ui_receive() + bench.api_receive()
            print(f"Measuring {len(receptions)} reception scenarios ...", flush=True)
            run_all(receptions, reps, budget_s=args.budget)
            results = [p.result for p in reads + api + receptions]
        finally:
            bench.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    print("(median and p95: wall time inside the app; cpu: median CPU time of the same calls, without waits)")
    load = info["machine"].get("load_average_at_start")
    if load and load[0] > (os.cpu_count() or 1):
        print(f"WARNING: the machine was busy (load {load[0]:.1f} on {os.cpu_count()} CPUs): wall times are inflated.")
    info["scenarios"] = [r.summary() for r in results]
    return results


def part_verdict(label: str, rows: list[dict]) -> list[str]:
    """Print how many of a part's goals were met; returns the names of the missed ones."""
    missed = [r["name"].strip() for r in rows if r["passed"] is False]
    goals = sum(r["passed"] is not None for r in rows)
    print(f"{len(missed)} of {goals} {label} goals missed." if missed else f"Every {label} goal met.")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--dossiers", type=int, default=100_000, help="dossiers on the node (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="5,000 dossiers and 50 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per scenario (default 200)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of measured time per scenario at most")
    parser.add_argument("--fresh", action="store_true", help="regenerate the node even if it is cached")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw limits")
    parser.add_argument("--only", choices=["sync", "peer", "badlink", "ui", "raw", "indicators"],
                        help="run one part only")
    parser.add_argument("--indicator-dossiers", type=int, default=1_000_000,
                        help="dossiers on the indicators' hub (default 1,000,000, 150 communes)")
    parser.add_argument("--no-proposals", action="store_true",
                        help="peer and bad link: skip the proposed fixes measured by monkeypatch (bench/patches.py)")
    parser.add_argument("--batch", type=int, default=None,
                        help="bad link only: push batch and pull page size (default: the protocol's 500 / 1,000)")
    parser.add_argument("--sync-runs", type=int, default=None, help="runs per sync scenario (default 3)")
    parser.add_argument("--postgres", default=os.environ.get("MOTCUA_TEST_POSTGRES_URL") or None,
                        help="PostgreSQL URL for the hub ingest scenarios (default $MOTCUA_TEST_POSTGRES_URL)")
    parser.add_argument("--no-save", action="store_true", help="print only, write no JSON file")
    args = parser.parse_args(argv)
    n = 5_000 if args.quick else args.dossiers
    reps = args.reps or (50 if args.quick else 200)
    if not 1 <= n <= 2_000_000 or not 1 <= reps <= 100_000:
        parser.error("--dossiers must be 1..2,000,000 and --reps 1..100,000")
    parts = {args.only} if args.only else {"ui", "raw", "sync", "peer", "badlink", "indicators"}
    if args.no_raw:
        parts.discard("raw")
    sync_runs = args.sync_runs or (2 if args.quick else 3)
    if not 1 <= sync_runs <= 20:
        parser.error("--sync-runs must be 1..20")
    if args.batch is not None and not 10 <= args.batch <= 10_000:
        parser.error("--batch must be 10..10,000")
    started = datetime.now()
    info = {"when": started.isoformat(timespec="seconds"), "machine": machine(), "packages": packages(),
            "parts": sorted(parts)}
    print(f"motcua bench ({', '.join(sorted(parts))}); {info['machine'].get('cpu_model', '?')}, "
          f"{info['machine']['cpu_count']} CPUs, load {info['machine'].get('load_average_at_start')}")
    t0 = time.perf_counter()
    results: list[Result] = []
    if "ui" in parts:
        info.update(dossiers=n, repetitions=reps, generator_version=gen.VERSION)
        results = node_ui(args, n, reps, info)
    if "raw" in parts:
        print("\nRaw limits (per second):", flush=True)
        info["raw"] = raw.measure(quick=args.quick, folder=gen.WORK)
        print(raw_table(info["raw"]))
    sync_failed: list[str] = []
    if "sync" in parts:
        print(f"\nSync: {sync_runs} runs per scenario, fresh hub each run"
              f"{', PostgreSQL too' if args.postgres else ' (no PostgreSQL URL: SQLite only)'} ...", flush=True)
        info["sync"] = sync.measure(gen.WORK, runs=sync_runs, postgres=args.postgres, quick=args.quick,
                                    progress=lambda s: print(s, flush=True))
        print()
        print(sync.table(info["sync"]["scenarios"]))
        sync_failed = [r["name"].strip() for r in info["sync"]["scenarios"] if r["passed"] is False]
        goals = sum(r["passed"] is not None for r in info["sync"]["scenarios"])
        load = info["machine"].get("load_average_at_start")
        if load and load[0] > (os.cpu_count() or 1):
            print(f"WARNING: the machine was busy (load {load[0]:.1f} on {os.cpu_count()} CPUs).")
        print(f"{len(sync_failed)} of {goals} sync goals missed." if sync_failed else "Every sync goal met.")
    if "peer" in parts:
        print(f"\nThe peer, side by side: {sync_runs} runs each ...", flush=True)
        try:
            info["peer"] = peer.measure(gen.WORK, runs=sync_runs, quick=args.quick,
                                        motcua=info.get("sync", {}).get("end_to_end"),
                                        proposals=not args.no_proposals,
                                        progress=lambda s: print(s, flush=True))
        except peer.PeerUnavailable as exc:
            print(f"SKIPPED: {exc}")
            info["peer"] = {"skipped": str(exc)}
        else:
            print()
            print(sync.table(info["peer"]["scenarios"]))
            sync_failed += part_verdict("peer", info["peer"]["scenarios"])
    if "badlink" in parts:
        print(f"\nBad link: {sync_runs} runs ...", flush=True)
        info["badlink"] = badlink.measure(gen.WORK, runs=sync_runs, quick=args.quick, batch=args.batch,
                                          proposals=not args.no_proposals,
                                          progress=lambda s: print(s, flush=True))
        print()
        print(sync.table(info["badlink"]["scenarios"]))
        sync_failed += part_verdict("bad link", info["badlink"]["scenarios"])
    if "indicators" in parts:
        from . import indicators as indicator_bench

        dossiers = 20_000 if args.quick else args.indicator_dossiers
        print(f"\nIndicators: a hub of 150 communes and {dossiers:,} dossiers ...", flush=True)
        info["indicators"] = {}
        for backend in ["sqlite"] + (["postgresql"] if args.postgres else []):
            out = indicator_bench.measure(dossiers, runs=5, progress=lambda s: print(s, flush=True),
                                          postgres=args.postgres if backend == "postgresql" else None)
            info["indicators"][backend] = out
            print(f"{backend}:")
            print(indicator_bench.table(out["scenarios"]))
            sync_failed += [f"indicators ({backend}): {s['label']}" for s in out["scenarios"] if s["passed"] is False]
    if hasattr(os, "getloadavg"):
        info["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["seconds"] = round(time.perf_counter() - t0, 1)
    failed = [r.name for r in results if r.passed is False] + sync_failed
    info["failed"] = failed
    goals = sum(r.goal_ms is not None for r in results) + sum(
        r["passed"] is not None for part in ("sync", "peer", "badlink")
        for r in info.get(part, {}).get("scenarios", [])) + sum(
        s["passed"] is not None for out in info.get("indicators", {}).values() for s in out["scenarios"])
    print(f"\n{len(failed)} of {goals} goals missed." if failed else
          "\nEvery goal met." if goals else "\nNo goal was measured.")
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        path = results_path(started)
        path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"Figures written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
