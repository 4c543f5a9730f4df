"""A field laptop with no link to the hub syncs with its commune's node on the LAN, over real HTTP on
127.0.0.1: the commune node (a `motcua node serve` process) takes the laptop's changes and carries them to
the hub with the laptop's own signatures; a second commune node sees them through the hub; when the laptop
later reaches the hub itself, nothing is stored twice and every digest agrees. Then the refusals: unknown
key, a laptop of another commune, a tampered change, a revoked laptop: 4xx, nothing stored.

Run as a script, this file acts on a dossier of a closed node folder (what a reception officer does):

    python -m tests.e2e.test_relay transfer DIR CODE
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.sync import keys, log, protocol
from node.sync.client import HubClient, HubRefused, RequestsTransport
from node.sync.encoding import decode

from .conftest import (
    AGREES, PY, RECEPTION, ROOT, UNIT_A, UNIT_B, Server, child_env, cli, free_port, hub_db, hub_digest_for,
    log_tail, make_data, node_db, node_digest, node_id_of,
)

LAN_SAYS = "over the LAN"  # what `motcua node sync` prints after a sync with the commune node


def wait_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def closed_port_url() -> str:
    """A hub URL nothing listens on: the laptop in the field."""
    return f"http://127.0.0.1:{free_port()}"


def laptop_enroll(world, folder: Path, scope: str) -> None:
    token = cli("hub", "token", "--data", str(world.hub_dir), "--scope", scope, "--kind", "laptop").stdout.split()[-1]
    out = cli("node", "enroll", "--data", str(folder), "--hub", world.hub_server.url, "--token", token).stdout
    assert f"scope {scope}" in out, out


def lan_sync(folder: Path, lan_url: str, *, check: bool = True) -> subprocess.CompletedProcess:
    """`motcua node sync` on a laptop whose hub cannot be reached and whose LAN relay is `lan_url`."""
    return cli("node", "sync", "--data", str(folder), check=check, MOTCUA_HUB_URL=closed_port_url(),
               MOTCUA_LAN_URL=lan_url, timeout=120)


def rows_of(folder: Path, node_id: str, *, hub: bool = False) -> list[dict]:
    """A node's changes as held in a replica (the hub's or a node's), in seq order."""
    db = hub_db(folder) if hub else node_db(folder)
    names = (*log.SIGNED_FIELDS, "hash", "sig")
    rows = db.rows(f"SELECT {', '.join(names)} FROM change WHERE node_id = ? ORDER BY seq", node_id)
    changes = [dict(zip(names, row, strict=True)) for row in rows]
    for change in changes:
        change["payload"] = decode(change["payload"])
    return changes


def status_of(folder: Path, code: str) -> int:
    return node_db(folder).value("SELECT status FROM dossier WHERE code = ?", code)


def act(folder: Path, code: str) -> None:
    done = subprocess.run([PY, "-m", "tests.e2e.test_relay", "transfer", str(folder), code], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_laptop_syncs_through_its_commune_node(world, procs):
    world.hub()
    a, a2 = world.node("a", "a"), world.node("a2", "a2")
    laptop = world.copy("laptop", "laptop")
    laptop_enroll(world, laptop, f"{UNIT_A},{UNIT_B}")
    laptop_id = node_id_of(laptop)
    made_a = make_data(a, 1, seed=21)
    for folder in (a, a2):
        assert AGREES in world.sync(folder).stdout  # A learns the laptop's key from the hub's registry
    # A serves its officers and its laptops, and syncs in the background: soon after each write, which a
    # laptop's push through the relay counts as.
    server = Server(procs, "node", a, MOTCUA_SYNC_INTERVAL="600").start()

    # In the field: the hub is out of reach; the laptop receives a dossier and syncs with A on the LAN.
    made_l = make_data(laptop, 1, seed=22)
    out = lan_sync(laptop, server.url).stdout
    assert LAN_SAYS in out, out
    assert made_a["codes"][0] in {c for (c,) in node_db(laptop).rows("SELECT code FROM dossier")}
    act(laptop, made_a["codes"][0])  # the laptop acts on a dossier it pulled from the commune node
    out = lan_sync(laptop, server.url).stdout
    assert "pushed 1 changes" in out, out
    mine = rows_of(laptop, laptop_id)
    assert rows_of(a, laptop_id) == mine, "A holds the laptop's whole log, as signed"
    assert status_of(a, made_a["codes"][0]) == status_of(laptop, made_a["codes"][0]) != 2
    assert made_l["codes"][0] in {c for (c,) in node_db(a).rows("SELECT code FROM dossier")}
    status = cli("node", "status", "--data", str(laptop), MOTCUA_LAN_URL=server.url).stdout
    assert "LAN relay" in status, status

    # The commune node's background sync carries the laptop's changes to the hub, with their signatures.
    def relayed() -> bool:
        adb = node_db(a)
        return (hub_db(world.hub_dir).count(laptop_id) == len(mine) and adb.setting("sync.stage") == ""
                and adb.setting("sync.lan_origins") in ("", "[]") and adb.setting("sync.last_result") == "ok")

    assert wait_until(relayed, 60), (node_db(a).setting("sync.last_error"), log_tail(server.proc))
    held = rows_of(world.hub_dir, laptop_id, hub=True)
    assert held == mine
    public = json.loads((laptop / "node.json").read_text(encoding="utf-8"))["public_key"]
    assert log.verify_run(held, public, (0, log.GENESIS)) == len(mine), "the laptop's own signatures, unbroken"
    assert f"{laptop_id}" in world.hub_nodes()

    # A second node of the commune sees the laptop's dossier and its action through the hub.
    assert AGREES in world.sync(a2).stdout
    assert made_l["codes"][0] in {c for (c,) in node_db(a2).rows("SELECT code FROM dossier")}
    assert status_of(a2, made_a["codes"][0]) == status_of(a, made_a["codes"][0])

    # Back at the district: the laptop reaches the hub itself with one more dossier. What the commune node
    # carried is not sent twice; every digest agrees.
    later = make_data(laptop, 1, seed=23)
    out = cli("node", "sync", "--data", str(laptop), MOTCUA_LAN_URL=server.url).stdout
    assert AGREES in out and f"pushed {later['added']} changes" in out, out
    hubdb = hub_db(world.hub_dir)
    assert hubdb.duplicates() == [] and node_db(a).duplicates() == [] and node_db(laptop).duplicates() == []
    assert hubdb.count(laptop_id) == node_db(laptop).top(laptop_id)
    assert node_digest(laptop) == hub_digest_for(world.hub_dir, [UNIT_A, UNIT_B])
    for folder in (a, a2):
        assert AGREES in world.sync(folder).stdout
        assert node_digest(folder) == hub_digest_for(world.hub_dir, [UNIT_A])
        assert later["codes"][0] in {c for (c,) in node_db(folder).rows("SELECT code FROM dossier")}
    assert server.errors_logged() == [] and world.hub_server.errors_logged() == []


def relay_client(url: str, node_id: str, key: keys.NodeKey) -> HubClient:
    return HubClient(RequestsTransport(url, peer="the commune node"), node_id=node_id, key=key, retries=0,
                     api_prefix=protocol.RELAY_API)


def refused(call) -> HubRefused:
    with pytest.raises(HubRefused) as info:
        call()
    return info.value


def test_the_commune_node_refuses_what_it_must(world, procs):
    world.hub()
    a = world.node("a", "a")
    laptop = world.copy("laptop", "laptop")
    laptop_enroll(world, laptop, UNIT_A)
    other = world.copy("b", "laptop-b")  # a laptop of commune B only
    laptop_enroll(world, other, UNIT_B)
    assert AGREES in world.sync(a).stdout
    server = Server(procs, "node", a, MOTCUA_SYNC_BACKGROUND="0").start()
    make_data(laptop, 1, seed=31)
    laptop_id = node_id_of(laptop)
    key = keys.NodeKey.load(laptop / "node_key.pem")
    count = node_db(a).count()

    stranger = relay_client(server.url, "NSTRANGER0001", keys.NodeKey.generate())
    err = refused(lambda: stranger.pull(None))
    assert (err.status, err.code) == (403, "unknown_node")

    done = lan_sync(other, server.url, check=False)
    assert done.returncode == 1 and "out_of_scope" in done.stderr and UNIT_A in done.stderr, done.stderr

    tampered = rows_of(laptop, laptop_id)
    victim = next(c for c in tampered if c["entity"] == "dossier")
    victim["payload"] = dict(victim["payload"], fields=dict(victim["payload"].get("fields") or {}, applicant_name="X"))
    err = refused(lambda: relay_client(server.url, laptop_id, key).push(tampered))
    assert (err.status, err.code) == (400, "hash_mismatch") and err.change.get("hash") == victim["hash"]
    assert node_db(a).count() == count, "nothing of a refused push is stored"

    world.cli_hub("revoke", laptop_id)
    assert AGREES in world.sync(a).stdout  # A learns the revocation by its pull
    count = node_db(a).count()
    done = lan_sync(laptop, server.url, check=False)
    assert done.returncode == 1 and "node_revoked" in done.stderr, done.stderr
    assert node_db(a).count(laptop_id) == 0 and node_db(a).count() == count
    assert server.errors_logged() == []


# ---------------------------------------------------------------- the acting script

def _transfer(path: str, code: str) -> None:
    from node import workflow
    from node.instance import Node
    from node.sync.state import User
    from node.users import Officer

    node = Node(Path(path))
    try:
        workflow.perform(node, Officer.of(User.get(User.username == RECEPTION)), code, "transfer")
    finally:
        node.close()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "transfer":
        sys.exit("usage: python -m tests.e2e.test_relay transfer DIR CODE")
    _transfer(sys.argv[2], sys.argv[3])
