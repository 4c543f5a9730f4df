"""Vietnamese first, English on request, for the hub's pages (the node's node/web/i18n.py habit).

Templates write Vietnamese and wrap it in `_()`; English comes from `EN`; `?lang=en|vi` switches and is
remembered in the session.
"""

from __future__ import annotations

from flask import g, request, session

LANGS = ("vi", "en")

EN: dict[str, str] = {
    "Trung tâm đồng bộ": "Sync hub",
    "Đăng nhập": "Log in",
    "Đăng xuất": "Log out",
    "Tên đăng nhập": "Username",
    "Mật khẩu": "Password",
    "Sai tên đăng nhập hoặc mật khẩu.": "Wrong username or password.",
    "Vui lòng đăng nhập.": "Please log in.",
    "Các nút": "Nodes",
    "Mã đăng ký": "Enrollment tokens",
    "Đơn vị": "Unit",
    "Loại": "Kind",
    "Lần cuối liên lạc": "Last seen",
    "Số thứ tự đã nhận": "Acknowledged seq",
    "Thay đổi chờ gửi": "Backlog",
    "Lệch đồng hồ": "Clock skew",
    "Phiên bản": "Software version",
    "Trạng thái": "Status",
    "Hoạt động": "Active",
    "Cách ly": "Quarantined",
    "Đã thu hồi": "Revoked",
    "Thu hồi": "Revoke",
    "Thu hồi khóa của nút này? Nút sẽ không thể đồng bộ nữa.": "Revoke this node's key? It will no longer sync.",
    "Chưa có nút nào đăng ký.": "No node is enrolled yet.",
    "Chưa bao giờ": "Never",
    "lệch hơn 5 phút": "more than 5 minutes off",
    "Cảnh báo xung đột nhật ký (fork)": "Change-log fork alert",
    "Nút {node} có hai phiên bản khác nhau của thay đổi số {seq} (phát hiện lúc {at}).":
        "Node {node} has two different versions of change {seq} (detected {at}).",
    "Xem hai phiên bản": "View both versions",
    "Xung đột nhật ký #{id}": "Change-log fork #{id}",
    "Phiên bản hub đang giữ": "Version held by the hub",
    "Phiên bản vừa gửi lên": "Version just pushed",
    "Nút đã bị cách ly: hub từ chối các thay đổi mới của nút cho đến khi quản trị viên xem xét. "
    "Hãy cài lại nút với khóa mới (đăng ký lại) sau khi đối chiếu hai phiên bản.":
        "The node is quarantined: the hub refuses its new changes until an administrator has reviewed it. "
        "Re-install the node with a new key (enroll again) once both versions have been compared.",
    "Tạo mã đăng ký": "Create an enrollment token",
    "Mã đơn vị (cách nhau bởi dấu phẩy)": "Unit codes (comma separated)",
    "Xã": "Commune",
    "Máy tính xách tay": "Field laptop",
    "Hiệu lực (giờ)": "Valid for (hours)",
    "Tạo mã": "Create token",
    "Mã đăng ký mới (chỉ hiển thị một lần, hãy sao chép ngay):":
        "New enrollment token (shown only once, copy it now):",
    "Trên máy của xã, chạy:": "On the commune's machine, run:",
    "Các mã đã tạo": "Tokens created",
    "Tạo lúc": "Created",
    "Hết hạn": "Expires",
    "Đã dùng": "Used",
    "Chưa dùng": "Not used",
    "Phạm vi": "Scope",
    "Cần ít nhất một mã đơn vị hợp lệ.": "Give at least one valid unit code.",
    "Mã cho một xã chỉ được có một đơn vị.": "A commune token covers exactly one unit.",
    "Thời hạn từ 1 đến 720 giờ.": "Validity from 1 to 720 hours.",
    "Đã thu hồi nút {node}.": "Node {node} revoked.",
    "Không tìm thấy trang.": "Page not found.",
    "Phiên làm việc đã hết hạn, vui lòng thử lại.": "Your session expired; please try again.",
    "Đã có lỗi, vui lòng thử lại.": "Something went wrong; please try again.",
    "Quay lại": "Back",
    "Lỗi": "Error",
    "Mã nút": "Node id",
    "đang chờ": "waiting",
}


def lang() -> str:
    return getattr(g, "lang", "vi")


def gettext(text: str, **params) -> str:
    out = EN.get(text, text) if lang() == "en" else text
    return out.format(**params) if params else out


def pick_language() -> None:
    """Before each request: ?lang= switches and is remembered; otherwise the session's, else Vietnamese."""
    wanted = request.args.get("lang")
    if wanted in LANGS:
        session["lang"] = wanted
    g.lang = session.get("lang") if session.get("lang") in LANGS else "vi"
