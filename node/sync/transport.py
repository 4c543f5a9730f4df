"""The node's wire to the hub: the exception tree, backoff, and the transport seam (node/sync/client.py
builds the protocol's requests on it; node/sync/pushpipe.py pipelines pushes on its connections).

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

`Transport.send()` moves one request's bytes and returns a `Reply`; `RequestsTransport` does it over HTTP
with a `requests.Session`. A transport raises `HubUnreachable` when no answer came back.
"""


from __future__ import annotations

import http.client
import io
import random
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import requests.adapters
import urllib3
import urllib3.connection
from requests.structures import CaseInsensitiveDict

from . import protocol
from .errors import SyncError

API = "/api/v1"
JSON_TYPE = "application/json"
RETRY_STATUSES = (429, 502, 503, 504)
STATUS_CLOCK_MS = 2000  # a /sync/status answered within this (no relearning, no retry wait) refreshes the offset
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

    def stream(self, method: str, path: str, *, headers: dict[str, str], body: bytes,
               timeout: tuple[float, float]) -> StreamReply:
        """Like `send`, but the answer's body is read as it arrives (a framed pull); the default reads it whole."""
        reply = self.send(method, path, headers=headers, body=body, timeout=timeout)
        data = io.BytesIO(reply.body)
        return StreamReply(reply.status, reply.headers, data.read)


@dataclass
class StreamReply:
    """An answer whose body is read as it arrives: `read(n)` gives up to n bytes (b"" at the end) and raises
    HubUnreachable when the link is cut; `close()` drops the connection's rest."""

    status: int
    headers: Mapping[str, str]
    read: Callable[[int], bytes]
    close: Callable[[], None] = lambda: None

    def body(self, limit: int = protocol.MAX_BODY) -> bytes:
        """The whole body (a single page, an error answer), at most `limit` bytes; HubUnreachable when it
        ends before its Content-Length (a cut link)."""
        parts, size = [], 0
        while size <= limit:
            part = self.read(65536)
            if not part:
                break
            parts.append(part)
            size += len(part)
        expected = str(self.headers.get("Content-Length") or "")
        if expected.isdigit() and size < int(expected):
            raise HubUnreachable(f"the answer was cut after {size} of {expected} bytes")
        return b"".join(parts)


class RequestsTransport(Transport):
    """HTTP(S) to the hub at `base_url` through one `requests.Session` (kept-alive connections).

    `peer` names the other side in messages ("the hub", or "the commune node" for a laptop's LAN relay).
    """

    def __init__(self, base_url: str, session: requests.Session | None = None, *, peer: str = "the hub"):
        self.base_url = normalise_hub_url(base_url)
        self.session = session or _settled_session(self.base_url)
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

    def stream(self, method, path, *, headers, body, timeout):
        where = f"{self.peer} at {self.base_url}"
        try:
            resp = self.session.request(method, self.base_url + path, data=body or None, headers=headers,
                                        timeout=timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            raise HubUnreachable(f"no answer from {where}: {type(exc).__name__}") from exc
        raw = resp.raw

        def read(size: int) -> bytes:
            try:  # what has arrived, up to size: a frame is applied as soon as it is here
                return raw.read1(size) if hasattr(raw, "read1") else raw.read(size)
            except (OSError, requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException,
                    ValueError) as exc:
                raise HubUnreachable(f"the answer from {where} was cut: {type(exc).__name__}") from exc

        return StreamReply(resp.status_code, resp.headers, read, resp.close)


KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 15, 5, 3  # seconds, seconds, probes


def keepalive_options() -> list[tuple[int, int, int]]:
    """urllib3's default socket options plus TCP keepalive: a link that dropped silently (no RST: a NAT or a
    modem gone) is noticed after about KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES = 30 s of
    silence rather than at the 60 s read timeout. A live hub's system answers the probes, however long
    the hub itself takes. The timings are set on Linux only: older Windows versions refuse them at connect
    (there the system's own keepalive timings apply)."""
    options = list(urllib3.connection.HTTPConnection.default_socket_options)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    if sys.platform.startswith("linux"):
        for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                            ("TCP_KEEPCNT", KEEPALIVE_PROBES)):
            if hasattr(socket, name):
                options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def _settled_session(base_url: str) -> requests.Session:
    """A Session with what the environment says about `base_url` (HTTP(S)_PROXY / NO_PROXY, REQUESTS_CA_BUNDLE,
    CURL_CA_BUNDLE) read once, here, and then `trust_env` off: requests would otherwise read it again,
    ~/.netrc included (about 1 ms), on every request. Every request of a transport goes to `base_url`'s host,
    so the proxies chosen for it hold for all of them; a transport is made per sync, so a changed environment
    counts from the next sync. (No .netrc credentials: the hub authenticates signed requests, not passwords.)"""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter()  # requests' defaults (pools of 10), with TCP keepalive
    adapter.init_poolmanager(requests.adapters.DEFAULT_POOLSIZE, requests.adapters.DEFAULT_POOLSIZE,
                             socket_options=keepalive_options())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        settings = session.merge_environment_settings(base_url + "/", {}, None, None, None)
    except (ValueError, OSError, requests.RequestException):
        return session  # leave requests to read the environment itself, as before
    session.proxies.update(settings.get("proxies") or {})
    session.verify = settings.get("verify", True)
    session.cert = settings.get("cert")
    session.trust_env = False
    return session




def normalise_hub_url(url: str) -> str:
    """`http://host:port` without a trailing slash or `/api/v1` (the client adds the API prefix)."""
    url = url.strip().rstrip("/")
    if url.endswith(API):
        url = url[: -len(API)]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"hub URL must start with http:// or https://, not {url!r}")
    return url


