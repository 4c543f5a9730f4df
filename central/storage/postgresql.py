"""PostgreSQL backend (production, several hub processes on one database) through psycopg 3.

Write transactions are serialised across hub processes with transaction-scoped advisory locks:

* every write but a push takes WRITE_LOCK exclusively, as before: one at a time, hub-wide;
* a push that changes only its own units' dossiers (`sql.SIDE_BY_SIDE`) takes WRITE_LOCK shared, then one
  lock per name `sql._ingest_locks` gives (each origin node, each unit it writes, each ID number of a
  dossier it creates), in one sorted order. Pushes of different communes thus verify and merge side by
  side; pushes that share a unit, a node or a person (possible duplicates) wait for each other, so each
  merge reads what the other committed, as if they ran one after the other (design.md §4);
* before its Change rows are inserted (`merge.BEFORE_ROWS`), a push takes LOG_LOCK until it commits, so
  Change.id (a sequence) is still assigned in commit order and a pull never skips a row that commits
  later with a smaller id. Only storing the rows, their scopes, the hub's duplicate notices and the
  node's status, then the commit, run under it.

Reads need no lock. A hub process of an older version takes WRITE_LOCK exclusively for a push too, which
still excludes every other write. Pass `?options=-csearch_path%3Dname` in the URL to use a schema other
than `public`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import peewee as pw
from playhouse.postgres_ext import Psycopg3Database

from node.sync.log import Change

from .sql import SQLStorage

WRITE_LOCK = 424242  # the advisory lock key every hub process agrees on (one 64-bit key)
LOG_LOCK = 424243  # commit order of Change rows (one 64-bit key)
NAMED_LOCKS = 424244  # first key of the per-name locks (two 32-bit keys: a separate key space)


def lock_key(name: str) -> int:
    """The second 32-bit key of the lock for `name` (a collision only makes two pushes wait for each other)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4, person=b"motcua-lock").digest(), "big",
                          signed=True)


class PostgreSQLStorage(SQLStorage):
    def make_database(self) -> Psycopg3Database:
        url = self.url.replace("postgres://", "postgresql://", 1)
        return Psycopg3Database(url)

    def serialise(self) -> None:
        self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def _serialise_ingest(self, locks: list[str]) -> None:
        self.db.execute_sql("SELECT pg_advisory_xact_lock_shared(%s)", (WRITE_LOCK,))
        keys = sorted({lock_key(name) for name in locks})
        if keys:  # one round trip, taken in the array's (sorted) order: the same order in every process
            self.db.execute_sql("SELECT count(*) FROM (SELECT pg_advisory_xact_lock(%s::int4, k) FROM "
                                "unnest(%s::int4[]) WITH ORDINALITY AS t(k, i) ORDER BY i) AS locked",
                                (NAMED_LOCKS, keys))

    def _log_guard(self) -> Callable[[type[pw.Model]], None]:
        held = [False]

        def guard(model: type[pw.Model]) -> None:
            if model is Change and not held[0]:
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOG_LOCK,))
                held[0] = True

        return guard
