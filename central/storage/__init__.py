"""The hub's storage seam: one documented base class, one module per backend, chosen by URL.

    sqlite:///path/to/hub.db         central.storage.sqlite.SQLiteStorage     (default, embedded)
    postgresql://user@host/dbname    central.storage.postgresql.PostgreSQLStorage (several hub processes)

`HubStorage` names every operation the hub needs; `central.storage.sql.SQLStorage` implements them once
with peewee query building (no SQL text built from data), and the backends add only what differs: the
connection, pragmas and how a write transaction is serialised across hub processes (SQLite: BEGIN
IMMEDIATE; PostgreSQL: pg_advisory_xact_lock), so Change.id order equals commit order and no pull cursor
ever skips a row. `central.storage.testing.StorageContract` is the contract every backend passes.

The models are bound through `node.sync.state.database` (one proxy per process), so one storage is open
per process at a time; `connect()` binds it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node.sync import hlc, keys

DEFAULT_MAX_PULL = 1000


@dataclass
class HubSigner:
    """The hub's own identity as a writer: its node id, Ed25519 key and hybrid logical clock."""

    node_id: str
    key: keys.NodeKey
    clock: hlc.Clock


@dataclass
class PushResult:
    acked_seq: int  # highest seq of the pushing node the hub now holds
    last_hash: str
    stored: int
    skipped: int
    origins: dict[str, int] = field(default_factory=dict)  # relayed origins: highest seq now held of each


@dataclass
class PullPage:
    """One page of a pull: full changes (every one with its own signature, as held), in Change.id order; the
    wire shape is chosen by the API (v1 "changes", or v2 "runs", node/sync/pullwire.py)."""

    changes: list[dict[str, Any]]
    position: int  # the hub's Change.id to continue after
    more: bool


class HubStorage:
    """Everything the hub stores, behind one interface. Every method is implemented by `SQLStorage`.

    Times given to and returned by the storage are local-time text `YYYY-MM-DD HH:MM:SS` (or datetimes
    where named `now`), like everywhere in the project.
    """

    url: str
    signer: HubSigner | None

    # ---- lifecycle
    def connect(self) -> None:
        """Open the connection and bind the models to this database."""
        raise NotImplementedError

    def close(self) -> None:
        """Close this thread's connection."""
        raise NotImplementedError

    def create_schema(self) -> None:
        """Create every table (synced, change log, hub-only) if missing; idempotent."""
        raise NotImplementedError

    def drop_schema(self) -> None:
        """Drop every table (tests only)."""
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager:
        """A write transaction serialised across hub processes; nested calls join the outer one."""
        raise NotImplementedError

    # ---- the change log
    def ingest_push(self, node_id: str, changes: list[dict[str, Any]], *, now: datetime) -> PushResult:
        """Verify, store, merge and scope a pushed batch in one serialised transaction (all or nothing).

        The batch may relay other nodes' changes (a commune node carrying its field laptops'): each origin
        must be enrolled and active with a scope that includes the pusher's unit (else UnknownNode,
        NodeRevoked, NodeQuarantined or RequestRefused relay_not_allowed), and its run is checked like the
        pusher's own (contiguity after what the hub holds of it, prev chain, signature; replays skipped).

        Raises the sync core's errors (UnknownNode, NodeRevoked, SignatureInvalid, HashMismatch,
        SequenceGap, ChainBroken, ChangeNotApplicable...). On ForkDetected the batch is rolled back, a
        ForkRecord with both versions is written and the node quarantined by a hub-signed change, in a
        second transaction; then ForkDetected is raised with `fork_id` set.
        """
        raise NotImplementedError

    def write_change(self, entity: str, entity_id: str, op: str, payload: dict[str, Any],
                     author: str = "") -> dict[str, Any]:
        """Append a change signed by the hub, merge it and scope it (joins an open transaction)."""
        raise NotImplementedError

    def pull(self, node_id: str, scopes: list[str], after: int, limit: int = DEFAULT_MAX_PULL, *,
             acknowledge: bool = True) -> PullPage:
        """Changes with scope in `scopes`, Change.id > `after`, not made by `node_id`, in id order.

        A node asking after `after` has merged everything up to it, which is recorded (`acknowledge`); the
        later frames of a framed pull pass False: the hub does not know which of them the node committed.
        """
        raise NotImplementedError

    def digest(self, scopes: list[str]) -> dict[str, Any]:
        """protocol.digest_of over the hashes of every change with scope in `scopes`: read from running
        per-scope digests kept in the transactions that scope changes, so it costs O(len(scopes)), not
        O(changes). Summed again from the rows when they were marked stale (a row deleted by hand)."""
        raise NotImplementedError

    def held(self, node_id: str) -> tuple[int, str]:
        """(seq, hash) of the newest change of `node_id` held here, or (0, GENESIS)."""
        raise NotImplementedError

    def change_count(self) -> int:
        """How many changes the hub holds."""
        raise NotImplementedError

    # ---- attachments
    def file_size(self, sha256: str) -> int | None:
        """The size an Attachment row gives for this SHA-256, or None when no attachment mentions it."""
        raise NotImplementedError

    def file_in_scope(self, sha256: str, units: list[str]) -> bool:
        """Whether an attachment of a dossier of one of `units` names this SHA-256."""
        raise NotImplementedError

    # ---- the key registry
    def key_for(self, node_id: str) -> tuple[str, str]:
        """(public key, status) of an enrolled node; raises UnknownNode."""
        raise NotImplementedError

    def node_record(self, node_id: str) -> dict[str, Any] | None:
        """The registry row of a node as a dict, or None."""
        raise NotImplementedError

    def nodes(self) -> list[dict[str, Any]]:
        """Every enrolled node: registry fields plus what the hub observed (NodeStatus), by unit."""
        raise NotImplementedError

    def units_served(self) -> set[str]:
        """Every unit code some active node receives."""
        raise NotImplementedError

    def set_node_status(self, node_id: str, status: str, *, now: datetime) -> dict[str, Any]:
        """Revoke, quarantine or reactivate a node through a hub-signed "node" put; returns the record."""
        raise NotImplementedError

    # ---- enrollment tokens
    def add_token(self, token_hash: str, scope: list[str], kind: str, *, now: datetime,
                  expires_at: datetime) -> None:
        """Store a new enrollment token by its SHA-256."""
        raise NotImplementedError

    def tokens(self) -> list[dict[str, Any]]:
        """Every token (hash prefix, scope, kind, times), newest first."""
        raise NotImplementedError

    def enroll(self, token_hash: str, record: dict[str, Any], *, now: datetime) -> dict[str, Any]:
        """Check and spend the token, then register the node by a hub-signed "node" put (one transaction).

        Raises TokenRefused (unknown, used, expired, unit outside its scope) or AlreadyEnrolled.
        `record` carries node_id, public_key, unit_code, unit_name; kind and scope come from the token.
        """
        raise NotImplementedError

    # ---- what the hub observed of each node
    def touch_node(self, node_id: str, **observed: Any) -> None:
        """Upsert NodeStatus fields (last_seen, software_version, clock_skew_ms, backlog_reported...)."""
        raise NotImplementedError

    def node_status(self, node_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    # ---- forks
    def forks(self, open_only: bool = True) -> list[dict[str, Any]]:
        raise NotImplementedError

    def fork(self, fork_id: int) -> dict[str, Any] | None:
        raise NotImplementedError

    # ---- hub administrators
    def add_user(self, username: str, full_name: str, password_hash: str, roles: str = "admin") -> None:
        raise NotImplementedError

    def user(self, username: str) -> dict[str, Any] | None:
        raise NotImplementedError


def open_storage(url: str, signer: HubSigner | None = None) -> HubStorage:
    """The backend for `url` (sqlite:///… or postgresql://…), connected and bound."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStorage

        storage: HubStorage = SQLiteStorage(url, signer)
    elif url.startswith(("postgresql://", "postgres://")):
        from .postgresql import PostgreSQLStorage

        storage = PostgreSQLStorage(url, signer)
    else:
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://…")
    storage.connect()
    return storage


__all__ = ["HubStorage", "HubSigner", "PushResult", "PullPage", "open_storage", "DEFAULT_MAX_PULL"]
