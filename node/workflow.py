"""The dossier workflow: statuses, who may do what in which status, and the function that does it.

Statuses and transitions follow domain.md §2 (national portal codes). Every action is one signed change
(`dossier.action`) carrying the status transition, the fields it sets and the history row it leaves, so
the hand-over history (form 05) is the log itself. Overdue and due-soon are derived, never stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import catalogue, store
from .deadlines import appointment as compute_appointment
from .errors import NotFound, PermissionDenied, TransitionNotAllowed, ValidationFailed
from .instance import Node
from .sync.dossiers import EDITABLE
from .sync.ids import new_id
from .sync.state import Dossier, DossierDocument, Procedure, User
from .text import check_id_number, fold, nfc, ID_MESSAGES
from .timeutil import from_text, parse_user_datetime, to_text
from .users import Officer

NEW, ACCEPTED, REFUSED, PROCESSING, SUPPLEMENT, PAYMENT, WITHDRAWN, STOPPED, READY, RETURNED = range(1, 11)

STATUSES: dict[int, tuple[str, str]] = {
    NEW: ("Mới đăng ký", "Newly registered"),
    ACCEPTED: ("Đã tiếp nhận", "Accepted"),
    REFUSED: ("Không tiếp nhận", "Not accepted"),
    PROCESSING: ("Đang xử lý", "Processing"),
    SUPPLEMENT: ("Yêu cầu bổ sung", "Supplement requested"),
    PAYMENT: ("Chờ thực hiện nghĩa vụ tài chính", "Awaiting payment"),
    WITHDRAWN: ("Rút hồ sơ", "Withdrawn"),
    STOPPED: ("Dừng xử lý", "Processing stopped"),
    READY: ("Có kết quả", "Result ready"),
    RETURNED: ("Đã trả kết quả", "Result returned"),
}
FINISHED = (WITHDRAWN, READY, RETURNED)  # for on-time statistics
CLOSED = (REFUSED, WITHDRAWN, STOPPED, READY, RETURNED)  # no running deadline
CHANNELS = {1: ("Trực tiếp", "In person"), 2: ("Trực tuyến", "Online"), 3: ("Bưu chính", "Post")}
COPY_KINDS = {"original": ("Bản chính", "Original"), "certified": ("Bản sao chứng thực", "Certified copy"),
              "photocopy": ("Bản sao", "Photocopy")}
DIGITISED = {"none": ("Chưa số hóa", "Not digitised"), "digitised": ("Đã số hóa", "Digitised"),
             "reused_document": ("Tái sử dụng giấy tờ", "Reused document"),
             "reused_result": ("Tái sử dụng kết quả", "Reused result")}
RETURN_METHODS = {"desk": ("Tại bộ phận một cửa", "At the desk"), "post": ("Qua bưu chính", "By post"),
                  "online": ("Trực tuyến", "Online")}
RATINGS = {"very_satisfied": ("Rất hài lòng", "Very satisfied"), "satisfied": ("Hài lòng", "Satisfied"),
           "not_satisfied": ("Không hài lòng", "Not satisfied")}


@dataclass(frozen=True)
class Action:
    name: str
    froms: tuple[int, ...]
    to: int | None
    roles: tuple[str, ...]
    vi: str
    en: str


ACTIONS: dict[str, Action] = {a.name: a for a in [
    Action("accept", (NEW,), ACCEPTED, ("reception",), "Tiếp nhận", "Accept"),
    Action("refuse", (NEW,), REFUSED, ("reception",), "Từ chối tiếp nhận (mẫu 03)", "Refuse (form 03)"),
    Action("request_supplement", (NEW, PROCESSING), SUPPLEMENT, ("reception", "specialist", "leader"),
           "Yêu cầu bổ sung (mẫu 02)", "Request a supplement (form 02)"),
    Action("supplement_received", (SUPPLEMENT,), PROCESSING, ("reception",), "Đã nhận bổ sung",
           "Supplement received"),
    Action("transfer", (ACCEPTED,), PROCESSING, ("reception",), "Chuyển xử lý", "Transfer for processing"),
    Action("assign", (PROCESSING,), None, ("leader",), "Phân công xử lý", "Assign a handler"),
    Action("propose", (PROCESSING,), None, ("specialist", "leader"), "Trình ký", "Submit for signature"),
    Action("request_payment", (PROCESSING,), PAYMENT, ("specialist", "leader"), "Yêu cầu nộp phí",
           "Request payment"),
    Action("record_payment", (PAYMENT,), PROCESSING, ("reception",), "Đã thu phí", "Payment received"),
    Action("sign", (PROCESSING,), READY, ("leader",), "Ký duyệt, có kết quả", "Sign: result ready"),
    Action("stop", (PROCESSING,), STOPPED, ("leader",), "Dừng xử lý (trả lại, nêu lý do)",
           "Stop processing (with reasons)"),
    Action("apologise", (ACCEPTED, PROCESSING, SUPPLEMENT, PAYMENT), None, ("leader",),
           "Xin lỗi, hẹn lại ngày trả (mẫu 04)", "Apologise, set a new date (form 04)"),
    Action("withdraw", (NEW, ACCEPTED, PROCESSING, SUPPLEMENT, PAYMENT), WITHDRAWN, ("reception",),
           "Rút hồ sơ theo đề nghị", "Withdraw at the applicant's request"),
    Action("return_result", (READY,), RETURNED, ("reception",), "Trả kết quả", "Return the result"),
    # Interconnected ("liên thông") dossiers: the commune hands the dossier to an agency served by the hub;
    # the agency's officers (role AGENCY, only ever held on the hub) receive it and return the result, or
    # send it back. While at an agency the dossier stays PROCESSING with step "agency:<code>[:received]".
    Action("send_to_agency", (PROCESSING,), None, ("specialist", "leader"), "Chuyển cơ quan liên thông",
           "Send to an interconnected agency"),
    Action("agency_accept", (PROCESSING,), None, ("agency",), "Cơ quan liên thông tiếp nhận",
           "Agency receives the dossier"),
    Action("agency_result", (PROCESSING,), READY, ("agency",), "Cơ quan liên thông trả kết quả",
           "Agency returns the result"),
    Action("agency_return", (PROCESSING,), None, ("agency",), "Cơ quan liên thông trả lại xã (nêu lý do)",
           "Agency sends it back (with reasons)"),
]}
AGENCY = "agency"  # the role of an interconnected agency's officer: given by the hub, never a commune role
AGENCIES: dict[str, tuple[str, str]] = {
    "district": ("Cơ quan chuyên môn cấp huyện", "District-level agency"),
    "province": ("Cơ quan chuyên môn cấp tỉnh", "Province-level agency"),
    "police": ("Công an (đăng ký cư trú)", "Police (residence registration)"),
    "social_insurance": ("Bảo hiểm xã hội", "Social insurance"),
}
AGENCY_ACTIONS = ("agency_accept", "agency_result", "agency_return")

PHONE = re.compile(r"^\+?[0-9 .]{9,15}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def status_label(code: int, lang: str = "vi") -> str:
    vi, en = STATUSES.get(code, (str(code), str(code)))
    return en if lang == "en" else vi


# ---------------------------------------------------------------- derived, never stored

def horizon(now: datetime) -> tuple[str, str]:
    """(now, end of the due-soon window: one working day ahead) as stored text, for `timing`."""
    soon = catalogue.work_calendar().add_working_minutes(now, 480)
    return to_text(now), to_text(soon)


def timing(d: Dossier, marks: tuple[str, str]) -> str:
    """"early" | "on_time" | "late" for finished dossiers (by day; an apology means late);
    "overdue" | "due_soon" | "in_time" for running ones; "" when there is no deadline.
    `marks` comes from `horizon(now)`."""
    if d.status in (REFUSED, STOPPED, NEW) or not d.appointment_at:
        return ""
    if d.status in FINISHED:
        if d.original_appointment_at:
            return "late"
        end, due = (d.finished_at or d.returned_at)[:10], d.appointment_at[:10]
        return "early" if end < due else ("on_time" if end == due else "late")
    if d.status == SUPPLEMENT:
        return "in_time"
    now_text, soon_text = marks
    if d.appointment_at < now_text:
        return "overdue"
    return "due_soon" if d.appointment_at <= soon_text else "in_time"


def allowed_actions(officer: Officer, d: Dossier) -> list[Action]:
    out = []
    for action in ACTIONS.values():
        if d.status not in action.froms or not officer.has(*action.roles):
            continue
        if action.name == "request_supplement" and d.status == NEW and not officer.has("reception"):
            continue
        if action.name == "propose" and d.step != "processing":
            continue
        if action.name == "sign" and d.step != "signing":
            continue
        if action.name == "apologise" and d.original_appointment_at:
            continue
        if action.name == "send_to_agency" and (d.step != "processing" or not interconnected(d)):
            continue
        if action.name in AGENCY_ACTIONS and not agency_step_allows(action.name, d.step):
            continue
        out.append(action)
    return out


# ---------------------------------------------------------------- reception

def _text(data: dict[str, Any], key: str, limit: int = 300) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed("Dữ liệu không hợp lệ.", "Invalid data.", fields={key: "Phải là chuỗi ký tự."})
    value = nfc(value)
    if len(value) > limit:
        raise ValidationFailed("Dữ liệu quá dài.", "Value too long.",
                               fields={key: f"Tối đa {limit} ký tự."})
    return value


def _int(data: dict[str, Any], key: str, default: int, lo: int, hi: int, errors: dict[str, str]) -> int:
    value = data.get(key, default)
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        errors[key] = f"Phải là số nguyên từ {lo} đến {hi}."
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not lo <= value <= hi:
        errors[key] = f"Phải là số nguyên từ {lo} đến {hi}."
        return default
    return value


def validate_reception(data: dict[str, Any], now: datetime, lang: str = "vi") -> tuple[dict[str, Any], list[str]]:
    """Check a reception form or API body. Returns (clean values, warnings); raises ValidationFailed."""
    if not isinstance(data, dict):
        raise ValidationFailed("Nội dung phải là một đối tượng JSON.", "The body must be a JSON object.")
    errors: dict[str, str] = {}
    warnings: list[str] = []
    clean: dict[str, Any] = {}
    code = _text(data, "procedure_code", 40)
    proc = None
    if not code:
        errors["procedure_code"] = "Chọn thủ tục hành chính."
    else:
        try:
            proc = catalogue.procedure(code, on=now.date())
        except NotFound:
            errors["procedure_code"] = f"Không có thủ tục mã {code}."
    name = _text(data, "applicant_name", 120)
    if not name:
        errors["applicant_name"] = "Cần nhập họ tên người nộp hồ sơ."
    birth = _text(data, "applicant_birth_date", 10)
    birth_date = None
    if birth:
        try:
            birth_date = datetime.strptime(birth, "%Y-%m-%d").date()
            if birth_date > now.date():
                errors["applicant_birth_date"] = "Ngày sinh không thể ở tương lai."
        except ValueError:
            errors["applicant_birth_date"] = "Ngày sinh theo dạng YYYY-MM-DD."
    gender = _text(data, "applicant_gender", 10) or None
    if gender not in (None, "male", "female"):
        errors["applicant_gender"] = "Giới tính: male hoặc female."
        gender = None
    id_raw = _text(data, "applicant_id_number", 20)
    id_number = ""
    if not id_raw:
        errors["applicant_id_number"] = "Cần nhập số định danh cá nhân (CCCD)."
    else:
        check = check_id_number(id_raw, birth_date, gender)
        msgs = ID_MESSAGES["en" if lang == "en" else "vi"]
        if not check.ok:
            errors["applicant_id_number"] = " ".join(msgs[k] for k in check.errors)
        id_number = check.number
        warnings += [msgs[k] for k in check.warnings]
    phone = _text(data, "applicant_phone", 20)
    if phone and not PHONE.match(phone):
        errors["applicant_phone"] = "Số điện thoại gồm 9–15 chữ số."
    email = _text(data, "applicant_email", 120)
    if email and not EMAIL.match(email):
        errors["applicant_email"] = "Địa chỉ thư điện tử không hợp lệ."
    method = _text(data, "return_method", 10) or "desk"
    if method not in RETURN_METHODS:
        errors["return_method"] = "Nơi trả kết quả: desk, post hoặc online."
    channel = _int(data, "channel", 1, 1, 3, errors)
    sets = _int(data, "sets", 1, 1, 50, errors)
    pages = _int(data, "pages", 1, 1, 10000, errors)
    documents = data.get("documents")
    docs: list[dict[str, Any]] = []
    if documents is None and proc is not None:
        docs = [{"name": d["name_vi"], "copy_kind": d["copy_kind"], "count": d["count"], "digitised": "none"}
                for d in proc.documents]
    elif documents is not None:
        if not isinstance(documents, list) or len(documents) > 50:
            errors["documents"] = "Danh sách giấy tờ không hợp lệ (tối đa 50)."
        else:
            for i, doc in enumerate(documents):
                if not isinstance(doc, dict):
                    errors[f"documents[{i}]"] = "Mỗi giấy tờ là một đối tượng."
                    continue
                dname = _text(doc, "name", 300)
                kind = doc.get("copy_kind", "photocopy")
                dig = doc.get("digitised", "none")
                count = _int(doc, "count", 1, 1, 100, errors)
                if not dname:
                    errors[f"documents[{i}].name"] = "Cần tên giấy tờ."
                if kind not in COPY_KINDS:
                    errors[f"documents[{i}].copy_kind"] = "Loại bản: original, certified, photocopy."
                if dig not in DIGITISED:
                    errors[f"documents[{i}].digitised"] = "Số hóa: none, digitised, reused_document, reused_result."
                docs.append({"name": dname, "copy_kind": kind, "count": count, "digitised": dig})
    if errors:
        raise ValidationFailed("Hồ sơ chưa hợp lệ, vui lòng kiểm tra các trường được đánh dấu.",
                               "The dossier is not valid; check the marked fields.", fields=errors)
    assert proc is not None
    clean.update(
        procedure=proc, applicant_name=name, applicant_id_number=id_number,
        applicant_birth_date=birth, applicant_address=_text(data, "applicant_address", 300),
        applicant_phone=phone, applicant_email=email, owner_name=_text(data, "owner_name", 120),
        matter=_text(data, "matter", 500) or proc.name_vi, sets=sets, return_method=method, channel=channel,
        documents=docs, fee_amount=proc.fee_for(pages=pages, copies=sets),
    )
    return clean, warnings


def next_code(node: Node, when: datetime) -> str:
    """`{unit}-{yyMMdd}-{NNNN}`: a per-node daily counter, unique without coordination. A second node of the
    same unit (a field laptop) has a code tag given at enrollment: `{unit}.{tag}-{yyMMdd}-{NNNN}`."""
    tag = node.identity.code_tag
    prefix = f"{node.identity.unit_code}{'.' + tag if tag else ''}-{when:%y%m%d}-"
    top = (Dossier.select(Dossier.code).where((Dossier.code >= prefix) & (Dossier.code < prefix + "\uffff"))
           .order_by(Dossier.code.desc()).limit(1).scalar())
    n = int(top[len(prefix):]) + 1 if top else 1
    return f"{prefix}{n:04d}"


def receive_dossier(node: Node, officer: Officer | None, data: dict[str, Any], lang: str = "vi",
                    online: bool = False) -> tuple[Dossier, list[str]]:
    """Receive a dossier at the counter (status 2, receipt form 01) or register an online one (status 1)."""
    if not online and (officer is None or not officer.has("reception")):
        raise PermissionDenied("Chỉ cán bộ một cửa được tiếp nhận hồ sơ.",
                               "Only a reception officer may receive dossiers.")
    now = node.now()
    clean, warnings = validate_reception(data, now, lang)
    proc = clean.pop("procedure")
    documents = clean.pop("documents")
    cal = catalogue.work_calendar()
    status = NEW if online else ACCEPTED
    due = compute_appointment(now, proc.time_kind, proc.time_value, bool(proc.cutoff_15h), cal)
    dossier_id = new_id()
    by = officer.id if officer else ""
    with store.transaction(node):
        code = next_code(node, now)
        fields = dict(
            clean, code=code, unit_code=node.identity.unit_code, procedure_code=proc.code,
            procedure_version=proc.version, status=status, step="reception",
            applicant_folded=fold(clean["applicant_name"]), received_at=to_text(now), received_by=by,
            appointment_at="" if online else to_text(due),
            step_deadline="" if online else to_text(transfer_deadline(now, cal)),
            channel=2 if online else clean["channel"],
        )
        store.write(node, "dossier", dossier_id, "create", {"fields": fields}, by)
        for i, doc in enumerate(documents):
            store.write(node, "document", new_id(), "create", {"fields": dict(doc, dossier_id=dossier_id,
                                                                                position=i)}, by)
        by_name = officer.full_name if officer else clean["applicant_name"]
        event = {"at": to_text(now), "by_user": by, "by_name": by_name,
                 "unit": node.identity.unit_name, "note": "", "step_deadline": fields["step_deadline"]}
        store.write(node, "dossier", dossier_id, "action",
                    {"action": "register" if online else "receive", "set": {}, "event": event}, by)
    return Dossier.get_by_id(dossier_id), warnings


def transfer_deadline(received: datetime, cal) -> datetime:
    """Paper goes to the processing unit the same working day, or the next morning after 15:00."""
    start = cal.start_of_counting(received)
    if start.date() == received.date() and received.hour >= 15:
        nxt = cal.next_working_day(received.date())
        return datetime.combine(nxt, cal.opening(nxt).time()).replace(hour=11, minute=30)
    return cal.closing(start.date())


# ---------------------------------------------------------------- actions

def get_dossier(ref: str) -> Dossier:
    """A dossier by code or id; NotFound otherwise."""
    row = Dossier.get_or_none((Dossier.code == ref) | (Dossier.id == ref))
    if row is None:
        raise NotFound(f"Không tìm thấy hồ sơ {ref}.", f"No dossier {ref}.")
    return row


def _need(params: dict[str, Any], key: str, vi: str, limit: int = 1000) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not nfc(value):
        raise ValidationFailed(vi, vi, fields={key: vi})
    value = nfc(value)
    if len(value) > limit:
        raise ValidationFailed("Nội dung quá dài.", "Too long.", fields={key: f"Tối đa {limit} ký tự."})
    return value


def perform(node: Node, officer: Officer, ref: str, name: str, params: dict[str, Any] | None = None,
            lang: str = "vi") -> Dossier:
    """Carry out one workflow action on a dossier, as `officer`. Refused whole or done whole."""
    params = params or {}
    if not isinstance(params, dict):
        raise ValidationFailed("Tham số phải là một đối tượng JSON.", "Parameters must be a JSON object.")
    action = ACTIONS.get(name)
    if action is None:
        raise NotFound(f"Không có thao tác {name}.", f"No action {name}.")
    with store.transaction(node):
        d = get_dossier(ref)
        if not officer.has(*action.roles):
            raise PermissionDenied(f"Vai trò của bạn không được phép: {action.vi}.",
                                   f"Your role may not: {action.en}.")
        if action not in allowed_actions(officer, d):
            raise TransitionNotAllowed(
                f"Không thể {action.vi.lower()} khi hồ sơ đang ở trạng thái “{status_label(d.status)}”.",
                f"Cannot {action.en.lower()} while the dossier is “{status_label(d.status, 'en')}”.")
        now = node.now()
        cal = catalogue.work_calendar()
        values, event = _HANDLERS[name](d, params, now, cal, officer)
        event = dict({"at": to_text(now), "by_user": officer.id, "by_name": officer.full_name,
                      "unit": node.identity.unit_name}, **event)
        # `base`: the status version this action was decided on, so a replica can tell an action made at
        # the same time elsewhere (a conflict, settled by precedence) from a later one.
        payload: dict[str, Any] = {"action": name, "set": values, "event": event, "base": d.status_version,
                                   "from": d.status, "unit": d.unit_code}
        if action.to is not None:
            payload["to"] = action.to
        store.write(node, "dossier", d.id, "action", payload, officer.id)
    return Dossier.get_by_id(d.id)


def _accept(d, p, now, cal, officer):
    proc = catalogue.procedure(d.procedure_code, version=d.procedure_version)
    due = compute_appointment(now, proc.time_kind, proc.time_value, bool(proc.cutoff_15h), cal)
    return ({"appointment_at": to_text(due), "received_by": officer.id,
             "step_deadline": to_text(transfer_deadline(now, cal))}, {"note": p.get("note", "") or ""})


def _refuse(d, p, now, cal, officer):
    reason = _need(p, "reason", "Cần ghi lý do từ chối.")
    return {"reason": reason, "step": "closed"}, {"note": reason}


def _request_supplement(d, p, now, cal, officer):
    reason = _need(p, "reason", "Cần ghi lý do yêu cầu bổ sung.")
    items = p.get("items") or []
    if isinstance(items, str):
        items = [line.strip() for line in items.splitlines() if line.strip()]
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise ValidationFailed("Liệt kê giấy tờ cần bổ sung.", "List the documents to add.",
                               fields={"items": "Liệt kê giấy tờ cần bổ sung (mỗi dòng một giấy tờ)."})
    left = 0
    if d.appointment_at:
        left = cal.working_minutes_between(now, from_text(d.appointment_at))
    values = {"reason": reason, "supplement_items": json.dumps([nfc(i) for i in items], ensure_ascii=False),
              "paused_at": to_text(now), "paused_minutes_left": left}
    return values, {"note": reason + ": " + "; ".join(items)}


def _supplement_received(d, p, now, cal, officer):
    proc = catalogue.procedure(d.procedure_code, version=d.procedure_version)
    if proc.supplement_rule == "pause" and d.appointment_at:
        due = cal.add_working_minutes(now, d.paused_minutes_left)
    else:
        due = compute_appointment(now, proc.time_kind, proc.time_value, bool(proc.cutoff_15h), cal)
    values = {"appointment_at": to_text(due), "paused_at": "", "paused_minutes_left": 0, "step": "processing"}
    if not d.received_by:
        values["received_by"] = officer.id
    return values, {"note": p.get("note", "") or "", "step_deadline": to_text(due)}


def _handler_deadline(d, now, cal) -> str:
    due = from_text(d.appointment_at)
    total = cal.working_minutes_between(now, due)
    return to_text(cal.add_working_minutes(now, max(0, total * 4 // 5))) if total else d.appointment_at


def _transfer(d, p, now, cal, officer):
    deadline = _handler_deadline(d, now, cal)
    return ({"step": "processing", "transferred_at": to_text(now), "step_deadline": deadline},
            {"note": p.get("note", "") or "", "step_deadline": d.step_deadline, "to_name": "Bộ phận chuyên môn"})


def _assign(d, p, now, cal, officer):
    handler = p.get("handler_id")
    user = User.get_or_none(User.id == handler) if isinstance(handler, str) else None
    if user is None or not user.active or "specialist" not in user.roles.split(","):
        raise ValidationFailed("Chọn một chuyên viên xử lý.", "Choose a specialist.",
                               fields={"handler_id": "Chọn một chuyên viên xử lý."})
    deadline = _handler_deadline(d, now, cal)
    return ({"handler_id": user.id, "step": "processing", "step_deadline": deadline},
            {"to_user": user.id, "to_name": user.full_name, "step_deadline": deadline,
             "note": p.get("note", "") or ""})


def _propose(d, p, now, cal, officer):
    if d.handler_id and d.handler_id != officer.id and not officer.has("leader"):
        raise PermissionDenied("Hồ sơ được giao cho chuyên viên khác.", "The dossier is assigned to someone else.")
    return ({"step": "signing", "step_deadline": d.appointment_at},
            {"note": p.get("note", "") or "", "step_deadline": d.step_deadline, "to_name": "Lãnh đạo ký duyệt"})


def _request_payment(d, p, now, cal, officer):
    amount = p.get("amount", d.fee_amount)
    if isinstance(amount, str) and amount.strip().isdigit():
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 1_000_000_000:
        raise ValidationFailed("Số tiền phải là số nguyên dương (đồng).", "The amount must be a positive integer.",
                               fields={"amount": "Số tiền phải là số nguyên dương (đồng)."})
    return {"fee_amount": amount, "fee_paid": 0}, {"note": f"{amount:,} đ".replace(",", ".")}


def _record_payment(d, p, now, cal, officer):
    online = p.get("online") in (True, "1", "on", "true")
    return {"fee_paid": 1, "paid_online": 1 if online else 0}, {"note": "trực tuyến" if online else "tại quầy"}


def _sign(d, p, now, cal, officer):
    digitised = p.get("result_digitised") in (True, "1", "on", "true")
    return ({"step": "result", "result_at": to_text(now), "finished_at": to_text(now),
             "result_digitised": 1 if digitised else 0},
            {"note": p.get("note", "") or "", "step_deadline": d.appointment_at, "to_name": "Bộ phận một cửa"})


def _stop(d, p, now, cal, officer):
    reason = _need(p, "reason", "Cần nêu lý do dừng xử lý.")
    return {"reason": reason, "step": "closed"}, {"note": reason}


def _apologise(d, p, now, cal, officer):
    reason = _need(p, "reason", "Cần nêu lý do chậm trễ.")
    raw = p.get("new_appointment")
    try:
        new = parse_user_datetime(raw) if isinstance(raw, str) else None
    except ValueError:
        new = None
    if new is None:
        raise ValidationFailed("Ngày hẹn mới theo dạng YYYY-MM-DD HH:MM.", "New date as YYYY-MM-DD HH:MM.",
                               fields={"new_appointment": "Ngày hẹn mới theo dạng YYYY-MM-DD HH:MM."})
    if to_text(new) <= max(d.appointment_at, to_text(now)):
        raise ValidationFailed("Ngày hẹn mới phải sau ngày hẹn cũ và sau hiện tại.",
                               "The new date must be after the old one and after now.",
                               fields={"new_appointment": "Ngày hẹn mới phải sau ngày hẹn cũ và sau hiện tại."})
    if not cal.is_working_day(new.date()):
        raise ValidationFailed("Ngày hẹn mới phải là ngày làm việc.", "The new date must be a working day.",
                               fields={"new_appointment": "Ngày hẹn mới phải là ngày làm việc."})
    return ({"original_appointment_at": d.appointment_at, "appointment_at": to_text(new),
             "apology_at": to_text(now), "apology_reason": reason},
            {"note": reason, "step_deadline": d.appointment_at})


def _withdraw(d, p, now, cal, officer):
    reason = _need(p, "reason", "Cần ghi lý do rút hồ sơ.")
    return {"reason": reason, "finished_at": to_text(now), "step": "closed"}, {"note": reason}


def _return_result(d, p, now, cal, officer):
    rating = p.get("rating")
    if rating not in RATINGS:
        raise ValidationFailed("Chọn mức độ hài lòng.", "Choose the satisfaction rating.",
                               fields={"rating": "Chọn mức độ hài lòng."})
    reason = p.get("rating_reason") or ""
    if not isinstance(reason, str):
        reason = ""
    reason = nfc(reason)
    if rating == "not_satisfied" and not reason:
        raise ValidationFailed("Cần ghi lý do không hài lòng.", "Give the reason for dissatisfaction.",
                               fields={"rating_reason": "Cần ghi lý do không hài lòng."})
    method = p.get("method") or d.return_method
    if method not in RETURN_METHODS:
        raise ValidationFailed("Hình thức trả không hợp lệ.", "Invalid return method.",
                               fields={"method": "desk, post hoặc online."})
    return ({"returned_at": to_text(now), "rating": rating, "rating_reason": reason[:500], "return_method": method,
             "step": "returned"},
            {"note": RATINGS[rating][0] + (f": {reason}" if reason else ""), "step_deadline": d.appointment_at})


_HANDLERS = {
    "accept": _accept, "refuse": _refuse, "request_supplement": _request_supplement,
    "supplement_received": _supplement_received, "transfer": _transfer, "assign": _assign, "propose": _propose,
    "request_payment": _request_payment, "record_payment": _record_payment, "sign": _sign, "stop": _stop,
    "apologise": _apologise, "withdraw": _withdraw, "return_result": _return_result,
}


# ---------------------------------------------------------------- interconnected dossiers

def agency_of(step: str) -> tuple[str, bool] | None:
    """(agency code, received?) of a dossier at an agency ("agency:<code>" or "agency:<code>:received")."""
    parts = (step or "").split(":")
    if len(parts) < 2 or parts[0] != "agency" or parts[1] not in AGENCIES:
        return None
    return parts[1], parts[2:] == ["received"]


def agency_label(step: str, lang: str = "vi") -> str:
    found = agency_of(step)
    if found is None:
        return ""
    vi, en = AGENCIES[found[0]]
    return en if lang == "en" else vi


def interconnected(d: Dossier) -> bool:
    """Whether the dossier's procedure (the version it was received under) is an interconnected one."""
    flag = (Procedure.select(Procedure.interconnected)
            .where((Procedure.code == d.procedure_code) & (Procedure.version == d.procedure_version)).scalar())
    return bool(flag)


def agency_step_allows(name: str, step: str) -> bool:
    """The agency's own actions: receive a dossier sent to it, then return the result or send it back."""
    found = agency_of(step)
    if found is None:
        return False
    return (not found[1]) if name == "agency_accept" else found[1]


def _note(p: dict[str, Any]) -> str:
    note = p.get("note") or ""
    if not isinstance(note, str) or len(note) > 1000:
        raise ValidationFailed("Ghi chú tối đa 1000 ký tự.", "Notes have at most 1000 characters.",
                               fields={"note": "Ghi chú tối đa 1000 ký tự."})
    return nfc(note)


def _send_to_agency(d, p, now, cal, officer):
    code = p.get("agency")
    if code not in AGENCIES:
        raise ValidationFailed("Chọn cơ quan liên thông.", "Choose the agency.",
                               fields={"agency": "Chọn cơ quan liên thông."})
    deadline = _handler_deadline(d, now, cal) if d.appointment_at and cal is not None else d.step_deadline
    return ({"step": f"agency:{code}", "step_deadline": deadline},
            {"note": _note(p), "step_deadline": d.step_deadline, "to_name": AGENCIES[code][0]})


def _agency_accept(d, p, now, cal, officer):
    return ({"step": d.step + ":received"}, {"note": _note(p), "step_deadline": d.step_deadline})


def _agency_result(d, p, now, cal, officer):
    digitised = p.get("result_digitised") in (True, "1", "on", "true")
    return ({"step": "result", "result_at": to_text(now), "finished_at": to_text(now),
             "result_digitised": 1 if digitised else 0},
            {"note": _note(p), "step_deadline": d.step_deadline, "to_name": "Bộ phận một cửa"})


def _agency_return(d, p, now, cal, officer):
    reason = _need(p, "reason", "Cần nêu lý do trả lại.")
    return ({"step": "processing", "reason": reason},
            {"note": reason, "step_deadline": d.step_deadline, "to_name": "Bộ phận chuyên môn"})


_HANDLERS.update({"send_to_agency": _send_to_agency, "agency_accept": _agency_accept,
                  "agency_result": _agency_result, "agency_return": _agency_return})


def decide(officer: Officer, d: Dossier, name: str, params: dict[str, Any] | None, now: datetime, cal: Any,
           unit: str) -> dict[str, Any]:
    """The `dossier.action` payload of `name` on `d` by `officer`, checked as `perform` checks it (role,
    status and step, parameters), for a writer that is not a node: the hub's agencies write it with
    `storage.write_change`. `unit` names who acted in the history (form 05). Raises like `perform`."""
    params = params or {}
    if not isinstance(params, dict):
        raise ValidationFailed("Tham số phải là một đối tượng JSON.", "Parameters must be a JSON object.")
    action = ACTIONS.get(name)
    if action is None:
        raise NotFound(f"Không có thao tác {name}.", f"No action {name}.")
    if not officer.has(*action.roles):
        raise PermissionDenied(f"Vai trò của bạn không được phép: {action.vi}.", f"Your role may not: {action.en}.")
    if action not in allowed_actions(officer, d):
        raise TransitionNotAllowed(
            f"Không thể {action.vi.lower()} khi hồ sơ đang ở trạng thái “{status_label(d.status)}”.",
            f"Cannot {action.en.lower()} while the dossier is “{status_label(d.status, 'en')}”.")
    values, event = _HANDLERS[name](d, params, now, cal, officer)
    event = dict({"at": to_text(now), "by_user": officer.id, "by_name": officer.full_name, "unit": unit}, **event)
    payload: dict[str, Any] = {"action": name, "set": values, "event": event, "base": d.status_version,
                               "from": d.status, "unit": d.unit_code}
    if action.to is not None:
        payload["to"] = action.to
    return payload


# ---------------------------------------------------------------- editing the applicant's details

EDIT_LIMITS = {"applicant_name": 120, "applicant_birth_date": 10, "applicant_address": 300,
               "applicant_phone": 20, "applicant_email": 120, "owner_name": 120, "matter": 500}
assert set(EDIT_LIMITS) == set(EDITABLE)


def validate_edit_value(name: str, value: Any) -> str:
    """One editable field's new value, cleaned; raises ValidationFailed naming the field."""
    if name not in EDITABLE:
        raise ValidationFailed("Trường này không sửa được.", "This field cannot be edited.",
                               fields={name: "Trường này không sửa được."})
    clean = _text({name: value}, name, EDIT_LIMITS[name])
    error = None
    if name == "applicant_name" and not clean:
        error = "Cần nhập họ tên người nộp hồ sơ."
    elif name == "applicant_birth_date" and clean:
        try:
            datetime.strptime(clean, "%Y-%m-%d")
        except ValueError:
            error = "Ngày sinh theo dạng YYYY-MM-DD."
    elif name == "applicant_phone" and clean and not PHONE.match(clean):
        error = "Số điện thoại gồm 9–15 chữ số."
    elif name == "applicant_email" and clean and not EMAIL.match(clean):
        error = "Địa chỉ thư điện tử không hợp lệ."
    elif name == "matter" and not clean:
        error = "Cần ghi nội dung yêu cầu."
    if error:
        raise ValidationFailed("Thông tin chưa hợp lệ, vui lòng kiểm tra các trường được đánh dấu.",
                               "The details are not valid; check the marked fields.", fields={name: error})
    return clean


def edit_dossier(node: Node, officer: Officer, ref: str, data: dict[str, Any]) -> Dossier:
    """Correct the applicant's details (the fields in EDITABLE) as one signed change of field writes.

    Each written field names the version it was based on, so an edit made elsewhere at the same time is
    recognised as concurrent and kept as a conflict for a person, never silently lost. Fields left as they
    are write nothing; an edit that changes nothing writes no change at all.
    """
    if not isinstance(data, dict):
        raise ValidationFailed("Nội dung phải là một đối tượng JSON.", "The body must be a JSON object.")
    if not officer.has("reception", "specialist", "leader"):
        raise PermissionDenied("Vai trò của bạn không được sửa hồ sơ.", "Your role may not edit dossiers.")
    unknown = sorted(k for k in data if k not in EDITABLE)
    if unknown:
        raise ValidationFailed("Có trường không sửa được.", "Some fields cannot be edited.",
                               fields={k: "Trường này không sửa được." for k in unknown})
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for name, value in data.items():
        try:
            clean[name] = validate_edit_value(name, value)
        except ValidationFailed as exc:
            errors.update(exc.fields)
    if errors:
        raise ValidationFailed("Thông tin chưa hợp lệ, vui lòng kiểm tra các trường được đánh dấu.",
                               "The details are not valid; check the marked fields.", fields=errors)
    with store.transaction(node):
        d = get_dossier(ref)
        if d.status in (REFUSED, WITHDRAWN, STOPPED, RETURNED):
            raise TransitionNotAllowed(
                f"Không sửa được hồ sơ ở trạng thái “{status_label(d.status)}”.",
                f"A dossier that is “{status_label(d.status, 'en')}” cannot be edited.")
        changed = {k: v for k, v in clean.items() if getattr(d, k) != v}
        if not changed:
            return d
        versions = json.loads(d.field_versions or "{}")
        if "applicant_name" in changed:
            changed["applicant_folded"] = fold(changed["applicant_name"])
        payload = {"set": changed, "base": {k: versions.get(k, d.version) for k in changed},
                   "unit": d.unit_code, "by_name": officer.full_name, "at": to_text(node.now())}
        store.write(node, "dossier", d.id, "update", payload, officer.id)
    return Dossier.get_by_id(d.id)


def documents_of(d: Dossier) -> list[DossierDocument]:
    return list(DossierDocument.select().where(DossierDocument.dossier_id == d.id).order_by(DossierDocument.position))
