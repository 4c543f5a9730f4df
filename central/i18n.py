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
    # catalogue and calendar publishing (central/catalogue_views.py)
    "Danh mục, lịch": "Catalogue, calendar",
    "Danh mục thủ tục": "Procedure catalogue",
    "Mỗi thay đổi là một phiên bản mới có ngày áp dụng; hồ sơ nhận từ ngày đó dùng phiên bản mới, hồ sơ "
    "đã nhận giữ phiên bản cũ. Các xã nhận phiên bản mới ở lần đồng bộ tiếp theo.":
        "Every change is a new version with an effective date; dossiers received from that date use it, "
        "dossiers already received keep theirs. Communes get new versions on their next sync.",
    "Lịch làm việc": "Work calendar",
    "Mã": "Code",
    "Thời hạn": "Time limit",
    "Phiên bản chờ áp dụng": "Versions waiting for their date",
    "từ": "from",
    "Áp dụng từ": "Effective from",
    "Tên": "Name",
    "Trực tuyến": "Online",
    "Chờ áp dụng": "Not yet in force",
    "Đã thay thế": "Superseded",
    "Ngừng": "Stopped",
    "Phiên bản mới": "New version",
    "Áp dụng từ ngày": "Effective from",
    "Tên thủ tục": "Procedure name",
    "Tên tiếng Anh": "English name",
    "Lĩnh vực": "Field",
    "Cách tính thời hạn": "How the time limit counts",
    "Thời hạn (số ngày)": "Time limit (days)",
    "Nhận sau 15 giờ: trả ngày làm việc tiếp theo": "Received after 15:00: due the next working day",
    "Mức độ trực tuyến": "Online level",
    "Liên thông": "Interconnected",
    "Khi yêu cầu bổ sung": "On a supplement request",
    "Phí, lệ phí": "Fees",
    "Số tiền (đồng)": "Amount (đ)",
    "Số trang đầu": "First pages",
    "Tiền mỗi trang đầu": "Amount per first page",
    "Tối đa": "At most",
    "Thành phần hồ sơ (mỗi dòng: tên | tên tiếng Anh | original/certified/photocopy | số bản)":
        "Documents (one per line: name | English name | original/certified/photocopy | copies)",
    "Đang tiếp nhận": "Accepting dossiers",
    "Công bố phiên bản mới": "Publish the new version",
    "Đã công bố phiên bản {version} của thủ tục {code}, áp dụng từ {day}.":
        "Version {version} of procedure {code} published, effective from {day}.",
    "Các ngày ở đây áp dụng cho mọi xã (xã có thể điều chỉnh riêng cho mình). Một ngày có hiệu lực từ "
    "chính ngày đó: không sửa được ngày đã qua, và hẹn trả của hồ sơ đã nhận không thay đổi.":
        "These days apply to every commune (a commune may override them for itself). A day takes effect on "
        "that day: past days cannot be changed, and appointments of dossiers already received do not move.",
    "Ngày": "Day",
    "Nguồn": "Set by",
    "Lịch gốc": "Seed calendar",
    "Trung tâm": "Hub",
    "Bỏ ngày này": "Withdraw this day",
    "Năm này chưa có ngày điều chỉnh nào.": "No overrides in this year yet.",
    "Thêm ngày": "Add a day",
    "Ngày nghỉ": "Day off",
    "Ngày làm bù": "Extra working day",
    "Công bố": "Publish",
    "Cả năm": "The whole year",
    "Ngày không hợp lệ (định dạng năm-tháng-ngày).": "Invalid date (year-month-day).",
    "Chỉ nhận ngày trong các năm {first}–{last}.": "Only days in {first}–{last}.",
    "Không thể sửa ngày đã qua: thời hạn của hồ sơ đã tính theo lịch cũ.":
        "A past day cannot be changed: deadlines were computed over it.",
    "Chọn ngày nghỉ hoặc ngày làm bù.": "Choose a day off or an extra working day.",
    "Ngày làm bù phải là thứ Bảy hoặc Chủ nhật.": "An extra working day must be a Saturday or Sunday.",
    "Ngày nghỉ thêm phải là ngày từ thứ Hai đến thứ Sáu.": "An extra day off must be Monday to Friday.",
    "Tên tối đa {n} ký tự.": "The name is at most {n} characters.",
    "Ngày chưa được lưu, hãy xem lại các ô báo lỗi.": "The day was not saved; see the fields marked.",
    "Đã công bố ngày {day}: {kind}.": "Published {day}: {kind}.",
    "Đã bỏ ngày {day} khỏi lịch điều chỉnh.": "{day} withdrawn from the calendar.",
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

# Online submission and status lookup for residents (central/public_views.py, templates/public/).
EN.update({
    "Dịch vụ công trực tuyến": "Online public services",
    "Nộp hồ sơ trực tuyến": "Online submission",
    "Nơi nhận": "Sent to",
    "Chọn lại": "Choose again",
    "Hồ sơ chưa được gửi. Vui lòng sửa các mục được đánh dấu bên dưới.":
        "The dossier was not sent. Please correct the fields marked below.",
    "Giấy tờ cần chuẩn bị (bản chụp hoặc bản quét)": "Papers to prepare (photos or scans)",
    "Họ và tên": "Full name",
    "Số định danh cá nhân (CCCD)": "Personal ID number (CCCD)",
    "12 chữ số trên thẻ căn cước (hoặc 9 chữ số CMND cũ).": "12 digits on the ID card (or an old 9-digit number).",
    "Tôi xác nhận số định danh cá nhân và ngày sinh đã khai là đúng.":
        "I confirm that the ID number and birth date I gave are correct.",
    "Ngày sinh": "Date of birth",
    "Ngày/tháng/năm.": "Day/month/year.",
    "Giới tính": "Gender",
    "— Không khai —": "— Not given —",
    "Nam": "Male",
    "Nữ": "Female",
    "Địa chỉ": "Address",
    "Số điện thoại": "Phone",
    "Email": "Email",
    "Không bắt buộc.": "Optional.",
    "Nội dung yêu cầu": "Request",
    "Không bắt buộc; để trống sẽ ghi tên thủ tục.": "Optional; left empty, the procedure's name is used.",
    "Giấy tờ đính kèm": "Attached papers",
    "Bản chụp, bản quét giấy tờ": "Photos or scans of the papers",
    "PDF, JPEG hoặc PNG; tối đa {files} tệp, mỗi tệp tối đa {file_mb} MB, tổng cộng tối đa {total_mb} MB.":
        "PDF, JPEG or PNG; at most {files} files, {file_mb} MB each, {total_mb} MB in all.",
    "Nếu trang báo lỗi, vui lòng chọn lại tệp.": "After an error, please choose the files again.",
    "Để trống ô này": "Leave this empty",
    "Câu hỏi kiểm tra": "Check question",
    "Trả lời bằng chữ số, để chứng tỏ bạn không phải chương trình tự động.":
        "Answer in digits, to show you are not a robot.",
    "Hồ sơ được chuyển đến bộ phận một cửa của xã, phường ở trạng thái “Mới đăng ký”; cán bộ sẽ tiếp nhận, "
    "yêu cầu bổ sung hoặc từ chối và bạn theo dõi bằng mã hồ sơ.":
        "The dossier goes to the commune's one-stop desk as “Newly registered”; an officer accepts it, asks for "
        "more papers or refuses it, and you follow it with the dossier code.",
    "Nộp hồ sơ": "Submit",
    "Đã nộp hồ sơ": "Dossier submitted",
    "Hồ sơ của bạn đã được gửi đến {unit}. Vui lòng ghi lại mã hồ sơ để theo dõi.":
        "Your dossier was sent to {unit}. Please note the dossier code to follow it.",
    "Thủ tục hành chính": "Procedure",
    "Thời gian nộp": "Submitted at",
    "Số tệp đính kèm": "Files attached",
    "Cán bộ một cửa sẽ kiểm tra hồ sơ; khi hồ sơ được tiếp nhận bạn sẽ thấy ngày hẹn trả kết quả.":
        "A one-stop officer will check the dossier; once it is accepted you will see the appointment date.",
    "Theo dõi hồ sơ": "Follow the dossier",
    "Tra cứu hồ sơ": "Dossier status",
    "Nhập mã hồ sơ để xem tình trạng": "Enter the dossier code to see its status",
    "Tra cứu": "Look up",
    "Không tìm thấy hồ sơ": "No dossier found with code",
    "Vui lòng kiểm tra lại mã hồ sơ. Hồ sơ nộp tại xã có thể cần vài phút để hiện ở đây.":
        "Please check the code. A dossier filed at a commune may take a few minutes to appear here.",
    "Nơi giải quyết": "Handled by",
    "Ngày nộp": "Submitted",
    "Chưa có (hồ sơ chưa được tiếp nhận)": "Not yet (the dossier has not been accepted)",
    "Kết quả": "Result",
    "Đã trả kết quả": "Result returned",
    "Đã có kết quả, chờ trả": "Result ready, waiting to be returned",
    "Chưa có": "Not yet",
    "Hồ sơ đã quá hạn hẹn trả. Cơ quan giải quyết sẽ gửi phiếu xin lỗi và hẹn lại ngày trả kết quả.":
        "The dossier is past its appointment. The agency will send an apology with a new appointment.",
    "Quay lại trang nộp hồ sơ": "Back to the submission page",
    "Bước 1: chọn xã, phường nhận hồ sơ và thủ tục hành chính. Chỉ các thủ tục cung cấp dịch vụ công trực "
    "tuyến (một phần hoặc toàn trình) được liệt kê.":
        "Step 1: choose the commune and the procedure. Only procedures offered online (partly or fully) are "
        "listed.",
    "Hiện chưa có xã, phường nào nhận hồ sơ trực tuyến qua hệ thống này.":
        "No commune takes online submissions through this system yet.",
    "Xã, phường nhận hồ sơ": "Commune",
    "— Chọn —": "— Choose —",
    "Tiếp tục": "Continue",
    "Đã nộp hồ sơ?": "Already submitted?",
    "Tra cứu tình trạng hồ sơ": "Look up its status",
    "Vui lòng trả lời câu hỏi kiểm tra.": "Please answer the check question.",
    "Câu hỏi kiểm tra không hợp lệ, vui lòng trả lời câu hỏi mới.":
        "The check question is not valid; please answer the new one.",
    "Câu hỏi kiểm tra đã hết hạn, vui lòng trả lời câu hỏi mới.":
        "The check question has expired; please answer the new one.",
    "Câu trả lời kiểm tra chưa đúng.": "The answer to the check question is wrong.",
    "Địa chỉ của bạn đã nộp quá nhiều hồ sơ trong thời gian ngắn. Vui lòng thử lại sau {minutes} phút.":
        "Too many dossiers were submitted from your address in a short time. Please try again in {minutes} "
        "minutes.",
    "Tạm thời chưa nhận hồ sơ": "Submissions paused",
    "Vui lòng nhập ngày sinh.": "Please enter the date of birth.",
    "Ngày sinh không hợp lệ (ngày/tháng/năm).": "The date of birth is not valid (day/month/year).",
    "Ngày sinh phải sau năm 1900 và không sau hôm nay.": "The date of birth must be after 1900 and not after today.",
    "Vui lòng chọn xã, phường nhận hồ sơ.": "Please choose the commune.",
    "Thủ tục này không nhận hồ sơ trực tuyến.": "This procedure does not take online submissions.",
    "Tối đa {n} ký tự.": "At most {n} characters.",
    "Vui lòng nhập họ và tên.": "Please enter the full name.",
    "Vui lòng nhập địa chỉ.": "Please enter the address.",
    "Địa chỉ email không hợp lệ.": "The email address is not valid.",
    "Vui lòng nhập số điện thoại.": "Please enter a phone number.",
    "Số điện thoại gồm 9–15 chữ số.": "A phone number has 9–15 digits.",
    "Giới tính không hợp lệ.": "The gender is not valid.",
    "Vui lòng nhập số định danh cá nhân (CCCD).": "Please enter the personal ID number (CCCD).",
    "Nếu số đã đúng, hãy đánh dấu ô xác nhận bên dưới rồi gửi lại.":
        "If the number is right, tick the confirmation below and submit again.",
    "Vui lòng đính kèm bản chụp hoặc bản quét giấy tờ (PDF, JPEG, PNG).":
        "Please attach photos or scans of the papers (PDF, JPEG, PNG).",
    "Tối đa {n} tệp cho một hồ sơ.": "At most {n} files for one dossier.",
    "Tệp {name} quá lớn (tối đa {mb} MB một tệp).": "{name} is too large (at most {mb} MB a file).",
    "Tổng dung lượng các tệp vượt quá {mb} MB.": "The files add up to more than {mb} MB.",
    "Tệp {name} rỗng.": "{name} is empty.",
    "Tệp {name} không phải PDF, JPEG hoặc PNG.": "{name} is not a PDF, JPEG or PNG file.",
    "Không gửi được hồ sơ": "The dossier could not be sent",
    "Vui lòng chọn một thủ tục nhận hồ sơ trực tuyến.": "Please choose a procedure offered online.",
    "Không gửi được hồ sơ. Vui lòng tải lại trang và thử lại.":
        "The dossier could not be sent. Please reload the page and try again.",
    "Xã, phường hoặc thủ tục này hiện không nhận hồ sơ trực tuyến.":
        "This commune or procedure does not take online submissions at the moment.",
    "Mã hồ sơ không hợp lệ.": "The dossier code is not valid.",
})

# Hub users and roles, the audit view, interconnected dossiers (central/admin_views.py, transfer_views.py).
EN.update({
    "Đã thêm người dùng {user}.": "User {user} added.",
    "Yêu cầu không hợp lệ.": "Invalid request.",
    "Không thể tự khóa tài khoản của mình.": "You cannot lock your own account.",
    "Đã mở khóa {user}.": "{user} unlocked.",
    "Đã khóa {user}.": "{user} locked.",
    "Ngày theo dạng YYYY-MM-DD.": "Dates as YYYY-MM-DD.",
    "Loại dữ liệu không hợp lệ.": "Invalid kind of record.",
    "Số trang không hợp lệ.": "Invalid page number.",
    "Ngày kết thúc phải sau ngày bắt đầu.": "The end date must be after the start date.",
    "Bộ lọc không hợp lệ.": "Invalid filter.",
    "Không tìm thấy hồ sơ {code}.": "No dossier {code}.",
    "Thao tác này không làm ở trung tâm.": "This action is not done at the hub.",
    "Đã ghi nhưng chưa được áp dụng: hồ sơ đã thay đổi ở nơi khác.":
        "Recorded but not applied: the dossier was changed elsewhere.",
    "Đã lưu.": "Saved.",
    "Vai trò của bạn không được dùng trang này.": "Your role may not use this page.",
    "Người dùng trung tâm": "Hub users",
    "Vai trò": "Roles",
    "Đã khóa": "Locked",
    "Khóa": "Lock",
    "Mở khóa": "Unlock",
    "Thêm người dùng": "Add a user",
    "Thêm": "Add",
    "Nhật ký thao tác": "Audit log",
    "Tất cả": "All",
    "Nút": "Node",
    "Người thực hiện": "By",
    "Mã hồ sơ / mã bản ghi": "Dossier code / record id",
    "Loại dữ liệu": "Kind of record",
    "{n} thay đổi": "{n} changes",
    "Nội dung": "Content",
    "không áp dụng": "not applied",
    "Không có thay đổi nào.": "No changes.",
    "Trang {p}/{n}": "Page {p}/{n}",
    "Hồ sơ liên thông": "Interconnected dossiers",
    "Cơ quan": "Agency",
    "Chờ tiếp nhận": "Waiting to be received",
    "Đang xử lý": "Processing",
    "Người nộp": "Applicant",
    "Hạn bước": "Step deadline",
    "Hẹn trả": "Appointment",
    "Lý do": "Reason",
    "Kết quả đã số hóa": "Result digitised",
    "Xác nhận": "Confirm",
    "Không có thao tác nào bạn được phép làm ở trạng thái này.": "No action you may take in this state.",
    "Tiến trình xử lý (mẫu 05)": "Processing history (form 05)",
    "Người giao": "Handed over by",
    "Người nhận": "Received by",
    "Tiếp nhận hồ sơ": "Dossier received",
    "Người dùng": "Users",
    "Nhật ký": "Audit",
    "Thông tin người dùng chưa hợp lệ.": "The user's details are not valid.",
    "Không có người dùng này.": "No such user.",
    "Tên đăng nhập chỉ gồm chữ, số, dấu chấm, gạch dưới (tối đa 40 ký tự).":
        "Usernames hold letters, digits, dots and underscores (at most 40 characters).",
    "Cần nhập họ và tên (tối đa 120 ký tự).": "Enter the full name (at most 120 characters).",
    "Chọn ít nhất một vai trò hợp lệ.": "Choose at least one valid role.",
    "Mật khẩu từ 8 đến 200 ký tự.": "Passwords have 8 to 200 characters.",
    "Tên đăng nhập này đã có.": "This username is taken.",
})


# Hub users tied to an agency (central/hubauth.py, admin_views.py, transfer_views.py)
EN.update({
    "Không có cơ quan này; chọn một cơ quan trong danh sách.": "No such agency; choose one from the list.",
    "Chỉ chuyên viên hoặc lãnh đạo mới thuộc một cơ quan.": "Only specialists and leaders belong to an agency.",
    "Chuyên viên, lãnh đạo phải thuộc một cơ quan (trừ quản trị trung tâm).":
        "Specialists and leaders must belong to an agency (unless they are hub administrators).",
    "Cơ quan chưa hợp lệ.": "The agency is not valid.",
    "Hồ sơ này không được gửi đến cơ quan của bạn ({agency}).":
        "This dossier was not sent to your agency ({agency}).",
    "chưa gắn cơ quan": "no agency set",
    "Bạn chỉ xem được hồ sơ gửi đến cơ quan của mình ({agency}).":
        "You can only see the dossiers sent to your agency ({agency}).",
    "Tài khoản của bạn chưa gắn với cơ quan liên thông nào nên chưa xem, xử lý được hồ sơ nào. Đề nghị quản "
    "trị trung tâm chọn cơ quan cho bạn ở trang Người dùng.":
        "Your account is not tied to an agency yet, so you can neither see nor process dossiers. Ask the hub "
        "administrator to choose your agency on the Users page.",
    "Mọi cơ quan (quản trị)": "Every agency (administrator)",
    "Chưa gắn cơ quan": "No agency yet",
    "Lưu": "Save",
    "Cơ quan (chuyên viên, lãnh đạo)": "Agency (specialists, leaders)",
    "Không (quản trị trung tâm)": "None (hub administrator)",
    "Đã lưu cơ quan của {user}.": "Saved the agency of {user}.",
})
