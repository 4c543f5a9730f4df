"""PostgreSQL backend (production, several hub processes on one database) through psycopg 3.

Every write transaction first takes a transaction-scoped advisory lock, so writes of all hub processes
are serialised: Change.id (a sequence) is then assigned in commit order and a pull never skips a row that
commits later with a smaller id. Reads need no lock. Pass `?options=-csearch_path%3Dname` in the URL to
use a schema other than `public`.
"""

from __future__ import annotations

from playhouse.postgres_ext import Psycopg3Database

from .sql import SQLStorage

WRITE_LOCK = 424242  # the advisory lock key every hub process agrees on


class PostgreSQLStorage(SQLStorage):
    def make_database(self) -> Psycopg3Database:
        url = self.url.replace("postgres://", "postgresql://", 1)
        return Psycopg3Database(url)

    def serialise(self) -> None:
        self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
