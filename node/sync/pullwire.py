"""Protocol 2 pull pages: each origin's contiguous runs without `hash` and `prev`, one signature per run,
and the framed answer that carries many such pages in one request (node/sync/protocol.py).

A page (v2), the body of a plain answer or of one frame:

    {"runs": [[node_id, first_seq, first_prev, sig, [[hlc, entity, entity_id, op, payload, author], ...]],
              ...],
     "cursor": str, "more": bool, "digest": {...} | null}

A run is changes of one origin with consecutive seqs. The receiver rebuilds each change: seq = first_seq + i,
prev = first_prev for the first and the previous change's hash after it, hash = SHA-256 of the canonical
encoding (log.change_hash); `sig` is the run's last change's signature and "" on the others. Because every
hash covers its prev, the signature of the last change authenticates the whole run (design.md §5); ingest's
"runs" check verifies it that way before anything is applied. A run of one change is a single with its own
signature, so a gapped, scoped subset costs one signature per change as before.

What a node stores for a run's other changes is sig "" (log.Change.sig): they are authenticated by the
signed change that ends their run, stored with them. So a server of stored changes (a commune node's LAN
relay) cuts its runs only at changes that carry a signature (see node/relay.py serve_pull), and a v1 reader,
which checks each change's own signature, is given only changes that carry one.

The framed answer (`Content-Type: application/vnd.motcua.frames`): one zstd stream, flushed at the end of
each frame so that every frame decodes as soon as its bytes have arrived (while later frames still compress
against the earlier ones); inside the stream each frame is a 4-byte big-endian length and the JSON of one
page, and a length of 0 marks the end (an answer without it was cut). The receiver applies and commits
each page with its cursor before it reads the next, so a cut link loses at most the frame being received.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import zstandard

from . import log, protocol
from .errors import SyncError

FRAMES_TYPE = "application/vnd.motcua.frames"
MAX_FRAME = 16 * 1024 * 1024  # inflated bytes of one frame's JSON
ROW_FIELDS = ("hlc", "entity", "entity_id", "op", "payload", "author")
_ROW_TYPES = (str, str, str, str, dict, str)


class Truncated(SyncError):
    """The framed answer ended inside a frame (a cut link): what came before it stands."""

    http_status = 502
    code = "stream_cut"


# ---------------------------------------------------------------- encoding (the serving side)

def runs_of(changes: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Changes grouped by origin (in order of first appearance), sorted by seq, split where seqs jump."""
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_origin.setdefault(change["node_id"], []).append(change)
    out: list[list[dict[str, Any]]] = []
    for group in by_origin.values():
        group.sort(key=lambda c: c["seq"])
        run: list[dict[str, Any]] = []
        for change in group:
            if run and change["seq"] == run[-1]["seq"]:
                continue  # the same change twice (never expected): once is enough
            if run and change["seq"] != run[-1]["seq"] + 1:
                out.append(run)
                run = []
            run.append(change)
        if run:
            out.append(run)
    return out


def encode_runs(changes: Iterable[dict[str, Any]]) -> list[list[Any]]:
    """The "runs" of a v2 page for these full changes (their stored prev and the last one's sig)."""
    return [[run[0]["node_id"], run[0]["seq"], run[0]["prev"], run[-1]["sig"],
             [[c[f] for f in ROW_FIELDS] for c in run]] for run in runs_of(changes)]


def page(changes: Iterable[dict[str, Any]], cursor: str, more: bool, digest: Any = None) -> dict[str, Any]:
    """A v2 page object."""
    return {"runs": encode_runs(changes), "cursor": cursor, "more": more, "digest": digest}


class FrameWriter:
    """Frames of one zstd stream: `frame(page)` gives the bytes to send now, `end()` the stream's tail."""

    def __init__(self, level: int = 3):
        self._packer = zstandard.ZstdCompressor(level=level).compressobj()

    def frame(self, obj: dict[str, Any]) -> bytes:
        data = orjson.dumps(obj)
        return (self._packer.compress(len(data).to_bytes(4, "big") + data)
                + self._packer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def end(self) -> bytes:
        """The end mark (a frame of length 0) and the end of the zstd stream."""
        return self._packer.compress(b"\0\0\0\0") + self._packer.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


# ---------------------------------------------------------------- decoding (the pulling side)

def _bad(message: str) -> protocol.BadBody:
    return protocol.BadBody(f"pull page: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_runs(runs: Any) -> list[dict[str, Any]]:
    """Full change dicts (hash and prev recomputed, sig on each run's last change, "" before it).

    Only the shape is checked here (BadBody); whether the runs are authentic is ingest's "runs" check.
    """
    if not isinstance(runs, list):
        raise _bad("'runs' must be a list")
    out: list[dict[str, Any]] = []
    for run in runs:
        if not (isinstance(run, list) and len(run) == 5):
            raise _bad("a run must be [node_id, first_seq, first_prev, sig, rows]")
        node_id, seq, prev, sig, rows = run
        if not (isinstance(node_id, str) and node_id and _is_int(seq) and seq >= 1 and isinstance(prev, str)
                and len(prev) == 64 and isinstance(sig, str) and sig and isinstance(rows, list) and rows):
            raise _bad(f"a run of {node_id!r} is out of shape")
        try:
            bytes.fromhex(prev)
        except ValueError as exc:
            raise _bad("a run's first prev is not hex") from exc
        last = len(rows) - 1
        for i, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == len(ROW_FIELDS)) or not all(
                    isinstance(v, t) for v, t in zip(row, _ROW_TYPES, strict=True)):
                raise _bad(f"change {node_id}#{seq + i} is out of shape")
            change = dict(zip(ROW_FIELDS, row, strict=True))
            change.update(node_id=node_id, seq=seq + i, prev=prev)
            try:
                change["hash"] = log.change_hash(change)
            except SyncError as exc:  # a float or another value the canonical encoding refuses
                raise _bad(f"change {node_id}#{seq + i}: {exc.message}") from exc
            change["sig"] = sig if i == last else ""
            prev = change["hash"]
            out.append(change)
    return out


def read_page(obj: Any) -> dict[str, Any]:
    """A pull page of either shape as {"changes", "cursor", "more", "digest", "sign_check"}.

    v1 pages ("changes", every change with its own signature) are checked "each", as before; v2 pages
    ("runs") "runs" (node/sync/ingest.py).
    """
    if not isinstance(obj, dict):
        raise _bad("not an object")
    cursor = obj.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise _bad("'cursor' must be a string")
    if "runs" in obj:
        changes, check = decode_runs(obj["runs"]), "runs"
    else:
        changes, check = obj.get("changes") or [], "each"
        if not isinstance(changes, list):
            raise _bad("'changes' must be a list")
    digest = obj.get("digest")
    return {"changes": changes, "cursor": cursor, "more": bool(obj.get("more")),
            "digest": digest if isinstance(digest, dict) else None, "sign_check": check}


def read_frames(read: Callable[[int], bytes]) -> Iterator[dict[str, Any]]:
    """The pages of a framed answer, each as soon as its frame has arrived (see read_page).

    `read(n)` returns up to n bytes of the answer as they come (b"" at its end). Raises Truncated when the
    answer ends before its end mark, BadBody when it is not valid zstd or a frame is not a page. The
    compressed bytes are inflated a slice at a time, so a zip bomb is stopped near the frame limit.
    """
    unpacker = zstandard.ZstdDecompressor().decompressobj()
    plain = bytearray()
    while True:
        while len(plain) >= 4:  # every whole frame that has arrived, in order
            size = int.from_bytes(plain[:4], "big")
            if size == 0:
                return  # the end mark: the answer is complete
            if size > MAX_FRAME:
                raise _bad(f"a frame of {size} bytes is over the {MAX_FRAME} byte limit")
            if len(plain) < 4 + size:
                break
            data = bytes(plain[4:4 + size])
            del plain[:4 + size]
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise _bad(f"a frame is not valid JSON: {exc}") from exc
            yield read_page(obj)
        chunk = read(_READ)
        if not chunk:  # a cut inside a frame, or between two (no end mark)
            raise Truncated("the pull answer was cut before its end")
        for i in range(0, len(chunk), _SLICE):
            try:
                plain += unpacker.decompress(chunk[i:i + _SLICE])
            except zstandard.ZstdError as exc:
                raise _bad(f"the framed answer is not valid zstd: {exc}") from exc
            if len(plain) > 2 * MAX_FRAME:
                raise _bad(f"a frame inflates past the {MAX_FRAME} byte limit")


_READ = 16384  # compressed bytes asked of the link at a time (what has arrived comes back at once)
_SLICE = 256  # compressed bytes inflated at a time: at most a few MB even for a zip bomb


__all__ = ["FRAMES_TYPE", "MAX_FRAME", "Truncated", "runs_of", "encode_runs", "page", "FrameWriter", "decode_runs",
           "read_page", "read_frames"]
