"""A node's data folder: identity, key, database and files, opened as one `Node`.

    DIR/node.json      node id, unit code and names, public key (not secret)
    DIR/node_key.pem   Ed25519 private key, mode 0600, never leaves the node
    DIR/secret.key     secret for signing web sessions and API tokens
    DIR/motcua.db      SQLite (WAL): synced state, the change log, local tables
    DIR/files/ab/...   attachments stored by SHA-256
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable

from . import timeutil
from .errors import NotInitialised
from .sync import hlc, keys
from .sync.ids import new_id
from .sync.log import Change

DATA_ENV = "MOTCUA_DATA"
DEFAULT_DATA = Path("instance")


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data folder: the explicit one, else $MOTCUA_DATA, else ./instance."""
    return Path(explicit or os.environ.get(DATA_ENV) or DEFAULT_DATA)


@dataclass
class Identity:
    node_id: str
    unit_code: str
    unit_name: str
    unit_address: str = ""
    parent_name: str = ""  # the district or province the commune belongs to
    province_name: str = ""
    leader_title: str = "Chủ tịch UBND xã"
    public_key: str = ""
    public_url: str = ""  # base URL printed in receipts' QR codes
    code_tag: str = ""  # a second node of the same unit (a field laptop): its dossier codes are {unit}.{tag}-...
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "Identity":
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, path)


def init_data_dir(
    path: Path,
    *,
    unit_code: str,
    unit_name: str,
    unit_address: str = "",
    parent_name: str = "",
    province_name: str = "",
    passphrase: bytes | None = None,
) -> Identity:
    """Create a node's data folder: a new Ed25519 key, identity and session secret. Refuses to overwrite."""
    path.mkdir(parents=True, exist_ok=True)
    if (path / "node.json").exists():
        raise FileExistsError(f"{path} already holds a node")
    key = keys.NodeKey.generate()
    key.save(path / "node_key.pem", passphrase)
    secret = path / "secret.key"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    ident = Identity(
        node_id="N" + new_id()[-12:],
        unit_code=unit_code,
        unit_name=unit_name,
        unit_address=unit_address,
        parent_name=parent_name,
        province_name=province_name,
        public_key=key.public_b64,
        created_at=timeutil.to_text(timeutil.now_vn()),
    )
    ident.save(path / "node.json")
    (path / "files").mkdir(exist_ok=True)
    return ident


class Node:
    """An opened node: database bound, key loaded, clock resumed from the log."""

    def __init__(self, path: Path, *, now: Callable[[], datetime] | None = None, passphrase: bytes | None = None):
        from .db import open_database

        self.path = Path(path)
        if not (self.path / "node.json").exists():
            raise NotInitialised(
                f"Thư mục {self.path} chưa có nút; hãy chạy `motcua node init`.",
                f"{self.path} holds no node; run `motcua node init` first.",
            )
        self.identity = Identity.load(self.path / "node.json")
        self.key = keys.NodeKey.load(self.path / "node_key.pem", passphrase)
        self.secret = (self.path / "secret.key").read_text().strip()
        self.files = self.path / "files"
        self.files.mkdir(exist_ok=True)
        self.db = open_database(self.path / "motcua.db")
        self._now = now or timeutil.now_vn
        top = Change.select(Change.hlc).order_by(Change.hlc.desc()).limit(1).tuples().first()
        self.clock = hlc.Clock(last=hlc.Timestamp.parse(top[0]) if top else None)
        self.write_lock = threading.RLock()
        self.on_write: Callable[[dict[str, Any]], None] | None = None  # called by store.write after each change

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def now(self) -> datetime:
        return self._now()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()
