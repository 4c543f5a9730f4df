"""Bundles: changes (and attachment files) carried on a USB stick where there is no link at all.

One file, encrypted to the recipient's Ed25519 key (converted to X25519, node.sync.x25519) and signed by the
sender's Ed25519 key, written and read as a stream so memory stays bounded whatever its size:

    MAGIC b"MOTCUA-BUNDLE\\n" | version u8 | header length u32 | header (canonical JSON)
    frames: length u32 (> 0) | ChaCha20-Poly1305 ciphertext          (one record each, see below)
    end of frames: u32 0
    signature: 64 bytes, Ed25519 by the sender over SIG_CONTEXT + SHA-256(every byte before it)

Header: {"format", "version", "direction" (node-to-hub | hub-to-node), "sender", "recipient", "created",
"counts": {"changes", "files", "file_bytes"}, "ephemeral_key", "cipher", "compression", "software_version"}.

Encryption (ECIES): an ephemeral X25519 key per bundle; key = HKDF-SHA256(X25519(ephemeral, recipient),
salt = ephemeral public || recipient public, info = b"motcua-bundle-v1"). Frame i is sealed with nonce =
i as 12 bytes big-endian and associated data = the header bytes (magic to the end of the header) || i (u64)
|| final (u8): a frame cannot be moved, dropped, replayed from another bundle or cut off at the end.
The plaintext of a frame is zstd(record); a record is a type byte, a u32 JSON length, the JSON, and bytes:

    M  meta {..}                                first frame: what the sender says beside the changes
    C  [change, ...]                            a batch of at most PUSH_BATCH changes, in order
    F  {"sha256", "size", "offset"} + bytes     a chunk of an attachment file; a file's chunks in order
    E  {"changes", "files", "file_bytes"}       last frame (final = 1): the totals, equal to the header's

Reading is three passes over the file, so a damaged bundle is refused whole before anything is written:
`open_bundle` checks the header, the recipient and the sender, verifies the signature (pass 1), then
decrypts and parses every frame and hashes every file (pass 2); `Bundle.records()` (pass 3) decrypts again
and yields the records to apply. Pure: no Flask, no database.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from . import keys, protocol, x25519
from .errors import SignatureInvalid, SyncError

MAGIC = b"MOTCUA-BUNDLE\n"
VERSION = 1
SIG_CONTEXT = b"motcua-bundle-v1 signature\n"
TO_HUB, TO_NODE = "node-to-hub", "hub-to-node"
FILE_CHUNK = 1024 * 1024  # attachment bytes per frame
MAX_HEADER = 64 * 1024
MAX_FRAME = 32 * 1024 * 1024  # ciphertext bytes of one frame
MAX_BATCH = max(protocol.PUSH_BATCH, protocol.PULL_LIMIT)
SIG_LEN = 64
_U32 = struct.Struct(">I")


class BundleRefused(SyncError):
    """A bundle that is not for us, not from whom it says, or damaged; nothing of it is stored."""

    http_status = 400
    code = "bundle_refused"


class ImportStopped(SyncError):
    """Applying a checked bundle stopped at a batch its receiver refused; the batches before it stay applied."""

    http_status = 409
    code = "import_stopped"


def stopped(exc: Exception, stored: int) -> ImportStopped:
    """An ImportStopped naming the receiver's refusal (a SyncError or the hub's own) and what was stored before."""
    message, code = getattr(exc, "message", str(exc)), getattr(exc, "code", type(exc).__name__)
    return ImportStopped(f"import stopped after {stored} changes were stored: {message} [{code}]",
                         change_ref=getattr(exc, "change_ref", None))


@dataclass
class FileEntry:
    """An attachment file to put in a bundle."""

    sha256: str
    size: int
    path: Path


@dataclass
class Chunk:
    """A piece of an attachment file read from a bundle; `last` on the final piece (its hash was checked)."""

    sha256: str
    size: int
    offset: int
    data: bytes

    @property
    def last(self) -> bool:
        return self.offset + len(self.data) >= self.size


def _nonce_aad(header_bytes: bytes, index: int, final: bool) -> tuple[bytes, bytes]:
    """Frame i: nonce = i on 12 bytes; associated data = header bytes || i (u64) || final (u8)."""
    return index.to_bytes(12, "big"), header_bytes + struct.pack(">QB", index, 1 if final else 0)


def _record(kind: bytes, meta: Any, data: bytes = b"") -> bytes:
    text = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    return kind + _U32.pack(len(text)) + text + data


# ---------------------------------------------------------------- writing

class _Writer:
    def __init__(self, fh: BinaryIO, header_bytes: bytes, aead: ChaCha20Poly1305, compressor):
        self.fh, self.header_bytes, self.aead, self.zc = fh, header_bytes, aead, compressor
        self.digest = hashlib.sha256()
        self.index = 0
        self.size = 0

    def raw(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)
        self.size += len(data)

    def frame(self, record: bytes, final: bool = False) -> None:
        nonce, aad = _nonce_aad(self.header_bytes, self.index, final)
        sealed = self.aead.encrypt(nonce, self.zc.compress(record), aad)
        if len(sealed) > MAX_FRAME:
            raise BundleRefused(f"a record of {len(sealed)} bytes is over the {MAX_FRAME} byte frame limit")
        self.raw(_U32.pack(len(sealed)) + sealed)
        self.index += 1


def write_bundle(target: Path, *, direction: str, sender: str, sender_key: keys.NodeKey, recipient: str,
                 recipient_public: str, created: str, change_count: int, batches: Iterable[list[dict[str, Any]]],
                 files: Iterable[FileEntry] = (), file_count: int = 0, file_bytes: int = 0,
                 meta: dict[str, Any] | None = None, software_version: str = "") -> dict[str, int]:
    """Write a bundle to `target` (through `target.part`, replaced at the end; removed on failure).

    The counts go in the header, so they are given first: `change_count` changes in `batches`, and
    `file_count` files of `file_bytes` bytes in `files`; a different number written is an error.
    Returns the totals written and the bundle's size in bytes.
    """
    target = Path(target)
    try:
        aead, eph_raw = x25519.seal_key(recipient_public)
    except x25519.InvalidPublicKey as exc:
        raise BundleRefused(f"the recipient's key cannot be used for encryption: {exc}") from exc
    counts = {"changes": change_count, "files": file_count, "file_bytes": file_bytes}
    header = {"format": "motcua-bundle", "version": VERSION, "direction": direction, "sender": sender,
              "recipient": recipient, "created": created, "counts": counts,
              "ephemeral_key": base64.b64encode(eph_raw).decode(), "cipher": "chacha20poly1305",
              "compression": "zstd", "software_version": software_version}
    text = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    header_bytes = MAGIC + bytes([VERSION]) + _U32.pack(len(text)) + text
    part = target.with_name(target.name + ".part")
    done = {"changes": 0, "files": 0, "file_bytes": 0}
    try:
        with open(part, "wb") as fh:
            w = _Writer(fh, header_bytes, aead, zstandard.ZstdCompressor(level=3))
            w.raw(header_bytes)
            w.frame(_record(b"M", meta or {}))
            for batch in batches:
                for i in range(0, len(batch), protocol.PUSH_BATCH):
                    part_batch = batch[i:i + protocol.PUSH_BATCH]
                    w.frame(_record(b"C", part_batch))
                    done["changes"] += len(part_batch)
            for entry in files:
                _write_file(w, entry)
                done["files"] += 1
                done["file_bytes"] += entry.size
            if done != counts:
                raise BundleRefused(f"the bundle was to hold {counts} but {done} were read: the data changed "
                                    "while exporting; export again")
            w.frame(_record(b"E", done), final=True)
            w.raw(_U32.pack(0))
            fh.write(base64.b64decode(sender_key.sign(SIG_CONTEXT + w.digest.digest())))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dict(done, bytes=w.size + SIG_LEN)


def _write_file(w: _Writer, entry: FileEntry) -> None:
    digest, offset = hashlib.sha256(), 0
    with open(entry.path, "rb") as src:
        while True:
            data = src.read(FILE_CHUNK)
            if offset + len(data) > entry.size:
                raise BundleRefused(f"attachment file {entry.sha256} is larger than its recorded size")
            if not data and offset < entry.size:
                raise BundleRefused(f"attachment file {entry.sha256} is shorter than its recorded size")
            digest.update(data)
            if offset + len(data) == entry.size and digest.hexdigest() != entry.sha256:
                raise BundleRefused(f"attachment file {entry.sha256} is damaged on disk (its bytes hash to "
                                    f"{digest.hexdigest()})")
            w.frame(_record(b"F", {"sha256": entry.sha256, "size": entry.size, "offset": offset}, data))
            offset += len(data)
            if offset == entry.size:
                return


# ---------------------------------------------------------------- reading

def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise BundleRefused(f"damaged bundle: it ends inside the {what} (truncated?)")
    return data


@dataclass
class Bundle:
    """A bundle whose header was read; `open_bundle` checks the rest before handing it out."""

    path: Path
    header: dict[str, Any]
    header_bytes: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    _aead: ChaCha20Poly1305 | None = None

    @classmethod
    def read_header(cls, path: Path) -> "Bundle":
        """Magic, version and header of the file; BundleRefused when they are not a bundle's."""
        path = Path(path)
        try:
            fh = open(path, "rb")
        except OSError as exc:
            raise BundleRefused(f"cannot read {path}: {exc.strerror or exc}") from exc
        with fh:
            magic = fh.read(len(MAGIC))
            if magic != MAGIC:
                raise BundleRefused(f"{path.name} is not a motcua bundle (wrong magic)")
            version = _read_exact(fh, 1, "header")[0]
            if version != VERSION:
                raise BundleRefused(f"bundle format version {version} is not supported (this software reads "
                                    f"version {VERSION})")
            (length,) = _U32.unpack(_read_exact(fh, 4, "header"))
            if length > MAX_HEADER:
                raise BundleRefused("damaged bundle: the header length is out of range")
            text = _read_exact(fh, length, "header")
        try:
            header = orjson.loads(text)
            _check_header(header)
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            raise BundleRefused(f"damaged bundle: the header is not valid ({exc})") from exc
        return cls(path, header, MAGIC + bytes([version]) + _U32.pack(length) + text)

    def _sealed(self, fh: BinaryIO) -> Iterator[bytes]:
        """The sealed frames after the header, up to the end marker (each at most MAX_FRAME bytes)."""
        fh.seek(len(self.header_bytes))
        while True:
            (length,) = _U32.unpack(_read_exact(fh, 4, "frames"))
            if length == 0:
                return
            if length > MAX_FRAME:
                raise BundleRefused("damaged bundle: a frame length is out of range")
            yield _read_exact(fh, length, "frames")

    def verify_signature(self, sender_public: str) -> None:
        """Pass 1: the sender's signature over everything before it; the file must end right after it."""
        digest = hashlib.sha256(self.header_bytes)
        with open(self.path, "rb") as fh:
            for sealed in self._sealed(fh):
                digest.update(_U32.pack(len(sealed)) + sealed)
            digest.update(_U32.pack(0))
            signature = _read_exact(fh, SIG_LEN, "signature")
            if fh.read(1):
                raise BundleRefused("damaged bundle: bytes follow its signature")
        try:
            keys.verify(sender_public, SIG_CONTEXT + digest.digest(), base64.b64encode(signature).decode())
        except SignatureInvalid as exc:
            raise BundleRefused(f"damaged bundle: its signature does not verify with the key of "
                                f"{self.header['sender']} (altered, or not made by it)") from exc

    def unlock(self, recipient_key: keys.NodeKey) -> None:
        """Derive the frame key with the recipient's private key."""
        try:
            eph_raw = base64.b64decode(self.header["ephemeral_key"], validate=True)
            # NodeKey has no accessor for its private half; the replica decrypts with its own key.
            self._aead = x25519.open_key(recipient_key._private, eph_raw)
        except ValueError as exc:
            raise BundleRefused("damaged bundle: its ephemeral key is not valid") from exc

    def check(self) -> None:
        """Pass 2: decrypt and parse every frame, hash every file, compare the totals; keeps the meta."""
        for kind, value in self.records():
            if kind == "meta":
                self.meta = value

    def records(self) -> Iterator[tuple[str, Any]]:
        """Decrypt in order: ("meta", dict), ("changes", list), ("chunk", Chunk)...; BundleRefused on damage.

        A file's last chunk is yielded only after the file's bytes were found to hash to its name.
        """
        if self._aead is None:
            raise RuntimeError("unlock() the bundle first")
        totals = {"changes": 0, "files": 0, "file_bytes": 0}
        phase, current, digest, done = "meta", None, hashlib.sha256(), 0
        for index, final, plain in self._frames():
            kind, meta, data = _parse(plain)
            if final != (kind == b"E"):
                raise BundleRefused(f"damaged bundle: unexpected record at frame {index}")
            if kind == b"M" and phase == "meta" and isinstance(meta, dict):
                phase = "changes"
                yield "meta", meta
            elif kind == b"C" and phase == "changes":
                if not isinstance(meta, list) or not meta or len(meta) > MAX_BATCH:
                    raise BundleRefused("damaged bundle: a batch of changes is not a list of 1 to "
                                        f"{MAX_BATCH} changes")
                for change in meta:
                    try:
                        protocol.check_change_shape(change)
                    except protocol.BadBody as exc:
                        raise BundleRefused(f"damaged bundle: {exc.message}") from exc
                totals["changes"] += len(meta)
                yield "changes", meta
            elif kind == b"F" and phase in ("changes", "files"):
                phase = "files"
                sha, size, offset = _chunk_meta(meta)
                if current is None or current[0] != sha or done >= current[1]:
                    if current is not None and done < current[1]:
                        raise BundleRefused(f"damaged bundle: file {current[0]} is incomplete")
                    current, digest, done = (sha, size), hashlib.sha256(), 0
                    totals["files"] += 1
                    totals["file_bytes"] += size
                if size != current[1] or offset != done or done + len(data) > size:
                    raise BundleRefused(f"damaged bundle: chunks of file {sha} are out of order")
                digest.update(data)
                done += len(data)
                if done == size and digest.hexdigest() != sha:
                    raise BundleRefused(f"damaged bundle: file {sha} does not hash to its name")
                yield "chunk", Chunk(sha, size, offset, data)
            elif kind == b"E" and phase != "meta":
                if current is not None and done < current[1]:
                    raise BundleRefused(f"damaged bundle: file {current[0]} is incomplete")
                if meta != totals or totals != self.header["counts"]:
                    raise BundleRefused(f"damaged bundle: it holds {totals}, its header says {self.header['counts']}")
                phase = "end"
            else:
                raise BundleRefused(f"damaged bundle: unexpected record at frame {index}")
        if phase != "end":
            raise BundleRefused("damaged bundle: its last record is missing (truncated?)")

    def _frames(self) -> Iterator[tuple[int, bool, bytes]]:
        """(index, final, plaintext) of every frame, each authenticated; nothing may follow the final one."""
        assert self._aead is not None
        with open(self.path, "rb") as fh:
            ended = False
            for index, sealed in enumerate(self._sealed(fh)):
                if ended:
                    raise BundleRefused("damaged bundle: frames after its last record")
                plain = None
                for final in (False, True):
                    nonce, aad = _nonce_aad(self.header_bytes, index, final)
                    try:
                        plain = self._aead.decrypt(nonce, sealed, aad)
                        break
                    except InvalidTag:
                        continue
                if plain is None:
                    raise BundleRefused(f"damaged bundle: frame {index} does not decrypt (altered, or not for "
                                        "this key)")
                ended = final
                yield index, final, _inflate(plain)


def _inflate(data: bytes) -> bytes:
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data)
        raw = reader.read(protocol.MAX_INFLATED + 1)
    except zstandard.ZstdError as exc:
        raise BundleRefused(f"damaged bundle: a record is not valid zstd ({exc})") from exc
    if len(raw) > protocol.MAX_INFLATED:
        raise BundleRefused("damaged bundle: a record inflates past the limit")
    return raw


def _parse(plain: bytes) -> tuple[bytes, Any, bytes]:
    if len(plain) < 5:
        raise BundleRefused("damaged bundle: a record is too short")
    (length,) = _U32.unpack(plain[1:5])
    try:
        meta = orjson.loads(plain[5:5 + length])
    except orjson.JSONDecodeError as exc:
        raise BundleRefused("damaged bundle: a record is not valid JSON") from exc
    return plain[:1], meta, plain[5 + length:]


def _chunk_meta(meta: Any) -> tuple[str, int, int]:
    ok = isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and len(meta["sha256"]) == 64
    ok = ok and all(isinstance(meta.get(k), int) and not isinstance(meta.get(k), bool) and meta[k] >= 0
                    for k in ("size", "offset"))
    if not ok or meta["sha256"].strip("0123456789abcdef"):
        raise BundleRefused("damaged bundle: a file chunk is not described properly")
    return meta["sha256"], meta["size"], meta["offset"]


def _check_header(header: Any) -> None:
    if not isinstance(header, dict) or header.get("format") != "motcua-bundle":
        raise ValueError("not a bundle header")
    for name in ("direction", "sender", "recipient", "created", "ephemeral_key"):
        if not isinstance(header.get(name), str):
            raise ValueError(f"{name} missing")
    counts = header.get("counts")
    if not isinstance(counts, dict) or set(counts) != {"changes", "files", "file_bytes"} or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        raise ValueError("counts missing")


def open_bundle(path: Path, *, direction: str, recipient_id: str, recipient_key: keys.NodeKey,
                sender_key: Callable[[str], str], after_signature: Callable[[str], None] | None = None) -> Bundle:
    """Everything checked before the first write: header, direction, recipient, sender, signature, contents.

    `sender_key(sender)` returns the sender's public key or raises (unknown sender); `after_signature(sender)`
    may refuse a sender whose signature verified (revoked...). Returns the bundle, ready for `records()`.
    """
    bundle = Bundle.read_header(path)
    if bundle.header["direction"] != direction:
        wanted = "a node for its hub" if direction == TO_HUB else "the hub for a node"
        raise BundleRefused(f"this bundle goes {bundle.header['direction']}; here a bundle made by {wanted} "
                            "is needed")
    if bundle.header["recipient"] != recipient_id:
        raise BundleRefused(f"this bundle is for {bundle.header['recipient']}, not for {recipient_id}")
    bundle.verify_signature(sender_key(bundle.header["sender"]))
    if after_signature is not None:
        after_signature(bundle.header["sender"])
    bundle.unlock(recipient_key)
    bundle.check()
    return bundle


class FileSink:
    """Stores the files of `Bundle.records()` chunks (whose hash records() checked before the last chunk).

    `target(sha)` is where a file lives; `wanted(sha)` says whether to keep it: a file already there, or one
    no attachment mentions, is skipped. A file is written next to its target and moved in place when complete.
    """

    def __init__(self, target: Callable[[str], Path], wanted: Callable[[str], bool]):
        self.target, self.wanted = target, wanted
        self.stored = self.skipped = self.bytes = 0
        self._sha, self._tmp, self._fh = "", Path(), None

    def add(self, chunk: Chunk) -> None:
        """Write one chunk; the file is in place (fsynced) after its last chunk."""
        if chunk.offset == 0:
            self.close()
            self._sha = chunk.sha256
            if self.target(chunk.sha256).exists() or not self.wanted(chunk.sha256):
                self.skipped += 1
                return
            final = self.target(chunk.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = final.with_name(f"{final.name}.{os.getpid()}.bundle")
            self._fh = open(self._tmp, "wb")
        if self._fh is None or chunk.sha256 != self._sha:
            return  # a skipped file
        self._fh.write(chunk.data)
        if chunk.last:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self._tmp, self.target(chunk.sha256))
            self.stored += 1
            self.bytes += chunk.size

    def close(self) -> None:
        """Drop a partial file (an import interrupted inside a file)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._tmp.unlink(missing_ok=True)


__all__ = ["MAGIC", "VERSION", "TO_HUB", "TO_NODE", "BundleRefused", "ImportStopped", "stopped", "FileEntry",
           "Chunk", "Bundle", "FileSink", "write_bundle", "open_bundle"]
