"""Fixtures and helpers of the hub tests (imported by the test modules of this folder).

This folder has no __init__.py and no conftest.py on purpose: as a package named `central` it would
shadow the real `central` package, and a second top-level `conftest` module would replace
tests/conftest.py's in sys.modules (other test files import helpers from it).

The node side and the hub side cannot be open in one process at the same time (one DatabaseProxy), so a
node's changes are PREPARED first in a node folder (open, write, read its log into plain dicts, close),
and only then is the hub app opened. Test modules import by name every fixture they use, and the
fixtures those depend on (pytest looks fixtures up in the module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from central import create_app
from central.instance import init_hub
from central.storage.testing import postgres_schema
from central.tokens import create_token
from node import store, workflow
from node.attachments import attach
from node.instance import Node
from node.sync import hlc, keys, log, protocol
from node.sync.state import User
from node.users import Officer

PASSWORD = "mat-khau-hub-2026"
POSTGRES_URL = os.environ.get("MOTCUA_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
SCAN = b"%PDF-1.4\n" + bytes(range(256)) * 2400  # 614 409 bytes: three chunks of 256 KiB


@dataclass
class PreparedNode:
    """A real node folder whose log was read into plain dicts, then closed."""

    path: Path
    node_id: str
    unit_code: str
    unit_name: str
    key: keys.NodeKey
    changes: list[dict[str, Any]]
    dossier_id: str = ""
    dossier_code: str = ""
    scan_sha: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_node(node_dir: Path, clock, *, dossiers: int = 1, scan: bytes | None = SCAN) -> PreparedNode:
    """Open the node, receive `dossiers` dossiers (the first with a scan), read its log, close it."""
    node = Node(node_dir, now=clock)
    try:
        officer = Officer.of(User.get(User.username == "reception1"))
        first = None
        for i in range(dossiers):
            d, _ = workflow.receive_dossier(node, officer, {
                "procedure_code": "1.001193", "applicant_name": f"Nguyễn Thị Hương {i}",
                "applicant_id_number": "019305001234", "applicant_birth_date": "2005-04-12"})
            first = first or d
        sha = ""
        if scan is not None and first is not None:
            with store.transaction(node):
                attach(node, first.id, "giay-chung-sinh.pdf", scan, "application/pdf", officer.id)
            import hashlib

            sha = hashlib.sha256(scan).hexdigest()
        changes = list(log.iter_changes(node.node_id))
        return PreparedNode(node.path, node.node_id, node.identity.unit_code, node.identity.unit_name, node.key,
                            changes, first.id if first else "", first.code if first else "", sha)
    finally:
        node.close()


@pytest.fixture(params=BACKENDS)
def hub_db_url(request):
    """None (SQLite in the hub folder) or a fresh PostgreSQL schema when MOTCUA_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield None
    else:
        with postgres_schema(POSTGRES_URL) as url:
            yield url


@pytest.fixture
def hub_dir(tmp_path, hub_db_url) -> Path:
    path = tmp_path / "hub"
    init_hub(path, "Trung tâm huyện Đồng Hỷ", "admin", PASSWORD, hub_db_url)
    return path


@pytest.fixture
def prepared(node_dir, clock) -> PreparedNode:
    return prepare_node(node_dir, clock)


@pytest.fixture
def hub_app(hub_dir, prepared, clock, hub_db_url):
    """The hub app, opened after the node was prepared and closed."""
    app = create_app({"DATA_DIR": str(hub_dir), "TESTING": True, "WTF_CSRF_ENABLED": False, "NOW": clock,
                      "DATABASE_URL": hub_db_url})
    yield app
    app.extensions["motcua_hub"].close()


@pytest.fixture
def hub(hub_app):
    return hub_app.extensions["motcua_hub"]


@pytest.fixture
def api(hub_app):
    return hub_app.test_client()


class NodeSession:
    """Builds signed requests as a node would (protocol.request_message, X-Motcua-* headers)."""

    def __init__(self, client, node_id: str, key: keys.NodeKey):
        self.client, self.node_id, self.key = client, node_id, key

    def call(self, method: str, path: str, body: bytes = b"", *, time_ms: int | None = None,
             protocol_version: Any = protocol.PROTOCOL_VERSION, headers: dict | None = None,
             sign_path: str | None = None, node_id: str | None = None):
        node_id = node_id or self.node_id
        time_ms = hlc.wall_ms() if time_ms is None else time_ms
        message = protocol.request_message(method, sign_path or path, time_ms, node_id, body)
        sent = {"X-Motcua-Node": node_id, "X-Motcua-Time": str(time_ms),
                "X-Motcua-Signature": self.key.sign(message), "X-Motcua-Version": "0.1.0",
                "Content-Type": protocol.MEDIA_TYPE}
        if protocol_version is not None:
            sent["X-Motcua-Protocol"] = str(protocol_version)
        sent.update(headers or {})
        return self.client.open(path, method=method, data=body, headers=sent)

    def push(self, changes: list[dict], *, as_node: str | None = None, **kw):
        body = protocol.encode_body({"node_id": as_node or self.node_id, "changes": changes})
        return self.call("POST", "/api/v1/sync/push", body, **kw)

    def pull(self, cursor: str | None = None, limit: int | None = None, *, as_node: str | None = None, **kw):
        body = protocol.encode_body({"node_id": as_node or self.node_id, "cursor": cursor, "limit": limit})
        return self.call("POST", "/api/v1/sync/pull", body, **kw)

    def status(self, **extra):
        return self.call("POST", "/api/v1/sync/status", protocol.encode_body({"node_id": self.node_id, **extra}))

    def pull_all(self, cursor: str | None = None, limit: int | None = None) -> tuple[list[dict], dict]:
        """Every page until more=false: (changes, last page)."""
        changes: list[dict] = []
        while True:
            resp = self.pull(cursor, limit)
            assert resp.status_code == 200, resp.data[:300]
            page = unpack(resp)
            changes += page["changes"]
            cursor = page["cursor"]
            if not page["more"]:
                return changes, page


def unpack(resp) -> dict:
    assert resp.mimetype == protocol.MEDIA_TYPE, (resp.status_code, resp.data[:300])
    return protocol.decode_body(resp.data)


def error_of(resp) -> dict:
    assert resp.mimetype == "application/json", (resp.status_code, resp.data[:300])
    return resp.get_json()["error"]


def enroll(api, hub, node: PreparedNode, scope: list[str] | None = None, kind: str = "commune") -> dict:
    token = create_token(hub, scope or [node.unit_code], kind)
    resp = api.post("/api/v1/enroll", json=enroll_body(token, node))
    assert resp.status_code == 200, resp.data
    return resp.get_json()


def enroll_body(token: str, node: PreparedNode, **over) -> dict:
    body = {"token": token, "node_id": node.node_id, "public_key": node.key.public_b64,
            "unit_code": node.unit_code, "unit_name": node.unit_name, "software_version": "0.1.0"}
    body.update(over)
    return body


@pytest.fixture
def session(api, hub, prepared) -> NodeSession:
    """The prepared node, enrolled at the hub, as a signed API client."""
    enroll(api, hub, prepared)
    return NodeSession(api, prepared.node_id, prepared.key)
