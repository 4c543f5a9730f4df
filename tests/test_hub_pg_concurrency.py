"""Two hub processes ingesting on one PostgreSQL database (issue 5): pushes of different communes merge side
by side, yet the result is the single-process result.

Several nodes (four communes, a laptop serving two of them, a laptop relayed by its commune node) push
interleaved batches to two hub processes at once, while a third process pulls with a cursor the whole
time. Then, against a reference hub that ingested the same pushes in one process, one after the other:

* every materialised synced table is equal, row for row (duplicates across communes flagged alike);
* the same node changes are held, with the same scopes and `applied`, and the hub's own changes (its
  duplicate notices) are the same ones, whatever their order;
* a pull of each scope from 0 gives the same changes, and the cursor pulled during the run saw every
  committed change exactly once (Change.id order is commit order: no skipped row);
* a fork pushed by two processes at the same instant is still detected: one push stored, one fork.

Runs only with MOTCUA_TEST_POSTGRES_URL (like the PostgreSQL storage contract). The worker processes run
this very file (`python tests/test_hub_pg_concurrency.py push|pull ...`).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script by the workers
    sys.path.insert(0, str(ROOT))

from central.storage import HubSigner, open_storage  # noqa: E402
from central.storage.testing import NOW, NodeWriter, postgres_schema  # noqa: E402
from node.sync import encoding, hlc, ingest, keys  # noqa: E402
from node.sync.ids import new_id  # noqa: E402
from node.sync.protocol import GLOBAL_SCOPE, HUB_ONLY_SCOPE  # noqa: E402

POSTGRES_URL = os.environ.get("MOTCUA_TEST_POSTGRES_URL", "")
UNITS = ["000.00.19.H55", "000.00.19.H56", "000.00.19.H57", "000.00.19.H58"]
PEOPLE = [f"0193050{i:05d}" for i in range(400)]  # ~300 dossiers: some ID numbers twice, across communes
DEADLINE_S = 240  # every wait below is bounded


# ---------------------------------------------------------------- the scenario (made once, in the parent)

def _dossiers(writer: NodeWriter, unit: str, n: int, start: int, held: list[str]) -> list[dict[str, Any]]:
    """n dossiers (create with an ID number, a document, a receive action) plus an edit of one held earlier."""
    out: list[dict[str, Any]] = []
    people = random.Random(f"{unit}-{len(held)}-{start}")
    for i in range(n):
        dossier_id = new_id()
        person = PEOPLE[people.randrange(len(PEOPLE))]
        fields = {"code": f"{unit}-260302-{writer.seq + 1:04d}", "unit_code": unit, "procedure_code": "1.001193",
                  "procedure_version": 1, "status": 2, "applicant_name": f"Nguyễn Văn {i}",
                  "applicant_id_number": person, "received_at": "2026-03-02 09:00:00"}
        out.append(writer.change("dossier", dossier_id, "create", {"fields": fields}))
        out.append(writer.change("document", new_id(), "create", {"fields": {"dossier_id": dossier_id,
                                                                               "name": "Tờ khai"}}))
        out.append(writer.change("dossier", dossier_id, "action", {"action": "receive", "set": {},
                                                                    "event": {"at": "2026-03-02 09:00:00"}}))
        held.append(dossier_id)
    if len(held) > n:  # an edit of an earlier dossier (its create is in an earlier push)
        out.append(writer.change("dossier", held[start % (len(held) - n)], "update",
                                 {"set": {"applicant_phone": f"09{start:08d}"}, "unit": unit}))
    return out


def scenario() -> dict[str, Any]:
    """Nodes (key, unit, kind, scope) and, per worker, the pushes in order: (pusher, changes)."""
    nodes: dict[str, dict[str, Any]] = {}
    writers: dict[str, NodeWriter] = {}

    def node(name: str, unit: str, kind: str, scope: list[str]) -> NodeWriter:
        writer = NodeWriter(unit)
        writers[name] = writer
        nodes[name] = {"node_id": writer.node_id, "unit": unit, "kind": kind, "scope": scope,
                       "public_key": writer.key.public_b64}
        return writer

    for i, unit in enumerate(UNITS):
        node(f"C{i}", unit, "commune", [unit])
    node("L", UNITS[0], "laptop", [UNITS[0], UNITS[1]])  # pushes itself, data of both its communes
    node("R", UNITS[2], "laptop", [UNITS[2]])  # never reaches the hub: its commune node relays it
    pushes: dict[str, list[list[tuple[str, list[dict[str, Any]]]]]] = {"one": [], "two": []}
    held: dict[str, list[str]] = {name: [] for name in writers}
    rounds = 6
    for r in range(rounds):
        one = [("C0", _dossiers(writers["C0"], UNITS[0], 12, r * 7, held["C0"])),
               ("C2", _dossiers(writers["C2"], UNITS[2], 10, r * 3, held["C2"])
                + _dossiers(writers["R"], UNITS[2], 3, r, held["R"])),
               ("L", _dossiers(writers["L"], UNITS[r % 2], 4, r * 11, held["L"]))]
        two = [("C1", _dossiers(writers["C1"], UNITS[1], 12, r * 5, held["C1"])),
               ("C3", _dossiers(writers["C3"], UNITS[3], 10, r * 2, held["C3"]))]
        if r == 2:  # a user of commune 3: a push that must take the one write lock, among the others
            two.append(("C3", [writers["C3"].change("user", new_id(), "create", {"fields": {
                "username": "canbo3", "full_name": "Cán bộ", "unit_code": UNITS[3], "roles": "reception",
                "password_hash": "argon2-not-a-real-hash"}})]))
        pushes["one"].append(one)
        pushes["two"].append(two)
    return {"nodes": nodes, "pushes": {k: [p for rnd in v for p in rnd] for k, v in pushes.items()}}


# ---------------------------------------------------------------- hubs

def _signer(folder: Path) -> HubSigner:
    key = keys.NodeKey.load(folder / "hub_key.pem")
    return HubSigner((folder / "hub_id").read_text(), key, hlc.Clock())


def make_hub(url: str, folder: Path, nodes: dict[str, dict[str, Any]]) -> None:
    """A fresh hub schema with its own key (in `folder`) and every node enrolled."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "hub_key.pem").exists():
        keys.NodeKey.generate().save(folder / "hub_key.pem")
        (folder / "hub_id").write_text("H" + new_id()[-12:])
    signer = _signer(folder)
    store = open_storage(url, signer)
    try:
        store.create_schema()
        store.write_change("node", signer.node_id, "put", {"fields": {
            "node_id": signer.node_id, "public_key": signer.key.public_b64, "kind": "hub", "unit_code": "hub",
            "scope": "*", "status": "active"}})
        for info in nodes.values():
            token = uuid.uuid4().hex
            store.add_token(token, info["scope"], info["kind"], now=NOW, expires_at=NOW + timedelta(hours=1))
            store.enroll(token, {"node_id": info["node_id"], "public_key": info["public_key"],
                                 "unit_code": info["unit"], "unit_name": "UBND xã"}, now=NOW)
    finally:
        store.close()


def push_all(url: str, folder: Path, nodes: dict[str, dict[str, Any]], pushes: list) -> list[str]:
    """Push in order; the outcome of each push ("ok n" or the error's class name)."""
    store = open_storage(url, _signer(folder))
    out = []
    try:
        for pusher, changes in pushes:
            try:
                result = store.ingest_push(nodes[pusher]["node_id"], changes, now=NOW)
                out.append(f"ok {result.stored}")
            except ingest.ForkDetected:
                out.append("ForkDetected")
    finally:
        store.close()
    return out


def all_scopes() -> list[str]:
    return UNITS + [GLOBAL_SCOPE, HUB_ONLY_SCOPE]


def pull_everything(store, scopes: list[str], after: int = 0, limit: int = 1000) -> tuple[list[dict], int]:
    seen: list[dict] = []
    for _ in range(10_000):
        page = store.pull("reader-" + "-".join(scopes)[:40], scopes, after, limit)
        seen += page.changes
        after = page.position
        if not page.more:
            return seen, after
    raise AssertionError("pull did not end")


# ---------------------------------------------------------------- worker processes (this file run as a script)

def _wait_for(path: Path) -> None:
    for _ in range(DEADLINE_S * 100):
        if path.exists():
            return
        time.sleep(0.01)
    raise SystemExit(f"{path} never appeared")


def worker(argv: list[str]) -> int:
    cmd, url, folder, work = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    data = json.loads((work / "scenario.json").read_text(encoding="utf-8"))
    (work / f"ready-{cmd}-{os.getpid()}").write_text("")
    _wait_for(work / "go")
    if cmd == "push":
        result: Any = push_all(url, folder, data["nodes"], data["pushes"][argv[4]])
    else:  # pull with a cursor while the pushes run, in small pages, until told to stop; then drain
        store = open_storage(url, _signer(folder))
        # What is tested is the cursor: the reader's acknowledgement (it takes the write lock, so it would
        # wait for every push in flight and hide a skipped row) is left out.
        store.acknowledge = lambda node_id, position: None  # type: ignore[method-assign]
        seen: list[dict] = []
        after, rounds = 0, 0
        try:
            for _ in range(DEADLINE_S * 200):
                stop = (work / "stop").exists()
                page = store.pull("reader", all_scopes(), after, 37)
                seen += page.changes
                after, rounds = page.position, rounds + 1
                if stop and not page.more:
                    break
                if not page.more:
                    time.sleep(0.002)
        finally:
            store.close()
        result = {"hashes": [c["hash"] for c in seen], "rounds": rounds}
    (work / f"out-{cmd}-{argv[4] if cmd == 'push' else 'pull'}.json").write_text(json.dumps(result))
    return 0


def run_workers(url: str, folder: Path, work: Path, groups: list[str], puller: bool) -> dict[str, Any]:
    procs = [subprocess.Popen([sys.executable, __file__, "push", url, str(folder), str(work), g], cwd=ROOT)
             for g in groups]
    if puller:
        procs.append(subprocess.Popen([sys.executable, __file__, "pull", url, str(folder), str(work)], cwd=ROOT))
    try:
        for _ in range(DEADLINE_S * 100):
            if len(list(work.glob("ready-*"))) == len(procs):
                break
            if any(p.poll() not in (None, 0) for p in procs):
                raise AssertionError("a worker failed to start")
            time.sleep(0.01)
        (work / "go").write_text("")
        for p in procs[:len(groups)]:
            assert p.wait(DEADLINE_S) == 0, "a pushing hub process failed"
        (work / "stop").write_text("")
        for p in procs[len(groups):]:
            assert p.wait(DEADLINE_S) == 0, "the pulling process failed"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    out = {g: json.loads((work / f"out-push-{g}.json").read_text()) for g in groups}
    if puller:
        out["pull"] = json.loads((work / "out-pull-pull.json").read_text())
    return out


# ---------------------------------------------------------------- what is compared

def synced_state() -> dict[str, list]:
    """Every materialised synced table, rows sorted (the hub's node registry less its put's version)."""
    from node.sync.state import SYNCED_MODELS, NodeRecord

    state = {}
    for model in SYNCED_MODELS:
        fields = [f for f in model._meta.sorted_fields if not (model is NodeRecord and f.name == "version")]
        rows = sorted(tuple(str(v) for v in row) for row in model.select(*fields).tuples())
        state[model._meta.table_name] = rows
    return state


def held_changes(hub_id: str) -> dict[str, Any]:
    """Node changes (node, seq, hash, applied, scope) and the hub's own ones without what only its clock,
    key and order make (hlc, seq, prev, hash, sig)."""
    from central.models import ChangeScope
    from node.sync.log import Change

    rows = (Change.select(Change, ChangeScope.scope).join(ChangeScope, on=(ChangeScope.change_id == Change.id))
            .order_by(Change.id).objects())
    nodes, hub = [], []
    for r in rows:
        if r.node_id == hub_id:
            hub.append((r.entity, r.entity_id, r.op, encoding.canonical(encoding.decode(r.payload)).decode(),
                        r.applied, r.scope))
        else:
            nodes.append((r.node_id, r.seq, r.hash, r.applied, r.scope))
    return {"nodes": sorted(nodes), "hub": sorted(hub)}


def normal(changes: list[dict], hub_id: str) -> tuple[list, list]:
    node = sorted(c["hash"] for c in changes if c["node_id"] != hub_id)
    hub = sorted((c["entity"], c["entity_id"], c["op"], encoding.canonical(c["payload"]).decode())
                 for c in changes if c["node_id"] == hub_id)
    return node, hub


def snapshot(url: str, folder: Path) -> dict[str, Any]:
    signer = _signer(folder)
    store = open_storage(url, signer)
    try:
        out = {"state": synced_state(), "held": held_changes(signer.node_id), "pulls": {}}
        for scopes in [[u, GLOBAL_SCOPE] for u in UNITS] + [all_scopes()]:
            out["pulls"][",".join(scopes)] = normal(pull_everything(store, scopes)[0], signer.node_id)
        from node.sync.log import Change

        out["count"] = Change.select().count()
        out["hub_id"] = signer.node_id
        out["all_hashes"] = sorted(h for (h,) in Change.select(Change.hash).tuples())
    finally:
        store.close()
    return out


# ---------------------------------------------------------------- the tests

needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="set MOTCUA_TEST_POSTGRES_URL to run on PostgreSQL")


def test_what_a_push_locks_to_merge_side_by_side():
    from central.storage.sql import _ingest_locks

    laptop, commune = NodeWriter(UNITS[0]), NodeWriter(UNITS[0])
    batch = laptop.dossier() + [commune.change("dossier", new_id(), "create", {"fields": {
        "unit_code": UNITS[0], "applicant_id_number": PEOPLE[0]}})]
    allowed = {commune.node_id: {UNITS[0]}, laptop.node_id: {UNITS[0]}}
    assert _ingest_locks(batch, allowed) == sorted([f"node:{commune.node_id}", f"node:{laptop.node_id}",
                                                    f"unit:{UNITS[0]}", f"person:{PEOPLE[0]}"])
    # What units share (catalogue, users, decisions on conflicts and duplicates) and malformed changes:
    # the one write lock, exclusively.
    for odd in ({"entity": "user", "op": "create"}, {"entity": "duplicate", "op": "review"},
                {"entity": "conflict", "op": "resolve"}, {"entity": "procedure", "op": "put"},
                {"entity": ["dossier"], "op": "create"}, "junk",
                {"entity": "dossier", "op": "create", "payload": {"fields": {"applicant_id_number": 19305}}}):
        assert _ingest_locks(batch + [odd], allowed) is None


@needs_postgres
def test_two_hub_processes_merge_like_one(tmp_path):
    data = scenario()
    (tmp_path / "scenario.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with postgres_schema(POSTGRES_URL) as shared_url, postgres_schema(POSTGRES_URL) as ref_url:
        hub_dir = tmp_path / "hub"
        make_hub(shared_url, hub_dir, data["nodes"])
        make_hub(ref_url, hub_dir, data["nodes"])  # the same hub key: only its clock differs
        # Reference: one process, every push one after the other (the two groups interleaved).
        one, two = data["pushes"]["one"], data["pushes"]["two"]
        order = [p for pair in zip(one, two + [None] * (len(one) - len(two)), strict=True) for p in pair if p]
        order += two[len(one):]
        ref_results = push_all(ref_url, hub_dir, data["nodes"], [(n, c) for n, c in order])
        assert all(r.startswith("ok") for r in ref_results)
        # Two hub processes at once, each with its own nodes' pushes, and a third process pulling meanwhile.
        work = tmp_path / "work"
        work.mkdir()
        (work / "scenario.json").write_text((tmp_path / "scenario.json").read_text(encoding="utf-8"),
                                            encoding="utf-8")
        results = run_workers(shared_url, hub_dir, work, ["one", "two"], puller=True)
        assert all(r.startswith("ok") for g in ("one", "two") for r in results[g]), results
        shared, ref = snapshot(shared_url, hub_dir), snapshot(ref_url, hub_dir)

    assert shared["state"].keys() == ref["state"].keys()
    for table in ref["state"]:
        assert shared["state"][table] == ref["state"][table], f"table {table} differs"
    assert len(ref["state"]["duplicate_flag"]) > 10, "the scenario must flag duplicates across communes"
    assert shared["held"]["nodes"] == ref["held"]["nodes"]
    assert shared["held"]["hub"] == ref["held"]["hub"], "the hub's own changes (duplicate notices) differ"
    assert shared["pulls"] == ref["pulls"]
    # The cursor pulled during the run saw every change held, each once: none skipped, none twice.
    pulled = results["pull"]["hashes"]
    assert len(pulled) == len(set(pulled))
    assert sorted(pulled) == shared["all_hashes"]
    assert results["pull"]["rounds"] > 3


@needs_postgres
def test_a_fork_pushed_through_two_processes_at_once_is_detected(tmp_path):
    data = scenario()
    original = NodeWriter(UNITS[0])
    clone = NodeWriter(UNITS[0], original.node_id, original.key)  # a cloned disk: same key, same seqs
    first, forked = original.dossier(), clone.dossier()
    data["nodes"] = {"N": {"node_id": original.node_id, "public_key": original.key.public_b64, "unit": UNITS[0],
                           "kind": "commune", "scope": [UNITS[0]]}}
    data["pushes"] = {"one": [("N", first)], "two": [("N", forked)]}
    with postgres_schema(POSTGRES_URL) as url:
        hub_dir = tmp_path / "hub"
        make_hub(url, hub_dir, data["nodes"])
        work = tmp_path / "work"
        work.mkdir()
        (work / "scenario.json").write_text(json.dumps(data), encoding="utf-8")
        results = run_workers(url, hub_dir, work, ["one", "two"], puller=False)
        store = open_storage(url, _signer(hub_dir))
        try:
            outcomes = sorted(results["one"] + results["two"])
            assert outcomes == ["ForkDetected", "ok 3"], outcomes
            assert store.key_for(original.node_id)[1] == "quarantined"
            assert len(store.forks()) == 1 and store.held(original.node_id)[0] == 3
        finally:
            store.close()


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
