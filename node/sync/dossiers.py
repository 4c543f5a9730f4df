"""Merge rules for dossiers (design.md §4): the state of a dossier is a function of the set of its changes.

A version is `"<hlc>~<node_id>"`; the HLC text has a fixed width, so versions sort like (hlc, node_id).

Plain fields (EDITABLE: the applicant's details): every edit is a `FieldWrite` row naming the version it
was based on. A field's value is its latest write by version (last writer wins, whatever the arrival
order). Two writes on the same base with different values were made without seeing each other: they are a
`Conflict` (kind "field") for a person, and the winner is the same on every replica.

Status and the fields that actions set (CHAIN_FIELDS): every workflow action names the status version it
was based on (`base`), so the actions of a dossier form a tree rooted at its create. The applied chain
starts at the root and at each step takes, among the actions based on the current step, the one that
PRECEDENCE ranks first (ties: the earliest version). Actions off the chain stay in the log and in the
history with applied = 0 ("not applied", shown to a person); two or more actions on one base are a
`Conflict` (kind "status"). The dossier's status and chain fields are the create's values with the chain's
actions applied in order. Actions arriving in chain order are applied in place; anything else (an action
on an older base, one whose base has not arrived yet, a create arriving after its actions) re-walks the
dossier's tree from `DossierOrigin` (`rebuild`), which gives the same result as any other order.

Everything else about a dossier (history events, documents, attachments, ratings) is an append-only
collection: union, never a conflict. A create is inserted once. Possible duplicates (same citizen ID and
procedure from two different nodes within DUPLICATE_WINDOW_DAYS) are flagged, never merged.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import datetime
from typing import Any

from . import encoding

# The applicant's details an officer may correct; applicant_folded travels with applicant_name (search key).
EDITABLE = ("applicant_name", "applicant_birth_date", "applicant_address", "applicant_phone", "applicant_email",
            "owner_name", "matter")
LWW_FIELDS = EDITABLE + ("applicant_folded",)
# What workflow actions set (never edited directly).
CHAIN_FIELDS = ("step", "appointment_at", "original_appointment_at", "apology_at", "apology_reason", "handler_id",
                "step_deadline", "paused_at", "paused_minutes_left", "fee_amount", "fee_paid", "paid_online",
                "transferred_at", "result_at", "finished_at", "returned_at", "rating", "rating_reason", "reason",
                "supplement_items", "result_digitised", "received_by", "return_method")

# Concurrent actions on one base: the higher rank is applied. Facts of the physical world first (the result
# handed over, money taken, papers received), then the applicant's own request, then decisions, then
# routine steps: undoing a fact needs a person, undoing a routine step does not.
PRECEDENCE = {
    "return_result": 100, "record_payment": 95, "withdraw": 90, "supplement_received": 85, "refuse": 80,
    "stop": 70, "sign": 60, "apologise": 50, "request_supplement": 40, "request_payment": 35, "accept": 30,
    "transfer": 25, "assign": 20, "propose": 15,
    # Interconnected dossiers: the agency's result is a decision like signing; sending back and handing over
    # are routine steps.
    "agency_result": 60, "agency_return": 45, "send_to_agency": 22, "agency_accept": 18,
}
DUPLICATE_WINDOW_DAYS = int(os.environ.get("MOTCUA_DUPLICATE_WINDOW_DAYS", "30") or 30)


def version_of(change: dict[str, Any]) -> str:
    return f"{change['hlc']}~{change['node_id']}"


def node_of(version: str) -> str:
    return version.partition("~")[2]


def hlc_of(version: str) -> str:
    return version.partition("~")[0]


def value_text(value: Any) -> str:
    """A field value as stored in FieldWrite.value and compared for conflicts: canonical JSON."""
    return encoding.canonical(value).decode()


def first(actions: list[Any]) -> Any:
    """The action that wins among actions on one base: highest precedence, then the earliest version."""
    return min(actions, key=lambda e: (-PRECEDENCE.get(e.action, 0), e.version))


def walk(origin_version: str, origin_status: int, origin_fields: dict[str, Any], events: list[Any]):
    """Walk the applied chain over the dossier's chain events (objects with id, version, base, action,
    from_status, to_status, sets). Returns (status, head version, chain fields, applied ids, forks), where
    forks maps a base to its actions when there are two or more."""
    by_base: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        by_base[e.base].append(e)
    status, head, fields = origin_status, origin_version, dict(origin_fields)
    applied: set[str] = set()
    while True:
        kids = [e for e in by_base.get(head, ()) if e.from_status == status and e.id not in applied]
        if not kids:
            break
        w = first(kids)
        applied.add(w.id)
        status = w.to_status if w.to_status is not None else status
        sets = json.loads(w.sets or "{}")
        fields.update({k: v for k, v in sets.items() if k in CHAIN_FIELDS})
        head = w.version
    forks = {base: kids for base, kids in by_base.items() if len(kids) > 1}
    return status, head, fields, applied, forks


def status_candidates(kids: list[Any], applied: set[str]) -> tuple[str, str]:
    """(candidates JSON, winner version) of a status conflict."""
    winner = first(kids).version
    rows = [{"version": e.version, "action": e.action, "node_id": node_of(e.version), "by_user": e.by_user,
             "by_name": e.by_name, "at": e.at, "from": e.from_status, "to": e.to_status,
             "applied": e.id in applied} for e in sorted(kids, key=lambda e: e.version)]
    return encoding.canonical(rows).decode(), winner


def field_candidates(writes: list[Any]) -> tuple[str, str] | None:
    """(candidates JSON, winner version) when sibling writes of a field disagree, else None."""
    if len({w.value for w in writes}) < 2:
        return None
    rows = [{"version": w.version, "value": json.loads(w.value), "node_id": w.node_id, "by_user": w.by_user,
             "by_name": w.by_name, "at": w.at} for w in sorted(writes, key=lambda w: w.version)]
    return encoding.canonical(rows).decode(), max(w.version for w in writes)


def within_window(a: str, b: str, days: int | None = None) -> bool:
    """Whether two reception times (`YYYY-MM-DD HH:MM:SS`) are at most the duplicate window apart."""
    days = DUPLICATE_WINDOW_DAYS if days is None else days
    try:
        ta, tb = datetime.strptime(a[:19], "%Y-%m-%d %H:%M:%S"), datetime.strptime(b[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return abs((ta - tb).total_seconds()) <= days * 86400
