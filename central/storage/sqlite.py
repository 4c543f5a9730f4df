"""SQLite backend (the default): apsw under peewee, WAL, synchronous=FULL, writes behind BEGIN IMMEDIATE.

BEGIN IMMEDIATE takes SQLite's one write lock at the start of every write transaction, so writers from
any thread or process are serialised and Change.id order is commit order.
"""

from __future__ import annotations

from pathlib import Path

from playhouse.apsw_ext import APSWDatabase

from .sql import SQLStorage

PRAGMAS = {"journal_mode": "wal", "synchronous": "full", "foreign_keys": 1, "busy_timeout": 30000}


def path_of(url: str) -> Path:
    """sqlite:///relative/x.db -> relative/x.db; sqlite:////abs/x.db -> /abs/x.db."""
    return Path(url[len("sqlite:///"):])


class SQLiteStorage(SQLStorage):
    def make_database(self) -> APSWDatabase:
        path = path_of(self.url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return APSWDatabase(str(path), pragmas=PRAGMAS, timeout=30, lock_type="IMMEDIATE")
