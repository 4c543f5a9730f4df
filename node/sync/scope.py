"""Which unit a change concerns: the hub's scope rules, in one place for the hub (central/scoping.py,
which nodes receive a change) and a commune node relaying its laptops (node/relay.py).

    made by the hub, entity procedure / calendar_day / node      -> "*" (every node)
    user                                                        -> the user's unit_code
    dossier create                                              -> fields.unit_code
    dossier update / action                                     -> the dossier's unit_code (else payload "unit":
                                                                   an action may arrive before its dossier)
    document / attachment                                       -> the unit of the dossier they belong to
    conflict resolve / duplicate review, attachment delete      -> the unit of the payload's dossier
                                                                   (a duplicate of two communes: the first)
    duplicate flag (the hub telling each of two communes)       -> the payload's unit
    anything else, an unknown dossier, a node's own catalogue   -> the originating node's unit_code

Works before or after the batch is applied: dossiers, documents and users created earlier in the same
batch are found in the batch itself, the rest in the database. Lookups are made once per batch, never once
per change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .protocol import GLOBAL_SCOPE, HUB_ONLY_SCOPE
from .state import Dossier, DossierDocument, NodeRecord, User

HUB_GLOBAL_ENTITIES = {"procedure", "calendar_day", "node"}
CHUNK = 500


def _lookup(model, key_field, value_field, keys: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    keys_list = sorted(k for k in keys if k)
    for i in range(0, len(keys_list), CHUNK):
        part = keys_list[i:i + CHUNK]
        query = model.select(key_field, value_field).where(key_field.in_(part)).tuples()
        found.update({k: v for k, v in query})
    return found


def _fields(change: dict[str, Any]) -> dict[str, Any]:
    payload = change.get("payload") or {}
    fields = payload.get("fields") or payload.get("set") or {}
    return fields if isinstance(fields, dict) else {}


def _about(change: dict[str, Any]) -> str | None:
    """The dossier a decision or a deletion is about, named in its payload."""
    payload = change.get("payload") or {}
    if not isinstance(payload, dict) or change["entity"] not in ("conflict", "duplicate", "attachment"):
        return None
    ids = payload.get("dossier_ids")
    found = payload.get("dossier_id") or (ids[0] if isinstance(ids, list) and ids else None)
    return found if isinstance(found, str) else None


def scopes_for(changes: Iterable[dict[str, Any]], hub_node_id: str, *, strict: bool = False,
               origin_units: dict[str, str] | None = None) -> list[str]:
    """The scope of each change, in order. `strict` (a relay): "" for a dossier, document or user this
    replica cannot place, rather than the originating node's unit. `origin_units`: known node -> unit."""
    changes = list(changes)
    dossier_ids: set[str] = set()
    document_ids: set[str] = set()
    user_ids: set[str] = set()
    origins = {c["node_id"] for c in changes}
    for c in changes:
        entity, op, fields = c["entity"], c["op"], _fields(c)
        if entity == "dossier" and op != "create":
            dossier_ids.add(c["entity_id"])
        elif entity in ("document", "attachment"):
            if isinstance(fields.get("dossier_id"), str):
                dossier_ids.add(fields["dossier_id"])
            elif entity == "document":
                document_ids.add(c["entity_id"])
        elif entity == "user" and not isinstance(fields.get("unit_code"), str):
            user_ids.add(c["entity_id"])
        if isinstance(_about(c), str):
            dossier_ids.add(_about(c))
    # Rows created in this batch first (creates are insert-once, so the batch's value is the row's value).
    batch_dossier = {c["entity_id"]: _fields(c).get("unit_code") for c in changes
                     if c["entity"] == "dossier" and c["op"] == "create"}
    batch_document = {c["entity_id"]: _fields(c).get("dossier_id") for c in changes
                      if c["entity"] == "document" and c["op"] == "create"}
    batch_user = {c["entity_id"]: _fields(c).get("unit_code") for c in changes
                  if c["entity"] == "user" and c["op"] == "create"}
    doc_dossier = _lookup(DossierDocument, DossierDocument.id, DossierDocument.dossier_id,
                          document_ids - set(batch_document))
    doc_dossier.update({k: v for k, v in batch_document.items() if isinstance(v, str)})
    dossier_ids.update(doc_dossier.values())
    dossier_unit = _lookup(Dossier, Dossier.id, Dossier.unit_code, dossier_ids - set(batch_dossier))
    dossier_unit.update({k: v for k, v in batch_dossier.items() if isinstance(v, str)})
    user_unit = _lookup(User, User.id, User.unit_code, user_ids - set(batch_user))
    user_unit.update({k: v for k, v in batch_user.items() if isinstance(v, str)})
    origin_unit = dict(origin_units or {})
    origin_unit.update(_lookup(NodeRecord, NodeRecord.node_id, NodeRecord.unit_code, origins - set(origin_unit)))
    origin_unit.setdefault(hub_node_id, HUB_ONLY_SCOPE)

    out = []
    for c in changes:
        entity, op, fields = c["entity"], c["op"], _fields(c)
        scope = None
        if c["node_id"] == hub_node_id and entity in HUB_GLOBAL_ENTITIES:
            scope = GLOBAL_SCOPE
        elif entity == "user":
            scope = fields.get("unit_code") if isinstance(fields.get("unit_code"), str) else user_unit.get(
                c["entity_id"])
        elif entity == "dossier":
            scope = fields.get("unit_code") if op == "create" else dossier_unit.get(c["entity_id"])
        elif entity in ("document", "attachment") and op != "delete":
            dossier_id = fields.get("dossier_id") if isinstance(fields.get("dossier_id"), str) else \
                doc_dossier.get(c["entity_id"])
            scope = dossier_unit.get(dossier_id or "")
        elif entity == "duplicate" and op == "flag":  # the hub's word to one of the two communes
            scope = (c.get("payload") or {}).get("unit")
        elif entity == "duplicate" and "," in str((c.get("payload") or {}).get("unit") or ""):
            # A review of a flag between two communes: the reviewer's own commune (it may not write the other's).
            units = str(c["payload"]["unit"]).split(",")
            mine = origin_unit.get(c["node_id"])
            scope = mine if mine in units else units[0]
        elif isinstance(_about(c), str):
            scope = dossier_unit.get(_about(c))
        if (not isinstance(scope, str) or not scope) and entity in ("dossier", "conflict", "duplicate", "attachment"):
            unit = (c.get("payload") or {}).get("unit")
            scope = unit.split(",")[0] if isinstance(unit, str) else None
        if not isinstance(scope, str) or not scope:
            placed = entity in ("dossier", "document", "attachment", "user", "conflict", "duplicate")
            if strict and placed:
                scope = ""
            else:
                scope = origin_unit.get(c["node_id"]) or ("" if strict else HUB_ONLY_SCOPE)
        out.append(scope)
    return out
