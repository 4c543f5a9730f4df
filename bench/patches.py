"""Proposed fixes shown by monkeypatch, inside bench processes only (issue 5): what a change in node/ or
central/ would give, measured before anyone edits those packages.

A patch is applied only when $MOTCUA_BENCH_PATCH names it (comma-separated), and only in processes the bench
starts: the hub (`python -m bench.patches hub serve ...` instead of `motcua hub serve ...`, see
`sync.Hub`) and the sync workers (`bench.sync.worker`). Nothing in node/ or central/ changes.

- `digest`: the state digest (count and sum modulo 2**256 of change hashes, `protocol.digest_of`) kept up to
  date incrementally instead of recomputed over the whole scope at every sync. Today the hub sums every
  change of the caller's scope twice per sync (`/sync/status` and the last pull page) and the node sums its
  whole log once (`SyncSession.local_digest`): about 30 ms each at 10,000 changes, growing with the log,
  which is most of an idle or small sync. The patch adds only the rows above the last Change.id it summed
  (the digest is a sum, so it can be kept running); the real fix keeps the running sum in a table updated
  in the same transaction as the change rows (hub: per scope, with the ChangeScope insert; node: one row,
  with `log.store`), so a digest costs O(1).
- `pipeline` (node): pushes of PIPE_BATCH changes with the next one already sent while the previous one's
  answer travels back: HTTP/1.1 pipelining on one kept-alive connection (waitress answers pipelined
  requests in order, so batch k+1 is never applied before batch k). The round trip per batch is hidden,
  so batches can be small, and a cut loses only the (at most two) small batches in flight.
- `notime` (node): no GET /time before /sync/status when an earlier sync saved the offset to the hub's
  clock (`sync.clock_skew_ms`): one round trip less per sync. The hub still refuses a request outside its
  time window and the client then learns the clock again (as today). The real change would also return
  `hub_node_id` and `hub_public_key` in the /sync/status answer, so the pin is still checked every sync.
- `frames` (hub and node): a pull answered as a stream of frames of FRAME changes, each with the cursor
  after it, applied and committed one by one as they arrive (the session's own page loop, fed frame by
  frame); a cut loses at most the frame being received, and one request carries up to FRAME_LIMIT changes.
"""

from __future__ import annotations

import os
import sys
import threading

ENV = "MOTCUA_BENCH_PATCH"
MOD = 1 << 256


def wanted() -> set[str]:
    return {p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()}


def hub_command() -> list[str]:
    """How the bench starts a hub whose process applies the patches named in $MOTCUA_BENCH_PATCH."""
    return [sys.executable, "-m", "bench.patches"]


PIPE_BATCH = 200  # changes per pipelined push
WINDOW = 2  # pushes in flight
FRAME = 100  # changes per pull frame
FRAME_LIMIT = 20_000  # changes per framed pull request at most
FRAMES_TYPE = "application/vnd.motcua.frames"  # [4-byte length][zstd block(orjson(page))] ... one zstd stream


def apply_hub() -> None:
    if "digest" in wanted():
        _hub_digest()
    if "frames" in wanted():
        _hub_frames()


def apply_node() -> None:
    if "digest" in wanted():
        _node_digest()
    if "pipeline" in wanted():
        _node_pipeline()
    if "notime" in wanted():
        _node_notime()
    if "frames" in wanted():
        _node_frames()


# ---------------------------------------------------------------- pipelined pushes (node only)

def _read_answer(fp) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (status, headers, body by Content-Length) from a buffered socket file."""
    line = fp.readline(65537)
    if not line:
        raise ConnectionError("the connection closed before the answer")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = fp.readline(65537)
        if not line:
            raise ConnectionError("the connection closed in the headers")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length", "0"))
    body = fp.read(size)
    if len(body) < size:
        raise ConnectionError("the answer was cut")
    return status, headers, body


class _Pipeline:
    """client.push(batch) for the session's own push loop, with the next batch already on the wire."""

    def __init__(self, session):
        self.session, self.client = session, session.client
        self.sock = self.fp = None
        self.sent: list[list[dict]] = []  # batches sent, answers not read yet, in order

    def _next_rows(self, after: int) -> list[dict]:
        from node.sync import log
        from node.sync.log import Change

        rows = (Change.select().where((Change.node_id == self.session.me) & (Change.seq > after))
                .order_by(Change.seq).limit(PIPE_BATCH))
        return [log.row_to_change(r) for r in rows]

    def _connect(self) -> None:
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(self.client.transport.base_url)
        self.host = parts.netloc
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=self.client.timeout[1])
        self.fp = self.sock.makefile("rb")

    def close(self) -> None:
        for thing in (self.fp, self.sock):
            if thing is not None:
                thing.close()
        self.sock = self.fp = None

    def _send(self, batch: list[dict]) -> None:
        from node.sync import protocol
        from node.sync.client import API

        body = protocol.encode_body({"node_id": self.session.me, "changes": batch})
        path = API + "/sync/push"
        headers = self.client._headers("POST", path, body, protocol.MEDIA_TYPE, True)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
                          f"{head}\r\n".encode("latin-1") + body)
        self.sent.append(batch)

    def push(self, batch: list[dict]) -> dict:
        from node.sync.client import HubUnreachable, Reply

        attempt = 0
        while True:
            try:
                if self.sock is not None and (not self.sent or self.sent[0][-1]["seq"] != batch[-1]["seq"]):
                    self.close()  # not the batch we sent ahead (never expected): start a clean connection
                    self.sent = []
                if self.sock is None:
                    self._connect()
                    ahead = self.sent if self.sent and self.sent[0][-1]["seq"] == batch[-1]["seq"] else [batch]
                    self.sent = []
                    for b in ahead:  # after a cut: what was in flight, again
                        self._send(b)
                while len(self.sent) < WINDOW:  # the next batch goes out before this one's answer is read
                    ahead = self._next_rows(self.sent[-1][-1]["seq"])
                    if not ahead:
                        break
                    self._send(ahead)
                status, headers, body = _read_answer(self.fp)
            except OSError as exc:  # cut: reconnect and send again what was in flight (bounded)
                self.close()
                if attempt >= self.client.retries:
                    raise HubUnreachable(f"pipelined push cut: {type(exc).__name__}") from exc
                self.client.sleep(self.client._delay(attempt))
                attempt += 1
                continue
            self.sent.pop(0)
            reply = Reply(status, headers, body)
            if status != 200:
                self.close()
                raise self.client._error_of(reply)
            if headers.get("connection", "").lower() == "close":
                self.close()
            return self.client._json(reply)


def _node_pipeline() -> None:
    from node.sync.session import SyncSession

    plain = SyncSession.stage_push

    def stage_push(self) -> None:
        pipe = _Pipeline(self)
        self.client.push = pipe.push  # the session's own loop, its batches sent ahead
        try:
            plain(self)
        finally:
            del self.client.push
            pipe.close()

    SyncSession.stage_push = stage_push
    init = SyncSession.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("push_batch", PIPE_BATCH)
        init(self, *args, **kwargs)

    SyncSession.__init__ = __init__


def _node_notime() -> None:
    from node.sync.session import SyncSession

    plain = SyncSession.stage_time

    def stage_time(self) -> None:
        saved = self.replica.setting("sync.clock_skew_ms")
        if not saved.lstrip("-").isdigit():
            return plain(self)  # first sync: learn the hub's clock as today
        learn = self.client.hub_time
        self.client.offset_ms = -int(saved)
        self.client.hub_time = lambda: {}  # the saved offset stands in for GET /time ...
        try:
            plain(self)
        finally:
            self.client.hub_time = learn  # ... and a refused time still learns the clock again

    SyncSession.stage_time = stage_time


# ---------------------------------------------------------------- pulls in frames (hub and node)

def _hub_frames() -> None:
    import central.app as app_module

    plain_create = app_module.create_app

    def create_app(config=None):
        from flask import Response, request, stream_with_context

        from central import api
        from central.auth import check_protocol, signed_request
        from node.sync import protocol

        app = plain_create(config)
        plain_pull = app.view_functions["api.pull"]

        def pull():
            try:
                frames = protocol.decode_body(request.get_data()).get("frames")
            except Exception:  # let the real view refuse it with its own message
                frames = None
            if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
                return plain_pull()
            h = api.hub()
            check_protocol()
            caller = signed_request(h)
            body = api._body(caller)
            secret = h.secret.encode()
            after = protocol.read_cursor(secret, caller.node_id, body.get("cursor"))
            limit = min(int(body.get("limit") or FRAME_LIMIT), FRAME_LIMIT)

            def generate():
                import orjson
                import zstandard

                # one zstd stream flushed at the end of each frame: every frame decodes as soon as it has
                # arrived, and later frames still use the earlier ones as context (as one page would)
                packer = zstandard.ZstdCompressor(level=3).compressobj()
                position, sent = after, 0
                while True:
                    page = h.storage.pull(caller.node_id, caller.scopes, position, min(frames, limit - sent))
                    sent, position = sent + len(page.changes), page.position
                    frame = packer.compress(orjson.dumps({
                        "changes": page.changes, "cursor": protocol.make_cursor(secret, caller.node_id, position),
                        "more": page.more, "digest": None if page.more else h.storage.digest(caller.scopes)}))
                    frame += packer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
                    yield len(frame).to_bytes(4, "big") + frame
                    if not page.more or sent >= limit:
                        return

            resp = Response(stream_with_context(generate()), mimetype=FRAMES_TYPE)
            resp.headers["X-Motcua-Protocol"] = str(protocol.PROTOCOL_VERSION)
            return resp

        app.view_functions["api.pull"] = pull
        return app

    app_module.create_app = create_app


class _Frames:
    """client.pull(cursor, limit) for the session's own page loop, each page one frame of an open stream."""

    def __init__(self, session):
        self.session, self.client = session, session.client
        self.resp = None
        self.next_cursor: object = ()  # the cursor the open stream continues from

    def close(self) -> None:
        if self.resp is not None:
            self.resp.close()
        self.resp = None

    def _open(self, cursor) -> None:
        from node.sync import protocol
        from node.sync.client import API, HubUnreachable, Reply

        body = protocol.encode_body({"node_id": self.session.me, "cursor": cursor, "limit": FRAME_LIMIT,
                                     "frames": FRAME})
        path = API + "/sync/pull"
        headers = self.client._headers("POST", path, body, protocol.MEDIA_TYPE, True)
        try:
            resp = self.client.transport.session.post(self.client.transport.base_url + path, data=body,
                                                      headers=headers, stream=True, timeout=self.client.timeout)
        except Exception as exc:
            raise HubUnreachable(f"no answer from the hub: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            reply = Reply(resp.status_code, resp.headers, resp.content)
            resp.close()
            raise self.client._error_of(reply)
        import zstandard

        self.resp, self.next_cursor = resp, cursor
        self.unpacker = zstandard.ZstdDecompressor().decompressobj()

    def _read(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            part = self.resp.raw.read(size - len(out))
            if not part:
                break
            out += part
        return out

    def pull(self, cursor, limit=None) -> dict:
        import orjson

        from node.sync.client import HubUnreachable

        attempt = 0
        while True:
            try:
                if self.resp is None or self.next_cursor != cursor:
                    self.close()
                    self._open(cursor)
                head = self._read(4)
                if not head:  # the stream ended at its limit: ask again from here
                    self.close()
                    continue
                size = int.from_bytes(head, "big")
                data = self._read(size) if len(head) == 4 else b""
                if len(head) < 4 or len(data) < size:
                    raise ConnectionError("the stream was cut")
                page = orjson.loads(self.unpacker.decompress(data))
                self.next_cursor = page.get("cursor")
                return page
            except Exception as exc:
                if not _is_cut(exc):
                    raise
                self.close()
                if attempt >= self.client.retries:
                    raise HubUnreachable(f"framed pull cut: {type(exc).__name__}") from exc
                self.client.sleep(self.client._delay(attempt))
                attempt += 1


def _is_cut(exc: BaseException) -> bool:
    import requests
    import urllib3

    from node.sync.client import HubUnreachable

    return isinstance(exc, (OSError, HubUnreachable, requests.RequestException, urllib3.exceptions.HTTPError))


def _node_frames() -> None:
    from node.sync.session import SyncSession

    plain = SyncSession.stage_pull

    def stage_pull(self) -> None:
        frames = _Frames(self)
        self.client.pull = frames.pull  # the session's own loop, fed frame by frame
        try:
            plain(self)
        finally:
            del self.client.pull
            frames.close()

    SyncSession.stage_pull = stage_pull


def _hub_digest() -> None:
    from central.models import ChangeScope
    from central.storage.sql import SQLStorage
    from node.sync.log import Change

    cache: dict[tuple[str, ...], tuple[int, int, int]] = {}  # scopes -> (last Change.id summed, count, sum)
    lock = threading.Lock()

    def digest(self, scopes: list[str]) -> dict:
        key = tuple(sorted(scopes))
        with lock:  # one hub process on SQLite: Change.id grows in commit order, so "above the last id" is exact
            last, count, total = cache.get(key, (0, 0, 0))
            rows = (Change.select(Change.id, Change.hash).join(ChangeScope, on=(ChangeScope.change_id == Change.id))
                    .where(ChangeScope.scope.in_(scopes) & (Change.id > last)).tuples())
            for change_id, h in rows.iterator():
                total, count, last = (total + int(h, 16)) % MOD, count + 1, max(last, change_id)
            cache[key] = (last, count, total)
        return {"count": count, "sum": f"{total:064x}"}

    SQLStorage.digest = digest


def _node_digest() -> None:
    import json

    from node.sync import session
    from node.sync.log import Change

    def local_digest(self, held: dict[str, int] | None = None) -> dict:
        """Running digest of every change held (kept in a setting), less the changes the original leaves out:
        own changes not acknowledged yet, and changes of nodes in `held` above the seq the hub holds."""
        saved = json.loads(self.replica.setting("bench.digest") or '{"last": 0, "count": 0, "sum": 0}')
        last, count, total = saved["last"], saved["count"], int(saved["sum"])
        for change_id, h in Change.select(Change.id, Change.hash).where(Change.id > last).tuples().iterator():
            total, count, last = (total + int(h, 16)) % MOD, count + 1, max(last, change_id)
        self.replica.save({"bench.digest": json.dumps({"last": last, "count": count, "sum": str(total)})})
        ahead = (Change.node_id == self.me) & (Change.seq > self._int("sync.acked_seq"))
        for origin, seq in (held or {}).items():
            if origin != self.me:
                ahead = ahead | ((Change.node_id == origin) & (Change.seq > seq))
        for (h,) in Change.select(Change.hash).where(ahead).tuples().iterator():  # few: the backlog
            total, count = (total - int(h, 16)) % MOD, count - 1
        return {"count": count, "sum": f"{total:064x}"}

    session.SyncSession.local_digest = local_digest


if __name__ == "__main__":  # python -m bench.patches hub serve ...: `motcua` with the hub patches applied
    apply_hub()
    from node.cli import main

    sys.argv = ["motcua", *sys.argv[1:]]
    main()
