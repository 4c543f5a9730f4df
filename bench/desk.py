"""Carrying out workflow steps for the generator, through `node.workflow` or by its fast twin.

`RealDesk` calls `workflow.receive_dossier` and `workflow.perform`. `FastDesk` writes the very same signed
changes with `store.write` (same payloads, built by the workflow's own validation and step handlers) but
keeps the dossier in memory instead of reading it back after every step, and builds the work calendar
once: reading back a 45-column row through peewee and reloading the calendar cost more than half of each
step (see bench/README.md). The generator sends a share of dossiers through `RealDesk` and
`payload_shapes_differ` checks afterwards that both desks left changes of the same shapes.
"""

from __future__ import annotations

import json
from typing import Any

from node import store, workflow as wf
from node.deadlines import appointment as compute_appointment
from node.instance import Node
from node.sync.ids import new_id
from node.sync.state import Dossier
from node.text import fold
from node.timeutil import to_text
from node.users import Officer


class RealDesk:
    """Every step through the public workflow functions (reads the dossier back each time)."""

    def __init__(self, node: Node, cal):
        self.node, self.cal = node, cal

    def receive(self, officer: Officer | None, data: dict[str, Any], online: bool) -> Dossier:
        d, _ = wf.receive_dossier(self.node, officer, data, online=online)
        return d

    def perform(self, officer: Officer, d: Dossier, name: str, **params) -> Dossier:
        return wf.perform(self.node, officer, d.code, name, params)


class FastDesk(RealDesk):
    """The same signed changes as `RealDesk`, written with `store.write`; the dossier stays in memory."""

    def receive(self, officer: Officer | None, data: dict[str, Any], online: bool) -> Dossier:
        # Mirrors workflow.receive_dossier (inside the caller's transaction).
        node, cal = self.node, self.cal
        now = node.now()
        clean, _ = wf.validate_reception(data, now)
        proc = clean.pop("procedure")
        documents = clean.pop("documents")
        due = compute_appointment(now, proc.time_kind, proc.time_value, bool(proc.cutoff_15h), cal)
        dossier_id = new_id()
        by = officer.id if officer else ""
        fields = dict(
            clean, code=wf.next_code(node, now), unit_code=node.identity.unit_code, procedure_code=proc.code,
            procedure_version=proc.version, status=wf.NEW if online else wf.ACCEPTED, step="reception",
            applicant_folded=fold(clean["applicant_name"]), received_at=to_text(now), received_by=by,
            appointment_at="" if online else to_text(due),
            step_deadline="" if online else to_text(wf.transfer_deadline(now, cal)),
            channel=2 if online else clean["channel"],
        )
        store.write(node, "dossier", dossier_id, "create", {"fields": fields}, by)
        for i, doc in enumerate(documents):
            store.write(node, "document", new_id(), "create",
                        {"fields": dict(doc, dossier_id=dossier_id, position=i)}, by)
        event = {"at": to_text(now), "by_user": by,
                 "by_name": officer.full_name if officer else clean["applicant_name"],
                 "unit": node.identity.unit_name, "note": "", "step_deadline": fields["step_deadline"]}
        store.write(node, "dossier", dossier_id, "action",
                    {"action": "register" if online else "receive", "set": {}, "event": event}, by)
        return Dossier(id=dossier_id, **fields)

    def perform(self, officer: Officer, d: Dossier, name: str, **params) -> Dossier:
        # Mirrors workflow.perform, with `d` the in-memory dossier instead of a fresh read.
        action = wf.ACTIONS[name]
        if action not in wf.allowed_actions(officer, d):
            raise RuntimeError(f"generator bug: {name} not allowed in status {d.status}")
        now = self.node.now()
        values, event = wf._HANDLERS[name](d, params, now, self.cal, officer)
        event = dict({"at": to_text(now), "by_user": officer.id, "by_name": officer.full_name,
                      "unit": self.node.identity.unit_name}, **event)
        payload: dict[str, Any] = {"action": name, "set": values, "event": event}
        if action.to is not None:
            payload.update({"from": d.status, "to": action.to})
        store.write(self.node, "dossier", d.id, "action", payload, officer.id)
        for key, value in values.items():
            setattr(d, key, value)
        if action.to is not None:
            d.status = action.to
        return d


def _shape(entity: str, op: str, payload: dict[str, Any]) -> tuple:
    inner = tuple(sorted((k, tuple(sorted(v))) for k, v in payload.items() if isinstance(v, dict)))
    return entity, op, payload.get("action", ""), tuple(sorted(payload)), inner


def payload_shapes_differ(db, real_ids: list[str], fast_ids: list[str]) -> list[str]:
    """Change shapes (keys of payload, `set`, `event`, `fields`) the fast desk wrote but the real one never did."""

    def shapes(ids: list[str]) -> set[tuple]:
        out: set[tuple] = set()
        for first in range(0, len(ids), 500):
            chunk = ids[first:first + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute_sql(
                f"SELECT entity, op, payload FROM change WHERE entity = 'dossier' AND entity_id IN ({marks}) "
                f"UNION ALL SELECT c.entity, c.op, c.payload FROM change c JOIN dossier_document dd "
                f"ON dd.id = c.entity_id WHERE c.entity = 'document' AND dd.dossier_id IN ({marks})",
                chunk + chunk).fetchall()
            out.update(_shape(e, o, json.loads(p)) for e, o, p in rows)
        return out

    real, fast = shapes(real_ids), shapes(fast_ids)
    real_kinds = {s[:3] for s in real}
    # Only compare kinds of change both desks made (a rare branch may be missing from the real sample).
    return sorted(repr(s) for s in fast - real if s[:3] in real_kinds)
