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
  headers computed on the hub's clock (learned from GET /time or a /sync/status answer; a session may start
  from the offset an earlier sync saved, and a refused request time learns it again), retries with
  exponential backoff and full jitter, `Retry-After` obeyed on 429 and 503, and error answers turned into
  the exceptions above.

The signed path is the URL path without the query string (`/api/v1/sync/push`, `/api/v1/files/<sha256>`).
A field laptop talks to its commune node's LAN relay with the same client and `api_prefix=protocol.RELAY_API`
(`/relay/v1/...`): the relay checks the same signature over its own path.
"""

from __future__ import annotations

import http.client
import io
import random
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import requests.adapters
import urllib3
import urllib3.connection
from requests.structures import CaseInsensitiveDict

from . import hlc, keys, protocol, pullwire
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


# ---------------------------------------------------------------- pipelined pushes

PIPELINE_BATCH = 200  # changes per pipelined push at most: small, so a cut costs little; its round trip is hidden
PIPELINE_WINDOW = 2  # pushes written on the connection whose answers are not read yet
CUT_JITTER = 0.2  # seconds at most before the first reconnect after a cut (a cut is not a hub failure)
MAX_HEAD = 65_536  # bytes of an answer's status line and of each header line at most


class _Cut(Exception):
    """The pipelined connection ended or answered something that is not HTTP/1.1: reconnect and resend."""


class PushPipe:
    """HTTP/1.1 pipelining of pushes on one kept-alive connection of the transport's `requests.Session`.

    requests cannot pipeline, so the requests are written raw on the socket of a connection taken from the
    session's own urllib3 pool (same TLS settings: `verify`, `cert`, REQUESTS_CA_BUNDLE) and the answers read
    back in order; the connection goes back to the pool afterwards, so the pull that follows reuses it
    instead of paying a new handshake. Used only when requests would connect directly (no HTTP proxy).
    """

    def __init__(self, client: HubClient, transport: RequestsTransport, url: str, verify: Any, cert: Any):
        self.client, self.transport = client, transport
        self.url, self.verify, self.cert = url, verify, cert
        parts = urlsplit(url)
        self.host = parts.netloc
        self.pool: Any = None
        self.conn: Any = None
        self.reader: Any = None

    @classmethod
    def open_for(cls, client: HubClient) -> PushPipe | None:
        """A pipe for `client`'s transport, or None when it is not plain requests over HTTP(S) without a proxy."""
        transport = client.transport
        if not isinstance(transport, RequestsTransport) or not isinstance(transport.session, requests.Session):
            return None
        url = transport.base_url + "/"
        session = transport.session
        try:
            settings = session.merge_environment_settings(url, {}, None, None, None)
            if requests.utils.select_proxy(url, settings.get("proxies") or {}):
                return None  # through a proxy: leave it to requests, one push at a time
            adapter = session.get_adapter(url)
            if not hasattr(adapter, "get_connection_with_tls_context"):
                return None
        except (ValueError, requests.RequestException):
            return None
        return cls(client, transport, url, settings.get("verify", True), settings.get("cert"))

    def __enter__(self) -> PushPipe:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release(clean=exc[0] is None)

    # ------------------------------------------------------------ the connection

    def connect(self) -> None:
        """A connection from the session's pool (kept alive from the requests before), connected."""
        if self.pool is None:
            adapter = self.transport.session.get_adapter(self.url)
            request = requests.Request("POST", self.url).prepare()
            self.pool = adapter.get_connection_with_tls_context(request, self.verify, cert=self.cert)
        self.conn = self.pool._get_conn()  # closes a pooled connection the peer has dropped
        self.conn.timeout = self.client.timeout[0]
        if self.conn.sock is None:
            self.conn.connect()
        self.conn.sock.settimeout(self.client.timeout[1])
        self.reader = self.conn.sock.makefile("rb")

    def release(self, *, clean: bool) -> None:
        """Hand the connection back to the pool: as it is when every answer was read, else closed."""
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.conn is not None:
            if not clean:
                self.conn.close()
            self.pool._put_conn(self.conn)
            self.conn = None

    def send(self, path: str, body: bytes) -> None:
        headers = self.client._headers("POST", path, body, protocol.MEDIA_TYPE, True)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.conn.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
                               f"Accept-Encoding: identity\r\nConnection: keep-alive\r\n{head}\r\n"
                               .encode("latin-1") + body)

    def _line(self) -> bytes:
        line = self.reader.readline(MAX_HEAD + 1)
        if not line.endswith(b"\n") or len(line) > MAX_HEAD:
            raise _Cut("the connection ended inside an answer's head")
        return line

    def _exactly(self, size: int) -> bytes:
        data = self.reader.read(size)
        if len(data) < size:
            raise _Cut("the connection ended inside an answer's body")
        return data

    def read_answer(self) -> tuple[Reply, bool]:
        """The next answer on the connection, and whether the hub keeps the connection open after it."""
        parts = self._line().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Cut("not an HTTP/1.1 answer")
        status, version = int(parts[1]), parts[0]
        headers: CaseInsensitiveDict = CaseInsensitiveDict()
        for _ in range(1000):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip()] = value.strip()
        else:
            raise _Cut("an answer with too many headers")
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            chunks = []
            for _ in range(10_000_000):
                size_text = self._line().split(b";")[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise _Cut("a chunked answer with a bad chunk size") from None
                if size == 0:
                    while self._line() not in (b"\r\n", b"\n"):
                        pass  # trailers
                    break
                chunks.append(self._exactly(size))
                self._line()
            body = b"".join(chunks)
        else:
            length = headers.get("Content-Length", "0").strip()
            if not length.isdigit() or int(length) > protocol.MAX_BODY:
                raise _Cut("an answer without a usable Content-Length")
            body = self._exactly(int(length))
        connection = headers.get("Connection", "").lower()
        keep = "close" not in connection and (version != b"HTTP/1.0" or "keep-alive" in connection)
        return Reply(status, headers, body), keep

    # ------------------------------------------------------------ the pipeline

    def run(self, batch_after: Callable[[int, int], list[dict[str, Any]]], after: int, limit: int,
            then_pull: dict[str, Any] | None = None) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Yield (batch, answer) in seq order. With `then_pull` (a pull request's body), the pull is written
        right behind the last batch on the same connection, so its answer follows the last push answer
        without a round trip of its own; it is left to `HubClient.pull_pages` (`client.pending_pull`)."""
        client = self.client
        path = client.api_prefix + "/sync/push"
        queue: deque[list[dict[str, Any]]] = deque()  # read from the log, answer not read yet, in seq order
        bodies: dict[int, bytes] = {}  # encoded body of each queued batch, by its last seq
        written = 0  # how many of the queue's first batches are on the current connection
        failures, relearned = 0, False
        exhausted = pull_written = False  # the log has no batch after the queue's; the pull is on this connection
        pull_body = protocol.encode_body(then_pull) if then_pull is not None else b""
        if client.offset_ms is None:
            client.hub_time()  # before the pipe holds the pooled connection: GET /time would need another
        for _ in range(10_000_000):  # bounded: every round reads an answer or counts a failure
            try:
                if self.conn is None:
                    self.connect()
                    written, pull_written = 0, False
                while len(queue) < PIPELINE_WINDOW and not exhausted:
                    batch = batch_after(queue[-1][-1]["seq"] if queue else after, limit)
                    if not batch:
                        exhausted = True
                        break
                    queue.append(batch)
                    bodies[batch[-1]["seq"]] = protocol.encode_body({"node_id": client.node_id, "changes": batch})
                if not queue:
                    if pull_written:  # every push answered; the pull's answer comes next on this connection
                        client.pending_pull = _PendingPull(self.pool, self.conn, self.reader, then_pull or {})
                        self.conn = self.reader = None
                    return
                while written < len(queue):
                    self.send(path, bodies[queue[written][-1]["seq"]])
                    written += 1
                if exhausted and then_pull is not None and not pull_written:
                    self.send(client.api_prefix + "/sync/pull", pull_body)
                    pull_written = True
                reply, keep = self.read_answer()
            except (OSError, _Cut, urllib3.exceptions.HTTPError, requests.RequestException) as exc:
                self.release(clean=False)
                failures += 1
                if failures > client.retries:
                    raise HubUnreachable(f"no answer from {self.transport.peer} at {self.transport.base_url}: "
                                         f"{type(exc).__name__}") from exc
                # the first reconnect after a cut comes at once (a little jitter); only a link that stays
                # down backs off as usual
                client.sleep(client.rand() * CUT_JITTER if failures == 1 else client._delay(failures - 1))
                continue
            batch = queue.popleft()
            written -= 1
            if not keep:
                self.release(clean=False)  # the hub closes after this answer: the rest go again on a new one
            if 200 <= reply.status < 300:
                failures = 0
                del bodies[batch[-1]["seq"]]
                yield batch, client._json(reply)
                after = batch[-1]["seq"]
                continue
            queue.appendleft(batch)  # not applied: it goes again, or the pipeline stops here
            self.release(clean=False)  # what was sent behind it is refused or void: drop it unread
            if reply.status in RETRY_STATUSES:
                failures += 1
                if failures > client.retries:
                    raise HubUnreachable(f"the hub is busy or unavailable (HTTP {reply.status}) after "
                                         f"{failures} attempts")
                wait = parse_retry_after(reply.headers.get("Retry-After"))
                client.sleep(min(wait, client.max_wait) if wait is not None else client._delay(failures - 1))
                continue
            error = client._error_of(reply)
            if error.code in CLOCK_CODES and not relearned:
                relearned = True
                client.hub_time()  # the bodies stay; the headers are signed again as each one is written
                continue
            if error.code in CLOCK_CODES:
                raise ClockSkewError(f"the hub refuses this node's time: {error.message}")
            raise error
        raise HubUnreachable("the pipelined push made no progress")


class _PendingPull:
    """A pull request written behind the last pipelined push (`PushPipe.run`); its answer is the next one on
    the connection. `open()` reads the answer's head and gives a StreamReply whose body is read as it
    arrives (chunked, Content-Length or until the connection ends); the connection goes back to the pool
    when the body was read whole and the hub keeps it, else it is closed."""

    def __init__(self, pool: Any, conn: Any, reader: Any, request: dict[str, Any]):
        self.pool, self.conn, self.reader, self.request = pool, conn, reader, dict(request)

    def matches(self, request: dict[str, Any]) -> bool:
        return request == self.request

    def drop(self) -> None:
        if self.conn is not None:
            self.reader.close()
            self.conn.close()
            self.pool._put_conn(self.conn)
            self.conn = None

    def open(self) -> StreamReply:
        """The answer as a StreamReply; _Cut, OSError... when the connection ended before its head."""
        reader = self.reader
        head = _HeadReader(reader)
        parts = head.line().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _Cut("not an HTTP/1.1 answer")
        status, version = int(parts[1]), parts[0]
        headers: CaseInsensitiveDict = CaseInsensitiveDict()
        for _ in range(1000):
            line = head.line()
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip()] = value.strip()
        else:
            raise _Cut("an answer with too many headers")
        connection = headers.get("Connection", "").lower()
        keep = "close" not in connection and (version != b"HTTP/1.0" or "keep-alive" in connection)
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length_text = headers.get("Content-Length", "").strip()
        state = {"left": int(length_text) if length_text.isdigit() else None, "chunk": 0, "done": False}
        if not chunked and state["left"] is None:
            keep = False  # the body ends with the connection

        def read(size: int) -> bytes:
            try:
                return _read_body(size)
            except (OSError, _Cut, ValueError) as exc:
                raise HubUnreachable(f"the pull answer was cut: {type(exc).__name__}") from exc

        def _read_body(size: int) -> bytes:
            if state["done"]:
                return b""
            if chunked:
                if state["chunk"] == 0:
                    size_text = head.line().split(b";")[0].strip()
                    try:
                        state["chunk"] = int(size_text, 16)
                    except ValueError:
                        raise _Cut("a chunked answer with a bad chunk size") from None
                    if state["chunk"] == 0:
                        while head.line() not in (b"\r\n", b"\n"):
                            pass  # trailers
                        state["done"] = True
                        return b""
                data = reader.read1(min(size, state["chunk"]))
                if not data:
                    raise _Cut("the connection ended inside a chunk")
                state["chunk"] -= len(data)
                if state["chunk"] == 0:
                    head.line()  # the CRLF after the chunk
                return data
            if state["left"] is not None:
                if state["left"] == 0:
                    state["done"] = True
                    return b""
                data = reader.read1(min(size, state["left"]))
                if not data:
                    raise _Cut("the connection ended inside the answer")
                state["left"] -= len(data)
                return data
            data = reader.read1(size)
            if not data:
                state["done"] = True
            return data

        def close() -> None:
            if self.conn is None:
                return
            if keep and not state["done"]:  # the pages were read whole; what is left is the answer's end mark
                try:
                    self.conn.sock.settimeout(1.0)
                    for _ in range(16):
                        if not _read_body(65536) and state["done"]:
                            break
                except (OSError, _Cut, ValueError, AttributeError):
                    state["done"] = False
            clean = keep and state["done"]
            conn, self.conn = self.conn, None
            if clean:
                reader.close()  # the makefile; the socket stays open for the next request
            else:
                reader.close()
                conn.close()
            self.pool._put_conn(conn)

        return StreamReply(status, headers, read, close)


class _HeadReader:
    def __init__(self, reader: Any):
        self.reader = reader

    def line(self) -> bytes:
        line = self.reader.readline(MAX_HEAD + 1)
        if not line.endswith(b"\n") or len(line) > MAX_HEAD:
            raise _Cut("the connection ended inside an answer's head")
        return line


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
        self.answered = False  # the hub answered a request of this client (a later cut retries at once)
        self.pending_pull: _PendingPull | None = None  # a pull written behind the last push (PushPipe.run)

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
        self.check_pin(answer)
        return answer

    def check_pin(self, answer: dict[str, Any]) -> None:
        """The hub's key and id in an answer (/time, /sync/status) against the ones pinned at enrollment."""
        if self.hub_public_key is not None and answer.get("hub_public_key") != self.hub_public_key:
            raise HubKeyMismatch("the hub presents a key other than the one pinned at enrollment; "
                                 "sync refused (is this the right hub?)")
        if self.hub_node_id is not None and answer.get("hub_node_id") != self.hub_node_id:
            raise HubKeyMismatch(f"the hub calls itself {answer.get('hub_node_id')!r}, "
                                 f"not {self.hub_node_id!r} as pinned at enrollment; sync refused")

    def enroll(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /enroll (JSON, authenticated by the one-time token inside `request`)."""
        return self._json(self.call("POST", "/enroll", json_body=request, signed=False))

    def push(self, changes: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /sync/push one batch of changes; returns {"acked_seq", "hub_time_ms", "origins"?}.

        The batch holds this node's own changes, or (a commune node relaying its laptops) other nodes'
        changes with their original signatures; "origins" then gives the hub's highest seq of each.
        """
        return self._json(self.call("POST", "/sync/push", {"node_id": self.node_id, "changes": changes}))

    def push_stream(self, batch_after: Callable[[int, int], list[dict[str, Any]]], after: int, *,
                    limit: int = protocol.PUSH_BATCH, then_pull: dict[str, Any] | None = None,
                    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Push this node's changes after seq `after`, batch by batch; yields (batch, answer) in seq order.

        `batch_after(seq, limit)` reads the next batch (at most `limit` changes, seqs after `seq`) from the
        log. Over HTTP(S) the pushes are pipelined (`PushPipe`): batches of at most PIPELINE_BATCH, up to
        PIPELINE_WINDOW written on one kept-alive connection before the first one's answer is read, so the
        round trip per batch is hidden. The hub answers pipelined requests in order and a batch applies only
        after the one before it (seq contiguity), so answers come back in seq order: the caller commits each
        answer as it is yielded. A cut resends only the batches whose answers were not read (the hub ignores
        changes it already holds); 429/502/503/504 drop what is in flight and resend it after `Retry-After`
        or a backoff; any other refusal stops the pipeline with its error (the batches behind it are
        discarded unread). With another transport (tests, a relay seam) the batches go one at a time.
        `then_pull` (`pull_request()`'s body): over a pipe, the pull is written right behind the last batch;
        `pull_pages` with the same request reads its answer (no round trip of its own).
        """
        if not batch_after(after, 1):
            return  # nothing to push: no connection taken (a pull written behind /sync/status stays pending)
        self.drop_pending_pull()
        pipe = PushPipe.open_for(self)
        if pipe is None:
            for _ in range(10_000_000):  # bounded: each round yields a batch, whose end the caller commits
                batch = batch_after(after, limit)
                if not batch:
                    return
                yield batch, self.push(batch)
                after = batch[-1]["seq"]
            return
        with pipe:
            yield from pipe.run(batch_after, after, min(limit, PIPELINE_BATCH), then_pull)

    def drop_pending_pull(self) -> None:
        """Close the connection of a pull written ahead that nobody read (the sync took another way)."""
        pending, self.pending_pull = self.pending_pull, None
        if pending is not None:
            pending.drop()

    def pull_request(self, cursor: str | None, *, limit: int = protocol.PULL_FRAME,
                     stream: int | None = protocol.PULL_STREAM) -> dict[str, Any]:
        """The body of a protocol-2 pull after `cursor` (compact pages; framed with `stream`)."""
        request: dict[str, Any] = {"node_id": self.node_id, "limit": limit, "compact": True}
        if stream:
            request["stream"] = stream
        request["cursor"] = cursor
        return request

    def pull(self, cursor: str | None, limit: int = protocol.PULL_LIMIT) -> dict[str, Any]:
        """POST /sync/pull one page after `cursor`; returns {"changes", "cursor", "more", "digest"?}."""
        return self._json(self.call("POST", "/sync/pull", {"node_id": self.node_id, "cursor": cursor,
                                                            "limit": limit}))

    def pull_pages(self, cursor: str | None, *, limit: int = protocol.PULL_FRAME,
                   stream: int | None = protocol.PULL_STREAM) -> Iterator[dict[str, Any]]:
        """Pages after `cursor` until one says no more, as pullwire.read_page gives them (with the check
        their shape needs: "each" or "runs"), each as soon as it has arrived.

        Protocol 2: compact pages, and with `stream` (changes per request at most) framed answers; a v1 hub
        answers v1 pages and a relay single pages, read the same way. The caller commits each page with its
        cursor before it asks for the next one: a cut link is then retried (with backoff) from the cursor of
        the last page given, so nothing committed is asked for again and nothing is skipped.
        """
        request = self.pull_request(cursor, limit=limit, stream=stream)
        attempt = idle = 0
        while True:
            request["cursor"] = cursor
            reply = self._take_pending_pull(request) or self._stream_call("/sync/pull", request)
            moved = False
            try:
                for page in self._pages(reply):
                    yield page
                    attempt = 0
                    moved = moved or bool(page["changes"]) or page["cursor"] not in (None, cursor)
                    cursor = page["cursor"] or cursor
                    if not page["more"]:
                        return
            except (HubUnreachable, pullwire.Truncated) as exc:  # cut: again from the last page given
                if attempt >= self.retries:
                    raise HubUnreachable(f"the pull was cut {attempt + 1} times in a row: {exc.message}") from exc
                self.sleep(self._cut_delay(attempt))
                attempt += 1
                continue
            finally:
                reply.close()
            idle = 0 if moved else idle + 1  # the answer ended at its limit: ask again from the last cursor
            if idle > 1:
                raise HubRefused("bad_answer", "the hub says more changes wait but sends none", 200)

    def _take_pending_pull(self, request: dict[str, Any]) -> StreamReply | None:
        """The answer of the pull written behind the last push, when it is this very request and came as a 2xx;
        else None (the request is then sent the usual way, whose retries, Retry-After and errors apply)."""
        pending, self.pending_pull = self.pending_pull, None
        if pending is None:
            return None
        if not pending.matches(request):
            pending.drop()
            return None
        try:
            reply = pending.open()
        except (OSError, _Cut, ValueError):
            pending.drop()
            return None
        if 200 <= reply.status < 300:
            self.answered = True
            return reply
        reply.close()  # 429/503, a clock refusal...: asked again through _stream_call, which handles them
        pending.drop()
        return None

    def _pages(self, reply: StreamReply) -> Iterator[dict[str, Any]]:
        ctype = (reply.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if ctype == pullwire.FRAMES_TYPE:
                yield from pullwire.read_frames(reply.read)
                return
            yield pullwire.read_page(self._json(Reply(reply.status, reply.headers, reply.body())))
        except protocol.BadBody as exc:
            raise HubRefused("bad_answer", f"the hub's pull answer cannot be read: {exc.message}", 200) from exc

    def _stream_call(self, path: str, obj: Any) -> StreamReply:
        """`call` for an answer read as it arrives: the same signing, retries, Retry-After and errors."""
        body = protocol.encode_body(obj)
        relearned = False
        attempt = 0
        while True:
            headers = self._headers("POST", self.api_prefix + path, body, protocol.MEDIA_TYPE, True)
            try:
                reply = self.transport.stream("POST", self.api_prefix + path, headers=headers, body=body,
                                              timeout=self.timeout)
                self.answered = True
                if 200 <= reply.status < 300:
                    return reply
                whole = Reply(reply.status, reply.headers, reply.body())
                reply.close()
            except HubUnreachable:
                if attempt >= self.retries:
                    raise
                self.sleep(self._cut_delay(attempt))
                attempt += 1
                continue
            if whole.status in RETRY_STATUSES:
                if attempt >= self.retries:
                    raise HubUnreachable(f"the hub is busy or unavailable (HTTP {whole.status}) after "
                                         f"{attempt + 1} attempts")
                wait = parse_retry_after(whole.headers.get("Retry-After"))
                self.sleep(min(wait, self.max_wait) if wait is not None else self._delay(attempt))
                attempt += 1
                continue
            error = self._error_of(whole)
            if error.code in CLOCK_CODES and not relearned:
                relearned = True
                self.hub_time()
                continue
            if error.code in CLOCK_CODES:
                raise ClockSkewError(f"the hub refuses this node's time: {error.message}")
            raise error

    def status(self, *, origins: list[str] | None = None, **reported: Any) -> dict[str, Any]:
        """POST /sync/status: what the hub holds of this node: {"acked_seq", "last_hash", "digest", ...}.

        `reported` (backlog, clock_skew_ms) is shown on the hub's nodes page; with `origins` (node ids) the
        answer's "origins" maps each enrolled one to the highest seq the hub holds of it. A hub of this
        version also names itself ("hub_node_id", "hub_public_key": checked against the pin, HubKeyMismatch)
        and gives its clock ("hub_time_ms": the offset is learned from it, as from GET /time).
        """
        body: dict[str, Any] = dict(reported, node_id=self.node_id)
        if origins:
            body["origins"] = list(origins)
        learned, before = self.offset_ms, self.wall_ms()
        answer = self._json(self.call("POST", "/sync/status", body))
        return self._status_answer(answer, learned, before, self.wall_ms())

    def _status_answer(self, answer: dict[str, Any], learned: int | None, before: int, after: int) -> dict[str, Any]:
        if "hub_public_key" in answer or "hub_node_id" in answer:  # a hub of this version names itself here
            self.check_pin(answer)
        hub_ms = answer.get("hub_time_ms")
        if (isinstance(hub_ms, int) and not isinstance(hub_ms, bool) and self.offset_ms == learned
                and after - before <= STATUS_CLOCK_MS):
            self.offset_ms = hub_ms - (before + after) // 2  # the clock offset kept fresh, as GET /time does
        return answer

    def status_then_pull(self, pull: dict[str, Any], **reported: Any) -> dict[str, Any] | None:
        """`status(**reported)` with the pull `pull` (`pull_request()`'s body) written right behind it on the
        same connection, for a node that expects nothing to push: the pull's answer follows the status answer
        without a round trip of its own (`pending_pull`, read by `pull_pages` with the same request). None
        when that cannot be done here (no plain HTTP(S) connection, the clock offset not known yet, a cut, an
        answer other than 2xx): the caller then asks `status()`, whose retries and errors apply."""
        if self.offset_ms is None:
            return None
        pipe = PushPipe.open_for(self)
        if pipe is None:
            return None
        self.drop_pending_pull()
        body = protocol.encode_body(dict(reported, node_id=self.node_id))
        learned, before = self.offset_ms, self.wall_ms()
        try:
            pipe.connect()
            pipe.send(self.api_prefix + "/sync/status", body)
            pipe.send(self.api_prefix + "/sync/pull", protocol.encode_body(pull))
            reply, keep = pipe.read_answer()
        except (OSError, _Cut, urllib3.exceptions.HTTPError, requests.RequestException):
            pipe.release(clean=False)
            return None
        if not (200 <= reply.status < 300 and keep):
            pipe.release(clean=False)
            return None
        self.answered = True
        after = self.wall_ms()
        self.pending_pull = _PendingPull(pipe.pool, pipe.conn, pipe.reader, pull)
        pipe.conn = pipe.reader = None
        return self._status_answer(self._json(reply), learned, before, after)

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
                self.answered = True
            except HubUnreachable:  # short exchanges: backoff as ever (the pull and the pushes retry a cut at once)
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

    def _cut_delay(self, attempt: int) -> float:
        """Before retry `attempt` after no answer. When the hub had answered this client before, the link was
        up and has been cut: the first retry comes at once, with a little jitter (up to CUT_JITTER s; a cut
        is not an overloaded hub, which answers 429/503 and is waited for as it asks). A hub that never
        answered (down, unreachable), and a link that stays down, back off as usual."""
        return self.rand() * CUT_JITTER if attempt == 0 and self.answered else self._delay(attempt)

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
