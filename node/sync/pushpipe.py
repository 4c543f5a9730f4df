"""Pipelined pushes (HTTP/1.1 on one kept-alive connection of the transport's session) and the pull written
right behind them; used by `HubClient.push_stream` and `pull_pages` (node/sync/client.py)."""


from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from requests.structures import CaseInsensitiveDict

from . import protocol
from .transport import (
    CLOCK_CODES,
    RETRY_STATUSES,
    ClockSkewError,
    HubUnreachable,
    Reply,
    RequestsTransport,
    StreamReply,
    parse_retry_after,
)

if TYPE_CHECKING:
    from .client import HubClient


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
        status, headers, keep = _read_head(self._line)
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
        status, headers, keep = _read_head(head.line)
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


def _read_head(line: Callable[[], bytes]) -> tuple[int, CaseInsensitiveDict, bool]:
    """An answer's status line and headers, read line by line with `line`: (status, headers, whether the hub
    keeps the connection open after it). _Cut when it is not HTTP/1.x or has too many headers."""
    parts = line().split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise _Cut("not an HTTP/1.1 answer")
    status, version = int(parts[1]), parts[0]
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    for _ in range(1000):
        text = line()
        if text in (b"\r\n", b"\n"):
            break
        name, _, value = text.decode("latin-1").partition(":")
        headers[name.strip()] = value.strip()
    else:
        raise _Cut("an answer with too many headers")
    connection = headers.get("Connection", "").lower()
    keep = "close" not in connection and (version != b"HTTP/1.0" or "keep-alive" in connection)
    return status, headers, keep


class _HeadReader:
    def __init__(self, reader: Any):
        self.reader = reader

    def line(self) -> bytes:
        line = self.reader.readline(MAX_HEAD + 1)
        if not line.endswith(b"\n") or len(line) > MAX_HEAD:
            raise _Cut("the connection ended inside an answer's head")
        return line


