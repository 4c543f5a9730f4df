"""Opening the node's SQLite file (peewee over apsw) and its recorded migrations.

WAL with synchronous=FULL: a write an officer saw saved survives a power cut. Every write transaction
starts with BEGIN IMMEDIATE so two writers never deadlock on a lock upgrade.
"""

from __future__ import annotations

from pathlib import Path

from playhouse.apsw_ext import APSWDatabase

from .sync import log as _log  # noqa: F401  (registers the Change model on the shared Base)
from .sync.log import Change
from .sync.state import SYNCED_MODELS, database

PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1, "busy_timeout": 10000}


def _local_models():
    from . import models

    return models.LOCAL_MODELS


def _m1_initial(db: APSWDatabase) -> None:
    db.create_tables(SYNCED_MODELS + [Change] + _local_models())


def _m2_name_search(db: APSWDatabase) -> None:
    # Folded names (đ -> d, marks dropped) in an FTS5 index; rowid = dossier rowid.
    db.execute_sql(
        "CREATE VIRTUAL TABLE dossier_fts USING fts5(name, content='', contentless_delete=1, "
        "tokenize='unicode61 remove_diacritics 2')"
    )


def _m3_sync_registry(db: APSWDatabase) -> None:
    # Key registry table; usernames unique per unit (communes meet at the hub).
    from .sync.state import NodeRecord

    db.create_tables([NodeRecord])
    db.execute_sql("DROP INDEX IF EXISTS user_username")
    db.execute_sql('CREATE UNIQUE INDEX IF NOT EXISTS user_unit_code_username ON "user" (unit_code, username)')


def _m4_convergence(db: APSWDatabase) -> None:
    # Versions, field writes, conflicts, duplicate flags and tombstones (merge rules of design.md §4).
    from .sync.state import upgrade_schema

    upgrade_schema(db, SYNCED_MODELS)


def _m5_calendar_units(db: APSWDatabase) -> None:
    # Calendar overrides keyed per unit ("*:<day>" the hub's, "<unit>:<day>" a commune's own).
    from .sync.state import convert_calendar_days

    convert_calendar_days(db)


def _m6_document_counters(db: APSWDatabase) -> None:
    # Per-dossier document counters (the indicators' read side); counted once for the dossiers held.
    from .sync.dossier_merge import recount_all
    from .sync.state import upgrade_schema

    upgrade_schema(db, SYNCED_MODELS)
    recount_all()


def _m7_log_digest(db: APSWDatabase) -> None:
    # The running state digest of the change log (log.LogDigest), summed once over the changes held.
    from .sync.log import LogDigest, create_stale_triggers, recount_digest

    db.create_tables([LogDigest])
    create_stale_triggers(db)
    recount_digest()


MIGRATIONS = [
    (1, "initial tables", _m1_initial),
    (2, "name search index", _m2_name_search),
    (3, "key registry, usernames per unit", _m3_sync_registry),
    (4, "versions, conflicts, duplicates, tombstones", _m4_convergence),
    (5, "calendar overrides keyed per unit", _m5_calendar_units),
    (6, "document counters on dossiers", _m6_document_counters),
    (7, "running digest of the change log", _m7_log_digest),
]


_OPEN: dict[str, APSWDatabase] = {}


def open_database(path: Path) -> APSWDatabase:
    """Open (creating if needed) the node database and bring it to the latest migration.

    The models are bound through one proxy, so every opener of the same file in this process shares one
    database object (two objects would hold two connections, and a write in one would wait on the other).
    """
    key = str(Path(path).resolve())
    db = _OPEN.get(key)
    if db is None:
        db = _OPEN[key] = APSWDatabase(str(path), pragmas=PRAGMAS, timeout=10, lock_type="IMMEDIATE")
    database.initialize(db)
    db.connect(reuse_if_open=True)
    migrate(db)
    return db


def migrate(db: APSWDatabase) -> list[int]:
    """Apply the migrations not yet recorded in `schema_migration`; returns the versions applied."""
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migration (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT "
        "DEFAULT CURRENT_TIMESTAMP)"
    )
    done = {row[0] for row in db.execute_sql("SELECT version FROM schema_migration").fetchall()}
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        with db.atomic():
            step(db)
            db.execute_sql("INSERT INTO schema_migration (version, name) VALUES (?, ?)", (version, name))
        applied.append(version)
    return applied
