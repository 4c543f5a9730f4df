"""The indicators give the same figures on every hub backend: a random data set full of edge cases (same-day
finishes before and after the appointment time, apologies, procedure versions whose online levels differ,
versions the hub does not hold) counted on SQLite and, when MOTCUA_TEST_POSTGRES_URL is set, on PostgreSQL,
where the received figures come from a query grouped by procedure."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from datetime import date, datetime, timedelta

import pytest

from central.storage import open_storage
from central.storage.testing import postgres_schema
from node import catalogue, indicators as ind
from node import workflow as wf
from node.sync.state import Dossier, Procedure

POSTGRES_URL = os.environ.get("MOTCUA_TEST_POSTGRES_URL", "")
UNITS = ["000.00.19.H55", "000.00.21.H55", "000.00.23.H55"]
NOW = datetime(2026, 4, 10, 10, 0)
PERIOD = ind.Period(date(2026, 3, 1), date(2026, 3, 31))
SPAN = ind.Period(date(2026, 1, 1), date(2026, 4, 10))
# A code with two held versions of different levels (1 partial, 2 none), one held only as version 1 (full),
# one the hub does not hold at all (the seed's level counts) and one with no online service.
VERSIONED, FULL, UNHELD, NONE = "9.000001", "9.000002", "2.000815", "2.000884"


def _text(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def dataset(seed: int = 766, n: int = 900) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        received = datetime(2026, 2, 20, 7) + timedelta(minutes=rng.randrange(0, 50 * 24 * 60))
        code, version = rng.choice([(VERSIONED, 1), (VERSIONED, 2), (VERSIONED, 3), (FULL, 1), (FULL, 2),
                                    (UNHELD, 1), (NONE, 1)])
        status = rng.choice([wf.NEW, wf.ACCEPTED, wf.REFUSED, wf.PROCESSING, wf.SUPPLEMENT, wf.PAYMENT, wf.WITHDRAWN,
                             wf.STOPPED, wf.READY, wf.RETURNED, wf.RETURNED, wf.READY])
        appointment = received + timedelta(days=rng.randrange(0, 8), hours=rng.randrange(-3, 4))
        row = dict(id=f"D{i:06d}", code=f"C{i:06d}", unit_code=rng.choice(UNITS), procedure_code=code,
                   procedure_version=version, channel=rng.choice([1, 2, 2, 3]), status=status,
                   applicant_name="Nguyễn Thị Hương", received_at=_text(received),
                   appointment_at="" if rng.random() < 0.08 else _text(appointment),
                   fee_amount=rng.choice([0, 0, 4000, 15000]), paid_online=rng.choice([0, 1]),
                   result_digitised=rng.choice([0, 1]), rating="",
                   doc_total=0, doc_digitised=0, doc_reused=0)
        total = rng.randrange(0, 4)
        digitised = rng.randrange(0, total + 1)
        row.update(doc_total=total, doc_digitised=digitised, doc_reused=rng.randrange(0, digitised + 1))
        if status in wf.FINISHED:
            # around the appointment: hours before or after, often the same day on either side of its time
            finished = appointment + timedelta(minutes=rng.choice([-3000, -600, -30, 30, 600, 3000]))
            row.update(finished_at=_text(finished), rating=rng.choice(["", "very_satisfied", "satisfied",
                                                                       "not_satisfied"]))
            if rng.random() < 0.1:
                row.update(original_appointment_at=_text(appointment - timedelta(days=1)),
                           apology_at=_text(appointment - timedelta(days=2)))
        rows.append(row)
    return rows


def figures_on(url: str) -> dict:
    """Every figure for the period, the span and one unit, on the hub database at `url`."""
    storage = open_storage(url)
    try:
        storage.create_schema()
        with storage.db.atomic():
            seed = {p["code"]: p for p in catalogue.SEED_PROCEDURES}
            base = dict(seed[NONE], fee_rule=json.dumps(seed[NONE]["fee_rule"]),
                        documents=json.dumps(seed[NONE]["documents"]), effective_from="2024-01-01")
            for code, version, level in ((VERSIONED, 1, "partial"), (VERSIONED, 2, "none"), (FULL, 1, "full"),
                                         (NONE, 1, "none")):
                Procedure.insert(dict(base, code=code, version=version, online_level=level)).execute()
            for row in dataset():
                Dossier.insert(row).execute()
        out = {}
        for name, period, units, parallel in (("march", PERIOD, UNITS, False), ("span", SPAN, None, True),
                                              ("one", PERIOD, UNITS[:1], False)):
            report = ind.compute(period, units, NOW, names={}, parallel=parallel)
            out[name] = {r.unit_code: dataclasses.asdict(r.figures) for r in report.rows}
            out[name]["total"] = dataclasses.asdict(report.total)
        ctx = ind._Ctx(NOW)
        out["plain_received"] = sorted(ind._anchor_query("received", PERIOD, UNITS, ctx).tuples())
        out["grouped_received"] = sorted(ind._received_by_procedure(PERIOD, UNITS, ctx))
        return out
    finally:
        storage.close()


def by_hand(rows: list[dict], period: ind.Period) -> dict[str, tuple[int, int, int]]:
    """finished, early, not late per unit, from the definitions (days compared as dates)."""
    out: dict[str, list[int]] = {}
    for r in rows:
        if r["status"] not in wf.FINISHED or not r["appointment_at"]:
            continue
        if not period.lo <= r["finished_at"] < period.hi:
            continue
        f = out.setdefault(r["unit_code"], [0, 0, 0])
        done, due = r["finished_at"][:10], r["appointment_at"][:10]
        apology = bool(r.get("original_appointment_at"))
        f[0] += 1
        f[1] += not apology and done < due
        f[2] += not apology and done <= due
    return {u: tuple(v) for u, v in out.items()}


@pytest.fixture(scope="module")
def sqlite_figures(tmp_path_factory) -> dict:
    return figures_on(f"sqlite:///{tmp_path_factory.mktemp('hubdb') / 'hub.db'}")


def test_sqlite_figures_follow_the_definitions(sqlite_figures):
    march = sqlite_figures["march"]
    expected = by_hand(dataset(), PERIOD)
    assert expected and sum(v[0] for v in expected.values()) > 100
    for unit, (finished, early, not_late) in expected.items():
        f = march[unit]
        assert (f["finished"], f["early"], f["early"] + f["on_time"]) == (finished, early, not_late)
    assert march["total"]["partial_eligible"] and march["total"]["full_eligible"] and march["total"]["online"]


def test_grouped_received_query_matches_the_plain_one(sqlite_figures):
    assert sqlite_figures["grouped_received"] == sqlite_figures["plain_received"]


@pytest.mark.skipif(not POSTGRES_URL, reason="MOTCUA_TEST_POSTGRES_URL is not set")
def test_postgresql_gives_the_same_figures(sqlite_figures):
    with postgres_schema(POSTGRES_URL) as url:
        pg = figures_on(url)
    assert pg["plain_received"] == sqlite_figures["plain_received"]
    assert pg["grouped_received"] == pg["plain_received"]
    for name in ("march", "span", "one"):
        assert pg[name] == sqlite_figures[name], name



@pytest.mark.skipif(not POSTGRES_URL, reason="MOTCUA_TEST_POSTGRES_URL is not set")
def test_postgresql_hub_has_autovacuum_keep_the_dossier_table_visible():
    """Opening the hub sets the dossier table's autovacuum thresholds once (index-only scans need a fresh
    visibility map); opening it again writes nothing."""
    with postgres_schema(POSTGRES_URL) as url:
        storage = open_storage(url)
        try:
            storage.create_schema()
            query = "SELECT reloptions, xmin::text FROM pg_class WHERE oid = '\"dossier\"'::regclass"
            options, version = storage.db.execute_sql(query).fetchone()
            assert {f"{k}={v}" for k, v in ind.AUTOVACUUM.items()} <= set(options)
            storage.create_schema()
            assert storage.db.execute_sql(query).fetchone() == (options, version)
        finally:
            storage.close()


@pytest.mark.skipif(not POSTGRES_URL, reason="MOTCUA_TEST_POSTGRES_URL is not set")
def test_postgresql_queries_use_the_partial_indexes():
    """An older hub's portable received and finished indexes are replaced by the partial ones on opening,
    and the dashboard's queries, with their bound parameters, match those indexes' WHERE."""
    old_received = "dossier_ind_" + "_".join(c[:4] for c in ind.RECOMMENDED_INDEXES["dossier"][0][0])
    with postgres_schema(POSTGRES_URL) as url:
        storage = open_storage(url)
        try:
            db = storage.db
            storage.create_schema()
            db.execute_sql(f'CREATE INDEX "{old_received}" ON "dossier" (unit_code, received_at, id)')
            storage.create_schema()  # what opening the hub does
            names = {r[0] for r in db.execute_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'dossier' "
                                               "AND schemaname = current_schema()")}
            assert {"dossier_pg_received", "dossier_pg_finished"} <= names
            assert not any(n.startswith(("dossier_ind_unit_rece", "dossier_ind_unit_fini")) for n in names)
            ctx = ind._Ctx(NOW)
            for anchor, index in (("received", "dossier_pg_received"), ("finished", "dossier_pg_finished")):
                with db.atomic() as txn:  # only that index left, and no table scan: it is used if it matches
                    for name in names - {index}:
                        if not name.endswith("_pkey"):
                            db.execute_sql(f'DROP INDEX "{name}"')
                    db.execute_sql("SET LOCAL enable_seqscan = off")
                    sql, params = ind._anchor_query(anchor, PERIOD, UNITS, ctx).sql()
                    plan = "\n".join(r[0] for r in db.execute_sql("EXPLAIN " + sql, params))
                    txn.rollback()
                assert index in plan, plan
        finally:
            storage.close()
