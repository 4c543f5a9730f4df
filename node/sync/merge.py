"""Changes -> state. Every change, made here or received, is applied by `apply()`; the state is a
function of the set of changes, whatever their order and however often they arrive (design.md §4).

Operations by entity (payload shapes):

    create   {"fields": {...}}                         insert the row once; a repeat is a no-op
    update   {"set": {...}, "base"?: {field: version}} field writes, the latest version wins per field
    put      {"fields": {...}}                         catalogue rows: insert once; calendar days and the
                                                       key registry: upsert, the latest put wins
    delete   {}                                        attachments: row removed, tombstone kept
    action   {"action", "base", "from", "to"?, "set", "event"}   a dossier's workflow step
    resolve / review                                   a person's decision on a conflict / duplicate

Dossier rules (chains of actions, conflicts, duplicates) are in dossiers.py and dossier_merge.py.

Speed: a hub ingests thousands of changes a second, and building SQL text with peewee cost more than
running it (about 1 ms a change). So each statement is built by peewee ONCE per shape (statement kind,
model, column set) with markers where the values go, turned into the database's own parameter style and
cached per database class (`run()`); each change then only converts its values with the fields'
`db_value` and executes the cached text. The SQL is the very text peewee would build (INSERT OR IGNORE on
SQLite, ON CONFLICT DO NOTHING on PostgreSQL...), so the merge rules are unchanged. `batch()` (used by
ingest around a verified batch) also reads what dossier changes need up front and, on PostgreSQL, pipelines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import orjson
import peewee as pw

from .errors import ChangeNotApplicable
from .state import (Attachment, CalendarDay, Conflict, Dossier, DossierDocument, DossierEvent, DossierOrigin,
                    DuplicateFlag, NodeRecord, Procedure, Tombstone, User)

MODELS = {
    "procedure": Procedure,
    "calendar_day": CalendarDay,
    "user": User,
    "dossier": Dossier,
    "document": DossierDocument,
    "attachment": Attachment,
    "node": NodeRecord,
    "conflict": Conflict,
    "duplicate": DuplicateFlag,
}
OPS = {
    "procedure": {"put"},
    "calendar_day": {"put"},
    "user": {"create", "update"},
    "dossier": {"create", "update", "action"},
    "document": {"create", "update"},
    "attachment": {"create", "delete"},
    "node": {"put"},
    "conflict": {"resolve"},
    "duplicate": {"review", "flag"},
}
KEYED_PUTS = {"calendar_day": "id", "node": "node_id"}  # put = upsert on this key (else insert once)

# ---------------------------------------------------------------- compiled statements

_MARK = re.compile(r"__motcua_(\d+)__")
_STATEMENTS: dict[tuple, tuple[str, list[int] | None]] = {}
MAX_STATEMENTS = 4096  # shapes are few; the bound only keeps odd payloads from growing the cache forever
Marks = Callable[[int], pw.SQL]


def _mark(i: int) -> pw.SQL:
    return pw.SQL(f"__motcua_{i}__")


def database_of(model: type[pw.Model]) -> pw.Database:
    """The database a model is bound to right now (through the DatabaseProxy, when it is one)."""
    db = model._meta.database
    return db.obj if isinstance(db, pw.DatabaseProxy) else db


def compiled(model: type[pw.Model], shape: tuple, build: Callable[[Marks], pw.Query]) -> tuple[str, list[int] | None]:
    """(SQL text, order of the markers) of the statement `build(mark)` makes, built once per shape.

    `build` receives `mark(i)`, the placeholder for argument i; the query must hold no other value.
    """
    db = database_of(model)
    key = (type(db), model, shape)
    hit = _STATEMENTS.get(key)
    if hit is None:
        sql, params = build(_mark).sql()
        if params:
            raise RuntimeError(f"statement {shape} holds inline values")
        order = [int(m.group(1)) for m in _MARK.finditer(sql)]
        param = db.param
        hit = (_MARK.sub(lambda _: param, sql), None if order == list(range(len(order))) else order)
        if len(_STATEMENTS) >= MAX_STATEMENTS:
            _STATEMENTS.clear()
        _STATEMENTS[key] = hit
    return hit


def run(model: type[pw.Model], shape: tuple, build: Callable[[Marks], pw.Query], args: Sequence[Any]):
    """Execute the cached statement for `shape` with `args` (argument i fills `mark(i)`); the cursor."""
    sql, order = compiled(model, shape, build)
    state = _BATCH.get()
    if state is not None and state.deferred and model in state.deferred:
        _flush(state, model)  # rows held back for this table go first: statements on a table keep their order
    if state is not None and state.creates and model is Dossier:
        dossier_merge.flush_creates(state)  # dossiers created in the batch and held back: inserted first
    return database_of(model).execute_sql(sql, args if order is None else [args[i] for i in order])


class _Meta:
    """Per model: field names and how peewee turns each value into a database value.

    `spec[name]` = (native type, converter): a value of exactly the native type (str for text fields, int
    for integer fields) is what `db_value` would return unchanged, so only other values are converted.
    """

    def __init__(self, model: type[pw.Model]):
        self.fields = model._meta.fields
        self.known = set(self.fields)
        self.spec = {name: (_native(f), f.db_value) for name, f in self.fields.items()}
        self.defaults = {f.name: d for f, d in model._meta.defaults.items()}
        self.default_names = sorted(self.defaults)


def _native(field: pw.Field) -> type | None:
    if isinstance(field, (pw.CharField, pw.TextField)):
        return str
    if isinstance(field, pw.IntegerField):
        return int
    return None


_METAS: dict[type[pw.Model], _Meta] = {}
_PLANS: dict[tuple, tuple] = {}


def _meta(model: type[pw.Model]) -> _Meta:
    meta = _METAS.get(model)
    if meta is None:
        meta = _METAS[model] = _Meta(model)
    return meta


def _values(row: dict[str, Any], specs: list[tuple[str, type | None, Callable]]) -> list[Any]:
    out = []
    for name, native, convert in specs:
        value = row[name]
        out.append(value if type(value) is native else convert(value))
    return out


def _clean(model, fields: dict[str, Any]) -> dict[str, Any]:
    # Fields unknown to this version are ignored, so newer nodes can add fields without breaking older ones.
    known = _meta(model).known
    return {k: v for k, v in fields.items() if k in known and k != "id"}


def _insert_plan(model: type[pw.Model], given: tuple[str, ...], upsert_key: str | None) -> tuple:
    meta = _meta(model)
    missing = [d for d in meta.default_names if d not in given]
    columns = given + tuple(missing)
    if any(callable(meta.defaults[d]) for d in missing):
        defaults = None  # computed for every row, as peewee calls a callable default each time
    else:
        defaults = [meta.spec[d][1](meta.defaults[d]) for d in missing]
    updates = tuple(c for c in given if c != upsert_key) if upsert_key else ()

    def build(mark: Marks) -> pw.Query:
        query = model.insert_many([tuple(mark(i) for i in range(len(columns)))],
                                  fields=[meta.fields[c] for c in columns])
        if upsert_key is None:
            return query.on_conflict_ignore()
        newer = None
        if "version" in meta.fields and "version" in given:  # the latest put wins, whatever the order
            newer = meta.fields["version"] < pw.EXCLUDED.version
        return query.on_conflict(conflict_target=[meta.fields[upsert_key]], where=newer,
                                 update={meta.fields[c]: mark(len(columns) + j) for j, c in enumerate(updates)})

    specs = [(c, *meta.spec[c]) for c in given]
    return specs, missing, defaults, [(c, *meta.spec[c]) for c in updates], build


def insert(model: type[pw.Model], row: dict[str, Any], *, upsert_key: str | None = None) -> None:
    """`model.insert(row).on_conflict_ignore()` (or, with `upsert_key`, ON CONFLICT (key) DO UPDATE with
    every other given column), defaults filled in as peewee does, through a cached statement."""
    state = _BATCH.get()
    deferred = state is not None and state.deferred is not None and model in DEFERRABLE
    if deferred and upsert_key is None:
        full = full_row(model)
        if full is not None:  # every column given: one statement (and one executemany) for all of them
            row = {**full, **row}
    given = tuple(sorted(row))
    plan = insert_plan(model, given, upsert_key)
    build = plan[-1]
    args = insert_args(model, plan, row)
    shape = ("insert", upsert_key, given)
    if deferred:
        sql, order = compiled(model, shape, build)
        state.deferred.setdefault(model, []).append(
            (sql, args if order is None else [args[i] for i in order], row.get("id")))
        return
    run(model, shape, build, args)


_FULL_ROWS: dict[type[pw.Model], dict[str, Any] | None] = {}


def full_row(model: type[pw.Model]) -> dict[str, Any] | None:
    """Every column of `model` with the value an INSERT that leaves it out stores: its default, or None
    (NULL; refused by a NOT NULL column as a missing value is). None when a default is computed per row."""
    if model not in _FULL_ROWS:
        defaults = _meta(model).defaults
        _FULL_ROWS[model] = None if any(callable(d) for d in defaults.values()) else {
            name: defaults.get(name) for name in _meta(model).fields}
    return _FULL_ROWS[model]


def insert_plan(model: type[pw.Model], given: tuple[str, ...], upsert_key: str | None = None) -> tuple:
    """The cached plan of `insert` for rows with the columns `given` (sorted)."""
    key = (model, "insert", given, upsert_key)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= MAX_STATEMENTS:
            _PLANS.clear()
        plan = _PLANS[key] = _insert_plan(model, given, upsert_key)
    return plan


def insert_args(model: type[pw.Model], plan: tuple, row: dict[str, Any]) -> list[Any]:
    """The arguments of `plan`'s statement for `row` (defaults filled in as peewee does)."""
    specs, missing, defaults, update_specs, build = plan
    args = _values(row, specs)
    if defaults is None:
        meta = _meta(model)
        for name in missing:
            value = meta.defaults[name]
            args.append(meta.spec[name][1](value() if callable(value) else value))
    else:
        args += defaults
    if update_specs:
        args += _values(row, update_specs)
    return args


def update(model: type[pw.Model], values: dict[str, Any], row_id: Any) -> None:
    """`model.update(values).where(model.id == row_id)` through a cached statement."""
    meta = _meta(model)
    columns = tuple(sorted(values))
    args = _values(values, [(c, *meta.spec[c]) for c in columns])
    args.append(meta.spec["id"][1](row_id))

    def build(mark: Marks) -> pw.Query:
        return model.update({meta.fields[c]: mark(i) for i, c in enumerate(columns)}).where(
            meta.fields["id"] == mark(len(columns)))

    run(model, ("update", columns), build, args)


# Called with the model before `insert_rows` writes rows (a hub on PostgreSQL takes its commit-order lock
# there before Change rows get their ids: see central/storage/postgresql.py); None: nothing to do.
BEFORE_ROWS: ContextVar[Callable[[type[pw.Model]], None] | None] = ContextVar("motcua_before_rows", default=None)


def insert_rows(model: type[pw.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                copy: bool = False) -> None:
    """`model.insert_many(rows, fields=columns).execute()` as one executemany of a cached statement.

    Every column must be given (no defaults are filled in); values are converted as peewee converts them.
    `copy=True` (rows known to be new, outside a pipelined batch): on PostgreSQL they are sent with COPY,
    several times faster than an executemany of INSERTs.
    """
    if not rows:
        return
    guard = BEFORE_ROWS.get()
    if guard is not None:
        guard(model)
    meta = _meta(model)
    columns = tuple(columns)
    specs = [meta.spec[c] for c in columns]
    db = database_of(model)
    if copy and _BATCH.get() is None and _pipelines(db):
        names = ", ".join(f'"{meta.fields[c].column_name}"' for c in columns)
        with pw.__exception_wrapper__, db.cursor().copy(
                f'COPY "{model._meta.table_name}" ({names}) FROM STDIN') as out:
            for row in rows:
                out.write_row([v if type(v) is native else convert(v)
                               for v, (native, convert) in zip(row, specs, strict=True)])
        return
    sql, order = compiled(model, ("rows", columns), lambda mark: model.insert_many(
        [tuple(mark(i) for i in range(len(columns)))], fields=[meta.fields[c] for c in columns]))
    args = [[v if type(v) is native else convert(v) for v, (native, convert) in zip(row, specs, strict=True)]
            for row in rows]
    if order is not None:
        args = [[a[i] for i in order] for a in args]
    with pw.__exception_wrapper__:  # driver errors become peewee's (IntegrityError...), as in execute_sql
        database_of(model).cursor().executemany(sql, args)


# ---------------------------------------------------------------- batches

class BatchRetry(Exception):
    """The fast attempt at a batch failed and was rolled back to its savepoint: apply it again one change
    at a time, so whatever failed is raised by the change that causes it."""


@dataclass
class _Batch:
    """What a batch's dossier changes would otherwise read, read once (see dossier_merge.prefetch)."""

    head: dict[str, tuple[int, str]] = field(default_factory=dict)  # dossier id -> (status, status_version)
    bases: dict[str, set[str]] = field(default_factory=dict)  # dossier id -> bases of its chain events
    facts: set[str] = field(default_factory=set)  # dossiers with events or edits held (of facts_known)
    facts_known: set[str] = field(default_factory=set)
    people: dict[str, list[tuple]] = field(default_factory=dict)  # ID number -> dossiers (duplicate check)
    people_known: set[str] = field(default_factory=set)
    buried: set[tuple[str, str]] = field(default_factory=set)  # tombstones written in this batch
    advances: dict[str, list] = field(default_factory=dict)  # dossier id -> [values, hlc] not yet sent
    # Pipelined batches only: dossiers created in this batch, not yet inserted (their advances folded in),
    # and the ids of the batch's creates already in the table (never held back: their insert is a no-op).
    creates: dict[str, dict[str, Any]] | None = None
    existing: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)  # dossiers whose documents changed: counted at the end
    # Pipelined batches only: inserts held back per table as (SQL, arguments, row id), in order.
    deferred: dict[type[pw.Model], list[tuple[str, list[Any], Any]]] | None = None


# Tables merge never reads back (or only after `flush_pending`): their inserts may be sent together at the
# end of a pipelined batch.
DEFERRABLE = (DossierEvent, DossierDocument, Attachment, DossierOrigin)


def _flush(state: _Batch, model: type[pw.Model] | None = None) -> None:
    """Send the held-back inserts (of one table, or all) with one executemany per statement text.

    Inserts of distinct rows commute, so they are grouped by statement; should two name the same row (its
    first insert wins), only runs of one statement next to each other are grouped, keeping the order.
    """
    for m in [model] if model is not None else list(state.deferred or {}):
        rows = (state.deferred or {}).pop(m, [])
        if len({row_id for _, _, row_id in rows}) == len(rows):
            groups: dict[str, list[list[Any]]] = {}
            for sql, args, _ in rows:
                groups.setdefault(sql, []).append(args)
            runs = list(groups.items())
        else:
            runs = [(sql, [args for _, args, _ in group]) for sql, group in groupby(rows, key=lambda r: r[0])]
        cursor = database_of(m).cursor()
        for sql, many in runs:
            with pw.__exception_wrapper__:
                cursor.executemany(sql, many)


_BATCH: ContextVar[_Batch | None] = ContextVar("motcua_merge_batch", default=None)


def _pipelines(db: pw.Database) -> bool:
    """Whether statements can be pipelined on this connection (psycopg 3 on PostgreSQL)."""
    return type(db.connection()).__module__.split(".")[0] == "psycopg" and hasattr(db.connection(), "pipeline")


@contextmanager
def batch(changes: Sequence[dict[str, Any]]) -> Iterator[None]:
    """Around the loop that applies one verified batch, inside the caller's transaction (ingest).

    What the batch's dossier changes need to know (heads, action bases, earlier facts, people with the same
    ID number) is read in a few queries and kept in step by `apply` (only merge writes the synced tables
    while a batch is applied), so a change in the common case needs no query of its own.
    On PostgreSQL the batch's statements are also pipelined inside a savepoint (no round trip per
    statement), and inserts into tables merge never reads (history, documents, attachments) are held back
    and sent with one executemany at the end (or before the next statement on the same table); so are the
    dossiers the batch creates, with the actions of the batch on them folded in and their document counters
    counted by the INSERT itself, so such a dossier's row is written once, not three times
    (`dossier_merge.flush_creates`; anything that reads or writes the dossier table first sends them). Should
    anything fail there (errors of a pipeline arrive late, possibly while another change is applied), the
    savepoint is rolled back and `BatchRetry` raised: the caller then applies the batch again without
    `batch()`, one statement at a time, exactly as before.
    """
    state = _Batch()
    db = database_of(Dossier)
    pipelined = _pipelines(db)
    if pipelined:
        state.deferred, state.creates = {}, {}
    dossier_merge.prefetch(state, list(changes))
    token = _BATCH.set(state)
    try:
        if not pipelined:
            yield
            dossier_merge.flush_advances(state)
            dossier_merge.recount_documents(state)
            return
        with db.savepoint():  # rolled back when BatchRetry leaves it
            pipeline = db.connection().pipeline()
            pipeline.__enter__()
            failure: Exception | None = None
            try:
                yield
                _flush(state)
                dossier_merge.flush_creates(state, counted=True)  # counts their documents (just sent)
                dossier_merge.flush_advances(state)
                dossier_merge.recount_documents(state)
            except Exception as exc:
                failure = exc
            finally:
                try:  # sync: the first error still pending in the pipeline is raised here
                    pipeline.__exit__(None, None, None)
                except Exception as exc:
                    failure = failure or exc
            if failure is not None:
                raise BatchRetry(str(failure)) from failure
    finally:
        _BATCH.reset(token)


# ---------------------------------------------------------------- the merge

def current_batch() -> _Batch | None:
    """The batch being applied (inside `batch()`), or None."""
    return _BATCH.get()


def clean(model, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of `model` in `fields` (unknown ones and `id` dropped)."""
    return _clean(model, fields)


def flush_pending(model: type[pw.Model] | None = None) -> None:
    """Send what a batch holds back (inserts of one table or all; all folded dossier updates) before
    reading it back."""
    state = _BATCH.get()
    if state is not None and model is None:
        dossier_merge.flush_creates(state)
        dossier_merge.flush_advances(state)
    if state is not None and state.deferred:
        _flush(state, model)


def apply(change: dict[str, Any]) -> bool:
    """Apply one verified change to the state. Returns False when it was kept but not (yet) applied."""
    entity, op, payload = change["entity"], change["op"], change["payload"]
    if entity not in MODELS or op not in OPS[entity]:
        raise ChangeNotApplicable(f"unknown operation {entity}.{op}", change_ref=change.get("hash"))
    if not isinstance(payload, dict):
        raise ChangeNotApplicable(f"{entity}.{op}: the payload is not an object", change_ref=change.get("hash"))
    model = MODELS[entity]
    if entity == "dossier":
        handler = {"create": dossier_merge.create, "update": dossier_merge.update, "action": dossier_merge.action}
        return handler[op](change)
    if entity == "conflict":
        return dossier_merge.resolve(change)
    if entity == "duplicate":
        return (dossier_merge.announced if op == "flag" else dossier_merge.review)(change)
    if op == "create":
        row = _clean(model, payload.get("fields", {}))
        row["id"] = change["entity_id"]
        if entity in TOMBSTONED and _buried(entity, change["entity_id"]):
            return True  # deleted before its create arrived here: stays deleted
        insert(model, row)
        if entity == "document" and isinstance(row.get("dossier_id"), str):
            dossier_merge.documents_changed(row["dossier_id"])
        return True
    if op == "update":
        done = _update_lww(model, change)
        if entity == "document":
            found = DossierDocument.select(DossierDocument.dossier_id).where(
                DossierDocument.id == change["entity_id"]).tuples().first()
            if found:
                dossier_merge.documents_changed(found[0])
        return done
    if op == "delete":
        return _bury(model, change)
    row = _clean(model, payload.get("fields", {}))
    key = KEYED_PUTS.get(entity)
    if key:
        row[key] = change["entity_id"]
        row["version"] = _version(change)
        # Portable upsert (SQLite and PostgreSQL): ON CONFLICT (key) DO UPDATE ... WHERE the stored put is older.
        insert(model, row, upsert_key=key)
    else:
        insert(model, row)
    return True


def _version(change: dict[str, Any]) -> str:
    return f"{change['hlc']}~{change['node_id']}"


def _update_lww(model: type[pw.Model], change: dict[str, Any]) -> bool:
    """Field writes on a row with `field_versions`: each field takes the write with the latest version."""
    values = _clean(model, change["payload"].get("set", {}))
    values.pop("field_versions", None)
    if not values:
        return True
    version = _version(change)
    if "field_versions" not in _meta(model).known:  # rows without versions (documents): the write as it comes
        update(model, values, change["entity_id"])
        return True
    found = model.select(model.field_versions).where(model.id == change["entity_id"]).tuples().first()
    if found is None:
        return True
    versions = orjson.loads(found[0] or "{}")
    won = {k: v for k, v in values.items() if version > versions.get(k, "")}
    if won:
        versions.update({k: version for k in won})
        won["field_versions"] = orjson.dumps(versions, option=orjson.OPT_SORT_KEYS).decode()
        update(model, won, change["entity_id"])
    return True


TOMBSTONED = {"attachment"}


def _buried(entity: str, entity_id: str) -> bool:
    state = _BATCH.get()
    if state is not None and (entity, entity_id) in state.buried:
        return True
    return Tombstone.select().where(Tombstone.id == f"{entity}:{entity_id}").exists()


def _bury(model: type[pw.Model], change: dict[str, Any]) -> bool:
    """A deletion: the row goes, a tombstone stays (so a create arriving later stays deleted)."""
    entity, entity_id = change["entity"], change["entity_id"]
    insert(Tombstone, {"id": f"{entity}:{entity_id}", "entity": entity, "entity_id": entity_id,
                       "version": _version(change), "node_id": change["node_id"], "seq": change["seq"],
                       "at": str(change["payload"].get("at", ""))})
    state = _BATCH.get()
    if state is not None:
        state.buried.add((entity, entity_id))
    run(model, ("delete",), lambda mark: model.delete().where(model.id == mark(0)), [entity_id])
    return True


from . import dossier_merge  # noqa: E402  (it builds on the statement helpers above)
