"""The district administrator's decisions on conflicts and possible duplicates, for every commune.

The hub holds the Conflict and DuplicateFlag rows its merge derived from every node's changes (the same
`node.sync` code as the nodes). A decision is one change signed by the hub and written with
`storage.write_change`, so it is scoped, pulled by the commune's nodes and applied there like any change:

    conflict.resolve   {dossier_id, unit, covers, choice, set?, base?, by_name, at}   (node.sync.conflicts)
    duplicate.review   {dossier_ids, unit, decision, note, by_name, at}

Before writing a resolution the hub's signing clock observes the HLC of every candidate version it covers:
a commune's clock may run ahead of the hub's, and a "take that" or "enter a new value" written with an
earlier HLC than the values it settles would lose to them by last-writer-wins.

Only hub users with the "admin" role decide. Refusals raise ReviewRefused (a HubError: 422, or 403/404/409
as named) with a Vietnamese and an English message and the form field at fault; nothing is written then.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context

from node import reviews as node_reviews
from node.errors import ValidationFailed
from node.sync import conflicts
from node.sync.state import Dossier
from node.timeutil import to_text

from .errors import HubError
from .i18n import lang

ADMIN_ROLE = "admin"


class ReviewRefused(HubError):
    """A decision that cannot be recorded; `field` names the form field at fault."""

    http_status = 422
    code = "review_refused"

    def __init__(self, vi: str, en: str, *, field: str = "", status: int | None = None, code: str | None = None):
        Exception.__init__(self, en)
        self.vi, self.en, self.field = vi, en, field
        if status is not None:
            self.http_status = status
        if code:
            self.code = code

    @property  # type: ignore[override]
    def message(self) -> str:
        """In the administrator's language (English outside a request)."""
        return self.vi if has_request_context() and lang() == "vi" else self.en


def _check_admin(user: dict[str, Any] | None) -> dict[str, Any]:
    roles = (user or {}).get("roles", "") or ""
    if user is None or ADMIN_ROLE not in roles.split(","):
        raise ReviewRefused("Chỉ quản trị viên của huyện được quyết định.", "Only a district administrator decides.",
                            status=403, code="forbidden")
    return user


def units(hub) -> list[dict[str, str]]:
    """The communes to filter by: every enrolled node's unit, and any unit a conflict names."""
    found: dict[str, str] = {}
    for n in hub.storage.nodes():
        if n["kind"] != "hub" and n.get("unit_code"):
            found.setdefault(n["unit_code"], n.get("unit_name") or n["unit_code"])
    for item in conflicts.listing(None, resolved=None, limit=1000):
        found.setdefault(item["unit_code"], item["unit_code"])
    return [{"code": code, "name": name} for code, name in sorted(found.items(), key=lambda kv: kv[1])]


def counts(unit: str | None = None) -> dict[str, int]:
    """Open conflicts and unreviewed possible duplicates, of one commune or of all."""
    return node_reviews.counts([unit] if unit else None)


def listing(unit: str | None, resolved: bool | None, lang_code: str = "vi", limit: int = 200) -> list[dict[str, Any]]:
    """Conflicts (of one commune, or all), newest first, with field labels."""
    rows = conflicts.listing([unit] if unit else None, resolved=resolved, limit=limit)
    for r in rows:
        r["label"] = node_reviews.field_label(r["field"], lang_code)
    return rows


def shown(conflict_id: str, lang_code: str = "vi") -> tuple[dict[str, Any], Dossier | None]:
    """One conflict ready to show (candidates with their node's unit name), and its dossier if held here."""
    item = conflicts.get(conflict_id) if isinstance(conflict_id, str) and len(conflict_id) <= 300 else None
    if item is None:
        raise ReviewRefused("Không tìm thấy xung đột này.", "No such conflict.", status=404, code="not_found")
    d = Dossier.get_or_none(Dossier.id == item["dossier_id"])
    return node_reviews.present(item, d, lang_code), d


def signing_clock(hub):
    """The clock the hub's changes are signed with (the storage's signer's; the Hub's own otherwise)."""
    signer = getattr(hub.storage, "signer", None)
    return signer.clock if signer is not None else hub.clock


def _author(user: dict[str, Any]) -> str:
    return f"hub:{user['username']}"


def resolve_conflict(hub, user: dict[str, Any] | None, conflict_id: str, choice: str, take: str | None = None,
                     value: Any = None) -> dict[str, Any]:
    """Record the administrator's decision on an open conflict as one hub-signed change; returns it."""
    user = _check_admin(user)
    if choice not in conflicts.CHOICES:
        raise ReviewRefused(node_reviews.CHOOSE, "Choose: keep this, take that, or enter a new value.",
                            field="choice")
    storage = hub.storage
    with storage.transaction():
        item, _ = shown(conflict_id)
        if item["resolved"]:
            raise ReviewRefused("Xung đột này đã được giải quyết.", "This conflict is already settled.",
                                status=409, code="already_resolved")
        if choice == "new" and item["kind"] == "field":
            try:
                value = node_reviews.check_new_value(item["field"], value)
            except ValidationFailed as exc:
                message = exc.fields.get("value", exc.vi)
                raise ReviewRefused(message, _english(message), field="value") from None
        try:
            entity, entity_id, op, payload = conflicts.resolution(
                conflict_id, choice, take=take if isinstance(take, str) else None, value=value)
        except conflicts.ResolutionInvalid as exc:
            raise ReviewRefused(exc.vi, exc.en, field=exc.field) from None
        payload.update(by_name=user.get("full_name") or user["username"], at=to_text(hub.now()))
        node_reviews.observe_versions(signing_clock(hub), payload["covers"])
        return storage.write_change(entity, entity_id, op, payload, author=_author(user))


def duplicates(unit: str | None, reviewed: bool | None) -> list[dict[str, Any]]:
    """Possible duplicates touching one commune (or all), both dossiers with their receiving node."""
    return node_reviews.duplicates([unit] if unit else None, reviewed=reviewed)


def duplicate(flag_id: str) -> dict[str, Any]:
    item = node_reviews.duplicate(flag_id, None) if isinstance(flag_id, str) and len(flag_id) <= 300 else None
    if item is None:
        raise ReviewRefused("Không tìm thấy cặp hồ sơ này.", "No such pair of dossiers.", status=404,
                            code="not_found")
    return item


def review_duplicate(hub, user: dict[str, Any] | None, flag_id: str, decision: str, note: str = "") -> dict[str, Any]:
    """Record the administrator's review of a possible duplicate as one hub-signed change; returns it."""
    user = _check_admin(user)
    storage = hub.storage
    with storage.transaction():
        duplicate(flag_id)
        try:
            entity, entity_id, op, payload = conflicts.review(flag_id, decision,
                                                              note.strip() if isinstance(note, str) else note)
        except conflicts.ResolutionInvalid as exc:
            raise ReviewRefused(exc.vi, exc.en, field=exc.field) from None
        payload.update(by_name=user.get("full_name") or user["username"], at=to_text(hub.now()))
        return storage.write_change(entity, entity_id, op, payload, author=_author(user))


def _english(message: str) -> str:
    from node.errors import field_message

    return field_message(message, "en")
