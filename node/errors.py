"""Errors of the commune node, each with the HTTP status the edges render it with.

    NodeError (400)
    ├── ValidationFailed (422)       a form or API field is wrong; carries {field: message}
    ├── NotFound (404)               no such dossier, user, procedure, file
    ├── PermissionDenied (403)       the user's role does not allow the action
    ├── TransitionNotAllowed (409)   the dossier's status does not allow the action
    ├── PayloadTooLarge (413)        an upload over the size limit
    └── NotInitialised (500)         the data folder has no node (run `motcua node init`)

Messages are in Vietnamese with an English twin; the edge picks the user's language.
"""

from __future__ import annotations

import re


class NodeError(Exception):
    http_status = 400
    code = "bad_request"

    def __init__(self, vi: str, en: str | None = None, *, fields: dict[str, str] | None = None):
        super().__init__(en or vi)
        self.vi = vi
        self.en = en or vi
        self.fields = fields or {}

    def message(self, lang: str = "vi") -> str:
        return self.en if lang == "en" else self.vi


class ValidationFailed(NodeError):
    http_status = 422
    code = "validation_failed"


class NotFound(NodeError):
    http_status = 404
    code = "not_found"


class PermissionDenied(NodeError):
    http_status = 403
    code = "forbidden"


class TransitionNotAllowed(NodeError):
    http_status = 409
    code = "transition_not_allowed"


class PayloadTooLarge(NodeError):
    http_status = 413
    code = "payload_too_large"


class NotInitialised(NodeError):
    http_status = 500
    code = "not_initialised"


# Field messages are written in Vietnamese where they arise; this is their English twin.
FIELD_EN = {
    "Chỉ nhận PDF, JPEG, PNG.": "Only PDF, JPEG and PNG files are accepted.",
    "Chọn một chuyên viên xử lý.": "Choose a specialist.",
    "Chọn mức độ hài lòng.": "Choose the satisfaction rating.",
    "Chọn thủ tục hành chính.": "Choose a procedure.",
    "Chọn ít nhất một vai trò hợp lệ.": "Choose at least one valid role.",
    "Cần ghi lý do không hài lòng.": "Give the reason for dissatisfaction.",
    "Cần nhập họ tên người nộp hồ sơ.": "Enter the applicant's full name.",
    "Cần nhập họ và tên.": "Enter the full name.",
    "Cần nhập số định danh cá nhân (CCCD).": "Enter the personal ID number (CCCD).",
    "Danh sách giấy tờ không hợp lệ (tối đa 50).": "Invalid list of documents (at most 50).",
    "Liệt kê giấy tờ cần bổ sung (mỗi dòng một giấy tờ).": "List the documents to add (one per line).",
    "Mật khẩu cần ít nhất 8 ký tự.": "The password needs at least 8 characters.",
    "Ngày hẹn mới phải là ngày làm việc.": "The new date must be a working day.",
    "Ngày hẹn mới phải sau ngày hẹn cũ và sau hiện tại.": "The new date must be after the old one and after now.",
    "Ngày hẹn mới theo dạng YYYY-MM-DD HH:MM.": "New date as YYYY-MM-DD HH:MM.",
    "Ngày sinh không thể ở tương lai.": "The date of birth cannot be in the future.",
    "Ngày sinh theo dạng YYYY-MM-DD.": "Date of birth as YYYY-MM-DD.",
    "Phải là chuỗi ký tự.": "Must be text.",
    "Số tiền phải là số nguyên dương (đồng).": "The amount must be a positive whole number of đồng.",
    "Số điện thoại gồm 9–15 chữ số.": "A phone number has 9–15 digits.",
    "Tên đăng nhập chỉ gồm chữ, số, dấu chấm, gạch dưới (tối đa 40 ký tự).":
        "A username has letters, digits, dots and underscores only (at most 40).",
    "Tên đăng nhập đã có.": "This username is taken.",
    "desk, post hoặc online.": "desk, post or online.",
    "Nơi trả kết quả: desk, post hoặc online.": "Where to collect the result: desk, post or online.",
    "Giới tính: male hoặc female.": "Gender: male or female.",
    "Mỗi giấy tờ là một đối tượng.": "Each document must be an object.",
    "Cần tên giấy tờ.": "Give the document's name.",
    "Loại bản: original, certified, photocopy.": "Copy kind: original, certified, photocopy.",
    "Số hóa: none, digitised, reused_document, reused_result.":
        "Digitisation: none, digitised, reused_document, reused_result.",
    "Cần ghi lý do từ chối.": "Give the reason for refusal.",
    "Cần ghi lý do yêu cầu bổ sung.": "Give the reason for the supplement request.",
    "Cần nêu lý do dừng xử lý.": "Give the reason for stopping.",
    "Cần nêu lý do chậm trễ.": "Give the reason for the delay.",
    "Cần ghi lý do rút hồ sơ.": "Give the reason for the withdrawal.",
}
_FIELD_PATTERNS = [
    (re.compile(r"^Không có thủ tục mã (.+)\.$"), "No procedure with code {0}."),
    (re.compile(r"^Phải là số nguyên từ (-?\d+) đến (-?\d+)\.$"), "Must be a whole number from {0} to {1}."),
    (re.compile(r"^Tối đa (\d+) ký tự\.$"), "At most {0} characters."),
]


def field_message(message: str, lang: str) -> str:
    """A field message in the user's language (Vietnamese as written, else its English twin)."""
    if lang != "en" or not isinstance(message, str):
        return message
    if message in FIELD_EN:
        return FIELD_EN[message]
    for pattern, template in _FIELD_PATTERNS:
        found = pattern.match(message)
        if found:
            return template.format(*found.groups())
    return message


def field_messages(fields: dict[str, str], lang: str) -> dict[str, str]:
    return {k: field_message(v, lang) for k, v in fields.items()}
