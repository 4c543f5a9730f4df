"""The sync wire protocol, shared by the node's client and the hub's endpoints.

Bodies of every /api/v1/sync/* request and response are `zstd(orjson(object))` with
`Content-Type: application/vnd.motcua+zstd` and the header `X-Motcua-Protocol: <version>`. The hub
accepts PROTOCOL_VERSION and PROTOCOL_VERSION - 1 (nodes in the field are upgraded at different times).

Requests from a node are authenticated by a signature over the request (headers below); pushed changes are
also self-authenticating (each is signed by its node). Endpoints on the hub (all under /api/v1):

    GET  /time                        -> {"hub_time_ms", "hub_node_id", "hub_public_key", "protocol"}   (JSON)
    POST /enroll                      JSON {"token", "node_id", "public_key", "unit_code", "unit_name",
                                            "software_version"} -> {"record": <node record>, "record_sig",
                                            "hub_node_id", "hub_public_key"}                         (JSON)
    POST /sync/push   (signed)        {"node_id", "changes": [change, ...]} -> {"acked_seq", "hub_time_ms",
                                      "origins": {node_id: seq}}   (see "Relays" below)
    POST /sync/pull   (signed)        {"node_id", "cursor": str|null, "limit"} ->
                                      {"changes": [...], "cursor": str, "more": bool, "digest": {...}}
                                      protocol 2: {..., "compact": true} -> the same page with "runs"
                                      instead of "changes"; {..., "compact": true, "stream": N} -> frames
                                      of `limit` changes, N changes at most (see "Pulls, protocol 2")
    POST /sync/status (signed)        {"node_id", "origins"?: [node_id, ...]} -> {"acked_seq", "last_hash",
                                      "digest", "hub_node_id", "hub_public_key", "hub_time_ms",
                                      "origins"?: {node_id: seq held}}
    PUT  /files/<sha256>?offset=N     (signed) raw chunk bytes -> {"size": bytes held}; complete when the
                                      bytes hash to <sha256>
    HEAD /files/<sha256>              (signed) -> X-Motcua-Size header: bytes held (0 if none)
    GET  /files/<sha256>              (signed) -> the file, when the node's scope mentions it

/sync/status names the hub and gives its clock (fields only added, in protocol 1 and 2 alike). A node
that knows its offset to the hub's clock (saved by an earlier sync) then sends no GET /time: it checks the
hub's key in the status answer and refreshes the offset from its hub_time_ms; an older hub's answer lacks
"hub_public_key", and the node then asks GET /time as before. Older nodes ignore the new fields.

Signed requests carry `X-Motcua-Node` (node id), `X-Motcua-Time` (ms, on the hub's clock as learned from
GET /time or a /sync/status answer, or as an earlier sync saved it), `X-Motcua-Signature` = Ed25519 over
`request_message(...)`. The hub refuses a time more than REQUEST_WINDOW_MS away from its own (replay window),
an unknown node (403 unknown_node), a revoked one (403 node_revoked) and a quarantined one for pushes
(403 node_quarantined).

Errors: `{"error": {"code", "message", "change"?: {"node_id", "seq", "hash"}}}`; 413 for bodies over
MAX_BODY (compressed) or inflating past MAX_INFLATED; 429/503 with Retry-After when shedding load.

Relays (field laptops, design.md §2 and §5). A push may carry, besides the pusher's own changes, changes of
other nodes with their original signatures: the hub accepts them when the pusher is active and each origin
is an enrolled, active node whose scope includes the pusher's unit; each origin's run must continue what
the hub holds of it (replays skipped), and its changes may only write units both nodes serve. The answer's
"origins" gives the highest seq the hub now holds of each relayed origin; /sync/status answers the same
for the ids listed in "origins" (enrolled nodes only).

Pulls, protocol 2 (node/sync/pullwire.py has the details). A page may give "runs" instead of "changes":
each origin's contiguous run with its first seq and first prev, the changes without node_id, seq, prev and
hash (recomputed by the receiver), and only the signature of the run's last change, which authenticates the
run (design.md §5; ingest's "runs" check). The changes of a run other than its last are then stored with
sig "", so servers of stored changes end runs only at changes that carry a signature (node/relay.py). With
"stream" the hub answers `application/vnd.motcua.frames`: one zstd stream of frames, each a page with the
cursor after it, which the node applies and commits one by one as they arrive (a cut loses at most the
frame under way). The page shape is chosen by the request body, so a v1 node, which asks for neither, gets
v1 pages as before; a v2 node reads v1 pages too. Version 2 also means: a change pushed or served for a v1
reader always carries its own signature.

A commune node serves its field laptops on the LAN under RELAY_API (/relay/v1) with the same bodies and
the same signed requests (signed by the laptop, checked against the key registry the node pulled):

    GET  /relay/v1/time               -> {"hub_time_ms" (the commune node's clock), "hub_node_id",
                                          "hub_public_key" (its pinned hub), "relay": true, "relay_node_id",
                                          "relay_public_key", "unit_code", "protocol"}
    POST /relay/v1/sync/push (signed) {"node_id", "changes"} -> {"acked_seq", "stored", "skipped"}: the
                                      laptop's own changes, one contiguous chained run, each concerning the
                                      commune's unit, every signature verified
    POST /relay/v1/sync/pull (signed) {"node_id", "cursor", "limit", "compact"?} -> {"changes" | "runs",
                                      "cursor", "more"}: what the commune node holds (its unit and "*"), the
                                      laptop's own excepted (v1 pages: only changes with their own signature)
    POST /relay/v1/sync/status (signed) {"node_id", "nonce"} -> {"acked_seq", "last_hash", "relay_node_id",
                                      "proof"}: proof = the commune node's signature over
                                      relay_proof_message(nonce, relay_node_id, laptop_id)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import zstandard

from .errors import EncodingError, SyncError

PROTOCOL_VERSION = 2  # 2: compact and framed pull pages (node/sync/pullwire.py)
ACCEPTED_VERSIONS = (PROTOCOL_VERSION - 1, PROTOCOL_VERSION)
MEDIA_TYPE = "application/vnd.motcua+zstd"
MAX_BODY = 8 * 1024 * 1024  # compressed bytes on the wire
MAX_INFLATED = 64 * 1024 * 1024  # after decompression
PUSH_BATCH = 500  # changes per pushed batch
PULL_LIMIT = 1000  # changes per pulled batch, at most
PULL_FRAME = 200  # changes per frame of a framed pull (protocol 2)
PULL_STREAM = 20_000  # changes per framed pull request, at most
REQUEST_WINDOW_MS = 15 * 60 * 1000
RELAY_API = "/relay/v1"  # a commune node's endpoints for its field laptops on the LAN
MAX_STATUS_ORIGINS = 500  # node ids one /sync/status may ask about
GLOBAL_SCOPE = "*"  # catalogue, calendar, key registry: every node receives it
HUB_ONLY_SCOPE = "hub"


class BodyTooLarge(SyncError):
    http_status = 413
    code = "body_too_large"


class BadBody(SyncError):
    http_status = 400
    code = "bad_body"


def encode_body(obj: Any, level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(orjson.dumps(obj))


def decode_body(data: bytes, max_inflated: int = MAX_INFLATED) -> Any:
    """Decompress and parse a body, refusing garbage, truncation and zip bombs."""
    if len(data) > MAX_BODY:
        raise BodyTooLarge(f"body of {len(data)} bytes is over the {MAX_BODY} byte limit")
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        raw = reader.read(max_inflated + 1)
        if reader.read(1):
            raise BodyTooLarge("body inflates past the limit")
    except zstandard.ZstdError as exc:
        raise BadBody(f"body is not valid zstd: {exc}") from exc
    if len(raw) > max_inflated:
        raise BodyTooLarge(f"body inflates past the {max_inflated} byte limit")
    try:
        frame = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as exc:
        raise BadBody(f"body is not a zstd frame: {exc}") from exc
    if frame.content_size not in (0, zstandard.CONTENTSIZE_UNKNOWN) and frame.content_size != len(raw):
        raise BadBody("body is truncated")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"body is not valid JSON: {exc}") from exc


def request_message(method: str, path: str, time_ms: int, node_id: str, body: bytes) -> bytes:
    """The bytes a node signs to authenticate one request."""
    digest = hashlib.sha256(body).hexdigest()
    return f"motcua-request\n{method.upper()}\n{path}\n{time_ms}\n{node_id}\n{digest}".encode()


def relay_proof_message(nonce: str, relay_node_id: str, laptop_id: str) -> bytes:
    """The bytes a commune node signs to prove to a laptop that it holds the key of `relay_node_id`."""
    return f"motcua-relay\n{nonce}\n{relay_node_id}\n{laptop_id}".encode()


# ---------------------------------------------------------------- cursors

def make_cursor(secret: bytes, node_id: str, position: int) -> str:
    """An opaque pull cursor bound to the node: `position.mac`; a forged one fails `read_cursor`."""
    mac = hmac.new(secret, f"{node_id}:{position}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{position}.{mac}"


def read_cursor(secret: bytes, node_id: str, cursor: str | None) -> int:
    if cursor in (None, ""):
        return 0
    if not isinstance(cursor, str) or cursor.count(".") != 1:
        raise BadCursor("malformed cursor")
    pos_text, _ = cursor.split(".")
    if not pos_text.isdigit() or not hmac.compare_digest(make_cursor(secret, node_id, int(pos_text)), cursor):
        raise BadCursor("cursor was not issued to this node")
    return int(pos_text)


class BadCursor(SyncError):
    http_status = 400
    code = "bad_cursor"


# ---------------------------------------------------------------- digests

def digest_of(hashes) -> dict[str, Any]:
    """An order-independent digest of a set of change hashes: count and sum modulo 2**256."""
    total, count = 0, 0
    for h in hashes:
        total = (total + int(h, 16)) % (1 << 256)
        count += 1
    return {"count": count, "sum": f"{total:064x}"}


def check_change_shape(change: Any) -> dict[str, Any]:
    """Type-check one change dict from the wire (before any crypto); raises BadBody."""
    fields = {"node_id": str, "seq": int, "hlc": str, "entity": str, "entity_id": str, "op": str,
              "payload": dict, "author": str, "prev": str, "hash": str, "sig": str}
    if not isinstance(change, dict):
        raise BadBody("a change must be an object")
    for name, kind in fields.items():
        value = change.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadBody(f"change field {name!r} missing or not {kind.__name__}")
    if change["seq"] < 1 or len(change["hash"]) != 64 or len(change["prev"]) != 64:
        raise BadBody("change seq/hash/prev out of shape")
    try:
        bytes.fromhex(change["hash"])
        bytes.fromhex(change["prev"])
    except ValueError as exc:
        raise BadBody("hash is not hex") from exc
    return change


__all__ = [
    "PROTOCOL_VERSION", "ACCEPTED_VERSIONS", "MEDIA_TYPE", "MAX_BODY", "MAX_INFLATED", "PUSH_BATCH", "PULL_LIMIT",
    "PULL_FRAME", "PULL_STREAM",
    "REQUEST_WINDOW_MS", "GLOBAL_SCOPE", "HUB_ONLY_SCOPE", "RELAY_API", "MAX_STATUS_ORIGINS", "encode_body",
    "decode_body", "request_message", "relay_proof_message",
    "make_cursor", "read_cursor", "digest_of", "check_change_shape", "BodyTooLarge", "BadBody", "BadCursor",
    "EncodingError",
]
