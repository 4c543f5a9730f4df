"""The node's transport to the hub: signed, compressed requests with timeouts, retries and backoff.

Everything that can fail over the network raises one of the exceptions of node/sync/transport.py (its
docstring draws the tree: HubError, HubUnreachable, HubRefused, NodeForked, HubKeyMismatch, ClockSkewError),
re-exported here with the transport seam. Pipelined pushes live in node/sync/pushpipe.py.

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

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import requests
import requests.adapters
import urllib3
import urllib3.connection

from . import hlc, keys, protocol, pullwire
from .errors import SyncError
from .pushpipe import CUT_JITTER, PIPELINE_BATCH, PIPELINE_WINDOW, PushPipe, _Cut, _PendingPull
from .transport import (
    API,
    CLOCK_CODES,
    JSON_TYPE,
    RETRY_STATUSES,
    STATUS_CLOCK_MS,
    ClockSkewError,
    HubError,
    HubKeyMismatch,
    HubRefused,
    HubUnreachable,
    NodeForked,
    Reply,
    RequestsTransport,
    StreamReply,
    Transport,
    backoff_delay,
    normalise_hub_url,
    parse_retry_after,
)

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


__all__ = [  # what callers import from here (the transport's and the pipe's names re-exported)
    "API", "HubClient", "HubError", "HubUnreachable", "HubRefused", "NodeForked", "HubKeyMismatch", "ClockSkewError",
    "Reply", "Transport", "StreamReply", "RequestsTransport", "normalise_hub_url", "backoff_delay",
    "parse_retry_after", "PushPipe", "PIPELINE_BATCH", "PIPELINE_WINDOW", "CUT_JITTER",
]
