"""Changes -> state. Every change, made here or received, is applied by `apply()`.

Operations by entity (payload shapes):

    create   {"fields": {...}}                         insert the row once; a repeat is a no-op
    update   {"set": {...}, "base": "<hlc>"}            field writes (base: the version written on)
    put      {"fields": {...}}                         versioned catalogue rows and calendar days: upsert
    action   {"action", "from"?, "to"?, "set", "event"} a dossier step: status transition (from -> to)
                                                        when "to" is given, field writes, a history row

An action whose `from` is no longer the dossier's status is kept in the log, marked not applied, and
recorded in the history with applied = 0, so a person can see it.
"""

from __future__ import annotations

from typing import Any

from .errors import ChangeNotApplicable
from .state import Attachment, CalendarDay, Dossier, DossierDocument, DossierEvent, NodeRecord, Procedure, User

MODELS = {
    "procedure": Procedure,
    "calendar_day": CalendarDay,
    "user": User,
    "dossier": Dossier,
    "document": DossierDocument,
    "attachment": Attachment,
    "node": NodeRecord,
}
OPS = {
    "procedure": {"put"},
    "calendar_day": {"put"},
    "user": {"create", "update"},
    "dossier": {"create", "update", "action"},
    "document": {"create", "update"},
    "attachment": {"create"},
    "node": {"put"},
}
KEYED_PUTS = {"calendar_day": "day", "node": "node_id"}  # put = upsert on this key (else insert once)


def _columns(model) -> set[str]:
    return set(model._meta.fields)


def _clean(model, fields: dict[str, Any]) -> dict[str, Any]:
    # Fields unknown to this version are ignored, so newer nodes can add fields without breaking older ones.
    known = _columns(model)
    return {k: v for k, v in fields.items() if k in known and k != "id"}


def apply(change: dict[str, Any]) -> bool:
    """Apply one verified change to the state. Returns False when it was kept but not applied."""
    entity, op, payload = change["entity"], change["op"], change["payload"]
    if entity not in MODELS or op not in OPS[entity]:
        raise ChangeNotApplicable(f"unknown operation {entity}.{op}", change_ref=change.get("hash"))
    model = MODELS[entity]
    if op == "create":
        row = _clean(model, payload.get("fields", {}))
        row["id"] = change["entity_id"]
        if entity == "dossier":
            row["updated_hlc"] = change["hlc"]
        model.insert(row).on_conflict_ignore().execute()
        return True
    if op == "update":
        values = _clean(model, payload.get("set", {}))
        if entity == "dossier":
            values["updated_hlc"] = change["hlc"]
        if values:
            model.update(values).where(model.id == change["entity_id"]).execute()
        return True
    if op == "put":
        row = _clean(model, payload.get("fields", {}))
        key = KEYED_PUTS.get(entity)
        if key:
            row[key] = change["entity_id"]
            target = getattr(model, key)
            update = {k: v for k, v in row.items() if k != key}
            # Portable upsert (SQLite and PostgreSQL): ON CONFLICT (key) DO UPDATE.
            model.insert(row).on_conflict(conflict_target=[target], update=update).execute()
        else:
            model.insert(row).on_conflict_ignore().execute()
        return True
    return _apply_action(change)


def _apply_action(change: dict[str, Any]) -> bool:
    payload = change["payload"]
    dossier_id = change["entity_id"]
    current = Dossier.select(Dossier.status).where(Dossier.id == dossier_id).tuples().first()
    if current is None:
        raise ChangeNotApplicable(f"no dossier {dossier_id}", change_ref=change.get("hash"))
    status = current[0]
    to_status = payload.get("to")
    applied = to_status is None or payload.get("from") == status
    if applied:
        values = _clean(Dossier, payload.get("set", {}))
        if to_status is not None:
            values["status"] = to_status
        values["updated_hlc"] = change["hlc"]
        Dossier.update(values).where(Dossier.id == dossier_id).execute()
    event = _clean(DossierEvent, payload.get("event", {}))
    event.update(
        id=f"{change['node_id']}:{change['seq']}",
        dossier_id=dossier_id,
        hlc=change["hlc"],
        action=payload["action"],
        from_status=payload.get("from", status),
        to_status=to_status if to_status is not None else status,
        applied=1 if applied else 0,
    )
    DossierEvent.insert(event).on_conflict_ignore().execute()
    return applied
