"""Dossiers that start at the hub: online submissions, signed by the hub, for a commune to process.

The dossier is registered with status 1 (newly registered, channel online) for the commune's unit, so
its changes carry that unit's scope and reach the commune's node on its next pull. Its code is
`{unit}.HUB-{yyMMdd}-{NNNN}`: the hub's own sub-code of the unit, so it never clashes with the codes the
commune's node gives offline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from node import catalogue
from node.errors import NotFound as ProcedureNotFound
from node.sync.ids import new_id
from node.sync.state import Dossier, Procedure
from node.text import ID_MESSAGES, check_id_number, fold, nfc
from node.timeutil import to_text

from .errors import HubError
from .files import discard_blob, store_blob

HUB_SUBCODE = "HUB"
NEW = 1  # node.workflow.NEW: newly registered
ONLINE = 2  # channel


def dossier_code_prefix(unit_code: str, when: datetime) -> str:
    return f"{unit_code}.{HUB_SUBCODE}-{when:%y%m%d}-"


def _procedure(code: str, on: date) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """(fields, documents, fee) of the version in force: from the hub's catalogue, else the seed."""
    try:
        view = catalogue.procedure(code, on=on)
        return {"code": view.code, "version": view.version, "name_vi": view.name_vi}, view.documents, view.fee_for()
    except ProcedureNotFound:
        pass
    seed = {p["code"]: p for p in catalogue.SEED_PROCEDURES}.get(code)
    if seed is None:
        raise HubError(f"no procedure with code {code}", code="unknown_procedure")
    view = catalogue.ProcedureView(Procedure(**{k: v for k, v in seed.items() if k not in ("fee_rule", "documents")},
                                             version=1), seed.get("fee_rule", {}), seed.get("documents", []))
    return {"code": code, "version": 1, "name_vi": seed["name_vi"]}, view.documents, view.fee_for()


def _text(value: str | None, name: str, limit: int, required: bool = False) -> str:
    value = nfc(value or "")
    if required and not value:
        raise HubError(f"{name} is required", code="invalid_field")
    if len(value) > limit:
        raise HubError(f"{name} is longer than {limit} characters", code="invalid_field")
    return value


def submit_dossier(hub, *, unit_code: str, procedure_code: str, applicant_name: str, id_number: str,
                   birth_date: str = "", address: str = "", phone: str = "", email: str = "",
                   matter: str = "", attachments: list[tuple[str, bytes, str]] | None = None,
                   before_write: Callable[[], None] | None = None) -> dict[str, Any]:
    """Register an online dossier at the hub for `unit_code`; returns {"id", "code", "warnings"}.

    `attachments` are already checked scans (filename, bytes, MIME): each is stored in the hub's file
    store and recorded as an attachment of the dossier, so the commune's node downloads it. `before_write`
    runs first inside the transaction (the public page's rate limit); whatever it raises rolls it all back,
    and files written for a write that failed are removed again.
    """
    if unit_code not in hub.storage.units_served():
        raise HubError(f"no enrolled node receives unit {unit_code}; enroll the commune's node first",
                       code="unknown_unit")
    now = hub.now()
    name = _text(applicant_name, "the applicant's name", 120, required=True)
    birth = None
    if birth_date:
        try:
            birth = datetime.strptime(birth_date.strip(), "%Y-%m-%d").date()
        except ValueError:
            raise HubError("the birth date must look like YYYY-MM-DD", code="invalid_field") from None
    check = check_id_number(id_number or "", birth)
    if not check.ok:
        raise HubError(" ".join(ID_MESSAGES["en"][k] for k in check.errors), code="invalid_id_number")
    proc, documents, fee = _procedure(procedure_code.strip(), now.date())
    dossier_id = new_id()
    written: list[str] = []
    try:
        code = _write(hub, dossier_id, unit_code, proc, documents, fee, name, check.number, birth, address, phone,
                      email, matter, attachments or [], before_write, written)
    except BaseException:
        for sha in written:
            discard_blob(hub.files, sha)
        raise
    return {"id": dossier_id, "code": code, "warnings": [ID_MESSAGES["en"][k] for k in check.warnings]}


def _write(hub, dossier_id, unit_code, proc, documents, fee, name, id_number, birth, address, phone, email, matter,
           attachments, before_write, written: list[str]) -> str:
    storage, now = hub.storage, hub.now()
    with storage.transaction():
        if before_write is not None:
            before_write()
        prefix = dossier_code_prefix(unit_code, now)
        top = (Dossier.select(Dossier.code).where(Dossier.code.startswith(prefix))
               .order_by(Dossier.code.desc()).limit(1).scalar())
        code = f"{prefix}{int(top[len(prefix):]) + 1 if top else 1:04d}"
        fields = {
            "code": code, "unit_code": unit_code, "procedure_code": proc["code"],
            "procedure_version": proc["version"], "channel": ONLINE, "status": NEW, "step": "reception",
            "applicant_name": name, "applicant_folded": fold(name), "applicant_id_number": id_number,
            "applicant_birth_date": birth.isoformat() if birth else "",
            "applicant_address": _text(address, "the address", 300), "applicant_phone": _text(phone, "the phone", 20),
            "applicant_email": _text(email, "the email", 120), "matter": _text(matter, "the matter", 500)
            or proc["name_vi"], "sets": 1, "return_method": "online", "received_at": to_text(now),
            "received_by": "", "appointment_at": "", "step_deadline": "", "fee_amount": fee,
        }
        storage.write_change("dossier", dossier_id, "create", {"fields": fields}, author="hub")
        for i, doc in enumerate(documents):
            storage.write_change("document", new_id(), "create", {"fields": {
                "dossier_id": dossier_id, "position": i, "name": doc.get("name_vi") or doc.get("name", ""),
                "copy_kind": doc.get("copy_kind", "photocopy"), "count": doc.get("count", 1),
                "digitised": "none"}}, author="hub")
        event = {"at": to_text(now), "by_user": "", "by_name": name, "unit": hub.identity.name, "note":
                 "Nộp trực tuyến qua hệ thống của huyện", "step_deadline": ""}
        storage.write_change("dossier", dossier_id, "action", {"action": "register", "set": {}, "event": event},
                             author="hub")
        for filename, data, mime in attachments:
            sha, fresh = store_blob(hub.files, data)
            if fresh:
                written.append(sha)
            storage.write_change("attachment", new_id(), "create", {"fields": {
                "dossier_id": dossier_id, "document_id": "", "sha256": sha,
                "filename": nfc(Path(filename.replace("\\", "/")).name)[:200] or "scan", "mime": mime,
                "size": len(data), "uploaded_by": "", "uploaded_at": to_text(now)}}, author="hub")
    return code


__all__ = ["submit_dossier", "dossier_code_prefix"]
