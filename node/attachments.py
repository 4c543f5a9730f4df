"""Scans attached to dossiers: checked by content, stored once by SHA-256 under `files/ab/cdef...`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from . import store
from .errors import NotFound, PayloadTooLarge, ValidationFailed
from .instance import Node
from .sync.ids import new_id
from .sync.state import Attachment
from .text import nfc
from .timeutil import to_text

MAGIC = {"application/pdf": (b"%PDF-",), "image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}
EXTENSIONS = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def sniff(data: bytes) -> str | None:
    for mime, prefixes in MAGIC.items():
        if any(data.startswith(p) for p in prefixes):
            return mime
    return None


def path_for(node: Node, sha256: str) -> Path:
    return node.files / sha256[:2] / sha256[2:]


def save_blob(node: Node, data: bytes) -> str:
    """Write the bytes (durably) under their SHA-256 unless already there; returns the hash."""
    digest = hashlib.sha256(data).hexdigest()
    target = path_for(node, digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".{new_id()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    return digest


def check_upload(filename: str, data: bytes, max_bytes: int) -> str:
    """The MIME type of an acceptable scan; ValidationFailed / PayloadTooLarge otherwise."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"Tệp {filename} quá lớn (tối đa {max_bytes // (1024 * 1024)} MB).",
                              f"{filename} is too large (at most {max_bytes // (1024 * 1024)} MB).")
    if not data:
        raise ValidationFailed(f"Tệp {filename} rỗng.", f"{filename} is empty.", fields={"files": "empty"})
    mime = sniff(data)
    ext = Path(filename).suffix.lower()
    if mime is None or EXTENSIONS.get(ext) != mime:
        raise ValidationFailed(f"Tệp {filename} không phải PDF, JPEG hoặc PNG.",
                               f"{filename} is not a PDF, JPEG or PNG file.",
                               fields={"files": "Chỉ nhận PDF, JPEG, PNG."})
    return mime


def attach(node: Node, dossier_id: str, filename: str, data: bytes, mime: str, author: str,
           document_id: str = "") -> str:
    """Store the file and record its attachment change (call inside a transaction)."""
    digest = save_blob(node, data)
    att_id = new_id()
    name = nfc(Path(filename.replace("\\", "/")).name)[:200] or "scan"
    store.write(node, "attachment", att_id, "create", {"fields": {
        "dossier_id": dossier_id, "document_id": document_id, "sha256": digest, "filename": name, "mime": mime,
        "size": len(data), "uploaded_by": author, "uploaded_at": to_text(node.now())}}, author)
    return att_id


def remove(node: Node, officer, att_id: str) -> Attachment:
    """Take a wrongly attached scan off its dossier: a deletion that travels as a tombstone, so a replica
    that receives the attachment later still leaves it out. The file itself stays on disk (content-addressed,
    it may serve another attachment). Refused on a closed dossier."""
    from .sync.state import Dossier
    from .errors import PermissionDenied, TransitionNotAllowed

    if not officer.has("reception", "specialist", "leader"):
        raise PermissionDenied("Vai trò của bạn không được gỡ tệp.", "Your role may not remove files.")
    with store.transaction(node):
        att = get(att_id)
        d = Dossier.get_by_id(att.dossier_id)
        if d.status in (3, 7, 8, 10):  # refused, withdrawn, stopped, returned: the file is part of the record
            raise TransitionNotAllowed("Hồ sơ đã kết thúc, không gỡ tệp được.",
                                       "The dossier is closed; its files cannot be removed.")
        store.write(node, "attachment", att_id, "delete",
                    {"dossier_id": att.dossier_id, "unit": d.unit_code, "at": to_text(node.now())}, officer.id)
    return att


def get(att_id: str) -> Attachment:
    row = Attachment.get_or_none(Attachment.id == att_id)
    if row is None:
        raise NotFound("Không tìm thấy tệp.", "No such file.")
    return row


def of_dossier(dossier_id: str) -> list[Attachment]:
    return list(Attachment.select().where(Attachment.dossier_id == dossier_id).order_by(Attachment.uploaded_at))
