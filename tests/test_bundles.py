"""Bundles for communes with no link at all: a USB stick carries changes and files both ways.

The format and its crypto are tested in this process (no database); the commands run as real processes
(one process cannot hold a node and a hub database at once). Node writes are made here, with the node
opened and closed around them; state is read back with plain sqlite3, read-only.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import UNIT_CODE, reception_body
from node import attachments, store, workflow as wf
from node.instance import Identity, Node, init_data_dir
from node.sync import bundle, keys, x25519
from node.sync.state import User
from node.users import Officer
from test_durability import cli_env, free_port, motcua

PASSWORD = "mat-khau-hub-2026"
OTHER_UNIT = "000.00.21.H55"
SCAN = b"%PDF-1.4\n" + hashlib.shake_256(b"scan").digest(1_300_000)  # two 1 MiB chunks
DRIVER = ("import node.cli as c; from central.cli import hub_group; from node.bundle_cli import register as rn; "
          "from central.bundle_cli import register as rh; rn(c.node); rh(hub_group); c.main()")


# ---------------------------------------------------------------- conversion and format, in process

def test_x25519_conversion_matches_the_key_derived_from_the_private_half():
    for _ in range(40):
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        derived = x25519.raw_public(x25519.private_key_to_x25519(private).public_key())
        assert x25519.public_to_x25519(public) == derived


def test_x25519_refuses_points_that_are_not_usable_keys():
    good = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                   serialization.PublicFormat.Raw)
    number = int.from_bytes(good, "little")
    y, sign = number & ((1 << 255) - 1), number >> 255
    x = x25519._recover_x(y, sign)
    # (x, y) + the point of order 2 (0, -1) = (-x, -y): on the curve, outside the prime-order subgroup.
    twisted = ((x25519.P - y) | (((x25519.P - x) & 1) << 255)).to_bytes(32, "little")
    bad = {"identity": (1).to_bytes(32, "little"), "order 4": bytes(32), "y >= p": (x25519.P).to_bytes(32, "little"),
           "mixed order": twisted, "short": good[:31]}
    for name, raw in bad.items():
        with pytest.raises(x25519.InvalidPublicKey):
            x25519.public_to_x25519(raw)
            pytest.fail(name)
    no_x = next(v for v in range(2, 100) if x25519._recover_x(v, 0) is None)
    with pytest.raises(x25519.InvalidPublicKey, match="not a point"):
        x25519.public_to_x25519(no_x.to_bytes(32, "little"))


def test_every_bundle_command_and_option_has_help():
    from central.bundle_cli import hub_export, hub_import
    from node.bundle_cli import node_export, node_import

    for command in (node_export, node_import, hub_export, hub_import):
        assert command.help
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{command.name} {param.opts} has no help"


def _change(seq: int) -> dict:
    return {"node_id": "NSENDER", "seq": seq, "hlc": "x", "entity": "dossier", "entity_id": f"d{seq}", "op": "create",
            "payload": {"fields": {"n": seq}}, "author": "", "prev": "0" * 64, "hash": "1" * 64, "sig": "s"}


def test_a_bundle_with_any_byte_flipped_or_cut_is_refused_whole(tmp_path):
    sender, recipient = keys.NodeKey.generate(), keys.NodeKey.generate()
    blob = tmp_path / "blob"
    blob.write_bytes(SCAN)
    sha = hashlib.sha256(SCAN).hexdigest()
    path = tmp_path / "b.bundle"
    written = bundle.write_bundle(
        path, direction=bundle.TO_HUB, sender="NSENDER", sender_key=sender, recipient="HHUB",
        recipient_public=recipient.public_b64, created="2026-03-02 09:00:00", change_count=700,
        batches=[[_change(i) for i in range(1, 601)], [_change(i) for i in range(601, 701)]],
        files=[bundle.FileEntry(sha, len(SCAN), blob)], file_count=1, file_bytes=len(SCAN), meta={"k": 1})
    assert written["changes"] == 700 and written["files"] == 1 and not Path(str(path) + ".part").exists()

    def opened(p):
        return bundle.open_bundle(p, direction=bundle.TO_HUB, recipient_id="HHUB", recipient_key=recipient,
                                  sender_key=lambda s: sender.public_b64)

    good = opened(path)
    records = list(good.records())
    assert good.meta == {"k": 1} and [len(v) for k, v in records if k == "changes"] == [500, 100, 100]
    assert b"".join(v.data for k, v in records if k == "chunk") == SCAN
    data = path.read_bytes()
    assert b"NSENDER" in data and b"Nguy" not in data and SCAN[:4096] not in data
    header_end = len(good.header_bytes)
    positions = (list(range(0, header_end, max(1, header_end // 25))) + list(range(len(data) - 80, len(data)))
                 + random.Random(7).sample(range(header_end, len(data)), 60))
    damaged = tmp_path / "d.bundle"
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << random.Random(pos).randrange(8)
        damaged.write_bytes(bytes(bad))
        with pytest.raises(bundle.BundleRefused):
            opened(damaged)
    for cut in (0, 5, header_end - 1, header_end + 3, len(data) // 2, len(data) - 65, len(data) - 1):
        damaged.write_bytes(data[:cut])
        with pytest.raises(bundle.BundleRefused):
            opened(damaged)
    damaged.write_bytes(data + b"\0")
    with pytest.raises(bundle.BundleRefused, match="follow its signature"):
        opened(damaged)
    with pytest.raises(bundle.BundleRefused, match="not for HOTHER"):
        bundle.open_bundle(path, direction=bundle.TO_HUB, recipient_id="HOTHER", recipient_key=recipient,
                           sender_key=lambda s: sender.public_b64)
    with pytest.raises(bundle.BundleRefused, match="signature does not verify"):
        bundle.open_bundle(path, direction=bundle.TO_HUB, recipient_id="HHUB", recipient_key=recipient,
                           sender_key=lambda s: keys.NodeKey.generate().public_b64)
    with pytest.raises(bundle.BundleRefused, match="does not decrypt"):
        bundle.open_bundle(path, direction=bundle.TO_HUB, recipient_id="HHUB", recipient_key=keys.NodeKey.generate(),
                           sender_key=lambda s: sender.public_b64)


# ---------------------------------------------------------------- the commands, as processes

def cli() -> list[str]:
    """`motcua` once node/cli.py and central/cli.py register the bundle commands, else a small driver."""
    from central.cli import hub_group
    from node.cli import node as node_group

    if "export" in node_group.commands and "import" in hub_group.commands:
        return motcua()
    return [sys.executable, "-c", DRIVER]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cli() + list(args), cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=120)


def ok(*args: str, cwd: Path) -> str:
    result = run(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(*args: str, cwd: Path) -> str:
    result = run(*args, cwd=cwd)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and lines[0].startswith("motcua: "), result.stderr
    return lines[0]


def query(db: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def hub_state(hub: Path) -> tuple:
    db = hub / "hub.db"
    files = sorted(str(p.relative_to(hub)) for p in (hub / "files").rglob("*") if p.is_file())
    return (query(db, "SELECT count(*), group_concat(hash) FROM change"), query(db, "SELECT * FROM node_status"),
            query(db, "SELECT count(*) FROM change_scope"), files)


def node_state(path: Path) -> tuple:
    db = path / "motcua.db"
    files = sorted(str(p.relative_to(path)) for p in (path / "files").rglob("*") if p.is_file())
    return (query(db, "SELECT count(*), group_concat(hash) FROM change"), query(db, "SELECT * FROM node_setting"),
            query(db, "SELECT count(*) FROM dossier"), files)


def top_seq(path: Path, node_id: str) -> int:
    return query(path / "motcua.db", "SELECT max(seq) FROM change WHERE node_id = ?", node_id)[0][0] or 0


def hub_acked(hub: Path, node_id: str) -> int:
    rows = query(hub / "hub.db", "SELECT acked_seq FROM node_status WHERE node_id = ?", node_id)
    return rows[0][0] if rows else 0


def receive(path: Path, count: int, scan: bytes | None = None) -> None:
    node = Node(path)
    try:
        officer = Officer.of(User.get(User.username == "reception1"))
        for i in range(count):
            dossier, _ = wf.receive_dossier(node, officer, reception_body(applicant_name=f"Nguyễn Thị Hương {i}"))
        if scan is not None:
            with store.transaction(node):
                attachments.attach(node, dossier.id, "giay-to.pdf", scan, "application/pdf", officer.id)
    finally:
        node.close()


def corrupt(source: Path, target: Path, how: str, header_len: int) -> Path:
    data = bytearray(source.read_bytes())
    if how == "truncated":
        data = data[: len(data) * 2 // 3]
    else:
        pos = {"header": header_len // 2, "ciphertext": (header_len + len(data)) // 2, "signature": len(data) - 20}[how]
        data[pos] ^= 0x10
    target.write_bytes(bytes(data))
    return target


@contextmanager
def serving(hub: Path, port: int, cwd: Path) -> Iterator[None]:
    """`motcua hub serve` on 127.0.0.1:port for the time of the block."""
    server = subprocess.Popen(motcua() + ["hub", "serve", "--data", str(hub), "--port", str(port)], cwd=cwd,
                              env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/time", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "hub serve did not come up"
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def world(tmp_path_factory, _template_node):
    """A hub, a commune node and a field laptop, both enrolled through a hub served for a moment."""
    root = tmp_path_factory.mktemp("bundles")
    hub, commune, laptop = root / "hub", root / "commune", root / "laptop"
    ok("hub", "init", "--data", str(hub), "--name", "Huyện Đồng Hỷ", "--admin-password", PASSWORD, cwd=root)
    shutil.copytree(_template_node, commune)
    init_data_dir(laptop, unit_code=UNIT_CODE, unit_name="Máy xách tay Tân Cương")
    tokens = [ok("hub", "token", "--data", str(hub), "--scope", UNIT_CODE, cwd=root).strip(),
              ok("hub", "token", "--data", str(hub), "--scope", f"{UNIT_CODE},{OTHER_UNIT}", "--kind", "laptop",
                 cwd=root).strip()]
    port = free_port()
    with serving(hub, port, root):
        for folder, token in zip((commune, laptop), tokens, strict=True):
            ok("node", "enroll", "--data", str(folder), "--hub", f"http://127.0.0.1:{port}", "--token", token,
               cwd=root)
    ids = {name: Identity.load(folder / "node.json").node_id for name, folder in
           (("commune", commune), ("laptop", laptop))}
    return {"root": root, "hub": hub, "commune": commune, "laptop": laptop, "port": port,
            **{f"{k}_id": v for k, v in ids.items()}}


def test_node_to_hub_round_trip_twice_and_old_after_new(world):
    root, hub, commune, me = world["root"], world["hub"], world["commune"], world["commune_id"]
    receive(commune, 2, scan=SCAN)
    first = root / "first.bundle"
    out = ok("node", "export", "--data", str(commune), "--to", str(first), "--with-files", cwd=root)
    top = top_seq(commune, me)
    assert f"{top} changes (seq 1–{top})" in out and "1 files" in out
    out = ok("hub", "import", "--data", str(hub), str(first), cwd=root)
    assert f"{top} changes stored, 0 already held, 1 files stored" in out
    assert hub_acked(hub, me) == top
    sha = hashlib.sha256(SCAN).hexdigest()
    assert (hub / "files" / sha[:2] / sha[2:]).read_bytes() == SCAN
    held = hub_state(hub)
    out = ok("hub", "import", "--data", str(hub), str(first), cwd=root)
    assert f"0 changes stored, {top} already held, 0 files stored" in out and "1 files skipped" in out
    assert hub_state(hub)[0] == held[0] and hub_state(hub)[3] == held[3]

    receive(commune, 1)
    second = root / "second.bundle"
    ok("node", "export", "--data", str(commune), "--to", str(second), cwd=root)  # acked unknown here: from seq 1
    newer = top_seq(commune, me)
    assert f"{newer - top} changes stored, {top} already held" in ok("hub", "import", "--data", str(hub),
                                                                    str(second), cwd=root)
    held = hub_state(hub)
    assert "0 changes stored" in ok("hub", "import", "--data", str(hub), str(first), cwd=root)
    assert hub_state(hub)[0] == held[0] and hub_acked(hub, me) == newer


def test_a_damaged_bundle_is_refused_whole_at_the_hub(world):
    root, hub, commune = world["root"], world["hub"], world["commune"]
    receive(commune, 1)
    fresh = root / "fresh.bundle"
    ok("node", "export", "--data", str(commune), "--to", str(fresh), cwd=root)
    header_len = len(bundle.Bundle.read_header(fresh).header_bytes)
    before = hub_state(hub)
    for how in ("header", "ciphertext", "signature", "truncated"):
        refused("hub", "import", "--data", str(hub), str(corrupt(fresh, root / f"{how}.bundle", how, header_len)),
                cwd=root)
        assert hub_state(hub) == before, how
    other = root / "other-hub"
    ok("hub", "init", "--data", str(other), "--admin-password", PASSWORD, cwd=root)
    assert "this bundle is for H" in refused("hub", "import", "--data", str(other), str(fresh), cwd=root)
    waiting = top_seq(commune, world["commune_id"]) - hub_acked(hub, world["commune_id"])
    assert waiting > 0 and f"{waiting} changes stored" in ok("hub", "import", "--data", str(hub), str(fresh), cwd=root)
    assert hub_acked(hub, world["commune_id"]) == top_seq(commune, world["commune_id"])


def test_hub_to_node_carries_a_submission_a_laptop_file_and_the_acknowledgement(world):
    root, hub, commune, laptop = world["root"], world["hub"], world["commune"], world["laptop"]
    code = ok("hub", "submit", "--data", str(hub), "--unit", UNIT_CODE, "--procedure", "1.001193",
              "--applicant-name", "Lò Thị Mai", "--id-number", "019305001234", cwd=root).strip()
    older = root / "hub-older.bundle"
    ok("hub", "export", "--data", str(hub), "--for", world["commune_id"], "--to", str(older), cwd=root)
    # The laptop attaches a scan to the hub's dossier and brings it to the hub on a stick.
    dossier_id = query(hub / "hub.db", "SELECT id FROM dossier WHERE code = ?", code)[0][0]
    scan = SCAN[:-10] + b"laptop-end"
    node = Node(laptop)
    try:
        with store.transaction(node):
            attachments.attach(node, dossier_id, "bien-ban.pdf", scan, "application/pdf", "field-officer")
    finally:
        node.close()
    from_laptop = root / "laptop.bundle"
    ok("node", "export", "--data", str(laptop), "--to", str(from_laptop), "--with-files", cwd=root)
    assert "1 files stored" in ok("hub", "import", "--data", str(hub), str(from_laptop), cwd=root)

    newer = root / "hub-newer.bundle"
    out = ok("hub", "export", "--data", str(hub), "--for", world["commune_id"], "--to", str(newer), "--with-files",
             cwd=root)
    assert "1 files" in out
    assert not query(commune / "motcua.db", "SELECT 1 FROM dossier WHERE code = ?", code)
    out = ok("node", "import", "--data", str(commune), str(newer), cwd=root)
    assert "1 files stored" in out and "0 already held" in out
    assert query(commune / "motcua.db", "SELECT applicant_name FROM dossier WHERE code = ?", code) == [("Lò Thị Mai",)]
    sha = hashlib.sha256(scan).hexdigest()
    assert (commune / "files" / sha[:2] / sha[2:]).read_bytes() == scan
    top = top_seq(commune, world["commune_id"])
    assert f"up to seq {top}" in out
    status = ok("node", "status", "--data", str(commune), cwd=root)
    assert re.search(r"changes waiting:\s+0", status), status
    state = node_state(commune)
    assert "0 changes stored" in ok("node", "import", "--data", str(commune), str(newer), cwd=root)
    assert "0 changes stored" in ok("node", "import", "--data", str(commune), str(older), cwd=root)
    assert node_state(commune) == state

    header_len = len(bundle.Bundle.read_header(newer).header_bytes)
    damaged = corrupt(newer, root / "hub-damaged.bundle", "ciphertext", header_len)
    assert "signature does not verify" in refused("node", "import", "--data", str(commune), str(damaged), cwd=root)
    for_laptop = root / "for-laptop.bundle"
    ok("hub", "export", "--data", str(hub), "--for", world["laptop_id"], "--to", str(for_laptop), cwd=root)
    line = refused("node", "import", "--data", str(commune), str(for_laptop), cwd=root)
    assert f"for {world['laptop_id']}, not for {world['commune_id']}" in line
    assert "goes node-to-hub" in refused("node", "import", "--data", str(commune), str(from_laptop), cwd=root)
    assert node_state(commune) == state
    # Back online: nothing left to push, and the state digests of node and hub agree.
    with serving(hub, world["port"], root):
        out = ok("node", "sync", "--data", str(commune), cwd=root)
    assert "pushed 0 changes, pulled 0" in out and "state digest agrees with the hub" in out, out


def test_a_bundle_from_a_revoked_node_is_refused_with_the_revocation(world):
    root, hub, laptop = world["root"], world["hub"], world["laptop"]
    node = Node(laptop)
    try:
        with store.transaction(node):
            attachments.attach(node, "no-such-dossier", "late.pdf", SCAN[:5000], "application/pdf", "x")
    finally:
        node.close()
    late = root / "late.bundle"
    ok("node", "export", "--data", str(laptop), "--to", str(late), cwd=root)
    ok("hub", "revoke", "--data", str(hub), world["laptop_id"], cwd=root)
    before = hub_state(hub)
    line = refused("hub", "import", "--data", str(hub), str(late), cwd=root)
    assert f"node {world['laptop_id']} was revoked on" in line and "by the hub administrator" in line
    assert hub_state(hub) == before
    assert "revoked" in refused("hub", "export", "--data", str(hub), "--for", world["laptop_id"], "--to",
                                str(root / "x.bundle"), cwd=root)
    assert not os.path.exists(root / "x.bundle")
