"""Hub users and their roles: hub administrator, district/province specialist and leader.

    admin        the hub's administrator: nodes, enrollment tokens, conflicts, users, the audit view
    specialist   a specialist of a district/province agency: processes transferred (interconnected) dossiers
    leader       a leader of such an agency: the same, and the agency's decisions

A user holds one or more roles (comma-separated in HubUser.roles). A specialist or leader belongs to one
agency (HubUser.agency, a code of `node.workflow.AGENCIES`: district, province, police, social_insurance)
and sees and acts only on the dossiers sent to it (`visible_agencies`, `acting_agencies`). An administrator
needs no agency: they see every agency's dossiers and, when they also hold specialist or leader without an
agency, act for every agency (a hub-wide administrator; the behaviour of every user before agencies were
tied to users). A specialist or leader without an agency who is not an administrator (an upgraded hub's
older user) sees and does nothing at the agencies until an administrator sets the agency on *Người dùng*.

A deactivated user keeps the row (the
audit trail names them) with its password hash locked by a leading "!", the classic way of locking an
account: no password verifies against it, and `load_user` drops a session of a locked user.
Passwords are argon2id (central/instance.py), as on the nodes.
"""

from __future__ import annotations

from typing import Any

from node.workflow import AGENCIES

from .errors import HubError
from .instance import hash_password
from .models import HubUser

ROLES: dict[str, tuple[str, str]] = {
    "admin": ("Quản trị trung tâm", "Hub administrator"),
    "specialist": ("Chuyên viên cấp huyện/tỉnh", "District/province specialist"),
    "leader": ("Lãnh đạo cấp huyện/tỉnh", "District/province leader"),
}
ACTORS = ("specialist", "leader")  # the roles that act for an agency
LOCK = "!"
MIN_PASSWORD = 8


class UserInvalid(HubError):
    """A hub user form or command with bad values; `fields` names each bad field (Vietnamese)."""

    http_status = 422
    code = "invalid_user"

    def __init__(self, message: str, fields: dict[str, str]):
        super().__init__(message)
        self.fields = fields


def roles_of(user: dict[str, Any] | None) -> set[str]:
    """The roles of a hub user row (empty for None)."""
    if not user:
        return set()
    return {r for r in (user.get("roles") or "").split(",") if r}


def is_active(user: dict[str, Any] | None) -> bool:
    """Whether the user may log in (exists and is not locked)."""
    return bool(user) and not (user.get("password_hash") or "").startswith(LOCK)


def clean_username(username: str) -> str:
    return (username or "").strip().lower()


def agency_of(user: dict[str, Any] | None) -> str:
    """The agency code a hub user acts for ("" for none)."""
    return (user or {}).get("agency") or ""


def visible_agencies(user: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The agencies whose dossiers the user may see: None for every agency (an administrator, a hub-wide
    actor), one agency for its specialist or leader, none otherwise."""
    roles = roles_of(user)
    if "admin" in roles:
        return None
    agency = agency_of(user)
    return (agency,) if roles.intersection(ACTORS) and agency in AGENCIES else ()


def acting_agencies(user: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The agencies the user may act for (receive, return results): None for every agency (an
    administrator who is also a specialist or leader and has no agency), one agency for a specialist or
    leader of that agency, none for anyone else."""
    roles = roles_of(user)
    if not roles.intersection(ACTORS):
        return ()
    agency = agency_of(user)
    if agency:
        return (agency,) if agency in AGENCIES else ()
    return None if "admin" in roles else ()


def agency_label(code: str, lang: str = "vi") -> str:
    names = AGENCIES.get(code)
    return (names[1] if lang == "en" else names[0]) if names else ""


def check_agency(roles: list[str], agency: str) -> dict[str, str]:
    """Errors of a user's agency for these roles (empty when valid)."""
    if agency and agency not in AGENCIES:
        return {"agency": "Không có cơ quan này; chọn một cơ quan trong danh sách."}
    actor = bool(set(roles).intersection(ACTORS))
    if agency and not actor:
        return {"agency": "Chỉ chuyên viên hoặc lãnh đạo mới thuộc một cơ quan."}
    if actor and not agency and "admin" not in roles:
        return {"agency": "Chuyên viên, lãnh đạo phải thuộc một cơ quan (trừ quản trị trung tâm)."}
    return {}


def check_fields(username: str, full_name: str, roles: list[str], password: str | None,
                 agency: str = "") -> dict[str, str]:
    """Errors of a new user's values, by field (empty when valid). `password` None: not being set."""
    errors: dict[str, str] = {}
    if not username or len(username) > 40 or not username.replace(".", "").replace("_", "").isalnum():
        errors["username"] = "Tên đăng nhập chỉ gồm chữ, số, dấu chấm, gạch dưới (tối đa 40 ký tự)."
    if not full_name.strip() or len(full_name) > 120:
        errors["full_name"] = "Cần nhập họ và tên (tối đa 120 ký tự)."
    if not roles or any(r not in ROLES for r in roles):
        errors["roles"] = "Chọn ít nhất một vai trò hợp lệ."
    if password is not None and not MIN_PASSWORD <= len(password) <= 200:
        errors["password"] = f"Mật khẩu từ {MIN_PASSWORD} đến 200 ký tự."
    if "roles" not in errors:
        errors.update(check_agency(roles, agency))
    return errors


def add_user(storage, username: str, full_name: str, roles: list[str], password: str,
             agency: str = "") -> dict[str, Any]:
    """Create a hub user (a specialist or leader with the agency they act for); raises UserInvalid
    (nothing written) on bad values, an unknown agency or an existing username."""
    username = clean_username(username)
    agency = (agency or "").strip()
    roles = sorted(set(roles), key=list(ROLES).index) if all(r in ROLES for r in roles) else roles
    errors = check_fields(username, full_name, roles, password, agency)
    if not errors and storage.user(username) is not None:
        errors["username"] = "Tên đăng nhập này đã có."
    if errors:
        raise UserInvalid("Thông tin người dùng chưa hợp lệ.", errors)
    pw_hash = hash_password(password)  # slow on purpose: outside the write lock
    with storage.transaction():  # the row and its agency together, or nothing
        if storage.user(username) is not None:  # added meanwhile by another process: never overwritten
            raise UserInvalid("Thông tin người dùng chưa hợp lệ.", {"username": "Tên đăng nhập này đã có."})
        storage.add_user(username, full_name.strip(), pw_hash, ",".join(roles))
        if agency:
            HubUser.update(agency=agency).where(HubUser.username == username).execute()
    return storage.user(username)


def set_agency(storage, username: str, agency: str) -> dict[str, Any]:
    """Tie a user to an agency ("" to untie an administrator); raises UserInvalid (nothing written) when
    there is no such user or the agency is unknown or does not fit the user's roles."""
    user = storage.user(clean_username(username))
    if user is None:
        raise UserInvalid("Không có người dùng này.", {"username": "Không có người dùng này."})
    agency = (agency or "").strip()
    errors = check_agency(sorted(roles_of(user)), agency)
    if errors:
        raise UserInvalid("Cơ quan chưa hợp lệ.", errors)
    if agency != agency_of(user):
        with storage.transaction():
            HubUser.update(agency=agency).where(HubUser.username == user["username"]).execute()
    return storage.user(user["username"])


def set_active(storage, username: str, active: bool) -> dict[str, Any]:
    """Lock or unlock a user's login; raises UserInvalid when there is no such user."""
    user = storage.user(clean_username(username))
    if user is None:
        raise UserInvalid("Không có người dùng này.", {"username": "Không có người dùng này."})
    pw_hash = user["password_hash"]
    new = pw_hash.lstrip(LOCK) if active else (pw_hash if pw_hash.startswith(LOCK) else LOCK + pw_hash)
    if new != pw_hash:
        storage.add_user(user["username"], user["full_name"], new, user["roles"])
    return storage.user(user["username"])


def users() -> list[dict[str, Any]]:
    """Every hub user (without the hash), by username."""
    rows = HubUser.select().order_by(HubUser.username).dicts()
    return [{"username": r["username"], "full_name": r["full_name"], "roles": sorted(roles_of(r)),
             "active": is_active(r), "agency": r.get("agency") or "",
             "actor": bool(roles_of(r).intersection(ACTORS)), "acts_for": acting_agencies(r)} for r in rows]


class RoleRefused(HubError):
    """A logged-in hub user whose roles do not include what a page needs."""

    http_status = 403
    code = "forbidden"
