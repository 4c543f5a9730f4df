"""Several real node replicas in one process, for the merge tests (imported as `replicas`).

Each replica is a real node folder (copied from the session template, then given its own key, node id and
unit), with its own SQLite file and a settable clock. One DatabaseProxy binds the models, so every call
first binds the replica it works on (`use()`). Changes travel with `deliver()`: the node's real
verify-and-store path (`ingest`, every signature checked, gaps allowed as in a scoped pull), in any
order and any number of times.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from node import store
from node.instance import Identity, Node
from node.sync import hlc, ingest, keys, log
from node.sync.ids import new_id
from node.sync.state import User, database
from node.sync.statedigest import state_digest, state_rows
from node.users import Officer

KEYS: dict[str, str] = {}  # node id -> public key of every replica made here (the key registry)


class Replica:
    def __init__(self, template: Path, target: Path, now, *, unit_code: str, unit_name: str = "",
                 units: tuple[str, ...] | None = None, name: str = "", code_tag: str = ""):
        shutil.copytree(template, target)
        first = Identity.load(template / "node.json")  # the template's own changes (users, catalogue) travel too
        KEYS[first.node_id] = first.public_key
        key = keys.NodeKey.generate()
        (target / "node_key.pem").unlink()
        key.save(target / "node_key.pem", None)
        ident = Identity.load(target / "node.json")
        ident.node_id = "N" + new_id()[-12:]
        ident.public_key = key.public_b64
        ident.unit_code, ident.unit_name = unit_code, unit_name or unit_code
        ident.code_tag = code_tag
        ident.save(target / "node.json")
        KEYS[ident.node_id] = key.public_b64
        self.name = name or unit_code
        self.ms = 1_772_420_400_000  # 2026-03-02 03:00 UTC, moved by tests for skew and order
        self.node = Node(target, now=now)
        self.node.clock = hlc.Clock(now_ms=lambda: self.ms)
        self.units = units or (unit_code,)

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def use(self) -> Node:
        database.initialize(self.node.db)
        return self.node

    def officer(self, role: str) -> Officer:
        self.use()
        return Officer.of(User.get(User.username == f"{role}1"))

    def tick(self, ms: int = 1000) -> None:
        self.ms += ms

    def changes(self, *, own: bool = False) -> list[dict[str, Any]]:
        """Every change this replica holds (made here or received), in arrival order."""
        self.use()
        query = log.Change.select().order_by(log.Change.id)
        if own:
            query = query.where(log.Change.node_id == self.node_id)
        return [log.row_to_change(r) for r in query]

    def deliver(self, changes: list[dict[str, Any]]) -> int:
        """Receive `changes` through the real ingest path; returns how many were new here."""
        node = self.use()
        with store.transaction(node):
            out = ingest.ingest(changes, key_for=lambda nid: (KEYS[nid], "active"), apply=store.apply_change,
                                gaps_allowed=True)
        for change in out.stored_changes:
            node.clock.observe(hlc.Timestamp.parse(change["hlc"]))
        return out.stored

    def digest(self, units=None) -> str:
        self.use()
        return state_digest(units or self.units)

    def rows(self, units=None) -> dict[str, list[dict[str, Any]]]:
        self.use()
        return state_rows(units or self.units)

    def close(self) -> None:
        self.node.close()


def exchange(a: Replica, b: Replica) -> None:
    """Both ways, everything each holds (the other's scope is not filtered: both serve the same unit)."""
    b.deliver(a.changes())
    a.deliver(b.changes())
