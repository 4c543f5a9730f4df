"""Crashes on 127.0.0.1, with real processes: kill -9 of the hub during pushes and of a node during pulls,
20 times each at random points, and both during file transfers. After them, a normal sync must leave every
change exactly once on every replica and the state digests in agreement. (A link that drops every 2 s:
test_sync_e2e.py.)

Kill points are random; the seed is printed and named in every assertion message
(MOTCUA_E2E_SEED=<seed> replays a run). The `soak` variants do more rounds (not in `make test`).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter

import pytest

from .conftest import (
    AGREES, UNIT_A, Processes, assert_pushed_exactly_once, attachment_shas, file_ok, finish_script, hub_db,
    hub_digest_for, make_data, make_updates, node_db, node_digest, node_id_of, start_updates,
)
from .proxy import FlakyProxy

ROUNDS = [pytest.param(20, id="20-kills"), pytest.param(100, id="100-kills", marks=pytest.mark.soak)]


# ---------------------------------------------------------------- kill -9 of the hub during pushes

BACKLOG = 5000  # changes waiting at the start of a round, so the push (or pull) outlasts the kill window
WINDOW = 0.8  # seconds: the kill comes at a random time this long at most after the push (pull) started


def forget_stage(node_dir) -> None:
    """Clear the sync.stage a killed run left behind (a display-only setting, rewritten by every run), so
    `wait_for_stage` sees the next run's own stages. The node's sync process is dead at this point."""
    conn = sqlite3.connect(node_dir / "motcua.db", timeout=30)
    try:
        with conn:
            conn.execute("UPDATE node_setting SET value = '' WHERE key = 'sync.stage'")
    finally:
        conn.close()


def wait_for_stage(node_dir, proc, stage: str, timeout: float = 30) -> bool:
    """Poll the node's sync.stage setting until it says `stage` (True) or the sync process ends (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if node_db(node_dir).setting("sync.stage") == stage:
            return True
        time.sleep(0.02)
    pytest.fail(f"the sync of {node_dir.name} did not reach stage {stage} within {timeout} s")


@pytest.mark.parametrize("kills", ROUNDS)
def test_hub_killed_during_pushes(world, seed, kills):
    """Round after round: start `motcua node sync` on a node with thousands of changes waiting, and once it
    is pushing, kill -9 the hub after a random 0-0.8 s (WINDOW); restart the hub on the same port.

    The sync process is killed with the hub (a power cut at the district): left alone, its retries would push
    the whole backlog into the restarted hub in the first round. The last round kills the hub alone and
    the same sync process carries on through its retries into the restarted hub.
    """
    rng = random.Random(seed)
    note = f"seed {seed}"
    hub = world.hub()
    node = world.node("big", "a")
    node_id = node_id_of(node)
    where: Counter[str] = Counter()
    hub_held: list[int] = []
    started = time.monotonic()
    make_updates(node, BACKLOG, seed=rng.randrange(1 << 30))
    for _ in range(kills):
        sync = world.start_sync(node)
        pushing = wait_for_stage(node, sync, "push")
        time.sleep(rng.uniform(0, WINDOW))
        finished = sync.poll() is not None
        hub.kill9()
        where["finished" if finished else node_db(node).setting("sync.stage") if pushing else "failed"] += 1
        Processes.kill(sync)
        forget_stage(node)
        hub_held.append(hub_db(world.hub_dir).top(node_id))
        acked = int(node_db(node).setting("sync.acked_seq") or 0)
        assert hub_held[-1] >= acked, f"{note}: the hub acknowledged seq {acked}, then lost it: {hub_held}"
        waiting = node_db(node).top(node_id) - hub_held[-1]
        more = start_updates(node, 2 * BACKLOG, seed=rng.randrange(1 << 30)) if waiting < BACKLOG else None
        try:
            hub.start()  # while the node makes more changes, if it needs to
        finally:
            if more is not None:
                finish_script(more)
    # The last round: the hub alone dies; the node's sync retries into the restarted hub.
    sync = world.start_sync(node)
    wait_for_stage(node, sync, "push")
    time.sleep(rng.uniform(0, WINDOW))
    hub.kill9()
    hub.start()
    try:
        last_exit = sync.wait(120)
    finally:
        Processes.kill(sync)
    out = world.sync(node).stdout
    assert AGREES in out, f"{note}: {out}"
    assert_pushed_exactly_once(world, node, note)
    assert hub_held == sorted(hub_held), f"{note}: the hub lost acknowledged changes: {hub_held}"
    assert hub.errors_logged() == [], note
    print(f"{note}: {kills + 1} hub kills in {time.monotonic() - started:.0f} s; node stage at each kill: "
          f"{dict(where)}; hub held seq after each: {hub_held}; the lone-hub-kill sync exited {last_exit}; "
          f"{node_db(node).top(node_id)} changes in the end")


# ---------------------------------------------------------------- kill -9 of a node during pulls

@pytest.mark.parametrize("kills", ROUNDS)
def test_node_killed_during_pulls(world, seed, kills):
    """A second node of the same commune pulls thousands of changes and three scans; once it is pulling, its
    `motcua node sync` process is killed -9 after a random 0-0.8 s, round after round; then one normal sync
    converges."""
    rng = random.Random(seed)
    note = f"seed {seed}"
    hub = world.hub()
    source = world.node("big", "source")
    source_id = node_id_of(source)
    target = world.node("a2", "target")
    where: Counter[str] = Counter()
    progress: list[int] = []
    started = time.monotonic()
    for _ in range(kills):
        if node_db(source).top(source_id) - node_db(target).count(source_id) < BACKLOG:
            make_updates(source, 2 * BACKLOG, seed=rng.randrange(1 << 30))  # keep plenty to pull
            world.sync(source)
        sync = world.start_sync(target)
        pulling = wait_for_stage(target, sync, "pull")
        time.sleep(rng.uniform(0, WINDOW))
        finished = sync.poll() is not None
        stage = node_db(target).setting("sync.stage")
        Processes.kill(sync)
        forget_stage(target)
        where["finished" if finished else stage if pulling else "failed"] += 1
        progress.append(node_db(target).count(source_id))
    out = world.sync(target).stdout
    assert AGREES in out, f"{note}: {out}"
    local, hubdb = node_db(target), hub_db(world.hub_dir)
    assert local.duplicates() == [], note
    assert local.hashes(source_id) == node_db(source).hashes(source_id), note
    target_id = node_id_of(target)
    scoped = {h for (h,) in hubdb.rows("SELECT c.hash FROM change c JOIN change_scope s ON s.change_id = c.id "
                                       "WHERE s.scope IN (?, '*') AND c.node_id != ?", UNIT_A, target_id)}
    assert {h for (n, _s), h in local.hashes().items() if n != target_id} == scoped, note
    assert node_digest(target) == hub_digest_for(world.hub_dir, [UNIT_A]), note
    for sha in attachment_shas(source):
        assert file_ok(target, sha), f"{note}: file {sha} missing or damaged on the pulling node"
    phones = dict(node_db(source).rows("SELECT id, applicant_phone FROM dossier WHERE unit_code = ?", UNIT_A))
    assert dict(local.rows("SELECT id, applicant_phone FROM dossier WHERE unit_code = ?", UNIT_A)) == phones, note
    assert progress == sorted(progress), f"{note}: a pulled change was lost: {progress}"
    assert hub.errors_logged() == [], note
    print(f"{note}: {kills} node kills in {time.monotonic() - started:.0f} s; stage at each kill: {dict(where)}; "
          f"changes of the source held after each: {progress}")


# ---------------------------------------------------------------- kill -9 during file transfers

def hub_bytes(hub_dir, sha: str) -> int:
    """Bytes of a file the hub holds: the whole file, or its partial upload."""
    for path in (hub_dir / "files" / sha[:2] / sha[2:], hub_dir / "files" / "partial" / sha):
        if path.exists():
            return path.stat().st_size
    return 0


def test_kills_during_file_transfers(world, seed):
    """Scans of 2.5 MB over a 1 MB/s link: the hub is killed -9 three times in the middle of an upload (which
    resumes from what the hub holds), then a pulling node three times in the middle of a download."""
    rng = random.Random(seed)
    note = f"seed {seed}"
    hub = world.hub()
    source = world.node("a", "source")
    shas = make_data(source, 2, attach=2, size=2_500_000, seed=seed)["shas"]
    held: list[int] = []
    with FlakyProxy(hub.port, rate_bps=1_000_000) as proxy:
        link = f"http://127.0.0.1:{proxy.port}"
        for _ in range(3):
            sync = world.start_sync(source, hub_url=link)
            assert wait_for_stage(source, sync, "files_up"), note
            time.sleep(rng.uniform(0.3, 1.5))
            hub.kill9()
            Processes.kill(sync)
            forget_stage(source)
            held.append(sum(hub_bytes(world.hub_dir, sha) for sha in shas))
            hub.start()
        out = world.sync(source, hub_url=link).stdout
    assert AGREES in out and "uploaded" in out, f"{note}: {out}"
    assert held == sorted(held) and held[-1] > 0, f"{note}: uploads did not resume: {held}"
    assert all(file_ok(world.hub_dir, sha) for sha in shas), note
    assert list((world.hub_dir / "files" / "partial").iterdir()) == [], note

    target = world.node("a2", "target")
    with FlakyProxy(hub.port, rate_bps=1_000_000) as proxy:
        for _ in range(3):
            sync = world.start_sync(target, hub_url=f"http://127.0.0.1:{proxy.port}")
            assert wait_for_stage(target, sync, "files_down"), note
            time.sleep(rng.uniform(0, 1.5))
            Processes.kill(sync)
            forget_stage(target)
    out = world.sync(target).stdout
    assert AGREES in out, f"{note}: {out}"
    assert all(file_ok(target, sha) for sha in shas), note
    assert node_db(target).setting("sync.files_pending") == "[]", note
    assert hub.errors_logged() == [], note
    print(f"{note}: bytes of the scans on the hub after each kill: {held}")
