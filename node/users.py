"""Officers, their roles and passwords (argon2id)."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from . import store
from .errors import NotFound, ValidationFailed
from .instance import Node
from .sync.ids import new_id
from .sync.state import User

ROLES = {
    "reception": ("Cán bộ một cửa", "Reception officer"),
    "specialist": ("Chuyên viên", "Specialist"),
    "leader": ("Lãnh đạo ký duyệt", "Signing leader"),
    "admin": ("Quản trị xã", "Commune administrator"),
}
# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 0.1 s per login on a commune
# PC instead of ~0.8 s with the library's defaults; hashes made with other parameters still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY = _hasher.hash("motcua-timing-equaliser")


@dataclass(frozen=True)
class Officer:
    id: str
    username: str
    full_name: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @classmethod
    def of(cls, row: User) -> "Officer":
        return cls(row.id, row.username, row.full_name, frozenset(r for r in row.roles.split(",") if r))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_fields(username: str, full_name: str, roles: list[str], password: str | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not username or not username.replace(".", "").replace("_", "").isalnum() or len(username) > 40:
        errors["username"] = "Tên đăng nhập chỉ gồm chữ, số, dấu chấm, gạch dưới (tối đa 40 ký tự)."
    if not full_name.strip():
        errors["full_name"] = "Cần nhập họ và tên."
    if not roles or any(r not in ROLES for r in roles):
        errors["roles"] = "Chọn ít nhất một vai trò hợp lệ."
    if password is not None and len(password) < 8:
        errors["password"] = "Mật khẩu cần ít nhất 8 ký tự."
    return errors


def create_user(node: Node, username: str, full_name: str, roles: list[str], password: str, author: str = "") -> str:
    """Add an officer (inside its own transaction); returns the user id."""
    username = username.strip().lower()
    errors = _check_fields(username, full_name, roles, password)
    unit = node.identity.unit_code
    if not errors and User.select().where((User.username == username) & (User.unit_code == unit)).exists():
        errors["username"] = "Tên đăng nhập đã có."
    if errors:
        raise ValidationFailed("Thông tin người dùng chưa hợp lệ.", "The user details are not valid.", fields=errors)
    user_id = new_id()
    fields = {
        "username": username,
        "full_name": full_name.strip(),
        "roles": ",".join(sorted(roles)),
        "password_hash": hash_password(password),
        "active": 1,
        "unit_code": node.identity.unit_code,
    }
    with store.transaction(node):
        store.write(node, "user", user_id, "create", {"fields": fields}, author)
    return user_id


def update_user(node: Node, user_id: str, *, full_name: str | None = None, roles: list[str] | None = None,
                active: bool | None = None, password: str | None = None, author: str = "") -> None:
    row = User.get_or_none(User.id == user_id)
    if row is None:
        raise NotFound("Không tìm thấy người dùng.", "No such user.")
    errors = _check_fields(row.username, full_name if full_name is not None else row.full_name,
                           roles if roles is not None else row.roles.split(","), password)
    if errors:
        raise ValidationFailed("Thông tin người dùng chưa hợp lệ.", "The user details are not valid.", fields=errors)
    changes: dict[str, object] = {}
    if full_name is not None:
        changes["full_name"] = full_name.strip()
    if roles is not None:
        changes["roles"] = ",".join(sorted(roles))
    if active is not None:
        changes["active"] = 1 if active else 0
    if password:
        changes["password_hash"] = hash_password(password)
    if changes:
        with store.transaction(node):
            store.write(node, "user", user_id, "update", {"set": changes}, author)


def authenticate(username: str, password: str, unit_code: str | None = None) -> Officer | None:
    """The officer if the password matches an active account (of `unit_code`, when given); None otherwise."""
    query = User.username == username.strip().lower()
    if unit_code is not None:
        query &= User.unit_code == unit_code
    row = User.get_or_none(query)
    if row is None or not row.active:
        try:
            _hasher.verify(_DUMMY, password + "x")
        except VerifyMismatchError:
            pass
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    return Officer.of(row)


def get_officer(user_id: str) -> Officer | None:
    row = User.get_or_none((User.id == user_id) & (User.active == 1))
    return Officer.of(row) if row else None


def officers_with(role: str) -> list[User]:
    return [u for u in User.select().where(User.active == 1).order_by(User.full_name) if role in u.roles.split(",")]
