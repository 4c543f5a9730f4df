"""Attachments on the hub: content-addressed by SHA-256, received in resumable chunks.

    DIR/files/ab/cdef…        complete files, named by their SHA-256 (the node's layout)
    DIR/files/partial/<sha>   an upload in progress; its size is what HEAD reports

A chunk must continue the partial file (a retried chunk that overlaps is accepted: only its new tail is
written). When the partial file reaches the expected size it is hashed; a mismatch discards it (422), a
match moves it into place. Uploads of one file are serialised with an exclusive lock on the partial file,
so several hub processes may share the folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
from pathlib import Path

from .errors import FileHashMismatch, FileRefused

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
READ_BLOCK = 1024 * 1024


def valid_sha(sha: str) -> bool:
    return bool(SHA_RE.match(sha or ""))


class FileStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.partial_dir = self.root / "partial"
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        self._hashers: dict[str, tuple[int, object]] = {}  # sha -> (bytes hashed, hashlib object)
        self._lock = threading.Lock()

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha[2:]

    def held(self, sha: str) -> tuple[int, bool]:
        """(bytes held, complete?) for `sha`."""
        final = self.path(sha)
        if final.exists():
            return final.stat().st_size, True
        partial = self.partial_dir / sha
        return (partial.stat().st_size if partial.exists() else 0), False

    def put_chunk(self, sha: str, offset: int, data: bytes, total: int) -> int:
        """Write a chunk at `offset` of a file of `total` bytes; returns the bytes now held."""
        size, complete = self.held(sha)
        if complete:
            return size
        partial = self.partial_dir / sha
        with open(partial, "ab") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                size, complete = self.held(sha)
                if complete:
                    return size
                if offset > size:
                    raise FileRefused(f"chunk at offset {offset} leaves a hole: the hub holds {size} bytes of "
                                      f"this file; resume from offset {size}", code="offset_mismatch")
                tail = data[size - offset:] if offset < size else data
                if size + len(tail) > total:
                    self._discard(sha, partial)
                    raise FileHashMismatch(f"the upload runs past the file's size of {total} bytes; "
                                           f"the partial upload was discarded", code="file_too_long")
                if tail:
                    fh.write(tail)
                    fh.flush()
                    os.fsync(fh.fileno())
                    self._hash(sha, partial, size, tail)
                size += len(tail)
                if size == total:
                    self._complete(sha, partial)
                return size
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _hash(self, sha: str, partial: Path, before: int, tail: bytes) -> None:
        with self._lock:
            done, hasher = self._hashers.get(sha, (0, None))
            if hasher is None or done != before:  # another process wrote, or we restarted: hash from disk
                hasher = hashlib.sha256()
                with open(partial, "rb") as fh:
                    remaining = before
                    while remaining > 0:
                        block = fh.read(min(READ_BLOCK, remaining))
                        if not block:
                            break
                        hasher.update(block)
                        remaining -= len(block)
            hasher.update(tail)  # type: ignore[attr-defined]
            self._hashers[sha] = (before + len(tail), hasher)

    def _complete(self, sha: str, partial: Path) -> None:
        with self._lock:
            _, hasher = self._hashers.pop(sha, (0, None))
        digest = hasher.hexdigest() if hasher is not None else _file_sha(partial)  # type: ignore[attr-defined]
        if digest != sha:
            self._discard(sha, partial)
            raise FileHashMismatch(f"the uploaded bytes hash to {digest}, not to {sha}; "
                                   f"the partial upload was discarded")
        final = self.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _discard(self, sha: str, partial: Path) -> None:
        with self._lock:
            self._hashers.pop(sha, None)
        partial.unlink(missing_ok=True)


def _file_sha(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(READ_BLOCK), b""):
            hasher.update(block)
    return hasher.hexdigest()


def store_blob(store: FileStore, data: bytes) -> tuple[str, bool]:
    """Write whole bytes (durably) under their SHA-256 unless already held; (sha, written now?).

    For files that arrive whole at the hub (online submissions), not in chunks. The caller removes a file
    it wrote when the transaction that names it fails (see `discard_blob`).
    """
    digest = hashlib.sha256(data).hexdigest()
    final = store.path(digest)
    if final.exists():
        return digest, False
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = store.partial_dir / f"{digest}.{os.getpid()}.{threading.get_ident()}.whole"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return digest, True


def discard_blob(store: FileStore, sha: str) -> None:
    """Remove a file written by `store_blob` for a write that was then rolled back."""
    store.path(sha).unlink(missing_ok=True)
