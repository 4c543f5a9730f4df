"""One push holding a dossier's create together with its edits, actions, scans, duplicates and a concurrent
laptop's work, shuffled and repeated: the hub's merged state must equal every node's (tests/test_convergence's
check). On PostgreSQL the hub holds a dossier created inside a batch back and writes it once at the end of the
batch, with its actions folded in and its documents counted by the INSERT (node/sync/dossier_merge.py); this
test walks the paths that must send it early instead: a field edit, a rebuild (actions before their create,
siblings), duplicate checks and a dossier the hub already holds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from central.storage.testing import postgres_schema
from conftest import FakeNow
from node.sync.state import Conflict, Dossier, DuplicateFlag
from test_convergence import POSTGRES_URL, World, check

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="MOTCUA_TEST_POSTGRES_URL not set"))]


def script(world: World, *, dup: bool) -> None:
    a, b, laptop = world.a, world.b, world.laptop
    world.receive(a, 0, 0)  # created, edited and moved on in the same push
    world.edit(a, 0, "applicant_phone", 0)
    world.receive(a, 0, 0)  # the same person and procedure: a possible duplicate inside the batch
    world.scan(a, 1, remove=False)
    world.edit(a, 1, "applicant_address", 1)
    world.receive(b, 0, 0)  # and in the other commune: the hub flags it across communes
    world.push(b, 1.0, dup)
    world.lan(a, 1.0)  # the laptop now holds A's dossiers and works on them offline, concurrently with A
    world.edit(laptop, 0, "applicant_phone", 1)
    world.edit(a, 0, "applicant_phone", 2)  # the same base, another value: a conflict
    for which in range(3):
        world.act(a, 0, which)
    world.act(laptop, 0, 2)  # an action on the same status version: siblings
    world.receive(laptop, 1, 1)
    world.act(laptop, 2, 0)
    world.act(a, 1, 1)
    world.push(a, 1.0, dup)  # everything of A in one batch (shuffled, with repeats, when dup)
    world.push(laptop, 0.5, dup)  # half of the laptop's: actions of a dossier it created come later
    world.receive(a, 2, 1)
    world.act(a, 0, 3)
    world.push(a, 1.0, dup)  # a dossier the hub already holds, in a batch with a new create
    world.heal()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dup", [False, True], ids=["in-order", "shuffled"])
def test_a_batch_with_creates_and_their_followers_merges_like_every_node(_template_node, backend, dup):
    def run(url):
        with tempfile.TemporaryDirectory() as tmp:
            world = World(Path(tmp), _template_node, FakeNow(), url)
            try:
                script(world, dup=dup)
                check(world)
                world.hub.use()
                assert Dossier.select().count() >= 5
                assert DuplicateFlag.select().count() >= 1, "the possible duplicates were flagged"
                assert Conflict.select().count() >= 1, "the laptop's concurrent edit made a conflict"
            finally:
                world.close()

    if backend == "postgresql":
        with postgres_schema(POSTGRES_URL) as url:
            run(url)
    else:
        run(None)
