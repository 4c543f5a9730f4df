"""One-time enrollment tokens: made by a district administrator, spent by `motcua node enroll`."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from .errors import HubError

KINDS = ("commune", "laptop")
UNIT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EXPIRY_RE = re.compile(r"^(\d{1,4})\s*([mhd])$")
MAX_EXPIRY = timedelta(days=30)


def parse_expiry(text: str) -> timedelta:
    """`30m`, `24h`, `7d` -> a timedelta (at most 30 days)."""
    match = EXPIRY_RE.match((text or "").strip().lower())
    if not match:
        raise HubError(f"expiry {text!r} is not like 30m, 24h or 7d", code="bad_expiry")
    value, unit = int(match.group(1)), match.group(2)
    delta = {"m": timedelta(minutes=value), "h": timedelta(hours=value), "d": timedelta(days=value)}[unit]
    if not timedelta(0) < delta <= MAX_EXPIRY:
        raise HubError("a token is valid for at least one minute and at most 30 days", code="bad_expiry")
    return delta


def parse_scope(text: str, kind: str) -> list[str]:
    """`UNIT[,UNIT2]` -> unit codes; a commune token names exactly one unit."""
    if kind not in KINDS:
        raise HubError(f"kind must be one of {', '.join(KINDS)}", code="bad_kind")
    units = [u.strip() for u in (text or "").split(",") if u.strip()]
    if not units or not all(UNIT_RE.match(u) for u in units):
        raise HubError("give at least one unit code (letters, digits, dots, dashes)", code="bad_scope")
    if kind == "commune" and len(units) != 1:
        raise HubError("a commune token covers exactly one unit; use --kind laptop for several", code="bad_scope")
    return list(dict.fromkeys(units))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(hub, scope: list[str], kind: str = "commune", valid_for: timedelta = timedelta(hours=24)) -> str:
    """Store a new token (by its hash) and return it: the only time the token itself exists."""
    token = secrets.token_urlsafe(24)
    now = hub.now()
    hub.storage.add_token(token_hash(token), scope, kind, now=now, expires_at=now + valid_for)
    return token
