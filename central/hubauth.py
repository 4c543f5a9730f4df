"""Hub users and their roles: hub administrator, district/province specialist and leader.

    admin        the hub's administrator: nodes, enrollment tokens, conflicts, users, the audit view
    specialist   a specialist of a district/province agency: processes transferred (interconnected) dossiers
    leader       a leader of such an agency: the same, and the agency's decisions

A user holds one or more roles (comma-separated in HubUser.roles). A deactivated user keeps the row (the
audit trail names them) with its password hash locked by a leading "!", the classic way of locking an
account: no password verifies against it, and `load_user` drops a session of a locked user.
Passwords are argon2id (central/instance.py), as on the nodes.
"""

from __future__ import annotations

from typing import Any

from .errors import HubError
from .instance import hash_password
from .models import HubUser

ROLES: dict[str, tuple[str, str]] = {
    "admin": ("Quản trị trung tâm", "Hub administrator"),
    "specialist": ("Chuyên viên cấp huyện/tỉnh", "District/province specialist"),
    "leader": ("Lãnh đạo cấp huyện/tỉnh", "District/province leader"),
}
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


def check_fields(username: str, full_name: str, roles: list[str], password: str | None) -> dict[str, str]:
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
    return errors


def add_user(storage, username: str, full_name: str, roles: list[str], password: str) -> dict[str, Any]:
    """Create a hub user; raises UserInvalid (nothing written) on bad values or an existing username."""
    username = clean_username(username)
    roles = sorted(set(roles), key=list(ROLES).index) if all(r in ROLES for r in roles) else roles
    errors = check_fields(username, full_name, roles, password)
    if not errors and storage.user(username) is not None:
        errors["username"] = "Tên đăng nhập này đã có."
    if errors:
        raise UserInvalid("Thông tin người dùng chưa hợp lệ.", errors)
    storage.add_user(username, full_name.strip(), hash_password(password), ",".join(roles))
    return storage.user(username)


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
             "active": is_active(r)} for r in rows]


class RoleRefused(HubError):
    """A logged-in hub user whose roles do not include what a page needs."""

    http_status = 403
    code = "forbidden"
