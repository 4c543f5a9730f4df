"""A hub's data folder, opened as one `Hub` (like `node.instance.Node` for a commune).

    DIR/hub.json       {"node_id", "name", "public_key", "database_url"?}   (not secret)
    DIR/hub_key.pem    the hub's Ed25519 private key, mode 0600: signs the hub's own changes
    DIR/secret.key     secret for web sessions and pull-cursor MACs
    DIR/hub.db         SQLite database (default); or a PostgreSQL URL from MOTCUA_HUB_DATABASE_URL,
                       --database-url at init (kept in hub.json), or the `database_url` argument
    DIR/files/ab/...   attachments by SHA-256; DIR/files/partial/<sha> uploads in progress
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from collections.abc import Callable

from argon2 import PasswordHasher

from node import timeutil
from node.sync import hlc, keys
from node.sync.ids import new_id

from .errors import HubError
from .files import FileStore
from .storage import HubSigner, HubStorage, open_storage

DATABASE_ENV = "MOTCUA_HUB_DATABASE_URL"
HUB_UNIT = "hub"  # the unit code of the hub's own registry record
# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 0.1 s per login on a commune
# PC instead of ~0.8 s with the library's defaults; hashes made with other parameters still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class HubNotInitialised(HubError):
    http_status = 500
    code = "not_initialised"


@dataclass
class HubIdentity:
    node_id: str
    name: str
    public_key: str
    database_url: str = ""
    created_at: str = ""

    @classmethod
    def load(cls, path: Path) -> "HubIdentity":
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        data = {k: v for k, v in asdict(self).items() if v or k != "database_url"}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp, path)


def default_database_url(path: Path) -> str:
    return f"sqlite:///{(Path(path) / 'hub.db').resolve()}"


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def check_database(url: str) -> None:
    """Reach the database and create the schema, before anything is written to the folder."""
    try:
        storage = open_storage(url)
        try:
            storage.create_schema()
        finally:
            storage.close()
    except ValueError as exc:
        raise HubError(str(exc), code="bad_database_url") from exc
    except Exception as exc:  # the driver's own error: unreachable server, wrong password, no permission
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubError(f"cannot use the database at {safe_url(url)}: {first}", code="database_unreachable") from exc


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    """argon2id verification; False on any mismatch or malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except Exception:  # VerifyMismatchError, InvalidHashError, VerificationError
        return False


def init_hub(path: Path, name: str, admin_user: str, admin_password: str,
             database_url: str | None = None) -> HubIdentity:
    """Create a hub: key, hub.json, secret, database schema, its own registry record, first administrator.

    Refuses a folder that already holds a hub, and a password under 8 characters.
    """
    path = Path(path)
    if (path / "hub.json").exists():
        raise FileExistsError(f"{path} already holds a hub")
    admin_user = admin_user.strip().lower()
    if not admin_user or not admin_user.replace(".", "").replace("_", "").isalnum():
        raise HubError("the administrator's username may hold letters, digits, dots and underscores only")
    if len(admin_password or "") < 8:
        raise HubError("the administrator's password needs at least 8 characters")
    path.mkdir(parents=True, exist_ok=True)
    check_database(database_url or default_database_url(path))
    key = keys.NodeKey.generate()
    key.save(path / "hub_key.pem")
    fd = os.open(path / "secret.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    identity = HubIdentity(node_id="H" + new_id()[-12:], name=name, public_key=key.public_b64,
                           database_url=database_url or "",
                           created_at=timeutil.to_text(timeutil.now_vn()))
    identity.save(path / "hub.json")
    (path / "files").mkdir(exist_ok=True)
    hub = Hub(path, database_url=database_url)
    try:
        now = hub.now()
        hub.storage.write_change("node", identity.node_id, "put", {"fields": {
            "node_id": identity.node_id, "public_key": key.public_b64, "kind": "hub", "unit_code": HUB_UNIT,
            "unit_name": name, "scope": "*", "status": "active", "enrolled_at": timeutil.to_text(now),
            "revoked_at": ""}}, author="init")
        hub.storage.add_user(admin_user, "Quản trị viên", hash_password(admin_password), "admin")
    finally:
        hub.close()
    return identity


class Hub:
    """An opened hub: identity, key, clock resumed from the log, storage bound to the models."""

    def __init__(self, path: Path, *, database_url: str | None = None,
                 now: Callable[[], datetime] | None = None, now_ms: Callable[[], int] | None = None):
        self.path = Path(path)
        if not (self.path / "hub.json").exists():
            raise HubNotInitialised(f"{self.path} holds no hub; run `motcua hub init --data {self.path}` first")
        self.identity = HubIdentity.load(self.path / "hub.json")
        self.key = keys.NodeKey.load(self.path / "hub_key.pem")
        self.secret = (self.path / "secret.key").read_text().strip()
        self.files = FileStore(self.path / "files")
        self.database_url = (database_url or os.environ.get(DATABASE_ENV) or self.identity.database_url
                             or default_database_url(self.path))
        self._now = now or timeutil.now_vn
        self.now_ms = now_ms or hlc.wall_ms
        self.clock = hlc.Clock(now_ms=self.now_ms)
        self.storage: HubStorage = open_storage(self.database_url,
                                                HubSigner(self.identity.node_id, self.key, self.clock))
        self.storage.create_schema()
        last = self.storage.held(self.identity.node_id)
        if last[0]:
            from node.sync.log import Change

            top = Change.select(Change.hlc).where(Change.hash == last[1]).scalar()
            if top:
                self.clock.observe(hlc.Timestamp.parse(top))

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def now(self) -> datetime:
        """Local (Vietnam) time on the hub."""
        return self._now()

    def close(self) -> None:
        self.storage.close()
