"""The node's side of sync, glued to its data folder: enrollment, one sync, status, the background thread.

    DIR/hub.json    the pinned hub: {"url", "hub_node_id", "hub_public_key", "record", "record_sig"}
    DIR/sync.lock   held while a sync runs, so a CLI sync and the server's thread never overlap

$MOTCUA_HUB_URL, when set, replaces the pinned URL for syncs (a hub that moved, a relay or a test proxy);
the hub's key is still checked against the pinned one, so it cannot redirect a node to another hub.

A field laptop with a LAN relay configured (`motcua node lan --url http://COMMUNE-NODE:PORT`, or
$MOTCUA_LAN_URL) tries the hub first (with fewer retries) and, when the hub cannot be reached, syncs with
its commune's node over the LAN instead (node/relay.py's LanSession); `sync.last_path` says which was used.

The stages themselves live in `node.sync.session` (pure, no Flask); the transport in `node.sync.client`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import __version__, attachments, relay, store, timeutil
from .instance import Node
from .models import NodeSetting
from .sync import encoding, keys, protocol
from .sync.client import HubClient, HubKeyMismatch, HubUnreachable, RequestsTransport, Transport, normalise_hub_url
from .sync.errors import SignatureInvalid, SyncError
from .sync.session import Replica, SyncReport, SyncSession, changes_waiting, files_waiting

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: the in-process lock still holds)
    fcntl = None  # type: ignore[assignment]

HUB_FILE = "hub.json"
LOCK_FILE = "sync.lock"
HUB_URL_ENV = "MOTCUA_HUB_URL"
CLOCK_WARNING_MS = 5 * 60 * 1000
DEFAULT_INTERVAL = 30.0
DEFAULT_DEBOUNCE = 2.0
logger = logging.getLogger("motcua.sync")
TransportFactory = Callable[[str], Transport]


class NotEnrolled(SyncError):
    http_status = 409
    code = "not_enrolled"


class AlreadyEnrolled(SyncError):
    http_status = 409
    code = "already_enrolled"


class SyncBusy(SyncError):
    http_status = 409
    code = "busy"


class NodeReplica(Replica):
    """The session's view of a node: its transactions, merge path, settings and attachment files."""

    def __init__(self, node: Node):
        self.node = node
        self.node_id = node.node_id
        self.key = node.key
        self.clock = node.clock

    def transaction(self):
        return store.transaction(self.node)

    def apply(self, change: dict[str, Any]) -> bool:
        return store.apply_change(change)

    def setting(self, name: str, default: str = "") -> str:
        row = NodeSetting.get_or_none(NodeSetting.key == name)
        return row.value if row is not None else default

    def save(self, values: dict[str, Any]) -> None:
        with store.transaction(self.node):
            for name, value in values.items():
                text = "" if value is None else str(value)
                (NodeSetting.insert(key=name, value=text)
                 .on_conflict(conflict_target=[NodeSetting.key], update={NodeSetting.value: text}).execute())

    def file_path(self, sha256: str) -> Path:
        return attachments.path_for(self.node, sha256)

    def now_text(self) -> str:
        return timeutil.to_text(self.node.now())


# ---------------------------------------------------------------- the pinned hub

def read_pin(node: Node) -> dict[str, Any] | None:
    """The pinned hub of this node, or None when it was never enrolled."""
    path = node.path / HUB_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _write_pin(node: Node, pin: dict[str, Any]) -> None:
    path = node.path / HUB_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(pin, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def make_client(node: Node, hub_url: str, *, pin: dict[str, Any] | None = None, transport: Transport | None = None,
                **options: Any) -> HubClient:
    """A client for the hub at `hub_url`, signing as this node; pinned to `pin`'s key when given."""
    return HubClient(transport or RequestsTransport(hub_url), node_id=node.node_id, key=node.key,
                     hub_node_id=(pin or {}).get("hub_node_id"), hub_public_key=(pin or {}).get("hub_public_key"),
                     software_version=__version__, **options)


def enroll(node: Node, hub_url: str, token: str, *, transport: Transport | None = None) -> dict[str, Any]:
    """Register this node's public key with the hub (one-time token) and pin the hub's key in DIR/hub.json."""
    if read_pin(node) is not None:
        raise AlreadyEnrolled(f"this node is already enrolled with {read_pin(node)['url']}")
    url = normalise_hub_url(hub_url)
    client = make_client(node, url, transport=transport, retries=2)
    try:
        hub = client.hub_time()
        ident = node.identity
        answer = client.enroll({"token": token, "node_id": ident.node_id, "public_key": ident.public_key,
                                "unit_code": ident.unit_code, "unit_name": ident.unit_name,
                                "software_version": __version__})
    finally:
        client.transport.close()
    hub_key, record = answer.get("hub_public_key"), answer.get("record") or {}
    if hub_key != hub.get("hub_public_key") or answer.get("hub_node_id") != hub.get("hub_node_id"):
        raise HubKeyMismatch("the hub's enrollment answer names another key than its /time answer")
    try:
        keys.verify(hub_key, encoding.canonical(record), str(answer.get("record_sig", "")))
    except (SignatureInvalid, ValueError, TypeError) as exc:
        raise HubKeyMismatch("the hub's enrollment record is not signed by the hub's key") from exc
    if record.get("node_id") != ident.node_id or record.get("public_key") != ident.public_key:
        raise HubKeyMismatch("the hub's enrollment record is for another node or key")
    _write_pin(node, {"url": url, "hub_node_id": answer["hub_node_id"], "hub_public_key": hub_key,
                      "record": record, "record_sig": answer["record_sig"]})
    if client.offset_ms is not None:
        # The hub's clock, learned by the /time above, saved as a sync saves it (this node's clock minus the
        # hub's): the first sync then needs no GET /time of its own (SyncSession.stage_time).
        NodeReplica(node).save({"sync.clock_skew_ms": -client.offset_ms})
    if record.get("kind") == "laptop" and not ident.code_tag:
        # A laptop shares its commune's unit code: a tag keeps its dossier codes apart ({unit}.{tag}-...).
        ident.code_tag = "L" + ident.node_id[-5:]
        ident.save(node.path / "node.json")
    return record


def hub_url(pin: dict[str, Any]) -> str:
    """Where to reach the pinned hub: $MOTCUA_HUB_URL when set, else the URL given at enrollment."""
    return normalise_hub_url(os.environ.get(HUB_URL_ENV) or pin["url"])


# ---------------------------------------------------------------- one sync

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def sync_lock(node: Node, *, wait: bool = True, timeout: float = 300.0) -> Iterator[None]:
    """Held around one sync: a lock per data folder in this process and a file lock across processes."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(str(node.path.resolve()), threading.Lock())
    acquired = lock.acquire(timeout=timeout) if wait else lock.acquire(blocking=False)
    if not acquired:
        raise SyncBusy("another sync of this node is running")
    try:
        if fcntl is None:
            yield
            return
        with open(node.path / LOCK_FILE, "a") as fh:
            deadline = time.monotonic() + (timeout if wait else 0)
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SyncBusy("another process is syncing this node") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        lock.release()


LAN_HUB_RETRIES = 1  # a laptop with a LAN relay does not wait long for a hub it cannot reach


def sync_once(node: Node, *, transport: Transport | None = None, wait: bool = True, retries: int = 5,
              lan_transport: Transport | None = None, **session_options: Any) -> SyncReport:
    """Run one sync with the pinned hub, or (a laptop whose hub is unreachable) with its LAN relay; never
    raises for a failed sync (the report says why)."""
    pin = read_pin(node)
    if pin is None:
        exc = NotEnrolled("this node is not enrolled with a hub; run `motcua node enroll` first")
        return SyncReport(error=exc.message, error_code=exc.code, exception=exc)
    lan = relay.lan_url(node)
    try:
        with sync_lock(node, wait=wait):
            tries = min(retries, LAN_HUB_RETRIES) if lan else retries
            client = make_client(node, hub_url(pin), pin=pin, transport=transport, retries=tries)
            try:
                session = SyncSession(client, NodeReplica(node), hub_node_id=pin["hub_node_id"],
                                      hub_public_key=pin["hub_public_key"], **session_options)
                report = session.run()
            finally:
                if transport is None:
                    client.transport.close()
            if lan and isinstance(report.exception, HubUnreachable):
                return sync_lan(node, pin, lan, transport=lan_transport, retries=retries,
                                hub_error=report.error or "", **session_options)
            NodeReplica(node).save({"sync.last_path": "hub"})
            return report
    except SyncBusy as exc:
        return SyncReport(error=exc.message, error_code=exc.code, exception=exc)


def sync_lan(node: Node, pin: dict[str, Any], url: str, *, transport: Transport | None = None, retries: int = 2,
             hub_error: str = "", **session_options: Any) -> SyncReport:
    """One sync with the commune node's relay at `url` (the caller holds the sync lock)."""
    try:
        base = normalise_hub_url(url)
    except ValueError as exc:
        return SyncReport(path="lan", peer=url, error=str(exc), error_code="bad_lan_url", exception=exc)
    client = HubClient(transport or RequestsTransport(base, peer="the commune node"), node_id=node.node_id,
                       key=node.key, software_version=__version__, retries=retries, api_prefix=protocol.RELAY_API)
    own_unit = {node.node_id: node.identity.unit_code}
    try:
        session = relay.LanSession(client, NodeReplica(node), hub_node_id=pin["hub_node_id"],
                                   hub_public_key=pin["hub_public_key"], lan_url=base,
                                   unit_of=lambda changes: relay.concerns(changes, hub_node_id=pin["hub_node_id"],
                                                                          origin_units=own_unit),
                                   **session_options)
        report = session.run()
    finally:
        if transport is None:
            client.transport.close()
    if hub_error:
        logger.info("hub unreachable (%s); synced over the LAN with %s: %s", hub_error, base,
                    report.error or "ok")
    if report.error is not None:
        report.error = f"the hub cannot be reached, and the sync with the commune node at {base} failed: {report.error}"
    return report


def status(node: Node, *, brief: bool = False) -> dict[str, Any]:
    """What the sync page and `motcua node status` show, read from local state only (no network).

    `brief` (the header badge on every page) skips counting the files waiting.
    """
    pin = read_pin(node)
    replica = NodeReplica(node)
    skew = replica.setting("sync.clock_skew_ms")
    skew_ms = int(skew) if skew.lstrip("-").isdigit() else None
    try:
        last_error = json.loads(replica.setting("sync.last_error") or "null")
    except ValueError:
        last_error = None
    result = replica.setting("sync.last_result")
    lan = _lan_status(node, replica)
    state = "not_enrolled" if pin is None else ("never" if not result else
                                                 "online" if result == "ok" else
                                                 "offline" if result == "hub_unreachable" else "error")
    if state == "offline" and lan["last_path"] == "lan" and lan["lan_last_result"] == "ok":
        state = "lan"  # the hub is out of reach, but the commune node took and gave what it could
    return {**lan, "state": state,
        "node_id": node.node_id, "unit_code": node.identity.unit_code, "unit_name": node.identity.unit_name,
        "enrolled": pin is not None, "hub_url": (pin or {}).get("url", ""),
        "hub_node_id": (pin or {}).get("hub_node_id", ""),
        "last_result": result, "last_success": replica.setting("sync.last_success"),
        "last_attempt": replica.setting("sync.last_attempt"), "last_error": last_error,
        "stage": replica.setting("sync.stage"),
        "changes_waiting": changes_waiting(replica), "files_waiting": None if brief else files_waiting(replica),
        "clock_skew_ms": skew_ms, "clock_warning": skew_ms is not None and abs(skew_ms) > CLOCK_WARNING_MS,
    }


def _json_setting(replica: NodeReplica, name: str, default: Any) -> Any:
    try:
        value = json.loads(replica.setting(name) or "null")
    except ValueError:
        return default
    return value if isinstance(value, type(default)) else default


def _lan_status(node: Node, replica: NodeReplica) -> dict[str, Any]:
    """The LAN part of `status`: the relay a laptop uses, and the laptops a commune node serves."""
    seen = _json_setting(replica, "relay.seen", {})
    errors = _json_setting(replica, "relay.errors", {})
    return {
        "last_path": replica.setting("sync.last_path"), "lan_url": relay.lan_url(node),
        "lan_last_result": replica.setting("lan.last_result"), "lan_last_success": replica.setting("lan.last_success"),
        "lan_last_error": _json_setting(replica, "lan.last_error", {}) or None,
        "lan_pushed_seq": replica.setting("lan.pushed_seq"),
        "laptops": [{"node_id": k, "at": (v or {}).get("at", ""), "error": errors.get(k)}
                    for k, v in sorted(seen.items()) if isinstance(v, dict)],
        "relay_errors": errors,
    }


def set_lan_url(node: Node, url: str | None) -> str:
    """Record the LAN relay of this laptop (a commune node's URL), or forget it with None/""; returns it."""
    value = normalise_hub_url(url) if url else ""
    NodeReplica(node).save({relay.LAN_URL_SETTING: value})
    return value


# ---------------------------------------------------------------- in the background

class SyncThread(threading.Thread):
    """Syncs every `interval` seconds and `debounce` seconds after a local write (`node.on_write`)."""

    def __init__(self, node: Node, *, interval: float = DEFAULT_INTERVAL, debounce: float = DEFAULT_DEBOUNCE,
                 transport_factory: TransportFactory | None = None):
        super().__init__(name=f"motcua-sync-{node.node_id}", daemon=True)
        self.node, self.interval, self.debounce = node, interval, debounce
        self.transport_factory = transport_factory
        self.last_report: SyncReport | None = None
        self.runs = 0
        self._halt = threading.Event()
        self._wake = threading.Event()

    def nudge(self, change: dict[str, Any] | None = None) -> None:
        """Ask for a sync soon (called by store.write after each local change; must stay cheap)."""
        self._wake.set()

    def start(self) -> None:
        self.node.on_write = self.nudge
        self._wake.set()  # a first sync soon after start
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the sync under way, if any; unhook from the node."""
        if self.node.on_write == self.nudge:
            self.node.on_write = None
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                woke = self._wake.wait(self.interval)
                if self._halt.is_set():
                    return
                if woke and self._settle():
                    return
                self._sync()
        finally:
            if not self.node.db.is_closed():
                self.node.db.close()  # this thread's connection only (peewee keeps one per thread)

    def _settle(self) -> bool:
        """Let a burst of writes finish (at most `interval`); True when asked to stop meanwhile."""
        deadline = time.monotonic() + self.interval
        while True:
            self._wake.clear()
            if self._halt.wait(self.debounce):
                return True
            if not self._wake.is_set() or time.monotonic() >= deadline:
                return False

    def _sync(self) -> None:
        try:
            pin = read_pin(self.node)
            transport = self.transport_factory(hub_url(pin)) if (pin and self.transport_factory) else None
            self.last_report = sync_once(self.node, transport=transport, wait=False, retries=2)
        except Exception:  # the thread must outlive any one failure
            logger.exception("background sync failed")
        self.runs += 1


def start_background(node: Node, *, interval: float = DEFAULT_INTERVAL, **options: Any) -> SyncThread | None:
    """Start the background sync when the node is enrolled; None otherwise."""
    if read_pin(node) is None:
        return None
    thread = SyncThread(node, interval=interval, **options)
    thread.start()
    return thread
