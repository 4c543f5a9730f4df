"""The node's transport to the hub: signed, compressed requests with timeouts, retries and backoff.

Everything that can fail over the network raises one of these (all are `SyncError`s, so the edges that
already render a SyncError render these too):

    SyncError (node.sync.errors)
    └── HubError                 anything that went wrong talking to the hub
        ├── HubUnreachable       no usable answer: refused connection, DNS, timeout, a cut link, 502/503/504
        │                        or 429 still there after every retry
        ├── HubRefused           the hub answered with an error: `.code`, `.message`, `.status`
        │   │                    (unknown_node, node_revoked, node_quarantined, bad_body, ...)
        │   └── NodeForked       the hub holds another change at one of this node's seqs (409 fork), or holds
        │                        more of this node's log than the node itself (a restore from an old backup)
        ├── HubKeyMismatch       the hub's key is not the one pinned at enrollment: refuse, never re-pin
        └── ClockSkewError       the hub refuses the request time even after its clock was learned again

Two layers, so tests can swap the wire for another real transport (style.md habit 4):

- `Transport.send()` moves one request's bytes and returns a `Reply`; `RequestsTransport` does it over
  HTTP with a `requests.Session`. A transport raises `HubUnreachable` when no answer came back.
- `HubClient` builds the requests of the protocol (node/sync/protocol.py): zstd bodies, the signature
  headers computed on the hub's clock (learned from GET /time), retries with exponential backoff and full
  jitter, `Retry-After` obeyed on 429 and 503, and error answers turned into the exceptions above.

The signed path is the URL path without the query string (`/api/v1/sync/push`, `/api/v1/files/<sha256>`).
A field laptop talks to its commune node's LAN relay with the same client and `api_prefix=protocol.RELAY_API`
(`/relay/v1/...`): the relay checks the same signature over its own path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import requests
from requests.structures import CaseInsensitiveDict

from . import hlc, keys, protocol
from .errors import SyncError

API = "/api/v1"
JSON_TYPE = "application/json"
RETRY_STATUSES = (429, 502, 503, 504)
CLOCK_CODES = frozenset({"clock_outside_window", "clock_skew"})  # the hub refuses the request's time


# ---------------------------------------------------------------- the exception tree

class HubError(SyncError):
    """Anything that went wrong talking to the hub."""

    http_status = 502
    code = "hub_error"


class HubUnreachable(HubError):
    """No usable answer from the hub (the link is down, the hub is off or overloaded)."""

    http_status = 503
    code = "hub_unreachable"


class HubRefused(HubError):
    """The hub answered with an error; `code` and `message` are the hub's own."""

    def __init__(self, code: str, message: str, status: int, *, change: dict[str, Any] | None = None):
        super().__init__(message, change_ref=(change or {}).get("hash"))
        self.code = code
        self.status = status
        self.http_status = status
        self.change = change or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.code}, HTTP {self.status})"


class NodeForked(HubRefused):
    """This node's log disagrees with what the hub holds of it; the hub quarantines the node."""

    def __init__(self, message: str, *, change: dict[str, Any] | None = None, status: int = 409):
        super().__init__("fork", message, status, change=change)


class HubKeyMismatch(HubError):
    """The hub presented a key other than the pinned one: maybe an impostor; never re-pinned silently."""

    http_status = 502
    code = "hub_key_mismatch"


class ClockSkewError(HubError):
    """The hub refuses the request's time even after the offset to its clock was learned again."""

    http_status = 403
    code = "clock_skew"


# ---------------------------------------------------------------- backoff and Retry-After

def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0,
                  rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number `attempt` (0-based): full jitter, uniform in [0, min(cap, base*2^n))."""
    return rand() * min(cap, base * (2 ** max(0, attempt)))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP-date); None when absent or garbage."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# ---------------------------------------------------------------- the transport seam

@dataclass
class Reply:
    """One answer from the hub: status, headers (case-insensitive) and the raw body bytes."""

    status: int
    headers: Mapping[str, str] = field(default_factory=CaseInsensitiveDict)
    body: bytes = b""


class Transport:
    """How request bytes reach the hub. Subclasses implement `send`; `close` releases what they hold.

    `path` starts with `/api/v1/` and may carry a query string; `timeout` is (connect, read) seconds.
    A transport raises `HubUnreachable` when it got no answer at all; any HTTP answer is a `Reply`.
    """

    def send(self, method: str, path: str, *, headers: dict[str, str], body: bytes,
             timeout: tuple[float, float]) -> Reply:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the default holds none."""


class RequestsTransport(Transport):
    """HTTP(S) to the hub at `base_url` through one `requests.Session` (kept-alive connections).

    `peer` names the other side in messages ("the hub", or "the commune node" for a laptop's LAN relay).
    """

    def __init__(self, base_url: str, session: requests.Session | None = None, *, peer: str = "the hub"):
        self.base_url = normalise_hub_url(base_url)
        self.session = session or requests.Session()
        self.peer = peer

    def send(self, method, path, *, headers, body, timeout):
        try:
            resp = self.session.request(method, self.base_url + path, data=body or None, headers=headers,
                                        timeout=timeout, allow_redirects=False)
            return Reply(resp.status_code, resp.headers, resp.content)
        except requests.RequestException as exc:
            raise HubUnreachable(f"no answer from {self.peer} at {self.base_url}: {type(exc).__name__}") from exc

    def close(self) -> None:
        self.session.close()


def normalise_hub_url(url: str) -> str:
    """`http://host:port` without a trailing slash or `/api/v1` (the client adds the API prefix)."""
    url = url.strip().rstrip("/")
    if url.endswith(API):
        url = url[: -len(API)]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"hub URL must start with http:// or https://, not {url!r}")
    return url


# ---------------------------------------------------------------- the client

class HubClient:
    """The protocol's requests, signed by this node and retried; see the module docstring."""

    def __init__(self, transport: Transport, *, node_id: str, key: keys.NodeKey, hub_node_id: str | None = None,
                 hub_public_key: str | None = None, software_version: str = "", retries: int = 5,
                 timeout: tuple[float, float] = (5.0, 60.0), backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 max_wait: float = 120.0, sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random, wall_ms: Callable[[], int] = hlc.wall_ms,
                 api_prefix: str = API):
        self.transport = transport
        self.api_prefix = api_prefix  # API for the hub; protocol.RELAY_API for a commune node's LAN relay
        self.node_id = node_id
        self.key = key
        self.hub_node_id = hub_node_id
        self.hub_public_key = hub_public_key
        self.software_version = software_version
        self.retries = retries
        self.timeout = timeout
        self.backoff_base, self.backoff_cap, self.max_wait = backoff_base, backoff_cap, max_wait
        self.sleep, self.rand, self.wall_ms = sleep, rand, wall_ms
        self.offset_ms: int | None = None  # hub clock minus ours, learned by hub_time()
        self.telemetry: dict[str, str] = {}  # extra headers on signed requests (X-Motcua-Backlog, -Clock-Skew)

    # ------------------------------------------------------------ endpoints

    def hub_time(self) -> dict[str, Any]:
        """GET /time: learn the offset to the hub's clock and check the hub's key against the pinned one."""
        before = self.wall_ms()
        answer = self._json(self.call("GET", "/time", signed=False))
        after = self.wall_ms()
        try:
            hub_ms = int(answer["hub_time_ms"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HubRefused("bad_answer", "the hub's /time answer has no hub_time_ms", 200) from exc
        self.offset_ms = hub_ms - (before + after) // 2
        if self.hub_public_key is not None and answer.get("hub_public_key") != self.hub_public_key:
            raise HubKeyMismatch("the hub presents a key other than the one pinned at enrollment; "
                                 "sync refused (is this the right hub?)")
        if self.hub_node_id is not None and answer.get("hub_node_id") != self.hub_node_id:
            raise HubKeyMismatch(f"the hub calls itself {answer.get('hub_node_id')!r}, "
                                 f"not {self.hub_node_id!r} as pinned at enrollment; sync refused")
        return answer

    def enroll(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /enroll (JSON, authenticated by the one-time token inside `request`)."""
        return self._json(self.call("POST", "/enroll", json_body=request, signed=False))

    def push(self, changes: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /sync/push one batch of changes; returns {"acked_seq", "hub_time_ms", "origins"?}.

        The batch holds this node's own changes, or (a commune node relaying its laptops) other nodes'
        changes with their original signatures; "origins" then gives the hub's highest seq of each.
        """
        return self._json(self.call("POST", "/sync/push", {"node_id": self.node_id, "changes": changes}))

    def pull(self, cursor: str | None, limit: int = protocol.PULL_LIMIT) -> dict[str, Any]:
        """POST /sync/pull one page after `cursor`; returns {"changes", "cursor", "more", "digest"?}."""
        return self._json(self.call("POST", "/sync/pull", {"node_id": self.node_id, "cursor": cursor,
                                                            "limit": limit}))

    def status(self, *, origins: list[str] | None = None, **reported: Any) -> dict[str, Any]:
        """POST /sync/status: what the hub holds of this node: {"acked_seq", "last_hash", "digest", ...}.

        `reported` (backlog, clock_skew_ms) is shown on the hub's nodes page; with `origins` (node ids) the
        answer's "origins" maps each enrolled one to the highest seq the hub holds of it.
        """
        body: dict[str, Any] = dict(reported, node_id=self.node_id)
        if origins:
            body["origins"] = list(origins)
        return self._json(self.call("POST", "/sync/status", body))

    def file_size(self, sha256: str) -> int:
        """HEAD /files/<sha256>: bytes of that file the hub holds (0 when none)."""
        reply = self.call("HEAD", f"/files/{sha256}")
        size = reply.headers.get("X-Motcua-Size", "0")
        return int(size) if str(size).isdigit() else 0

    def put_chunk(self, sha256: str, offset: int, chunk: bytes, total: int | None = None) -> int:
        """PUT one chunk at `offset` of a file of `total` bytes; returns the bytes the hub now holds."""
        extra = {"X-Motcua-Total": str(total)} if total is not None else None
        reply = self.call("PUT", f"/files/{sha256}?offset={offset}", raw=chunk, extra_headers=extra)
        return int(self._json(reply).get("size", 0))

    def get_file(self, sha256: str) -> bytes:
        """GET /files/<sha256>: the whole file (attachments are small: 10 MB at most)."""
        return self.call("GET", f"/files/{sha256}").body

    # ------------------------------------------------------------ one exchange, retried

    def call(self, method: str, path: str, obj: Any = None, *, raw: bytes | None = None,
             json_body: Any = None, signed: bool = True, extra_headers: dict[str, str] | None = None) -> Reply:
        """Send one request (retried on a cut link, 429, 502-504) and return a 2xx Reply, else raise."""
        if json_body is not None:
            body, ctype = orjson.dumps(json_body), JSON_TYPE
        elif raw is not None:
            body, ctype = raw, "application/octet-stream"
        elif obj is not None:
            body, ctype = protocol.encode_body(obj), protocol.MEDIA_TYPE
        else:
            body, ctype = b"", None
        relearned = False
        attempt = 0
        while True:
            headers = self._headers(method, self.api_prefix + path, body, ctype, signed)
            headers.update(extra_headers or {})
            try:
                reply = self.transport.send(method, self.api_prefix + path, headers=headers, body=body,
                                            timeout=self.timeout)
            except HubUnreachable:
                if attempt >= self.retries:
                    raise
                self.sleep(self._delay(attempt))
                attempt += 1
                continue
            if reply.status in RETRY_STATUSES:
                if attempt >= self.retries:
                    raise HubUnreachable(f"the hub is busy or unavailable (HTTP {reply.status}) after "
                                         f"{attempt + 1} attempts")
                wait = parse_retry_after(reply.headers.get("Retry-After"))
                self.sleep(min(wait, self.max_wait) if wait is not None else self._delay(attempt))
                attempt += 1
                continue
            if 200 <= reply.status < 300:
                return reply
            error = self._error_of(reply)
            if error.code in CLOCK_CODES:
                if signed and not relearned:
                    relearned = True
                    self.hub_time()
                    continue
                raise ClockSkewError(f"the hub refuses this node's time: {error.message}")
            raise error

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap, rand=self.rand)

    def hub_now_ms(self) -> int:
        """Now on the hub's clock as far as we know it (our clock until GET /time was answered)."""
        return self.wall_ms() + (self.offset_ms or 0)

    def _headers(self, method: str, path: str, body: bytes, ctype: str | None, signed: bool) -> dict[str, str]:
        headers = {"X-Motcua-Protocol": str(protocol.PROTOCOL_VERSION), "Accept": f"{protocol.MEDIA_TYPE}, */*"}
        if self.software_version:
            headers["X-Motcua-Version"] = self.software_version
        if ctype:
            headers["Content-Type"] = ctype
        if signed:
            if self.offset_ms is None:
                self.hub_time()
            now = self.hub_now_ms()
            message = protocol.request_message(method, path.split("?", 1)[0], now, self.node_id, body)
            headers.update(self.telemetry)
            headers.update({"X-Motcua-Node": self.node_id, "X-Motcua-Time": str(now),
                            "X-Motcua-Signature": self.key.sign(message)})
        return headers

    # ------------------------------------------------------------ bodies

    @staticmethod
    def _decode(reply: Reply) -> Any:
        ctype = (reply.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == protocol.MEDIA_TYPE:
            return protocol.decode_body(reply.body)
        try:
            return orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return protocol.decode_body(reply.body)

    def _json(self, reply: Reply) -> dict[str, Any]:
        try:
            answer = self._decode(reply)
        except SyncError as exc:
            raise HubRefused("bad_answer", f"the hub's answer cannot be read: {exc.message}", reply.status) from exc
        if not isinstance(answer, dict):
            raise HubRefused("bad_answer", "the hub's answer is not an object", reply.status)
        return answer

    def _error_of(self, reply: Reply) -> HubRefused:
        try:
            error = self._decode(reply).get("error") or {}
        except (SyncError, AttributeError):
            error = {}
        if not isinstance(error, dict):
            error = {}
        code = str(error.get("code") or f"http_{reply.status}")
        message = str(error.get("message") or f"the hub answered HTTP {reply.status}")
        change = error.get("change") if isinstance(error.get("change"), dict) else None
        if code == "fork":
            return NodeForked(message, change=change, status=reply.status)
        return HubRefused(code, message, reply.status, change=change)
