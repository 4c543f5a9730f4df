"""Indicator benchmarks (issue 6): the province dashboard over 150 communes and 1,000,000 dossiers.

    python -m bench.indicators                      1,000,000 dossiers (built once, cached in bench/work/)
    python -m bench.indicators --dossiers 200000    a quicker run
    python -m bench.indicators --fresh              rebuild the hub database

`build(path, dossiers)` makes a real hub folder (`central.instance.init_hub`) and fills its SQLite database
by direct bulk insert (no signed changes: this measures the read side only): 150 enrolled communes, the
seed catalogue, N dossiers received over 24 months before NOW with a realistic spread of channels, fees,
outcomes (early, on time, late, apology, withdrawn, refused, stopped, still running, overdue), ratings and
documents with their digitisation marks. The secondary indexes are dropped during the insert and created
again afterwards, with the extra indexes of `node.indicators.RECOMMENDED_INDEXES` (see its docstring).

`measure(...)` opens the hub as the server does (`central.instance.Hub`: apsw, the hub's pragmas) and times
`node.indicators.compute` for the province for a year, the province for the whole 24 months (every
dossier), and one commune for a year; the median of several runs, server time, as in bench/timing.py.
With `--postgres URL` the same rows are copied once into a PostgreSQL schema (kept between runs) and, before
each measurement, put in the state of a living hub just before its next autovacuum (`between_autovacuums`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from collections.abc import Callable

VERSION = "i2"  # bump when what the database holds changes: the cache is keyed by it
WORK = Path(__file__).resolve().parent / "work"
COMMUNES = 150
NOW = datetime(2026, 12, 15, 10, 0)  # "now" of the measured hub: a Tuesday
START = date(2025, 1, 2)  # 24 months of dossiers before NOW
YEAR = (date(2026, 1, 1), date(2026, 12, 31))
SPAN = (START, NOW.date())
GOALS = {"province_year_parallel": 1000.0, "commune_year": 200.0}  # the dashboard's own path (parallel=True)
PASSWORD = "bench-hub-mat-khau-2026"
# procedure code -> weight at a real desk (certified copies a third of all)
WEIGHTS = {"2.000815": 33, "1.001193": 10, "1.000656": 3, "1.000894": 5, "2.000635": 8, "1.004873": 8,
           "2.000884": 12, "1.004222": 6, "1.004194": 8, "2.000986": 4, "2.002622": 2, "1.001731": 1}
DIGITISED = (("digitised", 55), ("none", 30), ("reused_document", 10), ("reused_result", 5))
RATINGS = (("very_satisfied", 60), ("satisfied", 35), ("not_satisfied", 5))


def unit_code(i: int) -> str:
    return f"000.{20 + i // 30:02d}.{i % 30 + 10:02d}.H55"


def _text(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


class _Days:
    """Working days (Mon-Fri; the bench ignores holidays) between START and NOW, and working-day arithmetic."""

    def __init__(self):
        self.days = []
        d = START
        while d <= NOW.date():
            if d.weekday() < 5:
                self.days.append(d)
            d += timedelta(days=1)
        self.index = {d: i for i, d in enumerate(self.days)}

    def add(self, d: date, n: int) -> date:
        i = self.index.get(d)
        if i is None:
            while d.weekday() >= 5:
                d += timedelta(days=1)
            return self.add(d, n) if d in self.index else d + timedelta(days=n)
        j = i + n
        if j < len(self.days):
            return self.days[j]
        return self.days[-1] + timedelta(days=(j - len(self.days) + 1) * 7 // 5 + 1)


def _defaults(model) -> dict[str, Any]:
    """Every column of `model` with its declared default (the models change: insert by name, fill the rest)."""
    out = {}
    for f in model._meta.sorted_fields:
        if f.field_type == "AUTO":
            continue
        default = f.default() if callable(f.default) else f.default
        if default is None and not f.null:
            default = 0 if f.field_type in ("INT", "BIGINT", "SMALLINT") else ""
        out[f.column_name] = default
    return out


def _insert(cur, model, rows: list[dict[str, Any]]) -> None:
    base = _defaults(model)
    columns = list(base)
    sql = (f'INSERT INTO "{model._meta.table_name}" ({", ".join(columns)}) '
           f'VALUES ({", ".join("?" * len(columns))})')
    cur.executemany(sql, [tuple(r.get(c, base[c]) for c in columns) for r in rows])


def _pick(rng: random.Random, table) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def _dossier_rows(n: int, rng: random.Random, offset: int, counters: dict, cal: "_Days",
                  procs: dict[str, dict]) -> tuple[list, list]:
    """N dossier rows and their document rows (dicts by column), in receipt order; `offset` numbers the ids
    and `counters` (per unit and day) the codes across calls."""
    from node.sync.state import Dossier

    days = cal.days
    # Busier communes receive more: weights 1..3.
    unit_weights = [1 + (i * 7919 % 3) for i in range(COMMUNES)]
    units = rng.choices(range(COMMUNES), unit_weights, k=n)
    codes_w = list(WEIGHTS)
    proc_pick = rng.choices(codes_w, [WEIGHTS[c] for c in codes_w], k=n)
    received_days = sorted(rng.choices(range(len(days)), k=n))
    now_text = _text(NOW)
    dossiers, documents = [], []
    defaults = _defaults(Dossier) | {
                "step": "result", "applicant_birth_date": "1980-05-17", "applicant_address": "Xóm Chợ",
                "applicant_phone": "0912345678", "applicant_email": "", "owner_name": "", "sets": 1,
                "return_method": "desk", "received_by": "U1", "original_appointment_at": "", "apology_at": "",
                "apology_reason": "", "handler_id": "", "step_deadline": "", "paused_at": "",
                "paused_minutes_left": 0, "fee_paid": 0, "paid_online": 0, "transferred_at": "", "result_at": "",
                "finished_at": "", "returned_at": "", "rating": "", "rating_reason": "", "reason": "",
                "supplement_items": "[]", "result_digitised": 0, "updated_hlc": ""}
    for i in range(n):
        u, code = units[i], proc_pick[i]
        proc = procs[code]
        day = days[received_days[i]]
        received = datetime.combine(day, datetime.min.time()) + timedelta(
            minutes=rng.choice((7 * 60 + rng.randrange(270), 13 * 60 + 30 + rng.randrange(210))))
        if received > NOW:
            received = NOW - timedelta(minutes=1 + rng.randrange(120))
        unit = unit_code(u)
        key = (u, received.date())
        counters[key] = counters.get(key, 0) + 1
        row = dict(defaults)
        online_ok = proc["online_level"] != "none"
        r = rng.random()
        channel = 2 if online_ok and r < 0.3 else (3 if r > 0.98 else 1)
        span = proc["time_value"] if proc["time_kind"] == "working_days" else 0
        due_day = cal.add(received.date(), span)
        due = datetime.combine(due_day, received.time()) if span else datetime.combine(due_day,
                                                                                        datetime.min.time()).replace(hour=17)
        fee = proc["fee"]
        ms = int(received.timestamp() * 1000)
        did = f"{ms:013d}{offset + i:013d}"
        row.update(id=did, code=f"{unit}-{received:%y%m%d}-{counters[key]:04d}", unit_code=unit,
                   procedure_code=code, procedure_version=1, channel=channel,
                   applicant_name=f"Nguyễn Văn {i % 997}", applicant_folded=f"nguyen van {i % 997}",
                   applicant_id_number=f"0{rng.randrange(10**10, 10**11)}", matter=proc["name_vi"],
                   received_at=_text(received), appointment_at=_text(due), fee_amount=fee)
        fate = rng.random()
        age_days = (NOW - received).days
        if channel == 2 and fate < 0.02:
            row.update(status=3, step="closed", appointment_at="", reason="Hồ sơ không đúng thủ tục")
        elif fate < 0.03:
            end = received + timedelta(days=rng.randrange(0, 3), hours=1)
            if end < NOW:
                row.update(status=7, step="closed", finished_at=_text(end), reason="Rút theo đề nghị")
            else:
                row.update(status=4, step="processing")
        elif fate < 0.04:
            row.update(status=8, step="closed", reason="Không đủ điều kiện")
        elif due > NOW - timedelta(days=rng.choice((0, 1, 2))) or fate > 0.997:
            # Still running: recent ones, and a few forgotten (overdue) old ones.
            row.update(status=rng.choice((2, 4, 4, 4, 5, 6)), step="processing")
            if row["status"] == 5:
                row.update(paused_at=_text(received + timedelta(hours=2)))
            if fate > 0.997 and rng.random() < 0.3:
                row.update(apology_at=_text(due - timedelta(days=1)), original_appointment_at=row["appointment_at"],
                           apology_reason="Chờ xác minh")
        else:
            late = fate > 0.95
            if fate > 0.985 and age_days > 20:  # an apology and a new date, then finished by the new one
                new_due = due + timedelta(days=3)
                row.update(original_appointment_at=_text(due), apology_at=_text(due - timedelta(days=1)),
                           apology_reason="Chờ xác minh", appointment_at=_text(new_due))
                finished = new_due - timedelta(hours=2)
            elif late:
                finished = due + timedelta(days=rng.randrange(1, 6))
            elif rng.random() < 0.4 or span == 0:
                finished = due.replace(hour=min(due.hour, 16)) - timedelta(minutes=rng.randrange(0, 120))
                if finished < received:
                    finished = received + timedelta(minutes=30)
            else:
                finished = received + timedelta(days=rng.randrange(0, max(1, span)), hours=1)
            if finished > NOW:
                finished = NOW - timedelta(minutes=5)
            row.update(status=9, step="result", result_at=_text(finished), finished_at=_text(finished),
                       result_digitised=1 if rng.random() < 0.6 else 0, fee_paid=1 if fee else 0)
            if fee and (channel == 2 and rng.random() < 0.5 or rng.random() < 0.05):
                row["paid_online"] = 1
            back = finished + timedelta(days=rng.randrange(0, 4), minutes=30)
            if back < NOW and rng.random() < 0.95:
                row.update(status=10, step="returned", returned_at=_text(back), rating=_pick(rng, RATINGS))
                if row["rating"] == "not_satisfied":
                    row["rating_reason"] = "Chờ lâu"
        if row["status"] != 3:
            for k in range(proc["documents"]):
                documents.append({"id": f"{did}{k}", "dossier_id": did, "position": k, "name": f"Giấy tờ {k + 1}",
                                  "copy_kind": "photocopy", "count": 1, "digitised": _pick(rng, DIGITISED)})
        row["updated_hlc"] = now_text
        dossiers.append(row)
    return dossiers, documents


def build(path: Path, dossiers: int = 1_000_000, seed: int = 6, progress: Callable[[str], None] = print) -> dict:
    """Make a hub folder at `path` with 150 communes and `dossiers` dossiers; returns what was built."""
    import apsw

    from central.instance import init_hub
    from node import catalogue, indicators
    from node.sync.state import Dossier, DossierDocument, NodeRecord, Procedure

    t0 = time.perf_counter()
    if path.exists():
        shutil.rmtree(path)
    init_hub(path, "Trung tâm tỉnh Thái Nguyên (bench)", "admin", PASSWORD)
    db = apsw.Connection(str(path / "hub.db"))
    cur = db.cursor()
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000"):
        cur.execute(f"PRAGMA {pragma}").fetchall()
    procs = {}
    with db:
        for p in catalogue.SEED_PROCEDURES:
            fee = {"fixed": p["fee_rule"].get("amount", 0), "per_copy": p["fee_rule"].get("amount", 0),
                   "per_page": 4000}.get(p["fee_rule"].get("kind"), 0)
            procs[p["code"]] = {"online_level": p["online_level"], "time_kind": p["time_kind"],
                                "time_value": p["time_value"], "fee": fee, "name_vi": p["name_vi"],
                                "documents": len(p["documents"])}
            _insert(cur, Procedure, [dict(p, version=1, effective_from="2024-01-01", fee_rule=json.dumps(p["fee_rule"]),
                                          documents=json.dumps(p["documents"]))])
        _insert(cur, NodeRecord, [{"node_id": f"N{i:05d}", "public_key": "x" * 44, "kind": "commune",
                                   "unit_code": unit_code(i), "unit_name": f"UBND xã Số {i + 1}", "scope": unit_code(i),
                                   "status": "active", "enrolled_at": "2025-01-01 08:00:00"} for i in range(COMMUNES)])
    tables = (Dossier._meta.table_name, DossierDocument._meta.table_name)
    marks = ",".join("?" * len(tables))
    found = list(db.cursor().execute(f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                                     f"AND tbl_name IN ({marks})", tables))
    ddl = [sql for _name, sql in found]
    for name, _sql in found:
        cur.execute(f'DROP INDEX "{name}"')
    chunk, done, total_docs = 100_000, 0, 0
    rng, counters, cal = random.Random(seed), {}, _Days()
    while done < dossiers:
        n = min(chunk, dossiers - done)
        rows, docs = _dossier_rows(n, rng, done, counters, cal, procs)
        counts: dict[str, list[int]] = {}  # the per-dossier document counters the merge keeps on a real hub
        for doc in docs:
            c = counts.setdefault(doc["dossier_id"], [0, 0, 0])
            mark = doc.get("digitised", "none")
            c[0], c[1], c[2] = c[0] + 1, c[1] + (mark != "none"), c[2] + (mark in indicators.REUSED)
        for row in rows:
            row["doc_total"], row["doc_digitised"], row["doc_reused"] = counts.get(row["id"], (0, 0, 0))
        with db:
            _insert(cur, Dossier, rows)
            _insert(cur, DossierDocument, docs)
        done += n
        total_docs += len(docs)
        progress(f"  {done:,} dossiers, {total_docs:,} documents inserted ({time.perf_counter() - t0:,.0f} s)")
    progress("  creating indexes ...")
    for sql in ddl:
        cur.execute(sql)
    for sql in indicators.index_sql(db_kind="sqlite"):
        cur.execute(sql)
    db.close()
    seconds = time.perf_counter() - t0
    info = {"dossiers": dossiers, "documents": total_docs, "communes": COMMUNES, "seconds": round(seconds, 1),
            "bytes": (path / "hub.db").stat().st_size, "version": VERSION}
    (path / "bench.json").write_text(json.dumps(info), encoding="utf-8")
    return info


def cached(dossiers: int, fresh: bool = False, progress: Callable[[str], None] = print) -> tuple[Path, dict]:
    """The hub folder for `dossiers`, built unless cached (bench/work/hub-indicators-N-VERSION)."""
    target = WORK / f"hub-indicators-{dossiers}-{VERSION}"
    marker = target / "bench.json"
    if marker.exists() and not fresh:
        return target, dict(json.loads(marker.read_text(encoding="utf-8")), cached=True)
    WORK.mkdir(parents=True, exist_ok=True)
    partial = WORK / f"hub-indicators-{dossiers}-{VERSION}.partial"
    info = build(partial, dossiers, progress=progress)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target, dict(info, cached=False)


def _time(fn: Callable[[], Any], runs: int) -> dict:
    fn()  # warm-up: the first call reads the pages from disk
    samples, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"median_ms": round(statistics.median(samples), 2), "min_ms": round(min(samples), 2),
            "max_ms": round(max(samples), 2), "cpu_median_ms": round(statistics.median(cpu), 2), "runs": runs}


COPIED_TABLES = ("procedure", "node_record", "dossier", "dossier_document")


def postgres_copy(path: Path, base_url: str, progress: Callable[[str], None] = print) -> str:
    """The same hub in a PostgreSQL schema (kept between runs, keyed by the SQLite build): the hub's own
    schema (tables and the indicators' indexes, by `create_schema`), the rows copied from the SQLite file
    with COPY. Returns a URL whose search_path is that schema."""
    import apsw
    import psycopg
    from psycopg import sql

    from central.storage import open_storage

    name = f"motcua_bench_{path.name.replace('-', '_')}"
    sep = "&" if "?" in base_url else "?"
    url = f"{base_url}{sep}options=-csearch_path%3D{name}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        done = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                            (name, "bench_copied")).fetchone()
        if done:
            return url
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    storage = open_storage(url)
    storage.create_schema()
    storage.close()
    src = apsw.Connection(str(path / "hub.db"))
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        for table in COPIED_TABLES:
            cols = [r[1] for r in src.cursor().execute(f'PRAGMA table_info("{table}")')]
            names = ", ".join(f'"{c}"' for c in cols)
            with conn.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as out:
                for row in src.cursor().execute(f'SELECT {names} FROM "{table}"'):
                    out.write_row(row)
            progress(f"  copied {table} to PostgreSQL ({time.perf_counter() - t0:,.0f} s)")
    src.close()
    with psycopg.connect(url, autocommit=True) as conn:
        # What autovacuum does on a living hub: statistics, and the visibility map that index-only scans need.
        conn.execute("VACUUM ANALYZE")
        conn.execute("CREATE TABLE bench_copied (at TEXT)")
    return url


def between_autovacuums(url: str) -> dict:
    """The PostgreSQL copy at the worst moment of a living hub under the hub's autovacuum settings
    (`node.indicators.AUTOVACUUM`): VACUUM ANALYZE, as autovacuum has just done, then as many running
    dossiers updated as the threshold that brings the next autovacuum (their pages then lose their
    visibility-map bit: index-only scans visit the table for every row on them). The updates change no
    value, so the figures stay the same; run before every measurement, so runs do not pile up changes."""
    import psycopg

    from node.indicators import AUTOVACUUM

    changed = int(AUTOVACUUM["autovacuum_vacuum_threshold"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('VACUUM (ANALYZE) "dossier"')
        done = conn.execute('UPDATE "dossier" SET updated_hlc = updated_hlc WHERE id IN (SELECT id FROM "dossier" '
                            'WHERE status IN (2, 4, 5, 6) ORDER BY md5(id) LIMIT %s)', (changed,)).rowcount
    return {"vacuumed": True, "rows_changed_since": done}


def measure(dossiers: int = 1_000_000, runs: int = 7, fresh: bool = False,
            progress: Callable[[str], None] = print, postgres: str | None = None) -> dict:
    """Build (or reuse) the hub and time the dashboard's figures; returns {"build", "scenarios"}. With
    `postgres` (a base URL), the same hub copied into PostgreSQL is measured instead."""
    from central.instance import Hub
    from node import indicators

    path, build_info = cached(dossiers, fresh=fresh, progress=progress)
    url = postgres_copy(path, postgres, progress) if postgres else None
    if url:  # brings the schema to this version's first (indexes), as opening the hub does
        from central.storage import open_storage

        storage = open_storage(url)
        try:
            storage.create_schema()
        finally:
            storage.close()
    table_state = between_autovacuums(url) if url else None
    hub = Hub(path, database_url=url, now=lambda: NOW)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    try:
        hub.storage.connect()
        communes = indicators.commune_units()
        one = [unit_code(7)]
        year = indicators.Period(*YEAR)
        span = indicators.Period(*SPAN)
        plans = [
            ("province_year", "province, one year, one query at a time",
             lambda: indicators.compute(year, communes, NOW)),
            ("province_year_parallel", "province dashboard, one year (150 communes)",
             lambda: indicators.compute(year, communes, NOW, parallel=True)),
            ("province_all", "province, 24 months (every dossier)", lambda: indicators.compute(span, communes, NOW)),
            ("commune_year", "one commune, one year", lambda: indicators.compute(year, one, NOW)),
            ("drill_province", "drill-down: late, province, first page",
             lambda: indicators.dossiers_behind("late", year, communes, NOW)),
            ("watch_province", "overdue watch, province, first page", lambda: indicators.watch(communes, NOW)),
        ]
        scenarios = []
        report = indicators.compute(year, communes, NOW)
        for key, label, fn in plans:
            figures = _time(fn, runs)
            goal = GOALS.get(key)
            scenarios.append(dict(figures, name=key, label=label, goal_ms=goal,
                                  passed=None if goal is None else figures["median_ms"] < goal))
            progress(f"  {label}: median {figures['median_ms']:,.1f} ms")
        totals = report.total
        sample = {"received_year": totals.received, "finished_year": totals.finished,
                  "on_time_rate": round(totals.on_time_rate, 4), "score": round(totals.score_total, 2)}
    finally:
        hub.close()
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"build": build_info, "scenarios": scenarios, "sample": sample,
            "backend": "postgresql" if postgres else "sqlite", "table_state": table_state,
            "load_average": {"start": load_start, "end": load_end, "cpus": os.cpu_count()}}


def table(scenarios: list[dict]) -> str:
    lines = [f"{'scenario':<46}  {'median ms':>9}  {'min':>8}  {'max':>8}  {'cpu ms':>8}  {'goal':>7}  result",
             "-" * 104]
    for s in scenarios:
        goal = f"< {s['goal_ms']:.0f}" if s["goal_ms"] else ""
        verdict = "-" if s["passed"] is None else ("PASS" if s["passed"] else "FAIL")
        lines.append(f"{s['label']:<46}  {s['median_ms']:9.1f}  {s['min_ms']:8.1f}  {s['max_ms']:8.1f}  "
                     f"{s['cpu_median_ms']:8.1f}  {goal:>7}  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.indicators", description=__doc__.split("\n")[0])
    parser.add_argument("--dossiers", type=int, default=1_000_000, help="dossiers on the hub (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per scenario (median reported)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the hub database even if cached")
    parser.add_argument("--postgres", default=None, help="PostgreSQL base URL: measure the same hub copied there")
    args = parser.parse_args(argv)
    if not 1_000 <= args.dossiers <= 3_000_000 or not 1 <= args.runs <= 100:
        parser.error("--dossiers must be 1,000..3,000,000 and --runs 1..100")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = measure(args.dossiers, runs=args.runs, fresh=args.fresh, progress=lambda s: print(s, flush=True),
                  postgres=args.postgres)
    print(f"backend: {out['backend']}")
    b = out["build"]
    how = "cached" if b.get("cached") else "built"
    print(f"Hub {how}: {b['dossiers']:,} dossiers, {b['documents']:,} documents, {b['communes']} communes, "
          f"{b['bytes'] / 2**20:,.0f} MiB, built in {b['seconds']:,.0f} s")
    print(table(out["scenarios"]))
    if out.get("table_state"):
        print(f"(PostgreSQL table as between two autovacuum runs: vacuumed, then "
              f"{out['table_state']['rows_changed_since']:,} running dossiers updated)")
    if load is not None:
        print(f"(load average at start {load[0]:.1f} on {os.cpu_count()} CPUs; cpu ms: this process's CPU time)")
    print(f"(year 2026: {out['sample']['received_year']:,} dossiers received, {out['sample']['finished_year']:,} "
          f"finished, on-time {out['sample']['on_time_rate']:.1%}, score {out['sample']['score']}/82)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
