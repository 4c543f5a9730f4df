"""Convergence, as a property (issue 4): two communes, a field laptop and the hub, doing random receptions,
field edits, actions and decisions under random partitions, reorderings and duplicated deliveries, by hub
push/pull, LAN exchange between the laptop and a commune, and USB bundles; then healed.

Afterwards, for each commune, every replica holding it has byte-identical state; no change is missing
anywhere it belongs; every dossier went only through transitions the machine allows; and the conflicts
are exactly what an independent model of the edits says: one record per set of writes to a field made on
the same base with different values, none for writes to different fields, and each field holding the
value of its latest write.

The hub is the real hub storage (SQLite here; the same merge code runs on PostgreSQL, see the storage
contract); nodes are real node folders; changes travel through the real verify-and-store paths.
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.storage import HubSigner, open_storage
from central.storage.testing import postgres_schema
from conftest import FakeNow, reception_body
from node import attachments, store, workflow
from node.sync import bundle, conflicts, hlc, keys, log
from node.sync.ids import new_id
from node.sync.state import DuplicateFlag, Conflict, Dossier, DossierEvent, DossierOrigin, database
from node.sync.statedigest import state_digest, state_rows
from replicas import KEYS, Replica

UA, UB = "000.00.19.H55", "000.00.21.H55"
POSTGRES_URL = os.environ.get("MOTCUA_TEST_POSTGRES_URL", "")
PEOPLE = ["019305001234", "001089000123", "034190000456"]
PROCEDURES = ["1.001193", "1.000656"]
EDITS = {"applicant_phone": ["0912000111", "0988000222", "0977000333"],
         "applicant_address": ["Xóm Chợ", "Xóm Gò", "Xóm Đồi"],
         "matter": ["Khai sinh con đầu", "Khai sinh con thứ hai"]}
PARAMS = {"reason": "Lý do ghi rõ", "items": "Tờ khai", "amount": 50000, "rating": "satisfied",
          "note": ""}


STATS = [] if os.environ.get("MOTCUA_CONVERGENCE_STATS") else None  # print what the examples exercised


class Hub:
    """The hub's real storage, with its own key, in the same process as the nodes (bound on use)."""

    def __init__(self, url: str):
        self.key = keys.NodeKey.generate()
        self.signer = HubSigner("H" + new_id()[-12:], self.key, hlc.Clock())
        KEYS[self.signer.node_id] = self.key.public_b64
        self.storage = open_storage(url, self.signer)
        self.storage.create_schema()
        self.put_node(self.signer.node_id, self.key.public_b64, "hub", "hub", "*")

    def use(self):
        database.initialize(self.storage.db)
        return self.storage

    def put_node(self, node_id: str, public: str, kind: str, unit: str, scope: str) -> None:
        self.use().write_change("node", node_id, "put", {"fields": {
            "node_id": node_id, "public_key": public, "kind": kind, "unit_code": unit, "scope": scope,
            "status": "active"}})

    def digest(self, unit: str) -> str:
        self.use()
        return state_digest([unit])


class World:
    def __init__(self, root: Path, template: Path, clock: FakeNow, hub_url: str | None = None):
        self.a = Replica(template, root / "a", clock, unit_code=UA, name="commune A")
        self.b = Replica(template, root / "b", clock, unit_code=UB, name="commune B")
        self.laptop = Replica(template, root / "l", clock, unit_code=UA, units=(UA, UB), name="laptop",
                              code_tag="L1")
        self.laptop.ms += 3
        self.b.ms += 1
        self.nodes = [self.a, self.b, self.laptop]
        self.hub = Hub(hub_url or f"sqlite:///{root / 'hub.db'}")
        for r in self.nodes:
            self.hub.put_node(r.node_id, KEYS[r.node_id], "laptop" if r is self.laptop else "commune",
                              r.node.identity.unit_code, ",".join(r.units))
        self.root = root
        self.cursor = {r.node_id: 0 for r in self.nodes}
        self.unit_of: dict[str, str] = {}  # dossier id -> unit
        self.edits: list[dict[str, Any]] = []  # every field write, with the base an independent model expects
        self.rng = random.Random(0)
        self.bundles = 0
        self.turn = 0

    def close(self):
        for r in self.nodes:
            r.close()
        self.hub.storage.close()

    # ------------------------------------------------------------ what travels where
    def unit(self, change: dict[str, Any]) -> str | None:
        p = change["payload"]
        if change["entity"] == "dossier" and change["op"] == "create":
            return p["fields"]["unit_code"]
        if change["entity"] == "dossier":
            return self.unit_of.get(change["entity_id"])
        if change["entity"] in ("document", "attachment"):
            return self.unit_of.get((p.get("fields") or {}).get("dossier_id", ""))
        if change["entity"] in ("conflict", "duplicate"):
            return (p.get("unit") or "").split(",")[0] or None
        return None

    def for_replica(self, r: Replica, changes):
        return [c for c in changes if self.unit(c) in r.units]

    def push(self, r: Replica, frac: float, dup: bool, via_bundle: bool = False) -> None:
        storage = self.hub.use()
        held = storage.held(r.node_id)[0]
        own = r.changes(own=True)
        pending = [c for c in own if c["seq"] > held]
        batch = pending[: max(1, round(len(pending) * frac))] if pending else []
        if dup:
            batch = own[max(0, held - 3): held] + batch + batch[:2]
            self.rng.shuffle(batch)
        if r is not self.laptop:
            batch += self.relayed(r)
        if not batch:
            return
        if via_bundle:
            batch = self.through_bundle(r, batch)
        self.hub.use().ingest_push(r.node_id, batch, now=datetime(2026, 3, 2, 9, 0))

    def relayed(self, commune: Replica) -> list[dict[str, Any]]:
        """The laptop's changes this commune node got over the LAN and the hub lacks: relayed on its push
        with their original signatures, as far as they run on without a gap."""
        top = self.hub.use().held(self.laptop.node_id)[0]
        run = []
        for c in sorted((c for c in commune.changes() if c["node_id"] == self.laptop.node_id),
                        key=lambda c: c["seq"]):
            if c["seq"] <= top:
                continue
            if c["seq"] != top + len(run) + 1:
                break
            run.append(c)
        return run

    def through_bundle(self, r: Replica, batch):
        """Carry a batch on a USB stick: a real bundle, encrypted to the hub, signed by the node."""
        self.bundles += 1
        target = self.root / f"b{self.bundles}.motcua"
        bundle.write_bundle(target, direction=bundle.TO_HUB, sender=r.node_id, sender_key=r.node.key,
                            recipient=self.hub.signer.node_id, recipient_public=self.hub.key.public_b64,
                            created="2026-03-02 09:00:00", change_count=len(batch), batches=[batch])
        opened = bundle.open_bundle(target, direction=bundle.TO_HUB, recipient_id=self.hub.signer.node_id,
                                    recipient_key=self.hub.key, sender_key=lambda s: KEYS[s])
        out = []
        for kind, value in opened.records():
            if kind == "changes":
                out += value
        return out

    def pull(self, r: Replica, limit: int, shuffle: bool) -> None:
        storage = self.hub.use()
        page = storage.pull(r.node_id, list(r.units) + ["*"], self.cursor[r.node_id], limit=limit)
        changes = list(page.changes)
        if shuffle:
            changes = changes + changes[: len(changes) // 3]
            self.rng.shuffle(changes)
        if changes:
            r.deliver(changes)
        self.cursor[r.node_id] = page.position

    def lan(self, commune: Replica, frac: float) -> None:
        """The laptop and a commune node on one LAN: each gives the other what concerns the commune."""
        to_commune = self.for_replica(commune, self.laptop.changes())
        to_commune = to_commune[: max(1, round(len(to_commune) * frac))] if to_commune else []
        self.rng.shuffle(to_commune)
        if to_commune:
            commune.deliver(to_commune)
        back = commune.changes()
        self.rng.shuffle(back)
        self.laptop.deliver(back)

    def heal(self) -> None:
        for _ in range(3):
            for r in self.nodes:
                self.push(r, 1.0, False)
            for r in self.nodes:
                for _ in range(20):
                    before = self.cursor[r.node_id]
                    self.pull(r, 1000, False)
                    if self.cursor[r.node_id] == before:
                        break
            self.lan(self.a, 1.0)
            self.lan(self.b, 1.0)

    # ------------------------------------------------------------ what people do
    def known(self, r: Replica) -> list[str]:
        r.use()
        return [d for (d,) in Dossier.select(Dossier.id).order_by(Dossier.id).tuples()]

    def shared(self, r: Replica) -> list[str]:
        """The dossiers this replica knows, those of commune A first (A and the laptop both hold them), so
        the same pick on two replicas often means the same dossier."""
        return sorted(self.known(r), key=lambda d: (self.unit_of.get(d) != UA, d))

    def receive(self, r: Replica, person: int, proc: int) -> None:
        node = r.use()
        d, _ = workflow.receive_dossier(node, r.officer("reception"), reception_body(
            applicant_id_number=PEOPLE[person], procedure_code=PROCEDURES[proc]))
        self.unit_of[d.id] = d.unit_code
        r.tick()

    @staticmethod
    def model_base(dossier_id: str, field: str) -> str:
        """The version of the field's latest write held here (the replica is bound), from the log alone: an
        independent model of what an edit made now must name as its base."""
        best = create = ""
        query = log.Change.select().where(log.Change.entity_id.startswith(dossier_id))  # and its conflicts
        for change in map(log.row_to_change, query):
            version = f"{change['hlc']}~{change['node_id']}"
            if change["entity"] == "dossier" and change["op"] == "create":
                create = version
            elif change["op"] in ("update", "resolve") and field in (change["payload"].get("set") or {}):
                best = max(best, version)
        return best or create

    def edit(self, r: Replica, pick: int, field: str, value: int) -> None:
        ids = self.shared(r)
        if not ids:
            return
        d = ids[pick % len(ids)]
        self.turn += 1  # hypothesis favours small numbers: the turn keeps repeated ops from writing the same
        new = EDITS[field][(value + self.turn) % len(EDITS[field])]
        node = r.use()
        row = Dossier.get_by_id(d)
        if getattr(row, field) == new or row.status in (workflow.REFUSED, workflow.WITHDRAWN, workflow.STOPPED,
                                                         workflow.RETURNED):
            return
        base = self.model_base(d, field)
        workflow.edit_dossier(node, r.officer("reception"), d, {field: new})
        change = r.changes(own=True)[-1]
        assert change["payload"]["base"][field] == base, "the edit names the latest write it saw"
        self.edits.append({"dossier": d, "field": field, "value": new, "base": base,
                           "version": f"{change['hlc']}~{change['node_id']}"})
        r.tick()

    def act(self, r: Replica, pick: int, which: int) -> None:
        ids = self.shared(r)
        if not ids:
            return
        d = ids[pick % len(ids)]
        node = r.use()
        row = Dossier.get_by_id(d)
        options = []
        for role in ("reception", "specialist", "leader"):
            officer = r.officer(role)
            options += [(officer, a) for a in workflow.allowed_actions(officer, row) if a.name != "apologise"]
        if not options:
            return
        officer, action = options[which % len(options)]
        params = dict(PARAMS, handler_id=r.officer("specialist").id)
        r.use()
        workflow.perform(node, officer, d, action.name, params)
        r.tick()

    def scan(self, r: Replica, pick: int, remove: bool) -> None:
        """Attach a scan to a dossier, or take one off (a deletion travelling as a tombstone)."""
        ids = self.shared(r)
        if not ids:
            return
        node = r.use()
        d = Dossier.get_by_id(ids[pick % len(ids)])
        if d.status in (workflow.REFUSED, workflow.WITHDRAWN, workflow.STOPPED, workflow.RETURNED):
            return
        if remove:
            files = attachments.of_dossier(d.id)
            if files:
                attachments.remove(node, r.officer("reception"), files[0].id)
        else:
            self.turn += 1
            with store.transaction(node):
                attachments.attach(node, d.id, "scan.pdf", b"%PDF-1.4\n" + bytes([self.turn % 256]) * 300,
                                   "application/pdf", "reception")
        r.tick()

    def resolve(self, r: Replica | None, pick: int, take: bool) -> None:
        (self.hub.use() if r is None else r.use())
        open_ = conflicts.listing(None, resolved=False)
        if not open_:
            return
        c = open_[pick % len(open_)]
        losers = [x for x in c["candidates"] if not x["winner"]]
        choice = "take" if take and c["kind"] == "field" and losers else "keep"
        entity, entity_id, op, payload = conflicts.resolution(c["id"], choice, take=losers[0]["version"]
                                                              if choice == "take" else None)
        if choice == "take":
            assert payload["base"][c["field"]] == self.model_base(c["dossier_id"], c["field"])
        if r is None:
            storage = self.hub.use()
            for v in payload["covers"]:
                self.hub.signer.clock.observe(hlc.Timestamp.parse(v.partition("~")[0]))
            change = storage.write_change(entity, entity_id, op, payload, author="hub-admin")
        else:
            node = r.use()
            with store.transaction(node):
                change = store.write(node, entity, entity_id, op, payload, "leader")
            r.tick()
        if choice == "take":
            self.edits.append({"dossier": c["dossier_id"], "field": c["field"], "value": losers[0]["value"],
                               "base": payload["base"][c["field"]], "version": f"{change['hlc']}~{change['node_id']}"})


RECEIVE = st.tuples(st.just("receive"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 1))
TRAVEL = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 2), st.floats(0.1, 1.0), st.booleans(), st.booleans()),
    st.tuples(st.just("pull"), st.integers(0, 2), st.integers(1, 40), st.booleans()),
    st.tuples(st.just("lan"), st.integers(0, 1), st.floats(0.1, 1.0)),
)
EDIT = st.tuples(st.just("edit"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(sorted(EDITS)),
                 st.integers(0, 2))
ACT = st.tuples(st.just("act"), st.integers(0, 2), st.integers(0, 2), st.integers(0, 9))
WORK = st.one_of(
    EDIT, EDIT, EDIT, ACT, ACT,
    st.tuples(st.just("resolve"), st.integers(0, 3), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("tick"), st.integers(0, 2), st.integers(1, 600_000)),
    st.tuples(st.just("scan"), st.integers(0, 2), st.integers(0, 2), st.booleans()),
    RECEIVE, TRAVEL,
)
# Receptions known everywhere first; then rounds of work while apart (with some travel), each round
# possibly ending with everyone in touch again; then healed. Few dossiers, so work on them collides.
SCENARIO = st.tuples(st.lists(RECEIVE, min_size=2, max_size=4),
                     st.lists(st.tuples(st.lists(WORK, min_size=8, max_size=18), st.booleans()),
                              min_size=2, max_size=4))


def step(world: World, op) -> None:
    kind, *args = op
    r = world.nodes[args[0] % 3] if kind != "lan" else None
    if kind == "receive":
        world.receive(r, args[1], args[2])
    elif kind == "edit":
        world.edit(r, args[1], args[2], args[3])
    elif kind == "act":
        world.act(r, args[1], args[2])
    elif kind == "resolve":
        world.resolve(None if args[0] == 3 else world.nodes[args[0]], args[1], args[2])
    elif kind == "tick":
        r.tick(args[1])
    elif kind == "scan":
        world.scan(r, args[1], args[2])
    elif kind == "push":
        world.push(r, args[1], args[2], via_bundle=args[3])
    elif kind == "pull":
        world.pull(r, args[1], args[2])
    elif kind == "lan":
        world.lan(world.a if args[0] == 0 else world.b, args[1])


def run(world: World, scenario) -> None:
    receptions, rounds = scenario
    for op in receptions:
        step(world, op)
    world.heal()
    for ops, heal_after in rounds:
        for op in ops:
            step(world, op)
        if heal_after:
            world.heal()
    world.heal()


def check(world: World) -> None:
    hub = world.hub
    # 1. Every replica holding a commune has the same state for it, byte for byte.
    for unit in (UA, UB):
        holders = [r for r in world.nodes if unit in r.units]
        digests = {r.name: r.digest([unit]) for r in holders}
        digests["hub"] = hub.digest(unit)
        if len(set(digests.values())) > 1:
            hub.use()
            want = state_rows([unit])
            for r in holders:
                got = r.rows([unit])
                for table, rows in want.items():
                    mine = {x["id"]: x for x in got[table]}
                    for row in rows:
                        other = mine.pop(row["id"], None)
                        diff = {k: (row[k], other[k]) for k in row if other is None or other[k] != row[k]}
                        assert not diff, (unit, r.name, table, row["id"], "hub vs node", diff)
                    assert not mine, (unit, r.name, table, "only on the node", sorted(mine))
        assert len(set(digests.values())) == 1, (unit, digests)
    # 2. No change is missing: the hub holds every node's whole log, each node everything of its scope.
    storage = hub.use()
    everything = {}
    for r in world.nodes:
        own = r.changes(own=True)
        assert storage.held(r.node_id)[0] == (own[-1]["seq"] if own else 0)
        for c in own:
            everything[(c["node_id"], c["seq"])] = c
    hub.use()
    for c in log.Change.select().where(log.Change.node_id == hub.signer.node_id):
        everything[(c.node_id, c.seq)] = log.row_to_change(c)
    for r in world.nodes:
        held = {(c["node_id"], c["seq"]) for c in r.changes()}
        wanted = {k for k, c in everything.items() if world.unit(c) in r.units}
        assert wanted <= held, (r.name, len(wanted - held))
    # 3. Every dossier went only through transitions the machine allows.
    hub.use()
    for d in Dossier.select():
        origin = DossierOrigin.get_by_id(d.id)
        status = origin.status
        applied = DossierEvent.select().where((DossierEvent.dossier_id == d.id) & (DossierEvent.chain == 1)
                                              & (DossierEvent.applied == 1))
        chain = {e.base: e for e in applied}
        head = origin.version
        while head in chain:
            e = chain.pop(head)
            action = workflow.ACTIONS[e.action]
            assert e.from_status == status and status in action.froms, (d.code, e.action, status)
            status = action.to if action.to is not None else status
            head = e.version
        assert not chain, "applied actions off the chain"
        assert (d.status, d.status_version) == (status, head)
    # 4. Conflicts are exactly the sibling writes that disagree; each field holds its latest write.
    groups: dict[tuple, set] = {}
    latest: dict[tuple, dict] = {}
    for e in world.edits:
        groups.setdefault((e["dossier"], e["field"], e["base"]), set()).add((e["version"], e["value"]))
        key = (e["dossier"], e["field"])
        if key not in latest or e["version"] > latest[key]["version"]:
            latest[key] = e
    expected = {f"{d}:{f}:{b}": sorted(v for v, _ in writes) for (d, f, b), writes in groups.items()
                if len({value for _, value in writes}) > 1}
    for unit_replicas in ([hub], world.nodes):
        for r in unit_replicas:
            r.use()
            got = {c.id: sorted(x["version"] for x in json.loads(c.candidates))
                   for c in Conflict.select().where(Conflict.kind == "field")}
            units = getattr(r, "units", (UA, UB))
            want = {k: v for k, v in expected.items() if world.unit_of[k.split(":")[0]] in units}
            assert got == want, getattr(r, "name", "hub")
            for (d, f), e in latest.items():
                if world.unit_of[d] in units:
                    assert getattr(Dossier.get_by_id(d), f) == e["value"]


EXAMPLES = int(os.environ.get("MOTCUA_CONVERGENCE_EXAMPLES", "12"))


def converges(template: Path, scenario, hub_url: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), template, FakeNow(), hub_url)
        try:
            run(world, scenario)
            check(world)
            if STATS is not None:
                world.hub.use()
                STATS.append((Conflict.select().where(Conflict.kind == "field").count(),
                              Conflict.select().where(Conflict.kind == "status").count(),
                              Conflict.select().where(Conflict.resolved == 1).count(),
                              DuplicateFlag.select().count(), Dossier.select().count(), world.bundles,
                              len(world.edits)))
                print("field, status conflicts, resolved, duplicates, dossiers, bundles, edits:", STATS[-1])
        finally:
            world.close()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=SCENARIO)
def test_every_replica_converges(_template_node, scenario):
    converges(_template_node, scenario)


@pytest.mark.soak
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=SCENARIO)
def test_every_replica_converges_soak(_template_node, scenario):
    """The property again, 400 runs (`make soak`); about 10 minutes here."""
    converges(_template_node, scenario)


@pytest.mark.skipif(not POSTGRES_URL, reason="MOTCUA_TEST_POSTGRES_URL not set")
@settings(max_examples=max(3, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenario=SCENARIO)
def test_every_replica_converges_with_the_hub_on_postgresql(_template_node, scenario):
    """The same property with the hub's production backend (pipelined batches, advisory locks)."""
    with postgres_schema(POSTGRES_URL) as url:
        converges(_template_node, scenario, url)


def test_tombstones_are_purged_at_the_hub_once_every_node_has_pulled_past_them(_template_node):
    from node.sync.state import Attachment, Tombstone

    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), _template_node, FakeNow())
        try:
            world.receive(world.a, 0, 0)
            world.scan(world.a, 0, remove=False)
            world.scan(world.a, 0, remove=True)
            world.push(world.a, 1.0, False)
            world.hub.use()
            assert Tombstone.select().count() == 1
            for r in world.nodes:  # the first pull delivers; the next one acknowledges
                world.pull(r, 1000, False)
            world.hub.use()
            assert Tombstone.select().count() == 1, "nobody has acknowledged it yet"
            for r in world.nodes[:2]:
                world.pull(r, 1000, False)
            world.hub.use()
            assert Tombstone.select().count() == 1, "the laptop has not acknowledged it yet"
            world.pull(world.laptop, 1000, False)
            world.hub.use()
            assert Tombstone.select().count() == 0 and Attachment.select().count() == 0
            world.laptop.use()
            assert Tombstone.select().count() == 1 and Attachment.select().count() == 0
        finally:
            world.close()


def test_a_duplicate_between_two_communes_is_flagged_on_both(_template_node):
    """Neither commune holds the other's dossier: the hub, which holds both, tells each with a signed flag."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), _template_node, FakeNow())
        try:
            world.receive(world.a, 0, 0)
            world.receive(world.b, 0, 0)  # the same person and procedure, at the other commune
            world.heal()
            check(world)
            ids = {}
            for r in (world.a, world.b, world.laptop):
                r.use()
                flags = list(DuplicateFlag.select())
                assert len(flags) == 1 and flags[0].unit_code == ",".join(sorted((UA, UB))), r.name
                ids[r.name] = flags[0].id
            world.hub.use()
            assert [f.id for f in DuplicateFlag.select()] == [ids["commune A"]] == [ids["commune B"]]
            # A review at commune B reaches the hub and B's laptop (commune A keeps its own review to make).
            node = world.b.use()
            entity, entity_id, op, payload = conflicts.review(ids["commune B"], "distinct", "Hai người khác nhau")
            with store.transaction(node):
                store.write(node, entity, entity_id, op, payload, "leader")
            world.heal()
            for holder in (world.hub, world.b, world.laptop):
                holder.use()
                assert DuplicateFlag.get().decision == "distinct"
        finally:
            world.close()
