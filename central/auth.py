"""Authentication of signed requests from nodes (node.sync.protocol: X-Motcua-* headers).

A node signs `request_message(method, path, time_ms, node_id, body)` with its enrolled key, where `path` is
the request path with its query string when there is one (`/api/v1/files/<sha>?offset=0`; what
`requests` calls `path_url`). The bare path is accepted too, for clients that sign it without the query.

Checks, in order, each with its own message: the three headers are present; the node is enrolled (403
unknown_node); the signature verifies with its key (403 bad_signature); it is not revoked (403
node_revoked); for pushes it is not quarantined (403 node_quarantined); its time is within
REQUEST_WINDOW_MS of the hub's clock (403 clock_outside_window, saying by how much).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import request

from node.sync import keys, protocol
from node.sync.errors import SignatureInvalid
from node.sync.ingest import NodeQuarantined, NodeRevoked, UnknownNode
from node.timeutil import from_text, to_text

from .errors import ProtocolNotAccepted, RequestRefused

HEADER_NODE, HEADER_TIME, HEADER_SIG = "X-Motcua-Node", "X-Motcua-Time", "X-Motcua-Signature"
HEADER_VERSION, HEADER_PROTOCOL = "X-Motcua-Version", "X-Motcua-Protocol"
HEADER_SKEW, HEADER_BACKLOG = "X-Motcua-Clock-Skew", "X-Motcua-Backlog"  # optional, node-reported


@dataclass
class Caller:
    node_id: str
    record: dict[str, Any]
    time_ms: int
    body: bytes

    @property
    def scopes(self) -> list[str]:
        """The units this node receives, plus the global scope."""
        return [u for u in self.record.get("scope", "").split(",") if u] + [protocol.GLOBAL_SCOPE]

    @property
    def units(self) -> list[str]:
        return [u for u in self.record.get("scope", "").split(",") if u]


def duration(ms: int) -> str:
    """`2 h 5 min`, `20 min 3 s`, `45 s`: a clock difference in words."""
    seconds = abs(ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def signed_duration(ms: int) -> str:
    """`+7 min 0 s`, `-45 s`, `0 s` (under a second either way)."""
    if abs(ms) < 1000:
        return "0 s"
    return ("+" if ms > 0 else "-") + duration(ms)


def check_protocol() -> int:
    """The request's X-Motcua-Protocol version; ProtocolNotAccepted unless this hub speaks it."""
    accepted = ", ".join(str(v) for v in protocol.ACCEPTED_VERSIONS)
    raw = request.headers.get(HEADER_PROTOCOL, "")
    if not raw.strip().isdigit() or int(raw) not in protocol.ACCEPTED_VERSIONS:
        shown = raw or "none"
        raise ProtocolNotAccepted(f"protocol version {shown} is not accepted by this hub; it accepts versions "
                                  f"{accepted} (header {HEADER_PROTOCOL}); upgrade the node's software")
    return int(raw)


def _int_header(name: str) -> int | None:
    raw = request.headers.get(name, "").strip()
    if raw.lstrip("-").isdigit() and len(raw) < 19:
        return int(raw)
    return None


def signed_request(hub, *, push: bool = False) -> Caller:
    """Authenticate the current request as coming from an enrolled node; record what it tells us."""
    node_id = request.headers.get(HEADER_NODE, "")
    time_text = request.headers.get(HEADER_TIME, "")
    signature = request.headers.get(HEADER_SIG, "")
    if not (node_id and time_text and signature):
        raise RequestRefused(f"this request is not signed: the headers {HEADER_NODE}, {HEADER_TIME} and "
                             f"{HEADER_SIG} are required", code="not_signed")
    if not time_text.isdigit() or len(time_text) > 16:
        raise RequestRefused(f"{HEADER_TIME} must be milliseconds since 1970", code="bad_time")
    time_ms = int(time_text)
    record = hub.storage.node_record(node_id)
    if record is None:
        raise UnknownNode(f"node {node_id} is not enrolled at this hub; enroll it with "
                          f"`motcua node enroll --hub URL --token TOKEN` first")
    body = request.get_data(cache=True)
    paths = [request.path]
    if request.query_string:
        paths.insert(0, f"{request.path}?{request.query_string.decode('latin-1')}")
    for path in paths:
        try:
            keys.verify(record["public_key"], protocol.request_message(request.method, path, time_ms, node_id, body),
                        signature)
            break
        except SignatureInvalid:
            continue
    else:
        raise RequestRefused(f"the request signature does not verify with the key enrolled for node {node_id}",
                             code="bad_signature")
    if record["status"] == "revoked":
        raise NodeRevoked(f"node {node_id} was revoked on {record.get('revoked_at') or 'an earlier date'} by the "
                          f"hub administrator; its requests and changes are refused")
    if record["status"] == "quarantined" and push:
        raise NodeQuarantined(f"node {node_id} is quarantined after a fork in its change log (two versions of "
                              f"the same change); the hub administrator must review it before it may push again")
    now_ms = hub.now_ms()
    diff = time_ms - now_ms
    if abs(diff) > protocol.REQUEST_WINDOW_MS:
        side = "ahead of" if diff > 0 else "behind"
        raise RequestRefused(f"the request time is {duration(diff)} {side} the hub's clock (at most "
                             f"{duration(protocol.REQUEST_WINDOW_MS)} allowed); correct the node's clock or "
                             f"learn the hub's time from GET /api/v1/time", code="clock_outside_window")
    skew = _int_header(HEADER_SKEW)
    observed: dict[str, Any] = {
        "last_seen": to_text(hub.now()),
        "clock_skew_ms": skew if skew is not None else diff,
        "software_version": request.headers.get(HEADER_VERSION, "")[:40],
    }
    backlog = _int_header(HEADER_BACKLOG)
    if backlog is not None and backlog >= 0:
        observed["backlog_reported"] = backlog
    if _shows_something_new(hub.storage.node_status(node_id), observed, hub.now()):
        hub.storage.touch_node(node_id, **observed)  # a durable write: only when the nodes page would change
    return Caller(node_id, record, time_ms, body)


SEEN_REFRESH_S = 60  # last_seen is written again when the one shown is older than this (the page shows minutes)
SKEW_SHOWN_MS = 1000  # a node's clock skew is written again when it moved by at least this


def _shows_something_new(shown: dict[str, Any] | None, observed: dict[str, Any], now: datetime) -> bool:
    """Whether writing `observed` would change what the hub's nodes page shows of the node: a software
    version, backlog or clock skew (by SKEW_SHOWN_MS) other than the one written, or a last_seen older than
    SEEN_REFRESH_S. Most signed requests of a sync change none of them, and then cost no write and no disk
    sync (three or more per sync before)."""
    if not shown:
        return True
    try:
        seen = from_text(str(shown.get("last_seen") or ""))
    except ValueError:
        return True
    if seen is None or abs((now.replace(tzinfo=None) - seen.replace(tzinfo=None)).total_seconds()) >= SEEN_REFRESH_S:
        return True
    for name, value in observed.items():
        if name == "last_seen":
            continue
        if name == "clock_skew_ms":
            old = shown.get(name)
            if not isinstance(old, int) or abs(old - value) >= SKEW_SHOWN_MS:
                return True
        elif shown.get(name) != value:
            return True
    return False


__all__ = ["Caller", "signed_request", "check_protocol", "duration"]
