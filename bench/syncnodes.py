"""The sync bench's nodes (bench/sync.py): made through the workflow's signed changes, with attached files
and dossiers left at the desk where issue 5's scenarios need them; their push bodies; the re-sync's work.

Run inside `python -m bench.sync worker ...` processes (a node and a hub never share a process).
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime, timedelta
from pathlib import Path

FILE_BYTES = 300 * 1024  # one scan attached to the catch-up node


def make_node(path: Path, unit_code: str, unit_name: str, dossiers: int, days: int, seed: int,
              end: datetime, files: int = 0, waiting: int = 0) -> dict:
    """A node with staff and `dossiers` dossiers received over `days` days before `end`, lived by gen.live;
    then `waiting` more received on the last two working days and left at the desk (accepted, not yet
    transferred: what the re-sync scenario moves on), and `files` scans of FILE_BYTES each attached to its
    dossiers (see `attach_files`)."""
    from node import catalogue
    from node.instance import Node, init_data_dir
    from node.store import transaction

    from . import gen
    from .desk import FastDesk
    from .people import person

    t0 = time.perf_counter()
    init_data_dir(path, unit_code=unit_code, unit_name=unit_name, province_name="Thái Nguyên")
    clock = gen.Clock(end - timedelta(days=days + 1))
    node = Node(path, now=clock)
    try:
        catalogue.seed(node)
        staff = gen.create_staff(node)
        rng = random.Random(seed)
        cal = catalogue.work_calendar()
        procs = {p.code: p for p in catalogue.current_procedures(end.date())}
        codes = [c for c in gen.PROCEDURE_WEIGHTS if c in procs]
        weights = [gen.PROCEDURE_WEIGHTS[c] for c in codes]
        moments = sorted(gen._received_at(rng, cal, gen.working_moments(cal, end, days), end)
                         for _ in range(dossiers))
        desk = FastDesk(node, cal)
        for first in range(0, dossiers, 250):
            with transaction(node):
                for when in moments[first:first + 250]:
                    proc = procs[rng.choices(codes, weights)[0]]
                    body = dict(person(rng, end.date()), procedure_code=proc.code, sets=rng.choice([1, 1, 2]),
                                pages=rng.randint(1, 8),
                                return_method=rng.choices(["desk", "post", "online"], [85, 5, 10])[0])
                    online = proc.online_level != "none" and rng.random() < 0.2
                    gen.live(gen.Life(desk, clock, end, when), rng, staff, proc, body, online)
        if waiting:
            last_days = gen.working_moments(cal, end, 4)[-2:]
            with transaction(node):
                for when in sorted(gen._received_at(rng, cal, last_days, end) for _ in range(waiting)):
                    clock.value = when
                    proc = procs[rng.choices(codes, weights)[0]]
                    body = dict(person(rng, end.date()), procedure_code=proc.code, sets=1, pages=rng.randint(1, 8),
                                return_method="desk")
                    desk.receive(rng.choice(staff.reception), body, False)
        if files:
            clock.value = end
            attach_files(node, rng, staff, files)
        changes = node.db.execute_sql("SELECT count(*) FROM change").fetchone()[0]
        node.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        node.close()
    return {"dossiers": dossiers + waiting, "days": days, "changes": changes, "files": files, "waiting": waiting,
            "file_bytes": FILE_BYTES if files else 0, "seconds": round(time.perf_counter() - t0, 1)}


def move_on(path: Path, count: int) -> dict:
    """The re-sync scenario's local work: `count` dossiers waiting at the desk transferred for processing by a
    reception officer, one `workflow.perform` each (one signed change each), on the node's real clock."""
    from node import users, workflow
    from node.instance import Node
    from node.sync.state import Dossier, User

    node = Node(path)
    try:
        officer = next(users.Officer.of(u) for u in User.select().order_by(User.username)
                       if "reception" in u.roles.split(","))
        waiting = list(Dossier.select(Dossier.code).where(Dossier.status == workflow.ACCEPTED)
                       .order_by(Dossier.received_at.desc()).limit(count))
        if len(waiting) < count:
            raise RuntimeError(f"only {len(waiting)} dossiers wait at the desk; the re-sync needs {count}")
        t0 = time.perf_counter()
        for d in waiting:
            workflow.perform(node, officer, d.code, "transfer")
        return {"changed": len(waiting), "seconds": round(time.perf_counter() - t0, 3)}
    finally:
        node.close()


def attach_files(node, rng: random.Random, staff, files: int) -> None:
    """`files` distinct scans of FILE_BYTES (a PDF header, then incompressible bytes, like a scanned page)
    attached by `attachments.attach` to random dossiers (some get two): stored once by SHA-256 under
    files/ and recorded as signed attachment changes, as the reception desk does."""
    from node import attachments
    from node.store import transaction
    from node.sync.state import Dossier

    ids = [d.id for d in Dossier.select(Dossier.id).order_by(Dossier.received_at)]
    for first in range(0, files, 100):
        with transaction(node):
            for i in range(first, min(files, first + 100)):
                data = b"%PDF-1.4\n" + os.urandom(FILE_BYTES - 9)
                attachments.attach(node, rng.choice(ids), f"scan-{i + 1:04d}.pdf", data, "application/pdf",
                                   rng.choice(staff.reception).id)


def export_batches(path: Path, out: Path, batch_size: int) -> dict:
    """The node's whole log as push bodies of `batch_size` changes (zstd JSON), length-prefixed in `out`."""
    from node.instance import Node
    from node.sync import log, protocol

    node = Node(path)
    try:
        count, batch = 0, []
        with open(out, "wb") as fh:
            def flush() -> None:
                body = protocol.encode_body({"node_id": node.node_id, "changes": batch})
                fh.write(len(body).to_bytes(4, "big") + len(batch).to_bytes(4, "big") + body)
                batch.clear()

            for change in log.iter_changes(node.node_id):
                batch.append(change)
                count += 1
                if len(batch) == batch_size:
                    flush()
            if batch:
                flush()
        ident = node.identity
        return {"node_id": ident.node_id, "public_key": ident.public_key, "unit_code": ident.unit_code,
                "unit_name": ident.unit_name, "changes": count}
    finally:
        node.close()
