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

# Conflicts and possible duplicates (central/review_views.py).
EN.update({
    "Đã ghi nhận quyết định về xung đột.": "Your decision on the conflict is recorded.",
    "Đã ghi nhận kết quả xem xét.": "The review is recorded.",
    "trống": "empty",
    "Đã giải quyết": "Settled",
    "Chưa giải quyết": "Open",
    "Giá trị đang có trong hồ sơ": "Value in the dossier now",
    "Hai thao tác được làm cùng lúc trên cùng một trạng thái; chỉ một thao tác được áp dụng.":
        "Two actions were done at the same time on the same status; only one of them is applied.",
    "Giá trị": "Value",
    "Thao tác": "Action",
    "Người ghi": "Written by",
    "Nơi ghi": "Written at (node)",
    "Thời điểm": "When",
    "Áp dụng": "Applied",
    "Đang áp dụng": "Applied now",
    "Không được áp dụng": "Not applied",
    "Lấy giá trị này": "Take this value",
    "Đã quyết định": "Decided",
    "Giữ giá trị này": "Keep this",
    "Lấy giá trị kia": "Take that",
    "Nhập giá trị mới": "Enter a new value",
    "Giữ giá trị đang áp dụng": "Keep the applied value",
    "Xác nhận, giữ nguyên": "Acknowledge, keep as it is",
    "Ghi giá trị mới": "Write the new value",
    "Nếu thao tác không được áp dụng vẫn cần làm, cán bộ của xã làm lại thao tác đó trên hồ sơ.":
        "If the action that was not applied is still needed, an officer of the commune does it again on the dossier.",
    "Xung đột": "Conflicts",
    "Xung đột dữ liệu": "Data conflicts",
    "Trạng thái hồ sơ": "Dossier status",
    "Xung đột và hồ sơ trùng": "Conflicts and duplicates",
    "Có thể trùng hồ sơ": "Possible duplicates",
    ("Hai hồ sơ cùng số định danh cá nhân và cùng thủ tục được tiếp nhận ở hai nơi trong thời gian ngắn. Không "
     "hồ sơ nào bị gộp hay xoá: hãy xem và ghi nhận kết quả."):
        "Two dossiers with the same personal ID number and procedure were received at two places within a short "
        "time. Neither is merged or deleted: look at them and record what you find.",
    "Người nộp hồ sơ": "Applicant",
    "Ngày nhận": "Received",
    "Nơi tiếp nhận": "Received at",
    "Kết quả xem xét": "Review",
    "Hai hồ sơ khác nhau": "Two different dossiers",
    "Trùng hồ sơ": "Duplicate",
    "Trùng hồ sơ (một hồ sơ nộp hai lần)": "Duplicate (one dossier submitted twice)",
    "Kết luận": "Conclusion",
    "Ghi chú": "Note",
    "Ghi nhận": "Record",
    "Tất cả các xã": "All communes",
    "Lọc": "Filter",
    "Đang mở": "Open",
    "xung đột": "conflicts",
    "cặp hồ sơ có thể trùng": "possible duplicates",
    "Mã hồ sơ": "Dossier code",
    "Trường": "Field",
    "Các giá trị": "Values",
    "Xem và quyết định": "View and decide",
    "Xem": "View",
    "Không có xung đột nào.": "No conflicts.",
    "Hồ sơ": "Dossier",
    "Thủ tục": "Procedure",
    "Chưa xem xét": "Not reviewed",
    "Xem xét": "Review",
    "Không có cặp hồ sơ nào cần xem xét.": "No pairs of dossiers to review.",
})

# Indicators and the overdue watch (indicator_views.py, issue 6).
EN.update({
    "Bảng chỉ số theo đơn vị": "Figures by unit",
    "Bảng chỉ số": "Figures",
    "Chưa có thư xin lỗi": "No apology yet",
    "Chưa gửi": "Not issued",
    "Đã gửi": "Issued",
    "Chỉ số": "Indicators",
    "Chỉ số Quyết định 766": "Decision 766 indicators",
    "Danh sách": "List",
    "Danh sách không hợp lệ.": "Unknown list.",
    ("Hồ sơ đang giải quyết đã quá hạn hoặc đến hạn trong một ngày làm việc tới. Thư xin lỗi (mẫu 04) phải"
     " gửi chậm nhất một ngày làm việc trước hạn."):
        ("Dossiers in progress that are overdue or due within the next working day. The apology (form 04) must"
         " be issued at least one working day before the deadline."),
    "Không có hồ sơ nào.": "No dossiers.",
    "Không có đơn vị nào.": "No units.",
    "Kết quả giải quyết": "Processing results",
    "Ngày giải quyết xong": "Finished on",
    "Ngày hẹn trả": "Appointment",
    "Quá hạn": "Overdue",
    "Sắp đến hạn": "Due soon",
    "Số liệu tính lúc {at}.": "Computed at {at}.",
    "Theo dõi hồ sơ quá hạn": "Overdue watch",
    "Thư xin lỗi (mẫu 04)": "Apology (form 04)",
    "Toàn bộ trung tâm": "The whole hub",
    "Trang": "Page",
    "Trang sau": "Next page",
    "Trang trước": "Previous page",
    "Tình trạng": "Situation",
    "Tổng cộng": "Total",
    "Tổng điểm (/82)": "Score (/82)",
    "Từ ngày": "From",
    "Đến ngày": "To",
    "Trước hạn": "Early",
    "Đúng hạn": "On time",
    "Trễ hạn": "Late",
    "Tỷ lệ giải quyết đúng hạn theo đơn vị": "On-time rate by unit",
    "Tỷ lệ hài lòng": "Satisfaction",
    "Tỷ lệ kết quả điện tử": "Electronic result share",
    "Tỷ lệ số hóa hồ sơ": "Digitised share",
    "Tỷ lệ thanh toán trực tuyến": "Online payment share",
    "Tỷ lệ trực tuyến": "Online share",
    "Tỷ lệ đúng hạn": "On-time rate",
    "Xuất CSV": "Export CSV",
    "Xuất Excel (XLSX)": "Export Excel (XLSX)",
    "chờ bổ sung": "waiting for a supplement",
    "giấy tờ đã số hóa": "documents digitised",
    "hẹn ban đầu": "first appointment",
    "hồ sơ": "dossiers",
    "không hài lòng": "not satisfied",
    "một phần": "partial",
    "quá hạn": "overdue",
    "toàn trình": "full",
    "trước hạn": "early",
    "trễ hạn": "late",
    "tái sử dụng": "reused",
    "Đang giải quyết": "In progress",
    "Điểm theo nhóm chỉ số": "Points by group",
    "đúng hạn": "on time",
})


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
