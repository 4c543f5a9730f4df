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
    "Tìm theo mã, họ tên (có hoặc không dấu) hoặc số định danh":
        "Search by code, name (with or without diacritics) or ID number",
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
    # admin
    "(ít nhất 8 ký tự)": "(at least 8 characters)",
    "Bạn không thể tự bỏ vai trò quản trị của chính mình.": "You cannot remove your own administrator role.",
    "Bạn không thể tự khóa tài khoản của chính mình.": "You cannot deactivate your own account.",
    "Chưa có thủ tục nào.": "No procedures yet.",
    "Chỉ nhận ngày trong các năm {first}–{last}.": "Only dates in the years {first}–{last} are accepted.",
    "Chọn ngày nghỉ hoặc ngày làm bù.": "Choose a day off or an extra working day.",
    "Các ngày điều chỉnh năm": "Calendar overrides in",
    "Các thủ tục đang áp dụng ngày": "Procedures in force on",
    "Cả năm": "The whole year",
    "Danh mục thủ tục": "Procedure catalogue",
    "Danh mục thủ tục do hệ thống cấp tỉnh (máy chủ trung tâm) ban hành và đồng bộ về xã; trang này chỉ để xem. "
    "Việc sửa danh mục sẽ làm trên máy chủ trung tâm.":
        "The procedure catalogue is published by the province's central server (the hub) and synced to the "
        "commune; this page is read-only. Editing the catalogue will be done on the hub.",
    "Khi yêu cầu bổ sung": "On a supplement request",
    "Không có thay đổi.": "Nothing changed.",
    "Liên thông": "Linked",
    "Lĩnh vực": "Field",
    "Mã": "Code",
    "Mật khẩu mới (để trống nếu không đổi)": "New password (leave empty to keep the current one)",
    "Mật khẩu nhập lại không khớp.": "The two passwords do not match.",
    "Mặc định làm việc từ thứ Hai đến thứ Sáu. Ở đây chỉ ghi các ngày khác mặc định: ngày nghỉ thêm (lễ, Tết, "
    "theo thông báo) và thứ Bảy, Chủ nhật làm bù. Thời hạn giải quyết hồ sơ tính theo lịch này.":
        "Monday to Friday are worked by default. Only the exceptions are listed here: extra days off (holidays, "
        "Tết, by notice) and Saturdays or Sundays worked. Dossier deadlines are computed on this calendar.",
    "Mức độ trực tuyến": "Online level",
    "Ngày chưa được lưu, hãy xem lại các ô báo lỗi.": "The day was not saved; check the fields marked in red.",
    "Ngày không hợp lệ (định dạng năm-tháng-ngày).": "Not a valid date (year-month-day).",
    "Ngày làm bù phải là thứ Bảy hoặc Chủ nhật.": "An extra working day must be a Saturday or a Sunday.",
    "Ngày làm việc": "Working day",
    "Ngày nghỉ thêm phải là ngày từ thứ Hai đến thứ Sáu.": "An extra day off must fall on Monday to Friday.",
    "Nhập lại mật khẩu": "Repeat the password",
    "Nhập lại mật khẩu mới": "Repeat the new password",
    "Năm này chưa có ngày điều chỉnh nào.": "No overrides for this year yet.",
    "Phiên bản": "Version",
    "Sửa": "Edit",
    "Thông tin người dùng chưa hợp lệ.": "The user details are not valid.",
    "Thứ": "Weekday",
    "Thứ Bảy, Chủ nhật": "Saturday, Sunday",
    "Tên thủ tục": "Procedure name",
    "Tên tối đa {n} ký tự.": "The name can be at most {n} characters.",
    "bạn": "you",
    "thứ Bảy, Chủ nhật": "Saturday, Sunday",
    "thứ Hai – thứ Sáu": "Monday to Friday",
    "ví dụ: Nghỉ bù Quốc khánh": "e.g. National Day substitute holiday",
    "Áp dụng từ": "In force from",
    "Đã bỏ ngày {day} khỏi lịch điều chỉnh.": "{day} removed from the calendar overrides.",
    "Đã khóa": "Deactivated",
    "Đã lưu ngày {day}: {kind}.": "Saved {day}: {kind}.",
    "Đã lưu người dùng {username}.": "User {username} saved.",
    "Đã thêm người dùng {username}.": "User {username} added.",
    # printing: forms, ledger (06), public lookup
    "Quay lại hồ sơ": "Back to the dossier",
    "Sổ theo dõi hồ sơ": "Dossier tracking ledger",
    "Tải tệp CSV": "Download CSV",
    "Không tìm thấy hồ sơ": "Dossier not found",
    "Vui lòng kiểm tra lại mã hồ sơ ghi trên giấy tiếp nhận.": "Please check the dossier code printed on the receipt.",
    "Mã hồ sơ không hợp lệ.": "Invalid dossier code.",
    "Ngày trả kết quả": "Result returned",
    "Hình thức nhận kết quả": "How the result is collected",
    "Chưa có (hồ sơ chưa được tiếp nhận)": "Not yet (the dossier has not been accepted)",
    "Hồ sơ đã quá hạn hẹn trả. Cơ quan giải quyết sẽ gửi phiếu xin lỗi và hẹn lại ngày trả kết quả.":
        "The dossier is past its appointment. The agency will send an apology with a new date.",
    "Phương thức không được hỗ trợ cho địa chỉ này.": "Method not allowed for this address.",
    "Quá nhiều yêu cầu, vui lòng thử lại sau.": "Too many requests; try again later.",
    # sync page (node/web/sync_views.py)
    "Đồng bộ": "Sync",
    "Đồng bộ với máy chủ huyện": "Sync with the district hub",
    "Máy chủ huyện": "District hub",
    "chưa đăng ký": "not enrolled",
    "Mã máy": "Node id",
    "Đồng bộ thành công lần cuối": "Last successful sync",
    "Lần thử gần nhất": "Last attempt",
    "chưa lần nào": "never",
    "Thay đổi chờ gửi": "Changes waiting",
    "Tệp chờ chuyển": "Files waiting",
    "Độ lệch đồng hồ": "Clock offset",
    "Lỗi gần nhất": "Last error",
    "Đồng bộ ngay": "Sync now",
    "Máy này chưa đăng ký với máy chủ huyện. Quản trị viên chạy lệnh: motcua node enroll --hub URL --token MÃ":
        ("This node is not enrolled with a district hub. An administrator runs: motcua node enroll --hub URL --token "
         "TOKEN"),
    ("Đồng hồ của máy này lệch hơn 5 phút so với máy chủ huyện ({skew}). Hãy chỉnh lại ngày giờ của máy để thời gian "
     "tiếp nhận và hẹn trả được ghi đúng."):
        ("This computer's clock is more than 5 minutes off the district hub's ({skew}). Set the date and time "
         "right so that reception and appointment times are recorded correctly."),
    "nhanh hơn": "ahead of",
    "chậm hơn": "behind",
    "{m} phút {s} giây {dir} máy chủ huyện": "{m} min {s} s {dir} the district hub",
    "Đã đồng bộ": "In sync",
    "Mất kết nối": "Offline",
    "Lỗi đồng bộ": "Sync error",
    "Chưa đồng bộ": "Not synced yet",
    "Chưa đăng ký máy chủ": "No hub enrolled",
    "Đã đồng bộ: gửi {p} thay đổi, nhận {q} thay đổi, {u} tệp gửi lên, {d} tệp tải về.":
        "Synced: {p} changes sent, {q} received, {u} files uploaded, {d} downloaded.",
    "Phát hiện dữ liệu không khớp và đã tự sửa bằng cách tải lại toàn bộ.":
        "The data did not match the hub's; it was repaired by pulling everything again.",
    "Không kết nối được máy chủ huyện. Mọi thay đổi vẫn được lưu trên máy này và sẽ tự gửi đi khi có mạng trở lại.":
        ("Cannot reach the district hub. Every change is kept on this computer and will be sent when the link is "
         "back."),
    ("Máy chủ huyện không nhận ra máy này (chưa đăng ký hoặc đăng ký đã bị xoá). Cần đăng ký lại bằng mã đăng ký "
     "mới."):
        ("The district hub does not know this node (never enrolled, or its enrollment was removed). Enroll it again "
         "with a new token."),
    "Máy chủ huyện đã thu hồi quyền đồng bộ của máy này. Hãy liên hệ quản trị viên cấp huyện.":
        "The district hub has revoked this node. Contact the district administrator.",
    ("Máy chủ huyện đang cách ly máy này sau khi phát hiện hai phiên bản khác nhau của cùng một thay đổi. Hãy liên "
     "hệ quản trị viên cấp huyện."):
        ("The district hub has quarantined this node after finding two versions of one change. Contact the district "
         "administrator."),
    ("Máy chủ huyện đã cách ly máy này: nhật ký thay đổi trên máy khác với bản máy chủ đang giữ (thường do khôi phục "
     "từ bản sao lưu cũ). Đừng nhập thêm hồ sơ trên máy này; hãy liên hệ quản trị viên cấp huyện và đăng ký lại máy "
     "như một máy mới."):
        ("The district hub has quarantined this node: its change log differs from the hub's copy (usually after a "
         "restore from an old backup). Do not enter more dossiers here; contact the district administrator and "
         "enroll this computer again as a new node."),
    ("Đồng hồ của máy này lệch quá nhiều so với máy chủ huyện nên yêu cầu bị từ chối. Hãy chỉnh lại ngày giờ của "
     "máy."):
        ("This computer's clock is too far off the district hub's, so requests are refused. Set the date and time "
         "right."),
    ("Máy chủ trả lời bằng một khoá khác với khoá đã ghi nhận khi đăng ký. Đã dừng đồng bộ để bảo vệ dữ liệu; hãy "
     "liên hệ quản trị viên cấp huyện."):
        ("The server answered with a key other than the one recorded at enrollment. Sync is stopped to protect the "
         "data; contact the district administrator."),
    ("Dữ liệu trên máy này vẫn không khớp với máy chủ huyện sau khi đã tải lại toàn bộ. Hãy báo quản trị viên cấp "
     "huyện."):
        ("The data on this computer still differs from the district hub's after pulling everything again. Tell the "
         "district administrator."),
    "Đang có một lượt đồng bộ khác chạy; hãy thử lại sau ít phút.":
        "Another sync is running; try again in a few minutes.",
    "Máy này chưa đăng ký với máy chủ huyện.": "This node is not enrolled with a district hub.",
    "Máy chủ huyện không xác thực được chữ ký của máy này.": "The district hub cannot verify this node's signature.",
    "Có lỗi trên máy này khi đồng bộ; hãy báo quản trị viên.":
        "Something failed on this computer during sync; tell an administrator.",
    "Máy chủ huyện từ chối đồng bộ ({code}): {message}": "The district hub refused the sync ({code}): {message}",
}

# Conflicts, possible duplicates and editing applicant details (node/web/review_views.py).
EN.update({
    "Đã ghi nhận quyết định về xung đột.": "Your decision on the conflict is recorded.",
    "Đã ghi nhận kết quả xem xét.": "The review is recorded.",
    "Đã lưu thông tin hồ sơ.": "The dossier's details are saved.",
    "Không có gì thay đổi.": "Nothing changed.",
    "Xung đột": "Conflicts",
    "Xung đột dữ liệu": "Data conflicts",
    ("Hồ sơ này được sửa ở hai nơi cùng lúc khi chưa đồng bộ. Mỗi giá trị được giữ lại để người có thẩm quyền "
     "quyết định."):
        "This dossier was changed in two places at once while they were not in sync. Every value is kept for "
        "someone in charge to decide.",
    "Có thể trùng hồ sơ": "Possible duplicates",
    "Cùng số định danh và thủ tục với hồ sơ": "Same ID number and procedure as dossier",
    "Hai hồ sơ khác nhau": "Two different dossiers",
    "Trùng hồ sơ": "Duplicate",
    "Trùng hồ sơ (một hồ sơ nộp hai lần)": "Duplicate (one dossier submitted twice)",
    "Chưa xem xét": "Not reviewed",
    "Xem xét": "Review",
    "Sửa thông tin": "Edit details",
    "Lưu thông tin": "Save details",
    "trống": "empty",
    "Đã giải quyết": "Settled",
    "Chưa giải quyết": "Open",
    "Giá trị đang có trong hồ sơ": "Value in the dossier now",
    "Hai thao tác được làm cùng lúc trên cùng một trạng thái; chỉ một thao tác được áp dụng.":
        "Two actions were done at the same time on the same status; only one of them is applied.",
    "Giá trị": "Value",
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
    "Làm lại thao tác": "Do the action again",
    "Lãnh đạo hoặc quản trị viên sẽ quyết định giữ giá trị nào.":
        "A leader or an administrator decides which value to keep.",
    "Xung đột và hồ sơ trùng": "Conflicts and duplicates",
    ("Hai hồ sơ cùng số định danh cá nhân và cùng thủ tục được tiếp nhận ở hai nơi trong thời gian ngắn. Không "
     "hồ sơ nào bị gộp hay xoá: hãy xem và ghi nhận kết quả."):
        "Two dossiers with the same personal ID number and procedure were received at two places within a short "
        "time. Neither is merged or deleted: look at them and record what you find.",
    "Nơi tiếp nhận": "Received at",
    "Kết quả xem xét": "Review",
    "Kết luận": "Conclusion",
    "Ghi nhận": "Record",
    ("Chỉ các trường thay đổi được ghi lại. Nếu cùng trường được sửa ở nơi khác khi chưa đồng bộ, hai giá trị sẽ "
     "được giữ lại để lãnh đạo quyết định."):
        "Only the fields you change are recorded. If the same field is changed elsewhere before the two are in "
        "sync, both values are kept for a leader to decide.",
    "Trường": "Field",
    "Các giá trị": "Values",
    "Xem và quyết định": "View and decide",
    "Không có xung đột nào.": "No conflicts.",
    "Hồ sơ": "Dossier",
    "Không có cặp hồ sơ nào cần xem xét.": "No pairs of dossiers to review.",
    "Xung đột đã giải quyết": "Settled conflicts",
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
    "Không có đơn vị nào.": "No units.",
    "Kết quả giải quyết": "Processing results",
    "Ngày giải quyết xong": "Finished on",
    "Thủ tục": "Procedure",
    "Số liệu tính lúc {at}.": "Computed at {at}.",
    "Theo dõi hồ sơ quá hạn": "Overdue watch",
    "Thư xin lỗi (mẫu 04)": "Apology (form 04)",
    "Toàn bộ trung tâm": "The whole hub",
    "Tất cả các xã": "All communes",
    "Tình trạng": "Situation",
    "Tổng cộng": "Total",
    "Tổng điểm (/82)": "Score (/82)",
    "Trước hạn": "Early",
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


EN.update({
    "Đã gỡ tệp {name}.": "File {name} removed.",
    "Gỡ tệp này khỏi hồ sơ?": "Remove this file from the dossier?",
    "Gỡ": "Remove",
    # catalogue and calendar publishing
    "Không thể sửa ngày đã qua: thời hạn của hồ sơ đã tính theo lịch cũ.":
        "A past day cannot be changed: deadlines were computed over it.",
    "Nguồn": "Set by",
    "Lịch gốc": "Seed calendar",
    "Trung tâm": "Hub",
    "Của xã": "This commune",
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
    g.lang = session.get("lang", "vi") if session.get("lang") in LANGS else "vi"

# Interconnected dossiers (send_to_agency on the dossier page).
EN.update({
    "Cơ quan liên thông": "Interconnected agency",
})
