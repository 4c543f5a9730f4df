"""Applying dossier changes to the tables, by the rules of node/sync/dossiers.py.

    create   insert once; its chain fields kept in DossierOrigin; re-walk when actions or edits came first;
             flag possible duplicates
    update   one FieldWrite per field; the field takes the value when the write is the latest; siblings on
             the same base that disagree -> Conflict "field"
    action   a DossierEvent; applied in place when it continues the chain, else the dossier is re-walked
    conflict.resolve / duplicate.review   a person's decision, recorded and reflected on the record

Inside `merge.batch()` the heads, action bases, earlier facts and duplicate candidates of the batch's
dossiers are read once up front (`prefetch`) and kept in step, so the common case costs no read. In a
pipelined batch (PostgreSQL) a dossier created by the batch is also held back (`flush_creates`): the
batch's actions on it change the row in memory, and it is inserted once at the end with its document
counters counted by the INSERT, instead of an INSERT, an UPDATE per fold and a recount (each a new row
version and new entries in every index of the dossier table, as status is indexed).
"""

from __future__ import annotations

import json
from typing import Any

import peewee as pw

from . import dossiers as rules
from . import merge
from .state import (Conflict, ConflictResolution, Dossier, DossierDocument, DossierEvent, DossierOrigin,
                    DuplicateFlag, DuplicateReview, FieldWrite)

CHUNK = 500


# ---------------------------------------------------------------- batch prefetch

def prefetch(state: Any, changes: list[dict[str, Any]]) -> None:
    """Read what the batch's dossier changes will ask, in a few queries (called by merge.batch)."""
    acted = sorted({c["entity_id"] for c in changes if c["entity"] == "dossier" and c["op"] in ("action", "update")})
    created = [c for c in changes if c["entity"] == "dossier" and c["op"] == "create"]
    if state.creates is not None:  # a pipelined batch (PostgreSQL)
        _prefetch_pipelined(state, acted, created)
        return
    for part in _chunks(acted):
        q = Dossier.select(Dossier.id, Dossier.status, Dossier.status_version).where(Dossier.id.in_(part)).tuples()
        state.head.update((i, (s, v)) for i, s, v in q)
        q = (DossierEvent.select(DossierEvent.dossier_id, DossierEvent.base)
             .where(DossierEvent.dossier_id.in_(part) & (DossierEvent.chain == 1)).tuples())
        for i, base in q:
            state.bases.setdefault(i, set()).add(base)
        for i in part:
            state.bases.setdefault(i, set())
    ids = sorted({c["entity_id"] for c in created})
    for part in _chunks(ids):
        q = DossierEvent.select(DossierEvent.dossier_id).where(DossierEvent.dossier_id.in_(part)).distinct().tuples()
        state.facts.update(i for (i,) in q)
        q = FieldWrite.select(FieldWrite.entity_id).where(FieldWrite.entity_id.in_(part)).distinct().tuples()
        state.facts.update(i for (i,) in q)
        q = (DossierDocument.select(DossierDocument.dossier_id).where(DossierDocument.dossier_id.in_(part))
             .distinct().tuples())
        state.facts.update(i for (i,) in q)
        state.facts_known.update(part)
    numbers = sorted({(c["payload"].get("fields") or {}).get("applicant_id_number") or "" for c in created} - {""})
    for part in _chunks(numbers):
        for row in Dossier.select(*_DUP_COLUMNS).where(Dossier.applicant_id_number.in_(part)).tuples():
            state.people.setdefault(row[1], []).append(row)
        state.people_known.update(part)


def _prefetch_pipelined(state: Any, acted: list[str], created: list[dict[str, Any]]) -> None:
    """`prefetch` on PostgreSQL: the same reads, with one array parameter each (`= ANY(%s)`: the same
    statement text whatever the batch, so the server prepares it once per connection), sent together in
    one round trip. Also notes which created dossiers the table holds already (`state.existing`)."""
    ids = sorted({c["entity_id"] for c in created})
    numbers = sorted({(c["payload"].get("fields") or {}).get("applicant_id_number") or "" for c in created} - {""})
    heads = sorted(set(acted) | set(ids))
    queries = []
    if heads:
        queries.append((_HEADS_SQL, [heads]))
    if acted:
        queries.append((_BASES_SQL, [acted]))
    if ids:
        queries.append((_FACTS_SQL, [ids, ids, ids]))
    if numbers:
        queries.append((_PEOPLE_SQL, [numbers]))
    if not queries:
        return
    conn = merge.database_of(Dossier).connection()
    with pw.__exception_wrapper__:
        cursors = []
        with conn.pipeline():
            for sql, params in queries:
                cursor = conn.cursor()
                cursor.execute(sql, params, prepare=True)  # a few fixed texts: prepared on first use
                cursors.append(cursor)
        results = [cursor.fetchall() for cursor in cursors]
    results.reverse()
    if heads:
        acting, creating = set(acted), set(ids)
        for i, s, v in results.pop():
            if i in acting:
                state.head[i] = (s, v)
            if i in creating:
                state.existing.add(i)
    if acted:
        for i, base in results.pop():
            state.bases.setdefault(i, set()).add(base)
        for i in acted:
            state.bases.setdefault(i, set())
    if ids:
        state.facts.update(i for (i,) in results.pop())
        state.facts_known.update(ids)
    if numbers:
        for row in results.pop():
            state.people.setdefault(row[1], []).append(row)
        state.people_known.update(numbers)


def _column(field: pw.Field) -> str:
    return f'"{field.column_name}"'


def _table(model: type[pw.Model]) -> str:
    return f'"{model._meta.table_name}"'


_HEADS_SQL = (f"SELECT {_column(Dossier.id)}, {_column(Dossier.status)}, {_column(Dossier.status_version)} "
              f"FROM {_table(Dossier)} WHERE {_column(Dossier.id)} = ANY(%s)")
_BASES_SQL = (f"SELECT {_column(DossierEvent.dossier_id)}, {_column(DossierEvent.base)} FROM {_table(DossierEvent)} "
              f"WHERE {_column(DossierEvent.dossier_id)} = ANY(%s) AND {_column(DossierEvent.chain)} = 1")
_FACTS_SQL = " UNION ".join(
    f"SELECT {_column(f)} FROM {_table(f.model)} WHERE {_column(f)} = ANY(%s)"
    for f in (DossierEvent.dossier_id, FieldWrite.entity_id, DossierDocument.dossier_id))


def _chunks(items: list[str]):
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


_DEFAULTS = {k: Dossier._meta.fields[k].default for k in rules.CHAIN_FIELDS}
_DUP_COLUMNS = (Dossier.id, Dossier.applicant_id_number, Dossier.procedure_code, Dossier.received_at,
                Dossier.origin_node, Dossier.unit_code)
_PEOPLE_SQL = (f"SELECT {', '.join(_column(f) for f in _DUP_COLUMNS)} FROM {_table(Dossier)} "
               f"WHERE {_column(Dossier.applicant_id_number)} = ANY(%s)")


# ---------------------------------------------------------------- create

def create(change: dict[str, Any]) -> bool:
    state = merge.current_batch()
    dossier_id, version = change["entity_id"], rules.version_of(change)
    row = merge.clean(Dossier, change["payload"].get("fields", {}))
    row.update(id=dossier_id, origin_node=change["node_id"], version=version, status_version=version,
               updated_hlc=change["hlc"], field_versions="{}")
    if (state is not None and state.creates is not None and dossier_id not in state.creates
            and dossier_id not in state.existing):
        state.creates[dossier_id] = row  # inserted by flush_creates, with the batch's advances folded in
    else:
        merge.insert(Dossier, row)
    chain = {k: row[k] if k in row else _DEFAULTS[k] for k in rules.CHAIN_FIELDS}
    merge.insert(DossierOrigin, {"id": dossier_id, "version": version, "status": row.get("status", 0),
                                 "fields": rules.value_text(chain)})
    if state is not None:
        state.head[dossier_id] = (row.get("status", 0), version)
        state.bases.setdefault(dossier_id, set())
    if _has_facts(state, dossier_id):
        rebuild(dossier_id)
    _flag_duplicates(state, row)
    return True


def _has_facts(state: Any, dossier_id: str) -> bool:
    if state is not None and dossier_id in state.facts_known:
        return dossier_id in state.facts
    merge.flush_pending(DossierEvent)
    merge.flush_pending(DossierDocument)
    return (DossierEvent.select().where(DossierEvent.dossier_id == dossier_id).exists()
            or FieldWrite.select().where(FieldWrite.entity_id == dossier_id).exists()
            or DossierDocument.select().where(DossierDocument.dossier_id == dossier_id).exists())


def _flag_duplicates(state: Any, row: dict[str, Any]) -> None:
    number, procedure = row.get("applicant_id_number") or "", row.get("procedure_code") or ""
    if not number:
        return
    if state is not None and number in state.people_known:
        others = state.people.setdefault(number, [])
    else:
        flush_creates(state)
        others = list(Dossier.select(*_DUP_COLUMNS).where(Dossier.applicant_id_number == number).tuples())
    mine = (row["id"], number, procedure, row.get("received_at", ""), row["origin_node"], row.get("unit_code", ""))
    for other in others:
        oid, _, oproc, oreceived, onode, ounit = other
        if oid == row["id"] or oproc != procedure or onode == row["origin_node"]:
            continue
        if not rules.within_window(oreceived, mine[3]):
            continue
        a, b = sorted((oid, row["id"]))
        flag_id = f"{a}|{b}"
        units = ",".join(sorted({ounit, mine[5]} - {""}))
        merge.insert(DuplicateFlag, {"id": flag_id, "dossier_a": a, "dossier_b": b, "unit_code": units,
                                     "procedure_code": procedure})
        refresh_review(flag_id)
    if state is not None and number in state.people_known:
        others.append(mine)


# ---------------------------------------------------------------- field edits

def update(change: dict[str, Any], dossier_id: str | None = None) -> bool:
    """Field writes of a dossier update (or of a resolution that writes a value)."""
    payload = change["payload"]
    dossier_id = dossier_id or change["entity_id"]
    values = {k: v for k, v in (payload.get("set") or {}).items() if k in rules.LWW_FIELDS}
    if not values:
        return True
    bases = payload.get("base") if isinstance(payload.get("base"), dict) else {}
    version = rules.version_of(change)
    at = payload.get("at") or ""
    for name, value in values.items():
        merge.insert(FieldWrite, {
            "id": f"{change['node_id']}:{change['seq']}:{name}", "entity": "dossier", "entity_id": dossier_id,
            "field": name, "version": version, "base": str(bases.get(name) or ""), "value": rules.value_text(value),
            "node_id": change["node_id"], "by_user": change.get("author", ""), "by_name": payload.get("by_name", ""),
            "at": at})
    state = merge.current_batch()
    if state is not None and state.creates and dossier_id in state.creates:
        flush_creates(state)
    flush_advances(state, dossier_id)
    found = Dossier.select(Dossier.field_versions, Dossier.version, Dossier.updated_hlc).where(
        Dossier.id == dossier_id).tuples().first()
    if found is None and state is not None:
        state.facts.add(dossier_id)  # its create may still come in this batch: it will walk these edits
    if found is not None:
        versions = json.loads(found[0] or "{}")
        won = {k: v for k, v in values.items() if version > versions.get(k, found[1])}
        if won:
            versions.update({k: version for k in won})
            won["field_versions"] = rules.value_text(versions)
        if change["hlc"] > (found[2] or ""):
            won["updated_hlc"] = change["hlc"]
        if won:
            merge.update(Dossier, won, dossier_id)
    unit = payload.get("unit") or ""
    for name in values:
        if name in rules.EDITABLE:
            refresh_field_conflict(dossier_id, name, str(bases.get(name) or ""), unit)
    return True


def refresh_field_conflict(dossier_id: str, name: str, base: str, unit: str) -> None:
    writes = list(FieldWrite.select().where((FieldWrite.entity_id == dossier_id) & (FieldWrite.field == name)
                                            & (FieldWrite.base == base)))
    found = rules.field_candidates(writes) if len(writes) > 1 else None
    if found is None:
        return
    candidates, winner = found
    conflict_id = f"{dossier_id}:{name}:{base}"
    row = {"id": conflict_id, "dossier_id": dossier_id, "unit_code": unit, "kind": "field", "field": name,
           "base": base, "candidates": candidates, "winner": winner}
    _upsert_conflict(row)


def _upsert_conflict(row: dict[str, Any]) -> None:
    existing = Conflict.get_or_none(Conflict.id == row["id"])
    if existing is None:
        Conflict.insert(row).execute()
    elif (existing.candidates, existing.winner) != (row["candidates"], row["winner"]):
        Conflict.update(candidates=row["candidates"], winner=row["winner"]).where(Conflict.id == row["id"]).execute()
    refresh_resolution(row["id"])


# ---------------------------------------------------------------- actions

def action(change: dict[str, Any]) -> bool:
    payload = change["payload"]
    dossier_id = change["entity_id"]
    state = merge.current_batch()
    sets = {k: v for k, v in (payload.get("set") or {}).items() if k in rules.CHAIN_FIELDS}
    version = rules.version_of(change)
    head = _head(state, dossier_id)
    base = payload.get("base")
    chained = base is not None or "to" in payload or bool(sets)
    if base is None and chained:  # written before bases existed: continues whatever the head is now
        from_ok = head is not None and ("to" not in payload or payload.get("from") == head[0])
        base = head[1] if from_ok else "!" + version
    from_status = payload.get("from", head[0] if head is not None and chained else None)
    to_status = payload.get("to", from_status)
    event = merge.clean(DossierEvent, payload.get("event", {}))
    event.update(id=f"{change['node_id']}:{change['seq']}", dossier_id=dossier_id, hlc=change["hlc"],
                 action=payload["action"], from_status=from_status if chained else None,
                 to_status=to_status if chained else None, chain=1 if chained else 0, version=version,
                 base=base or "", sets=rules.value_text(sets), applied=1)
    if not chained:  # the reception event: history only
        if head is None and state is not None:
            state.facts.add(dossier_id)
        merge.insert(DossierEvent, event)
        _touch(dossier_id, change["hlc"])
        return True
    waiting = state.bases.get(dossier_id) if state is not None and dossier_id in state.bases else None
    if waiting is None and head is not None:
        merge.flush_pending(DossierEvent)
        waiting = {b for (b,) in DossierEvent.select(DossierEvent.base).where(
            (DossierEvent.dossier_id == dossier_id) & (DossierEvent.chain == 1)).tuples()}
    in_place = (head is not None and base == head[1] and from_status == head[0]
                and version not in (waiting or ()) and base not in (waiting or ()))
    event["applied"] = 1 if in_place else 0
    merge.insert(DossierEvent, event)
    if state is not None:
        state.bases.setdefault(dossier_id, set()).add(base)
        if head is None:
            state.facts.add(dossier_id)
    if head is None:
        return False  # its dossier has not arrived: walked when the create comes
    if not in_place:
        return rebuild(dossier_id, report=event["id"])
    _advance(dossier_id, dict(sets, status=to_status, status_version=version), change["hlc"])
    if state is not None:
        state.head[dossier_id] = (to_status, version)
    return True


def _head(state: Any, dossier_id: str) -> tuple[int, str] | None:
    if state is not None and dossier_id in state.head:
        return state.head[dossier_id]
    row = Dossier.select(Dossier.status, Dossier.status_version).where(Dossier.id == dossier_id).tuples().first()
    if row is not None and state is not None:
        state.head[dossier_id] = row
    return row


def _touch(dossier_id: str, hlc: str) -> None:
    """updated_hlc = the latest change merged into the dossier (a maximum: order does not matter)."""
    _advance(dossier_id, {}, hlc)


def _advance(dossier_id: str, values: dict[str, Any], hlc: str) -> None:
    """The action's fields, the new head, and updated_hlc raised to `hlc` if it is later: one UPDATE. Inside
    a batch, a dossier's successive advances are folded into one UPDATE sent before anything reads the row
    (`flush_advances`), as a dossier's whole day of actions often arrives in one batch."""
    state = merge.current_batch()
    if state is None:
        _update_now(dossier_id, values, hlc)
        return
    created = state.creates.get(dossier_id) if state.creates else None
    if created is not None:  # not inserted yet: the row takes the values (what the UPDATE would write)
        created.update(values)
        created["updated_hlc"] = max(created["updated_hlc"], hlc)
        return
    pending = state.advances.get(dossier_id)
    if pending is None:
        state.advances[dossier_id] = [dict(values), hlc]
    else:
        pending[0].update(values)
        pending[1] = max(pending[1], hlc)


def flush_advances(state: Any, dossier_id: str | None = None) -> None:
    """Send the folded advances (of one dossier, or all)."""
    if state is None or not state.advances:
        return
    ids = [dossier_id] if dossier_id is not None else list(state.advances)
    for i in ids:
        pending = state.advances.pop(i, None)
        if pending is not None:
            _update_now(i, pending[0], pending[1])


def flush_creates(state: Any, counted: bool = False) -> None:
    """Insert the dossiers created in this batch and held back (`create` inside a pipelined `merge.batch`),
    one executemany per statement. `counted` (at the batch's end, its documents sent): the INSERT of a dossier
    whose documents changed in the batch counts them itself (the same correlated counts as `_recount`), and
    the dossier needs no recount."""
    if state is None or not state.creates:
        return
    rows, state.creates = state.creates, {}
    groups: dict[str, list[list[Any]]] = {}
    for dossier_id, row in rows.items():
        full = merge.full_row(Dossier)
        if full is not None:  # every column given: one statement text for all (prepared by the server)
            row = {**full, **row}
        given = tuple(sorted(row))
        plan = merge.insert_plan(Dossier, given)
        args = merge.insert_args(Dossier, plan, row)
        if counted and dossier_id in state.documents:
            sql, order = merge.compiled(Dossier, ("create counted", given), _counted_insert(plan))
            args += [dossier_id, "none", *REUSED]
            state.documents.discard(dossier_id)
        else:
            sql, order = merge.compiled(Dossier, ("insert", None, given), plan[-1])
        groups.setdefault(sql, []).append(args if order is None else [args[i] for i in order])
    cursor = merge.database_of(Dossier).cursor()
    for sql, many in groups.items():
        with pw.__exception_wrapper__:
            cursor.executemany(sql, many)


def _counted_insert(plan: tuple):
    """The build of `plan`'s INSERT with the document counters counted by subqueries (their own arguments,
    given after the plan's: the dossier id, "none" and the REUSED kinds)."""
    specs, missing = plan[0], plan[1]
    columns = [s[0] for s in specs] + list(missing)
    fields = Dossier._meta.fields
    DD = DossierDocument

    def build(mark):
        n = len(columns)

        def count(cond=None):
            query = DD.select(pw.fn.COUNT(DD.id)).where(DD.dossier_id == mark(n))
            return query.where(cond) if cond is not None else query

        counts = {"doc_total": count(), "doc_digitised": count(DD.digitised != mark(n + 1)),
                  "doc_reused": count(DD.digitised.in_([mark(n + 2), mark(n + 3)]))}
        values = tuple(counts[c] if c in counts else mark(i) for i, c in enumerate(columns))
        return Dossier.insert_many([values], fields=[fields[c] for c in columns]).on_conflict_ignore()

    return build


def _update_now(dossier_id: str, values: dict[str, Any], hlc: str) -> None:
    meta = Dossier._meta.fields
    columns = tuple(sorted(values))
    args = [meta[c].db_value(values[c]) for c in columns] + [hlc, hlc, dossier_id]
    n = len(columns)

    def build(mark):
        update = {meta[c]: mark(i) for i, c in enumerate(columns)}
        update[Dossier.updated_hlc] = pw.Case(None, [(Dossier.updated_hlc < mark(n), mark(n + 1))],
                                              Dossier.updated_hlc)
        return Dossier.update(update).where(Dossier.id == mark(n + 2))

    merge.run(Dossier, ("advance", columns), build, args)


def rebuild(dossier_id: str, report: str | None = None) -> bool:
    """Walk the dossier's action tree again from its origin: status, chain fields, applied flags, status
    conflicts, edited fields and updated_hlc become what the set of changes held here says. Returns whether
    the event `report` (an event id) ended up applied."""
    merge.flush_pending()
    state = merge.current_batch()
    origin = DossierOrigin.get_or_none(DossierOrigin.id == dossier_id)
    dossier = Dossier.get_or_none(Dossier.id == dossier_id)
    if origin is None or dossier is None:
        return False
    events = list(DossierEvent.select().where(DossierEvent.dossier_id == dossier_id))
    chain = [e for e in events if e.chain]
    status, head, fields, applied, forks = rules.walk(origin.version, origin.status, json.loads(origin.fields),
                                                      chain)
    values: dict[str, Any] = dict(fields, status=status, status_version=head)
    versions: dict[str, str] = {}
    for w in FieldWrite.select().where(FieldWrite.entity_id == dossier_id).order_by(FieldWrite.version):
        values[w.field] = json.loads(w.value)
        versions[w.field] = w.version
    values["field_versions"] = rules.value_text(versions)
    values.update(_document_counts(dossier_id))
    hlcs = [e.hlc for e in events] + [rules.hlc_of(v) for v in versions.values()] + [dossier.updated_hlc or ""]
    values["updated_hlc"] = max(hlcs)
    merge.update(Dossier, values, dossier_id)
    for e in chain:
        flag = 1 if e.id in applied else 0
        if e.applied != flag:
            DossierEvent.update(applied=flag).where(DossierEvent.id == e.id).execute()
    if state is not None:
        state.head[dossier_id] = (status, head)
    for base, kids in forks.items():
        candidates, winner = rules.status_candidates(kids, applied)
        _upsert_conflict({"id": f"{dossier_id}:status:{base}", "dossier_id": dossier_id,
                          "unit_code": dossier.unit_code, "kind": "status", "field": "status", "base": base,
                          "candidates": candidates, "winner": winner})
    return report in applied if report else True


# ---------------------------------------------------------------- document counters

def documents_changed(dossier_id: str) -> None:
    """A document of this dossier was added or changed: count its documents again (at the batch's end)."""
    state = merge.current_batch()
    if state is not None:
        state.documents.add(dossier_id)
        return
    _recount([dossier_id])


def recount_documents(state: Any) -> None:
    """At a batch's end (its inserts sent): the counters of every dossier whose documents changed."""
    _recount(sorted(state.documents))
    state.documents.clear()


def recount_all() -> None:
    """Count the documents of every dossier held (a database from before the counters existed)."""
    ids = [i for (i,) in Dossier.select(Dossier.id).tuples()]
    _recount(ids)


def _recount(ids: list[str]) -> None:
    """One UPDATE with correlated counts per 500 dossiers: nothing is read back (a pipeline keeps going)."""
    DD = DossierDocument

    def count(cond=None):
        query = DD.select(pw.fn.COUNT(DD.id)).where(DD.dossier_id == Dossier.id)
        return query.where(cond) if cond is not None else query

    for part in _chunks(ids):
        Dossier.update(doc_total=count(), doc_digitised=count(DD.digitised != "none"),
                       doc_reused=count(DD.digitised.in_(REUSED))).where(Dossier.id.in_(part)).execute()


REUSED = ("reused_document", "reused_result")


def _document_counts(dossier_id: str) -> dict[str, int]:
    kinds = dict(DossierDocument.select(DossierDocument.digitised, pw.fn.COUNT(DossierDocument.id))
                 .where(DossierDocument.dossier_id == dossier_id).group_by(DossierDocument.digitised).tuples())
    total = sum(kinds.values())
    reused = sum(n for k, n in kinds.items() if k in REUSED)
    return {"doc_total": total, "doc_digitised": total - kinds.get("none", 0), "doc_reused": reused}


# ---------------------------------------------------------------- a person's decisions

def resolve(change: dict[str, Any]) -> bool:
    """conflict.resolve: record the decision; a "take"/"new" value is a field write based on the winner."""
    payload = change["payload"]
    covers = [str(v) for v in payload.get("covers") or []]
    value = (payload.get("set") or {})
    merge.insert(ConflictResolution, {
        "id": f"{change['node_id']}:{change['seq']}", "conflict_id": change["entity_id"],
        "version": rules.version_of(change), "covers": rules.value_text(sorted(covers)),
        "choice": str(payload.get("choice", "")), "value": rules.value_text(value) if value else "",
        "by_user": change.get("author", ""), "by_name": payload.get("by_name", ""), "at": payload.get("at", "")})
    if value and isinstance(payload.get("dossier_id"), str):
        update(change, dossier_id=payload["dossier_id"])
    refresh_resolution(change["entity_id"])
    return True


def refresh_resolution(conflict_id: str) -> None:
    """A conflict is resolved when the decisions recorded cover every candidate it holds now."""
    row = Conflict.get_or_none(Conflict.id == conflict_id)
    if row is None:
        return
    decisions = list(ConflictResolution.select().where(ConflictResolution.conflict_id == conflict_id)
                     .order_by(ConflictResolution.version))
    covered: set[str] = set()
    for d in decisions:
        covered.update(json.loads(d.covers or "[]"))
    candidates = {c["version"] for c in json.loads(row.candidates or "[]")}
    resolved = 1 if decisions and candidates <= covered else 0
    latest = ""
    if decisions:
        d = decisions[-1]
        latest = rules.value_text({"choice": d.choice, "by_user": d.by_user, "by_name": d.by_name, "at": d.at,
                                   "value": json.loads(d.value) if d.value else None, "version": d.version})
    if (row.resolved, row.resolution) != (resolved, latest):
        Conflict.update(resolved=resolved, resolution=latest).where(Conflict.id == conflict_id).execute()


def announced(change: dict[str, Any]) -> bool:
    """duplicate.flag: the hub tells a commune of a possible duplicate received by another commune, whose
    dossier this node does not hold; the flag is the same row the hub (and a laptop of both) derive."""
    p = change["payload"]
    a, b = sorted((str(p.get("dossier_a", "")), str(p.get("dossier_b", ""))))
    if not a or not b or change["entity_id"] != f"{a}|{b}":
        raise merge.ChangeNotApplicable("duplicate.flag: the flag does not name its two dossiers",
                                        change_ref=change.get("hash"))
    merge.insert(DuplicateFlag, {"id": change["entity_id"], "dossier_a": a, "dossier_b": b,
                                 "unit_code": str(p.get("unit_code", "")),
                                 "procedure_code": str(p.get("procedure_code", ""))})
    refresh_review(change["entity_id"])
    return True


def review(change: dict[str, Any]) -> bool:
    """duplicate.review: record a person's review of a possible duplicate."""
    payload = change["payload"]
    merge.insert(DuplicateReview, {
        "id": f"{change['node_id']}:{change['seq']}", "flag_id": change["entity_id"],
        "version": rules.version_of(change), "decision": str(payload.get("decision", "")),
        "note": str(payload.get("note", "")), "by_user": change.get("author", ""),
        "by_name": payload.get("by_name", ""), "at": payload.get("at", "")})
    refresh_review(change["entity_id"])
    return True


def refresh_review(flag_id: str) -> None:
    latest = (DuplicateReview.select().where(DuplicateReview.flag_id == flag_id)
              .order_by(DuplicateReview.version.desc()).first())
    if latest is None:
        return
    DuplicateFlag.update(reviewed=1, decision=latest.decision, note=latest.note,
                         reviewed_by=latest.by_name or latest.by_user, reviewed_at=latest.at).where(
        DuplicateFlag.id == flag_id).execute()
