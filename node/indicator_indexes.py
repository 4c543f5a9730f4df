"""The indicator pages' covering indexes (node/indicators.py reads through them) and, on PostgreSQL, the
partial indexes that replace two of them and the dossier table's autovacuum settings. `index_sql()` is run
when a hub opens (`central.storage.sql.SQLStorage.create_schema`) and by the bench."""

from __future__ import annotations

from . import workflow as wf
from .sync.state import Dossier as D


def _on_postgres() -> bool:
    from peewee import PostgresqlDatabase

    db = D._meta.database
    return isinstance(getattr(db, "obj", db), PostgresqlDatabase)


# Covering indexes for the hub's dashboard (peewee `Meta.indexes` tuples), named in the README.
RECOMMENDED_INDEXES = {
    "dossier": [
        (("unit_code", "received_at", "status", "appointment_at", "procedure_code", "procedure_version", "channel",
          "fee_amount", "paid_online", "doc_total", "doc_digitised", "doc_reused", "id"), False),
        (("unit_code", "finished_at", "status", "appointment_at", "original_appointment_at", "result_digitised",
          "rating"), False),
        (("unit_code", "status", "appointment_at", "received_at", "apology_at"), False),
    ],
    "dossier_document": [(("dossier_id", "digitised"), False)],
}
# On PostgreSQL the received and finished indexes above (positions 0 and 1) are replaced by partial ones:
# only the rows of their anchor (the WHERE of ANCHORS, which the queries repeat, so the planner can use
# them), keyed by unit and day, the rest as INCLUDE columns. A third smaller than the portable ones, so a
# province year's share of both fits the server's buffers far better (and is faster to scan).
# (position replaced, name, key columns, INCLUDE columns, WHERE)
POSTGRES_INDEXES = {
    "dossier": [
        (0, "dossier_pg_received", ("unit_code", "received_at"),
         ("procedure_code", "procedure_version", "channel", "fee_amount", "paid_online", "doc_total", "doc_digitised",
          "doc_reused"), f"status NOT IN ({wf.NEW}, {wf.REFUSED}) AND appointment_at <> ''"),
        (1, "dossier_pg_finished", ("unit_code", "finished_at"),
         ("status", "appointment_at", "original_appointment_at", "result_digitised", "rating"),
         f"status IN ({', '.join(str(s) for s in wf.FINISHED)}) AND appointment_at <> ''"),
    ],
}


# PostgreSQL: the pages read the dossier table through index-only scans, which must visit the table for
# every row on a page changed since the last VACUUM (its visibility map bit is cleared). With the default
# thresholds (20% of the table) a hub of 1,000,000 dossiers would leave weeks of recent pages unmarked; this
# has autovacuum (on by default in PostgreSQL) come after every 1,000 changed or inserted rows instead, which
# costs little: it visits only the changed pages.
AUTOVACUUM = {"autovacuum_vacuum_scale_factor": "0", "autovacuum_vacuum_threshold": "1000",
              "autovacuum_vacuum_insert_scale_factor": "0", "autovacuum_vacuum_insert_threshold": "1000",
              "autovacuum_analyze_scale_factor": "0.02"}


def _autovacuum_sql(table: str) -> str:
    """A DO block that sets AUTOVACUUM on `table` unless already set (no catalog write on every hub start);
    a database user that does not own the table only gets a notice."""
    wanted = ", ".join(f"'{k}={v}'" for k, v in AUTOVACUUM.items())
    options = ", ".join(f"{k} = {v}" for k, v in AUTOVACUUM.items())
    return (f"DO $$ BEGIN IF NOT coalesce((SELECT reloptions FROM pg_class WHERE oid = '\"{table}\"'::regclass) "
            f"@> ARRAY[{wanted}], false) THEN ALTER TABLE \"{table}\" SET ({options}); END IF; "
            f"EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'autovacuum settings of {table} left as "
            f"they are'; END $$")


def index_sql(db_kind: str | None = None) -> list[str]:
    """CREATE INDEX IF NOT EXISTS statements for RECOMMENDED_INDEXES (run when a hub opens, by `create_schema`,
    and by the bench) and, on PostgreSQL, the dossier table's AUTOVACUUM settings. `db_kind` "sqlite" or
    "postgresql"; None: the kind of the database the models are bound to."""
    if db_kind is None:
        db_kind = "postgresql" if _on_postgres() else "sqlite"
    postgres = db_kind == "postgresql"
    out = [_autovacuum_sql(D._meta.table_name)] if postgres else []
    for table, indexes in RECOMMENDED_INDEXES.items():
        replaced = {pos: rest for pos, *rest in POSTGRES_INDEXES.get(table, [])} if postgres else {}
        for pos, (columns, unique) in enumerate(indexes):
            name = f"{table}_ind_{'_'.join(c[:4] for c in columns)}"
            cols = ", ".join(f'"{c}"' for c in columns)
            if pos in replaced:  # a hub made by an older version has the portable one: drop it
                out.append(f'DROP INDEX IF EXISTS "{name}"')
                name, keys, include, where = replaced[pos]
                out.append(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({", ".join(keys)}) '
                           f'INCLUDE ({", ".join(include)}) WHERE {where}')
                continue
            out.append(f'CREATE {"UNIQUE " if unique else ""}INDEX IF NOT EXISTS "{name}" ON "{table}" ({cols})')
    return out
