"""Field laptops and the LAN relay: a laptop syncs with its commune's node when the hub cannot be reached.

    laptop ──(LAN, /relay/v1, signed by the laptop)──> commune node ──(/api/v1, its own sync)──> hub

The commune node's side (served by node/web/relay_views.py):

- `authenticate()`: the same signed requests the hub checks (node.sync.protocol), verified against the
  key registry the commune node pulled from the hub: the laptop must be known, active, of kind "laptop",
  with a scope that includes this commune's unit, and its request time within the window.
- `accept_push()`: the laptop's own changes, one contiguous chained run, each concerning this commune's
  unit (`concerns()`), every signature verified by the one ingest path and applied with the same merge as a
  pull. The laptop's id joins `sync.lan_origins`: the node's next sync relays those changes to the hub with
  their original signatures (node/sync/session.py, push stage) and leaves them out of its digest until the
  hub holds them.
- `serve_pull()`: what the commune node holds (its unit and "*"), the laptop's own changes excepted, after
  an HMAC cursor bound to the laptop; the laptop verifies each change's own signature.
- `relay_status()`: the highest seq of the laptop held here, and a signature over the laptop's nonce that
  proves the answer comes from the commune node's key (the laptop checks it against its key registry before
  it hands over any of its own changes).

The laptop's side is `LanSession` (stages time -> pull -> status -> push), run by node/syncer.py when the hub
is unreachable and a LAN URL is configured (`motcua node lan --url`, or $MOTCUA_LAN_URL).

A laptop working for several communes sends over one commune's LAN its changes in order up to the first
that concerns another commune; the rest wait for the hub (or are sent once that first one has reached it).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from typing import Any

from . import store
from .instance import Node
from .models import NodeSetting
from .sync import hlc, ingest, keys, log, protocol, pullwire, scope
from .sync.client import HubClient, HubRefused
from .sync.errors import ChainBroken, SequenceGap, SignatureInvalid, SyncError
from .sync.log import Change
from .sync.session import LAN_ORIGINS, Replica, SyncReport, SyncSession
from .sync.state import NodeRecord

LAN_URL_ENV = "MOTCUA_LAN_URL"
RELAY_ENV = "MOTCUA_LAN_RELAY"
LAN_URL_SETTING = "lan.url"
OBSERVE_AHEAD_MS = 5 * 60 * 1000  # a laptop's HLC further ahead of our wall clock does not drag our clock
HEADER_NODE, HEADER_TIME, HEADER_SIG = "X-Motcua-Node", "X-Motcua-Time", "X-Motcua-Signature"
logger = logging.getLogger("motcua.sync")


class RelayRefused(SyncError):
    """A laptop's request the commune node refuses (the code says why); nothing is stored."""

    http_status = 403
    code = "relay_refused"

    def __init__(self, message: str, *, code: str, status: int = 403, change_ref: str | None = None):
        super().__init__(message, change_ref=change_ref)
        self.code, self.http_status = code, status


# ---------------------------------------------------------------- which unit a change concerns

def concerns(changes: Iterable[Mapping[str, Any]], *, hub_node_id: str,
             origin_units: Mapping[str, str] | None = None) -> list[str]:
    """The unit each change concerns, by the hub's own scope rules (node/sync/scope.py), from what this
    replica holds. "" when it cannot tell (a dossier, document or user it does not hold): a relay refuses
    those rather than guess."""
    return scope.scopes_for([dict(c) for c in changes], hub_node_id, strict=True,
                            origin_units=dict(origin_units or {}))


# ---------------------------------------------------------------- small local state

def setting(name: str, default: str = "") -> str:
    row = NodeSetting.get_or_none(NodeSetting.key == name)
    return row.value if row is not None else default


def save_setting(name: str, value: str) -> None:
    """Upsert one local setting (inside the caller's transaction, or on its own)."""
    (NodeSetting.insert(key=name, value=value)
     .on_conflict(conflict_target=[NodeSetting.key], update={NodeSetting.value: value}).execute())


def json_setting(name: str, default: Any) -> Any:
    try:
        value = json.loads(setting(name) or "null")
    except ValueError:
        return default
    return default if value is None or not isinstance(value, type(default)) else value


def add_lan_origins(origins: Iterable[str]) -> None:
    """Remember nodes whose changes arrived over the LAN (call inside the transaction that stored them)."""
    held = json_setting(LAN_ORIGINS, [])
    new = [o for o in dict.fromkeys(origins) if o and o not in held]
    if new:
        save_setting(LAN_ORIGINS, json.dumps(sorted(held + new)))


def lan_url(node: Node) -> str:
    """The LAN relay this node syncs with when the hub is unreachable: $MOTCUA_LAN_URL, else `motcua node
    lan --url`; "" when none."""
    return (os.environ.get(LAN_URL_ENV) or setting(LAN_URL_SETTING)).strip()


def relay_enabled(config_value: Any = None) -> bool:
    """Whether this node serves field laptops: on unless the app's LAN_RELAY (else $MOTCUA_LAN_RELAY) says
    0, off, no or false."""
    value = config_value if config_value is not None else os.environ.get(RELAY_ENV)
    return value is None or str(value).strip().lower() not in ("0", "false", "no", "off", "")


# ---------------------------------------------------------------- the commune node's side

def _pin(node: Node) -> dict[str, Any]:
    path = node.path / "hub.json"
    if not path.exists():
        raise RelayRefused("this commune node is not enrolled with a hub, so it cannot serve field laptops",
                           code="relay_unavailable", status=409)
    return json.loads(path.read_text(encoding="utf-8"))


def check_relay(node: Node) -> dict[str, Any]:
    """The pinned hub of a node that may serve laptops; RelayRefused (409) otherwise."""
    pin = _pin(node)
    own = NodeRecord.get_or_none(NodeRecord.node_id == node.node_id)
    if own is not None and own.kind != "commune":
        raise RelayRefused(f"this node is a {own.kind}, not a commune node: it does not relay field laptops",
                           code="relay_unavailable", status=409)
    return pin


def relay_time(node: Node) -> dict[str, Any]:
    """GET /relay/v1/time: this node's clock and identity, and the hub it is enrolled with."""
    pin = check_relay(node)
    return {"hub_time_ms": hlc.wall_ms(), "hub_node_id": pin["hub_node_id"], "hub_public_key": pin["hub_public_key"],
            "relay": True, "relay_node_id": node.node_id, "relay_public_key": node.identity.public_key,
            "unit_code": node.identity.unit_code, "unit_name": node.identity.unit_name,
            "protocol": protocol.PROTOCOL_VERSION}


def authenticate(node: Node, method: str, path: str, headers: Mapping[str, str], body: bytes, *,
                 push: bool = False) -> NodeRecord:
    """The laptop that signed this request, checked as the hub checks a node (central/auth.py)."""
    check_relay(node)
    raw = headers.get("X-Motcua-Protocol", "")
    if not raw.strip().isdigit() or int(raw) not in protocol.ACCEPTED_VERSIONS:
        raise RelayRefused(f"protocol version {raw or 'none'} is not accepted here; upgrade the laptop's software",
                           code="protocol_not_accepted", status=400)
    node_id, time_text, signature = (headers.get(h, "") for h in (HEADER_NODE, HEADER_TIME, HEADER_SIG))
    if not (node_id and time_text and signature):
        raise RelayRefused(f"this request is not signed: the headers {HEADER_NODE}, {HEADER_TIME} and {HEADER_SIG} "
                           f"are required", code="not_signed", status=401)
    if not time_text.isdigit() or len(time_text) > 16:
        raise RelayRefused(f"{HEADER_TIME} must be milliseconds since 1970", code="bad_time", status=400)
    record = NodeRecord.get_or_none(NodeRecord.node_id == node_id)
    if record is None:
        raise ingest.UnknownNode(f"node {node_id} is not in this commune node's key registry; a laptop enrolled "
                                 f"since this node last synced with the hub is known after its next sync")
    try:
        keys.verify(record.public_key, protocol.request_message(method, path, int(time_text), node_id, body),
                    signature)
    except (SignatureInvalid, ValueError, TypeError):
        raise RelayRefused(f"the request signature does not verify with the key enrolled for node {node_id}",
                           code="bad_signature") from None
    if record.status == "revoked":
        raise ingest.NodeRevoked(f"node {node_id} was revoked on {record.revoked_at or 'an earlier date'} by the "
                                 f"hub administrator; this commune node refuses its requests and changes")
    if record.status == "quarantined" and push:
        raise ingest.NodeQuarantined(f"node {node_id} is quarantined after a fork in its change log; the hub "
                                     f"administrator must review it before it may push again")
    if record.kind != "laptop":
        raise RelayRefused(f"node {node_id} is a {record.kind} node; only field laptops sync with a commune node",
                           code="not_a_laptop")
    unit = node.identity.unit_code
    if unit not in record.scope.split(","):
        raise RelayRefused(f"laptop {node_id} serves {record.scope or 'no unit'}, not this commune ({unit})",
                           code="out_of_scope")
    diff = int(time_text) - hlc.wall_ms()
    if abs(diff) > protocol.REQUEST_WINDOW_MS:
        raise RelayRefused(f"the request time is {abs(diff) // 1000} s {'ahead of' if diff > 0 else 'behind'} this "
                           f"commune node's clock (at most {protocol.REQUEST_WINDOW_MS // 60000} min allowed)",
                           code="clock_outside_window")
    return record


def _body(laptop: NodeRecord, raw: bytes) -> dict[str, Any]:
    body = protocol.decode_body(raw)
    if not isinstance(body, dict):
        raise protocol.BadBody("the body must be an object")
    if body.get("node_id") != laptop.node_id:
        raise RelayRefused(f"node {laptop.node_id} may only sync as itself, not as {body.get('node_id')!r}",
                           code="node_mismatch")
    return body


def accept_push(node: Node, laptop: NodeRecord, raw: bytes) -> dict[str, Any]:
    """Verify, store and apply a laptop's own changes (all or nothing); answer what is held of it."""
    body = _body(laptop, raw)
    changes = body.get("changes")
    if not isinstance(changes, list) or len(changes) > protocol.PUSH_BATCH * 2:
        raise protocol.BadBody(f"'changes' must be a list of at most {protocol.PUSH_BATCH * 2} changes")
    for change in changes:
        protocol.check_change_shape(change)
        if change["node_id"] != laptop.node_id:
            raise RelayRefused(f"a laptop pushes only its own changes here; got one of {change['node_id']} "
                               f"(the hub takes relays from commune nodes)", code="relay_not_allowed",
                               change_ref=change["hash"])
        if change["entity"] == "node":
            raise RelayRefused(f"{laptop.node_id}#{change['seq']} writes the key registry, which only the hub may "
                               f"write", code="registry_write_refused", change_ref=change["hash"])
    changes = sorted(changes, key=lambda c: c["seq"])
    for before, after in zip(changes, changes[1:], strict=False):
        if after["seq"] != before["seq"] + 1:
            raise SequenceGap(f"gap before {laptop.node_id}#{after['seq']}: a push is one contiguous run",
                              change_ref=after["hash"])
        if after["prev"] != before["hash"]:
            raise ChainBroken(f"prev of {laptop.node_id}#{after['seq']} does not name the previous change",
                              change_ref=after["hash"])
    pin = _pin(node)
    with store.transaction(node):
        unit = node.identity.unit_code
        for change, concerned in zip(changes, concerns(changes, hub_node_id=pin["hub_node_id"],
                                                       origin_units={laptop.node_id: laptop.unit_code}),
                                     strict=True):
            if concerned != unit:
                what = f"unit {concerned}" if concerned else "a dossier or user this commune node does not hold"
                raise RelayRefused(f"{laptop.node_id}#{change['seq']} concerns {what}; this commune node takes only "
                                   f"changes for {unit} (the others wait for the hub)", code="out_of_scope",
                                   change_ref=change["hash"])

        def key_for(node_id: str) -> tuple[str, str]:
            return laptop.public_key, laptop.status

        outcome = ingest.ingest(changes, key_for=key_for, apply=store.apply_change, sign_check="each",
                                gaps_allowed=True)
        if outcome.stored:
            add_lan_origins([laptop.node_id])
        seen = json_setting("relay.seen", {})
        seen[laptop.node_id] = {"at": _now_text(node), "stored": outcome.stored}
        save_setting("relay.seen", json.dumps(seen, sort_keys=True))
    observe(node.clock, outcome.stored_changes)
    if outcome.stored and node.on_write is not None and outcome.stored_changes:
        node.on_write(outcome.stored_changes[-1])  # the background sync carries them to the hub soon
    top, last_hash = log.last_of(laptop.node_id)
    logger.info("relay: took %d changes of laptop %s (%d already held)", outcome.stored, laptop.node_id,
                outcome.skipped)
    return {"acked_seq": top, "last_hash": last_hash, "stored": outcome.stored, "skipped": outcome.skipped,
            "hub_time_ms": hlc.wall_ms()}


def serve_pull(node: Node, laptop: NodeRecord, raw: bytes) -> dict[str, Any]:
    """A page of what this node holds after the laptop's cursor, the laptop's own changes excepted.

    A laptop of protocol 2 asks "compact": its page is runs (node/sync/pullwire.py), each ending at a change
    that carries its signature: changes this node pulled in a compact page are stored with sig "" but for
    the last of each run, so a run the page would end early is completed from the log (`_close_runs`).
    A v1 laptop checks each change's own signature: it is given only the changes that carry one (the others
    reach it from the hub, whose cursor is its own).
    """
    body = _body(laptop, raw)
    limit = body.get("limit", protocol.PULL_LIMIT)
    if limit is None:
        limit = protocol.PULL_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise protocol.BadBody("'limit' must be a positive integer")
    limit = min(limit, protocol.PULL_LIMIT)
    secret = node.secret.encode()
    after = protocol.read_cursor(secret, laptop.node_id, body.get("cursor"))
    # Everything held here is of this unit or "*" (the hub's pull scope, own changes, relayed changes all
    # concern it), and the laptop's scope includes this unit: so the laptop may have all of it.
    top = max(Change.select(Change.id).order_by(Change.id.desc()).limit(1).scalar() or 0, after)
    compact = body.get("compact") is True
    where = (Change.id > after) & (Change.id <= top) & (Change.node_id != laptop.node_id)
    if not compact:
        where &= Change.sig != ""
    rows = list(Change.select().where(where).order_by(Change.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    position = rows[-1].id if more else top
    cursor = protocol.make_cursor(secret, laptop.node_id, position)
    changes = [log.row_to_change(r) for r in rows]
    if compact:
        return dict(pullwire.page(_close_runs(changes), cursor, more), hub_time_ms=hlc.wall_ms())
    return {"changes": changes, "more": more, "digest": None, "cursor": cursor, "hub_time_ms": hlc.wall_ms()}


def _close_runs(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`changes` and, for each run of them that ends at a change without a signature, the origin's next
    changes up to the signed one that ends its run here (stored together, node/sync/ingest.py "runs").
    They may come again in a later page: the laptop skips what it holds. Bounded; a run that still ends
    unsigned is sent as it is and refused by the laptop (never accepted unverified)."""
    have = {(c["node_id"], c["seq"]) for c in changes}
    for _ in range(protocol.PULL_LIMIT):
        open_ends = [run[-1] for run in pullwire.runs_of(changes) if not run[-1]["sig"]]
        if not open_ends:
            return changes
        added = 0
        for end in open_ends:
            rows = (Change.select().where((Change.node_id == end["node_id"]) & (Change.seq > end["seq"]))
                    .order_by(Change.seq).limit(protocol.PULL_LIMIT))
            seq = end["seq"]
            for row in rows:
                if row.seq != seq + 1:
                    break  # not held here: the run cannot be completed (not expected)
                seq = row.seq
                if (row.node_id, row.seq) not in have:
                    have.add((row.node_id, row.seq))
                    changes.append(log.row_to_change(row))
                    added += 1
                if row.sig:
                    break
        if not added:
            logger.warning("relay: %d runs end without a signature and cannot be completed", len(open_ends))
            return changes
    return changes


def relay_status(node: Node, laptop: NodeRecord, raw: bytes) -> dict[str, Any]:
    """What this node holds of the laptop, with a signature over the laptop's nonce proving who answers."""
    body = _body(laptop, raw)
    nonce = body.get("nonce", "")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
        raise protocol.BadBody("'nonce' must be a string of 16 to 128 characters")
    seq, last_hash = log.last_of(laptop.node_id)
    proof = node.key.sign(protocol.relay_proof_message(nonce, node.node_id, laptop.node_id))
    return {"acked_seq": seq, "last_hash": last_hash, "relay_node_id": node.node_id,
            "unit_code": node.identity.unit_code, "proof": proof, "hub_time_ms": hlc.wall_ms()}


def observe(clock: hlc.Clock, changes: list[dict[str, Any]]) -> None:
    """Move our clock past received changes, unless one is far ahead of our wall clock (a skewed laptop)."""
    for change in changes:
        try:
            stamp = hlc.Timestamp.parse(change["hlc"])
        except ValueError:
            continue
        if stamp.ms <= hlc.wall_ms() + OBSERVE_AHEAD_MS:
            clock.observe(stamp)


def _now_text(node: Node) -> str:
    from .timeutil import to_text

    return to_text(node.now())


# ---------------------------------------------------------------- the laptop's side

class LanSession(SyncSession):
    """A laptop's sync with its commune's node over the LAN: time -> pull -> status -> push.

    No files and no digest check (the relay holds only its commune's share of the laptop's scope); the next
    sync with the hub checks the digest, leaving out changes that came over the LAN until the hub holds them.
    Settings: lan.cursor / lan.relay (the relay the cursor belongs to), lan.pushed_seq (highest own seq a
    relay took), lan.last_attempt / lan.last_success / lan.last_result / lan.last_error, sync.last_path.
    """

    STAGES = ("time", "pull", "status", "push")

    def __init__(self, client: HubClient, replica: Replica, *, hub_node_id: str, hub_public_key: str,
                 lan_url: str, unit_of: Callable[[list[dict[str, Any]]], list[str]] | None = None, **options: Any):
        super().__init__(client, replica, hub_node_id=hub_node_id, hub_public_key=hub_public_key, **options)
        self.lan_url = lan_url
        self.unit_of = unit_of or (lambda changes: concerns(changes, hub_node_id=hub_node_id))
        self.relay: dict[str, Any] = {}

    def run(self) -> SyncReport:
        started = self.monotonic()
        self.report = report = SyncReport(path="lan", peer=self.lan_url)
        self.replica.save({"lan.last_attempt": self.replica.now_text()})
        stage = ""
        try:
            for stage in self.STAGES:
                getattr(self, f"lan_{stage}")()
        except SyncError as exc:
            report.stage, report.exception, report.error, report.error_code = stage, exc, exc.message, exc.code
            logger.info("LAN sync failed at stage %s: %s (%s)", stage, exc.message, exc.code)
        except Exception as exc:  # a local fault: reported like the others, never hidden
            report.stage, report.exception = stage, exc
            report.error, report.error_code = f"{type(exc).__name__}: {exc}", "internal_error"
            logger.exception("LAN sync failed at stage %s", stage)
        finally:
            report.duration = self.monotonic() - started
            done: dict[str, Any] = {"lan.last_result": report.error_code or "ok", "sync.last_path": "lan"}
            if report.error is None:
                done["lan.last_success"] = self.replica.now_text()
            else:
                done["lan.last_error"] = json.dumps({"code": report.error_code, "message": report.error,
                                                     "stage": report.stage, "at": self.replica.now_text()},
                                                    ensure_ascii=False)
            self.replica.save(done)
        return report

    def lan_time(self) -> None:
        answer = self.client.hub_time()
        if not answer.get("relay"):
            raise HubRefused("not_a_relay", f"{self.lan_url} does not answer as a commune node's relay", 200)
        if answer.get("hub_public_key") != self.hub_public_key or answer.get("hub_node_id") != self.hub_node_id:
            raise HubRefused("relay_other_hub", f"the commune node at {self.lan_url} is enrolled with another hub "
                             f"than this laptop", 200)
        self.relay = answer

    def lan_pull(self) -> None:
        relay_id = str(self.relay.get("relay_node_id") or "")
        cursor = self.replica.setting("lan.cursor") or None
        if self.replica.setting("lan.relay") != relay_id:
            cursor = None  # a cursor is bound to the relay that issued it
            self.replica.save({"lan.relay": relay_id, "lan.cursor": ""})
        # Compact pages (protocol 2) from a v2 relay, v1 pages from an older one; pull_pages stops at the
        # last page and refuses an answer that says more wait but sends none.
        with closing(self.client.pull_pages(cursor, limit=self.pull_limit, stream=None)) as pages:
            for page in pages:
                changes = page["changes"]
                new_cursor = page["cursor"] or cursor
                with self.replica.transaction():
                    outcome = ingest.ingest(changes, key_for=self._key_lookup(changes), apply=self.replica.apply,
                                            sign_check=page["sign_check"], gaps_allowed=True)
                    add_lan_origins(c["node_id"] for c in outcome.stored_changes
                                    if c["node_id"] not in (self.me, self.hub_node_id))
                    self.replica.save({"lan.cursor": new_cursor})
                observe(self.replica.clock, outcome.stored_changes)
                self.report.pulled += outcome.stored
                if not page["more"]:
                    return
                cursor = new_cursor

    def lan_status(self) -> None:
        """Check who answers (a signature over our nonce, by a commune node of our scope) before pushing."""
        nonce = secrets.token_hex(16)
        answer = self.client.status(nonce=nonce)
        relay_id = str(self.relay.get("relay_node_id") or "")
        record = NodeRecord.get_or_none(NodeRecord.node_id == relay_id)
        own = NodeRecord.get_or_none(NodeRecord.node_id == self.me)
        if record is None or record.kind != "commune" or record.status != "active":
            raise HubRefused("relay_unknown", f"the node at {self.lan_url} ({relay_id}) is not an active commune node "
                             f"in this laptop's key registry; sync with the hub once first", 200)
        if own is None or record.unit_code not in own.scope.split(","):
            raise HubRefused("relay_out_of_scope", f"the commune node at {self.lan_url} serves {record.unit_code}, "
                             f"outside this laptop's scope", 200)
        try:
            keys.verify(record.public_key, protocol.relay_proof_message(nonce, relay_id, self.me),
                        str(answer.get("proof") or ""))
        except (SignatureInvalid, ValueError, TypeError):
            raise HubRefused("relay_key_mismatch", f"the node at {self.lan_url} cannot prove it holds the key of "
                             f"commune node {relay_id}; nothing was sent to it", 200) from None
        self.relay.update(unit_code=record.unit_code, held=int(answer.get("acked_seq") or 0))

    def lan_push(self) -> None:
        unit = self.relay["unit_code"]
        start = max(self._int("sync.acked_seq"), self._int("lan.pushed_seq"), self.relay["held"]) + 1
        while True:
            rows = list(Change.select().where((Change.node_id == self.me) & (Change.seq >= start))
                        .order_by(Change.seq).limit(self.push_batch))
            if not rows:
                return
            batch = [log.row_to_change(r) for r in rows]
            units = self.unit_of(batch)
            take = next((i for i, u in enumerate(units) if u != unit), len(batch))
            if take:
                answer = self.client.push(batch[:take])
                top = int(answer.get("acked_seq") or 0)
                if top < batch[take - 1]["seq"]:
                    raise HubRefused("not_acknowledged", f"the commune node holds seq {top} after a batch ending "
                                     f"at {batch[take - 1]['seq']}", 200)
                self.replica.save({"lan.pushed_seq": batch[take - 1]["seq"]})
                self.report.pushed += take
            if take < len(batch):
                self.report.held_back = self._held_back(batch[take]["seq"])
                return
            start = batch[-1]["seq"] + 1

    def _held_back(self, seq: int) -> int:
        return Change.select().where((Change.node_id == self.me) & (Change.seq >= seq)).count()


__all__ = ["LanSession", "RelayRefused", "accept_push", "authenticate", "concerns", "lan_url", "relay_status",
           "relay_time", "serve_pull", "relay_enabled", "LAN_URL_ENV", "LAN_ORIGINS"]
