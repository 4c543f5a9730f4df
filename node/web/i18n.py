"""Vietnamese first, English on request.

Templates and views write Vietnamese text and wrap it in `_()`; English comes from `EN` below, and a
string with no English twin shows in Vietnamese. The language lives in the session (`?lang=en|vi`).
"""

from __future__ import annotations

from flask import g, request, session

LANGS = ("vi", "en")

EN: dict[str, str] = {
    "Một cửa": "One-stop shop",
    "Đăng nhập": "Log in",
    "Đăng xuất": "Log out",
    "Tên đăng nhập": "Username",
    "Mật khẩu": "Password",
    "Sai tên đăng nhập hoặc mật khẩu.": "Wrong username or password.",
    "Đăng nhập sai quá nhiều lần, hãy thử lại sau ít phút.": "Too many failed logins; try again in a few minutes.",
    "Vui lòng đăng nhập.": "Please log in.",
    "Quầy tiếp nhận": "Counter",
    "Tiếp nhận hồ sơ": "Receive a dossier",
    "Danh sách công việc": "Worklists",
    "Của tôi": "Mine",
    "Sắp đến hạn": "Due soon",
    "Quá hạn": "Overdue",
    "Chờ bổ sung": "Waiting for a supplement",
    "Mới đăng ký trực tuyến": "Newly registered online",
    "Tất cả đang xử lý": "All in progress",
    "Tìm kiếm": "Search",
    "Sổ theo dõi": "Ledger",
    "Người dùng": "Users",
    "Lịch làm việc": "Work calendar",
    "Quản trị": "Administration",
    "Tra cứu hồ sơ": "Look up a dossier",
    "Thủ tục hành chính": "Procedure",
    "Tìm thủ tục theo tên hoặc mã": "Find a procedure by name or code",
    "Người nộp hồ sơ": "Applicant",
    "Họ và tên": "Full name",
    "Số định danh cá nhân (CCCD)": "Personal ID number (CCCD)",
    "Ngày sinh": "Date of birth",
    "Giới tính": "Gender",
    "Nam": "Male",
    "Nữ": "Female",
    "Địa chỉ": "Address",
    "Điện thoại": "Phone",
    "Thư điện tử": "Email",
    "Chủ hồ sơ (nếu khác người nộp)": "Dossier owner (if not the applicant)",
    "Nội dung yêu cầu": "Requested matter",
    "Số bộ hồ sơ": "Number of sets",
    "Số trang (tính phí chứng thực)": "Pages (for certification fees)",
    "Nơi nhận kết quả": "Where the result is collected",
    "Giấy tờ trong hồ sơ": "Documents in the dossier",
    "Tên giấy tờ": "Document",
    "Loại bản": "Copy kind",
    "Số lượng": "Count",
    "Số hóa": "Digitisation",
    "Có": "Yes",
    "Tệp đính kèm (PDF, JPEG, PNG)": "Attached scans (PDF, JPEG, PNG)",
    "Tiếp nhận và in phiếu hẹn": "Receive and print the receipt",
    "Mã hồ sơ": "Dossier code",
    "Trạng thái": "Status",
    "Ngày nhận": "Received",
    "Ngày hẹn trả": "Appointment",
    "Hạn": "Deadline",
    "Người xử lý": "Handler",
    "Không có hồ sơ nào.": "No dossiers.",
    "Tiến trình xử lý": "Timeline",
    "Thao tác": "Actions",
    "Không có thao tác nào bạn được phép làm ở trạng thái này.": "There is nothing your role can do in this status.",
    "In biểu mẫu": "Print forms",
    "Phiếu hẹn (01)": "Receipt (01)",
    "Yêu cầu bổ sung (02)": "Supplement request (02)",
    "Từ chối (03)": "Refusal (03)",
    "Xin lỗi, hẹn lại (04)": "Apology (04)",
    "Phiếu kiểm soát (05)": "Control sheet (05)",
    "Lý do": "Reason",
    "Ghi chú": "Note",
    "Giấy tờ cần bổ sung (mỗi dòng một giấy tờ)": "Documents to add (one per line)",
    "Chuyên viên": "Specialist",
    "Số tiền (đồng)": "Amount (đồng)",
    "Nộp trực tuyến": "Paid online",
    "Kết quả đã số hóa": "Result digitised",
    "Ngày hẹn mới": "New appointment",
    "Mức độ hài lòng": "Satisfaction",
    "Lý do không hài lòng": "Reason for dissatisfaction",
    "Hình thức trả": "Return method",
    "Xác nhận": "Confirm",
    "Đã lưu.": "Saved.",
    "Đã tiếp nhận hồ sơ": "Dossier received",
    "Cảnh báo": "Warning",
    "Tìm theo mã, họ tên (có hoặc không dấu) hoặc số định danh": "Search by code, name (with or without diacritics) or ID number",
    "Kết quả tìm kiếm": "Search results",
    "Từ ngày": "From",
    "Đến ngày": "To",
    "Xem": "Show",
    "Tải CSV": "Download CSV",
    "Trang trước": "Previous",
    "Trang sau": "Next",
    "Sớm hạn": "Early",
    "Đúng hạn": "On time",
    "Trễ hạn": "Late",
    "Còn hạn": "In time",
    "Không tìm thấy trang.": "Page not found.",
    "Bạn không có quyền làm việc này.": "You are not allowed to do this.",
    "Phiên làm việc đã hết hạn, vui lòng thử lại.": "The form expired; please try again.",
    "Đã có lỗi, vui lòng thử lại.": "Something went wrong; please try again.",
    "Yêu cầu không hợp lệ.": "Bad request.",
    "Tệp quá lớn.": "File too large.",
    "Quay lại": "Back",
    "Lịch sử chuyển giao": "Hand-over history",
    "Tệp đính kèm": "Attachments",
    "Thông tin hồ sơ": "Dossier details",
    "Phí, lệ phí": "Fees",
    "đã nộp": "paid",
    "chưa nộp": "not paid",
    "Thời hạn giải quyết": "Processing time",
    "Kênh nộp": "Channel",
    "Thêm người dùng": "Add a user",
    "Vai trò": "Roles",
    "Đang hoạt động": "Active",
    "Lưu": "Save",
    "Ngày": "Date",
    "Loại": "Kind",
    "Tên": "Name",
    "Ngày nghỉ": "Day off",
    "Ngày làm bù": "Extra working day",
    "Bỏ ngày này": "Remove this day",
    "Thêm ngày": "Add a day",
    "Nhập mã hồ sơ để xem tình trạng": "Enter a dossier code to see its status",
    "Tra cứu": "Look up",
    "Trang": "Page",
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
    g.lang = session.get("lang", "vi") if session.get("lang") in LANGS else "vi"
