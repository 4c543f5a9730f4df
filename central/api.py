"""The hub's machine API under /api/v1 (node.sync.protocol's docstring is the binding list).

Sync bodies are zstd(orjson(object)) both ways; enrollment and /time are plain JSON; errors are always
plain JSON `{"error": {"code", "message", "change"?}}` (Content-Type application/json).
"""

from __future__ import annotations

import hashlib
import re
import threading
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_file, stream_with_context

from node import __version__
from node.sync import encoding, ingest, protocol, pullwire
from node.sync.errors import SyncError

from .auth import check_protocol, signed_request
from .errors import FileRefused, HubError, NotFound, Overloaded, RequestRefused
from .files import valid_sha

bp = Blueprint("api", __name__, url_prefix="/api/v1")
NODE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
UNIT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def hub():
    return current_app.extensions["motcua_hub"]


def packed(obj: Any, status: int = 200) -> Response:
    resp = Response(protocol.encode_body(obj), status=status, mimetype=protocol.MEDIA_TYPE)
    resp.headers["X-Motcua-Protocol"] = str(protocol.PROTOCOL_VERSION)
    return resp


def _body(caller) -> dict[str, Any]:
    body = protocol.decode_body(caller.body)
    if not isinstance(body, dict):
        raise protocol.BadBody("the body must be an object")
    node_id = body.get("node_id")
    if node_id != caller.node_id:
        raise RequestRefused(f"node {caller.node_id} may only sync as itself, not as {node_id!r}",
                             code="node_mismatch")
    return body


class PushGate:
    """Counts pushes in flight; past the limit the hub sheds load with 503 and Retry-After."""

    def __init__(self, limit: int, retry_after: int):
        self.limit, self.retry_after = limit, retry_after
        self.in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def enter(self):
        with self._lock:
            if self.in_flight >= self.limit:
                raise Overloaded(f"the hub is busy ({self.in_flight} pushes in flight); retry in "
                                 f"{self.retry_after} s", retry_after=self.retry_after)
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


# ---------------------------------------------------------------- time, enrollment

@bp.get("/time")
def time_now():
    """The hub's clock and identity; nodes learn their clock offset and the hub's key from it."""
    h = hub()
    return jsonify({"hub_time_ms": h.now_ms(), "hub_node_id": h.node_id, "hub_public_key": h.identity.public_key,
                    "protocol": protocol.PROTOCOL_VERSION, "accepted_protocols": list(protocol.ACCEPTED_VERSIONS),
                    "software_version": __version__})


def _text(body: dict[str, Any], name: str, limit: int, pattern: re.Pattern | None = None,
          required: bool = True) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > limit or (required and not value) or (
            pattern is not None and value and not pattern.match(value)):
        raise HubError(f"field {name!r} is missing or not valid", code="invalid_field")
    return value


@bp.post("/enroll")
def enroll():
    """Register a node's public key with a one-time token; answer the record signed by the hub."""
    h = hub()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise HubError("the body must be a JSON object", code="bad_body")
    token = _text(body, "token", 200)
    fields = {
        "node_id": _text(body, "node_id", 64, NODE_ID_RE),
        "public_key": _text(body, "public_key", 100),
        "unit_code": _text(body, "unit_code", 64, UNIT_RE),
        "unit_name": _text(body, "unit_name", 200, required=False),
    }
    if not ingest.public_key_ok(fields["public_key"]):
        raise HubError("public_key is not a base64 Ed25519 public key", code="invalid_field")
    if fields["node_id"] == h.node_id:
        raise RequestRefused("a node may not enroll under the hub's own id", code="node_mismatch")
    record = h.storage.enroll(hashlib.sha256(token.encode()).hexdigest(), fields, now=h.now())
    software = _text(body, "software_version", 40, required=False)
    h.storage.touch_node(fields["node_id"], software_version=software)
    record = dict(record, hub_node_id=h.node_id)
    return jsonify({"record": record, "record_sig": h.key.sign(encoding.canonical(record)),
                    "hub_node_id": h.node_id, "hub_public_key": h.identity.public_key})


# ---------------------------------------------------------------- push, pull, status

def _change_ref(changes: list[Any], ref: str | None) -> dict[str, Any] | None:
    for c in changes:
        if isinstance(c, dict) and c.get("hash") == ref:
            return {"node_id": c.get("node_id"), "seq": c.get("seq"), "hash": ref}
    return None


@bp.post("/sync/push")
def push():
    """Verify, store and merge a batch of changes (all or nothing): the node's own, or relayed ones."""
    h = hub()
    check_protocol()
    caller = signed_request(h, push=True)
    body = _body(caller)
    changes = body.get("changes")
    if not isinstance(changes, list):
        raise protocol.BadBody("'changes' must be a list")
    with current_app.extensions["motcua_push_gate"].enter():
        try:
            result = h.storage.ingest_push(caller.node_id, changes, now=h.now())
        except ingest.ForkDetected as fork:
            forked = fork.incoming.get("node_id") or caller.node_id
            fork.message = (f"{fork.message}; node {forked} is now quarantined and the district "
                            f"administrator alerted (fork #{getattr(fork, 'fork_id', '?')})")
            fork.change = _change_ref(changes, fork.change_ref)  # type: ignore[attr-defined]
            raise
        except SyncError as exc:
            exc.change = _change_ref(changes, exc.change_ref)  # type: ignore[attr-defined]
            raise
    return packed({"acked_seq": result.acked_seq, "hub_time_ms": h.now_ms(), "stored": result.stored,
                   "skipped": result.skipped, "origins": result.origins})


def _limit(body: dict[str, Any]) -> int:
    limit = body.get("limit", protocol.PULL_LIMIT)
    if limit is None:
        return protocol.PULL_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise protocol.BadBody("'limit' must be a positive integer")
    return min(limit, protocol.PULL_LIMIT)


@bp.post("/sync/pull")
def pull():
    """Changes in the node's scope after its cursor; the last page carries the scope's digest.

    v1: one page of full changes. Protocol 2 (node/sync/pullwire.py): "compact" gives the page as runs with
    one signature each, and "stream" (changes at most) a framed answer of pages of `limit` changes, made as
    the node reads them.
    """
    h = hub()
    check_protocol()
    caller = signed_request(h)
    body = _body(caller)
    secret = h.secret.encode()
    after = protocol.read_cursor(secret, caller.node_id, body.get("cursor"))
    limit, compact, stream = _limit(body), body.get("compact") is True, body.get("stream")
    if stream is not None and (not compact or not isinstance(stream, int) or isinstance(stream, bool)
                               or stream < 1):
        raise protocol.BadBody("'stream' must be a positive integer, with 'compact': true")
    if stream is not None:
        return _framed_pull(h, caller, after, limit, min(stream, protocol.PULL_STREAM))
    page = h.storage.pull(caller.node_id, caller.scopes, after, limit)
    cursor = protocol.make_cursor(secret, caller.node_id, page.position)
    digest = None if page.more else h.storage.digest(caller.scopes)
    if compact:
        return packed(dict(pullwire.page(page.changes, cursor, page.more, digest), hub_time_ms=h.now_ms()))
    return packed({"changes": page.changes, "cursor": cursor, "more": page.more, "digest": digest,
                   "hub_time_ms": h.now_ms()})


def _framed_pull(h, caller, after: int, limit: int, most: int) -> Response:
    """Frames of `limit` changes, up to `most` in all, each with the cursor after it, read from the storage
    as the answer is written. Only `after` is acknowledged: which frames the node committed is told by its
    next cursor. An error once streaming began ends the stream early; the node asks again from its cursor."""
    secret = h.secret.encode()
    first = h.storage.pull(caller.node_id, caller.scopes, after, min(limit, most))  # refusals before streaming

    def frames():
        writer, page, sent = pullwire.FrameWriter(), first, 0
        try:
            while True:
                sent += len(page.changes)
                last = not page.more or sent >= most
                digest = None if page.more else h.storage.digest(caller.scopes)
                yield writer.frame(pullwire.page(page.changes, protocol.make_cursor(secret, caller.node_id,
                                                                                    page.position),
                                                 page.more, digest))
                if last:
                    yield writer.end()
                    return
                page = h.storage.pull(caller.node_id, caller.scopes, page.position, min(limit, most - sent),
                                      acknowledge=False)
        except Exception as exc:  # the node sees a cut stream and resumes from its last committed frame
            # The type only: a driver's message may quote citizens' data.
            current_app.logger.error("framed pull for %s ended early: %s", caller.node_id, type(exc).__name__)
            raise

    resp = Response(stream_with_context(frames()), mimetype=pullwire.FRAMES_TYPE)
    resp.headers["X-Motcua-Protocol"] = str(protocol.PROTOCOL_VERSION)
    return resp


@bp.post("/sync/status")
def status():
    """What the hub holds of the node, the digest of the node's scope, and the hub's identity and clock (so a
    node that knows its clock offset needs no GET /time before it)."""
    h = hub()
    check_protocol()
    caller = signed_request(h)
    body = _body(caller)
    reported = {k: body[k] for k in ("backlog", "clock_skew_ms") if isinstance(body.get(k), int)
                and not isinstance(body.get(k), bool)}
    observed = {("backlog_reported" if k == "backlog" else k): v for k, v in reported.items()}
    if observed:  # a write (and a disk sync) only when the nodes page would show something new
        shown = h.storage.node_status(caller.node_id) or {}
        if any(not _same_observation(k, shown.get(k), v) for k, v in observed.items()):
            h.storage.touch_node(caller.node_id, **observed)
    seq, last_hash = h.storage.held(caller.node_id)
    answer = {"acked_seq": seq, "last_hash": last_hash, "digest": h.storage.digest(caller.scopes),
              "hub_node_id": h.node_id, "hub_public_key": h.identity.public_key, "hub_time_ms": h.now_ms(),
              "status": caller.record["status"]}
    if "origins" in body:
        answer["origins"] = _origins_held(h, body["origins"])
    return packed(answer)


SKEW_SHOWN_MS = 1000  # a node's clock skew is written again when it moved by at least this


def _same_observation(name: str, shown: Any, reported: int) -> bool:
    if name == "clock_skew_ms":
        return isinstance(shown, int) and abs(shown - reported) < SKEW_SHOWN_MS
    return shown == reported


def _origins_held(h, origins: Any) -> dict[str, int]:
    """The highest seq held of each listed node (enrolled ones, and the hub itself): a relaying node learns
    what it still has to carry, a laptop which of the changes it got over the LAN the hub holds."""
    if (not isinstance(origins, list) or len(origins) > protocol.MAX_STATUS_ORIGINS
            or not all(isinstance(o, str) and NODE_ID_RE.match(o) for o in origins)):
        raise protocol.BadBody(f"'origins' must be a list of at most {protocol.MAX_STATUS_ORIGINS} node ids")
    held = {}
    for origin in dict.fromkeys(origins):
        if origin == h.node_id or h.storage.node_record(origin) is not None:
            held[origin] = h.storage.held(origin)[0]
    return held


# ---------------------------------------------------------------- files

def _sha(sha256: str) -> str:
    if not valid_sha(sha256):
        raise NotFound("files are named by their SHA-256 in 64 lowercase hex digits")
    return sha256


@bp.route("/files/<sha256>", methods=["HEAD"])
def file_head(sha256: str):
    """How many bytes of the file the hub holds (X-Motcua-Size), to resume an upload."""
    h = hub()
    signed_request(h)
    size, complete = h.files.held(_sha(sha256))
    resp = Response(status=200)
    resp.headers["X-Motcua-Size"] = str(size)
    resp.headers["X-Motcua-Complete"] = "1" if complete else "0"
    return resp


@bp.put("/files/<sha256>")
def file_put(sha256: str):
    """Append a chunk at ?offset=N; the upload completes when the bytes hash to <sha256>."""
    h = hub()
    caller = signed_request(h)
    sha = _sha(sha256)
    offset_text = request.args.get("offset", "0")
    if not offset_text.isdigit():
        raise HubError("offset must be a whole number of bytes", code="bad_offset")
    total = h.storage.file_size(sha)
    if total is None:
        header = request.headers.get("X-Motcua-Total", "")
        if not header.isdigit():
            raise FileRefused(f"no attachment held by the hub mentions file {sha}; push the changes that "
                              f"mention it first", code="unknown_file")
        total = int(header)
    size = h.files.put_chunk(sha, int(offset_text), caller.body, total)
    resp = jsonify({"size": size, "complete": size == total})
    resp.headers["X-Motcua-Size"] = str(size)
    return resp


@bp.get("/files/<sha256>")
def file_get(sha256: str):
    """The file, when an attachment of a dossier in the node's scope names it."""
    h = hub()
    caller = signed_request(h)
    sha = _sha(sha256)
    size, complete = h.files.held(sha)
    if not complete or not h.storage.file_in_scope(sha, caller.units):
        raise NotFound(f"the hub holds no file {sha} for this node's scope")
    resp = send_file(h.files.path(sha), mimetype="application/octet-stream", conditional=False)
    resp.headers["X-Motcua-Size"] = str(size)
    return resp


@bp.get("/openapi.json")
def openapi():
    """This API described as OpenAPI 3.1."""
    from .openapi import document

    return jsonify(document())
